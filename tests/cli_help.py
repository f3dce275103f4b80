"""The whole `--help` of a tool's in-process entry point, as the help tests compare it."""

from collections.abc import Callable, Sequence

import pytest


def help_of(
    main: Callable[[Sequence[str]], int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """What `main(["--help"])` prints at 80 columns (argparse wraps at the terminal's width);
    it must exit 0 and write nothing to stderr."""
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr()
    assert shown.err == ""
    return shown.out
