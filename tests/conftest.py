"""Fixtures for whole-program tests under Pulumi mocks (machinery in tests/program_mocks.py).

The `program` fixture sets mocks and config and runs `__main__.py` fresh with runpy, from the
project directory, as Pulumi does.
"""

from collections.abc import Iterator

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
