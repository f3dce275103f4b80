"""What the Pulumi program runs of `python -m patches` and what it reads back: the tool's contract.

`PatchRequest` is one command line (`apply`, `check` or `diff`): `argv()` renders the arguments
after `python -m patches`, `from_argv` parses them back through the parser the CLI itself uses
(built here, `parser()`), so the two cannot drift. `PatchReport` is the `--json` document the
tool prints (`to_json`) and the program reads (`from_json`).

Cheap to import (argparse, json and re only): the program and its test mocks import it.
"""

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, cast

from cli_contract import ParserClass, StrictParser, built, option, repeated

Command = Literal["apply", "check", "diff"]
COMMAND_HELP: dict[Command, str] = {
    "apply": "patch the Dockerfiles in place (idempotent, all or nothing)",
    "check": "exit 1 when a Dockerfile still needs its patches, 0 when all are patched",
    "diff": "print the unified diff that apply would make",
}


def _commit(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{40}", value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a full commit sha (40 lower-case hex digits)"
        )
    return value


def parser(parser_class: ParserClass = StrictParser) -> argparse.ArgumentParser:
    """The parser of `python -m patches` (the CLI passes argparse's own class)."""
    parser = parser_class(
        prog="python -m patches",
        description="Patch the Online Boutique Dockerfiles so arm64 images hold arm64 binaries.",
        epilog="Exit codes: 0 ok; 1 check found unpatched files; 2 drift, unknown upstream, usage.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMAND_HELP.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("source_dir", metavar="SOURCE_DIR", help="checkout root")
        command.add_argument(
            "--service",
            action="append",
            metavar="NAME",
            help="only this service (repeatable); default: every patchable service in the tree",
        )
        command.add_argument(
            "--revision",
            type=_commit,
            metavar="FULL_SHA",
            help="the upstream commit the tree is at; default: recognised from the files",
        )
        command.add_argument("--json", action="store_true", help="print JSON on stdout")
        command.add_argument(
            "--definitions",
            metavar="FILE",
            help="patch definitions (TOML); default: the upstream definitions shipped here",
        )
    return parser


@dataclass(frozen=True)
class PatchRequest:
    """`COMMAND [--json] [--revision SHA] [--service NAME]... [--definitions FILE] --
    SOURCE_DIR`: after `--` the checkout root is never read as an option, whatever it starts
    with."""

    TOOL: ClassVar[str] = "patches"

    command: Command
    source_dir: str
    """The checkout root."""
    services: tuple[str, ...] = ()
    """Only these services; empty: every patchable service in the tree."""
    revision: str | None = None
    """The upstream commit the tree is at; None: recognised from the files."""
    json: bool = False
    definitions: str | None = None
    """Patch definitions (TOML); None: the upstream definitions shipped with the tool."""

    def argv(self) -> list[str]:
        argv: list[str] = [self.command, *(["--json"] if self.json else [])]
        argv += option("--revision", self.revision)
        argv += repeated("--service", self.services)
        argv += option("--definitions", self.definitions)
        return [*argv, "--", self.source_dir]

    @staticmethod
    def from_argv(argv: Sequence[str], parser_class: ParserClass = StrictParser) -> "PatchRequest":
        """The request of `python -m patches` arguments; `cli_contract.ArgvError` (or, with
        argparse's own class, the CLI's usage exit) for what the parser refuses."""
        arguments = built(parser, parser_class).parse_args(argv)
        return PatchRequest(
            command=cast(Command, arguments.command),
            source_dir=arguments.source_dir,
            services=tuple(arguments.service or ()),
            revision=arguments.revision,
            json=arguments.json,
            definitions=arguments.definitions,
        )


@dataclass(frozen=True)
class PatchedFile:
    """One configured service's Dockerfile in the `--json` document."""

    service: str
    path: str
    """Relative to the checkout root."""
    status: str
    """What the run did or found (`patched`, `already-patched`, ...): differs between a first
    and a second run, so it must never reach a resource input."""
    patch_id: str | None
    """sha256 of the definitions applied; None when no patch applies."""
    diff: str | None = None
    """`diff` only: the unified diff apply would make."""


@dataclass(frozen=True)
class PatchReport:
    """The `--json` document: `{"revision": sha, "files": [{"service", "path", "status",
    "patchId"}]}` (`diff` adds "diff" to each file)."""

    revision: str
    files: tuple[PatchedFile, ...]

    def to_json(self) -> str:
        files = []
        for file in self.files:
            entry: dict[str, object] = {
                "service": file.service,
                "path": file.path,
                "status": file.status,
                "patchId": file.patch_id,
            }
            if file.diff is not None:
                entry["diff"] = file.diff
            files.append(entry)
        return json.dumps({"revision": self.revision, "files": files}, indent=2)

    @staticmethod
    def from_json(text: str) -> "PatchReport":
        document = json.loads(text)
        return PatchReport(
            revision=document["revision"],
            files=tuple(
                PatchedFile(
                    service=entry["service"],
                    path=entry["path"],
                    status=entry["status"],
                    patch_id=entry["patchId"],
                    diff=entry.get("diff"),
                )
                for entry in document["files"]
            ),
        )
