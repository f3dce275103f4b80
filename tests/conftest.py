"""Fixtures for whole-program tests under Pulumi mocks (machinery in tests/program_mocks.py).

The `program` fixture sets mocks and config and runs `__main__.py` fresh with runpy, from the
project directory, as Pulumi does. `ascii_locale` runs a test under the C locale, for the files
the tools must read as UTF-8 whatever the machine's locale. `verify_refusal` runs the verify CLI
in process on arguments it must refuse.
"""

import locale
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.program_mocks import ROOT, ProgramRunner
from tests.recorder import reset


@pytest.fixture
def program(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProgramRunner]:
    """`program(config, secrets=None)` evaluates the whole program, fresh, from the project dir
    (where Pulumi runs it)."""
    monkeypatch.chdir(ROOT)
    yield ProgramRunner()
    reset()


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    """The process's character type set to the C locale (ASCII) for the test, as on a machine
    without a UTF-8 locale: what `open()` reads and writes without an encoding then changes."""
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


@pytest.fixture
def verify_refusal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[[list[str]], str]:
    """`verify_refusal(argv)` runs `python -m verify`'s main in process, without registry
    credentials or a Docker login, asserts it exits 2 printing nothing on stdout; its stderr."""
    from verify import cli

    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))

    def refuse(argv: list[str]) -> str:
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        return captured.err

    return refuse


UPSTREAM_CHECKOUT_TESTS = "tests/test_patches_upstream_checkout.py"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """One closing line when the optional upstream-checkout tests were skipped, and how to run
    them: scripts/test (and CI) stay green without an upstream checkout, but never silently.
    A wrapper, so the line comes after pytest's short summary, just above the final counts."""
    yield
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if getattr(report, "nodeid", "").startswith(f"{UPSTREAM_CHECKOUT_TESTS}::")
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} upstream-checkout tests skipped: BOUTIQUE_UPSTREAM_DIR is not set; "
            "run them with BOUTIQUE_UPSTREAM_DIR=<a microservices-demo checkout at a supported "
            f"commit> scripts/test {UPSTREAM_CHECKOUT_TESTS}"
        )
