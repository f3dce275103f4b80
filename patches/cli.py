"""Command line: `python -m patches apply|check|diff SOURCE_DIR [options]`.

Exit codes: 0 success; 1 `check` found files not yet patched; 2 drift, unknown upstream or usage
error (one message on stderr, nothing changed). With --json, stdout carries one JSON document:
{"revision": sha, "files": [{"service", "path", "status", "patchId"}]} (`diff` adds "diff").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from patches.definitions import DEFAULT_DEFINITIONS, DefinitionsError, load
from patches.engine import (
    ALREADY_PATCHED,
    PATCHED,
    UNPATCHED,
    UNTOUCHED,
    PatchError,
    Plan,
    plan,
    write,
)

EXIT_OK = 0
EXIT_NOT_PATCHED = 1
EXIT_ERROR = 2

_WORDS = {
    "apply": {UNPATCHED: "patched", ALREADY_PATCHED: "already patched", UNTOUCHED: "untouched"},
    "check": {UNPATCHED: "needs patch", ALREADY_PATCHED: "already patched", UNTOUCHED: "untouched"},
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    arguments = _parser().parse_args(argv)
    try:
        definitions = load(arguments.definitions)
        result = plan(
            arguments.source_dir,
            definitions,
            tuple(arguments.service or ()),
            arguments.revision,
        )
        if arguments.command == "apply":
            write(result)
    except (PatchError, DefinitionsError) as error:
        print(f"patches {arguments.command}: {error}", file=sys.stderr)
        return EXIT_ERROR
    _report(arguments.command, result, arguments.json)
    pending = any(f.state == UNPATCHED for f in result.files)
    return EXIT_NOT_PATCHED if arguments.command == "check" and pending else EXIT_OK


def _report(command: str, result: Plan, as_json: bool) -> None:
    if as_json:
        files = []
        for file in result.files:
            status = PATCHED if command == "apply" and file.state == UNPATCHED else file.state
            entry: dict[str, object] = {
                "service": file.service,
                "path": file.path,
                "status": status,
                "patchId": file.patch_id,
            }
            if command == "diff":
                entry["diff"] = file.diff()
            files.append(entry)
        document = {"revision": result.revision.commit, "files": files}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    print(f"upstream {result.revision.label}", file=sys.stderr)
    if command == "diff":
        sys.stdout.write("".join(file.diff() for file in result.files))
        return
    for file in result.files:
        print(f"{_WORDS[command][file.state]}: {file.path}")


def _commit(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{40}", value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a full commit sha (40 lower-case hex digits)"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m patches",
        description="Patch the Online Boutique Dockerfiles so arm64 images hold arm64 binaries.",
        epilog="Exit codes: 0 ok; 1 check found unpatched files; 2 drift, unknown upstream, usage.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "apply": "patch the Dockerfiles in place (idempotent, all or nothing)",
        "check": "exit 1 when a Dockerfile still needs its patches, 0 when all are patched",
        "diff": "print the unified diff that apply would make",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("source_dir", type=Path, metavar="SOURCE_DIR", help="checkout root")
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
            type=Path,
            default=DEFAULT_DEFINITIONS,
            metavar="FILE",
            help="patch definitions (TOML); default: the upstream definitions shipped here",
        )
    return parser
