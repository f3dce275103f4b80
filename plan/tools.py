"""How the program runs its tools (`python -m host|patches|verify`): the one place that decides
the interpreter and renders a request of a tool's contract (`host.contract`,
`patches.contract`, `verify.contract`) as a Command's text.

The interpreter is the one running the program (`sys.executable`; `python` on PATH may be another
one). Inside the project it is written relative to the project directory, where Pulumi runs
programs and commands, so a Command's stored text is the same on every machine that uses the
project's virtualenv and a new CI runner does not replace it.
"""

import os
import shlex
import sys
from typing import ClassVar, Protocol


class ToolRequest(Protocol):
    """A request type of a tool's contract."""

    TOOL: ClassVar[str]
    """The module run with `python -m`."""

    def argv(self) -> list[str]:
        """The arguments after `python -m <TOOL>`."""
        ...


def interpreter(executable: str, project_dir: str) -> str:
    """`executable` relative to `project_dir` when it lies inside it, else as it is."""
    relative = os.path.relpath(executable, project_dir)
    return executable if relative.startswith("..") else relative


def tool_command(request: ToolRequest, python: str | None = None) -> str:
    """`<python> -m <tool> <argv...>`, quoted for a shell. `python` defaults to the program's
    own interpreter, relative to the working directory (the project directory)."""
    python = interpreter(sys.executable, os.getcwd()) if python is None else python
    return shlex.join([python, "-m", request.TOOL, *request.argv()])


def tool_argv(command_line: str, tool: str) -> list[str] | None:
    """The arguments after the last `-m <tool>` of a (possibly chained) command line, the
    inverse of `tool_command`: the command whose stdout is the line's stdout. None when the
    line does not run `tool`."""
    argv = shlex.split(command_line)
    starts = [i for i in range(len(argv) - 1) if argv[i : i + 2] == ["-m", tool]]
    return argv[starts[-1] + 2 :] if starts else None
