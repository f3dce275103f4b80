"""Running external tools (git, docker) with one clear error when they fail."""

import os
import re
import subprocess
from collections.abc import Mapping, Sequence

_USAGE_HINT = re.compile(r"(?:Run|See) '[^']* --help'")
"""The docker CLI's last line after some errors (`docker run`'s), which says nothing of why."""
_CAUSE = re.compile(r"(?:fatal|error): ")
"""git's statement of a failure, which it prints before its advice (`Please make sure you have
the correct access rights` / `and the repository exists.`)."""


class HostError(Exception):
    """Host state could not be ensured; the message says what, where and why."""


def run(
    argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `argv`, capturing its output; a missing executable is a HostError, a failing one is not
    (callers decide what a non-zero exit means)."""
    try:
        return subprocess.run(
            list(argv),
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as error:
        raise HostError(f"{argv[0]} is not installed or not on PATH") from error


def run_checked(argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> str:
    """Run `argv` and return its stdout; a non-zero exit is a HostError saying `what` failed."""
    result = run(argv, env=env)
    if result.returncode != 0:
        raise HostError(f"{what} failed: {_reason(result)}")
    return result.stdout


def _reason(result: subprocess.CompletedProcess[str]) -> str:
    """Why a tool failed: its first `fatal: ` or `error: ` line, else its last line that is
    neither blank nor a usage hint, else its exit status."""
    output = (result.stderr or result.stdout).splitlines()
    lines = [line for line in output if line.strip() and not _USAGE_HINT.match(line)]
    causes = [line for line in lines if _CAUSE.match(line)]
    if causes:
        return causes[0]
    return lines[-1] if lines else f"exit status {result.returncode}"
