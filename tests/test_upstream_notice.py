"""A run that skips the optional upstream-checkout tests says so in one line, and how to run
them."""

import os
import subprocess
import sys

from tests.conftest import UPSTREAM_CHECKOUT_TESTS
from tests.program_mocks import ROOT


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "BOUTIQUE_UPSTREAM_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def notices(output: str) -> list[str]:
    return [line for line in output.splitlines() if "upstream-checkout tests skipped" in line]


def test_skipped_upstream_tests_are_named_with_how_to_run_them() -> None:
    result = run_pytest(UPSTREAM_CHECKOUT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = notices(result.stdout)
    # Just above the final counts, where a green run's reader looks.
    assert result.stdout.splitlines()[-2] == line
    assert line.startswith("2 upstream-checkout tests skipped")
    assert "BOUTIQUE_UPSTREAM_DIR=" in line and UPSTREAM_CHECKOUT_TESTS in line


def test_no_notice_when_the_upstream_tests_were_not_selected() -> None:
    result = run_pytest("tests/test_verify_retry.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert notices(result.stdout) == []
