"""Command line: `python -m patches apply|check|diff SOURCE_DIR [options]`.

Exit codes: 0 success; 1 `check` found files not yet patched; 2 drift, unknown upstream or usage
error (one message on stderr, nothing changed). With --json, stdout carries one JSON document:
`patches.contract.PatchReport`. Arguments are parsed by `patches.contract.PatchRequest`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from patches.contract import PatchedFile, PatchReport, PatchRequest
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
    request = PatchRequest.from_argv(
        sys.argv[1:] if argv is None else argv, argparse.ArgumentParser
    )
    try:
        definitions = load(
            DEFAULT_DEFINITIONS if request.definitions is None else Path(request.definitions)
        )
        result = plan(Path(request.source_dir), definitions, request.services, request.revision)
        if request.command == "apply":
            write(result)
    except (PatchError, DefinitionsError) as error:
        print(f"patches {request.command}: {error}", file=sys.stderr)
        return EXIT_ERROR
    _report(request.command, result, request.json)
    pending = any(f.state == UNPATCHED for f in result.files)
    return EXIT_NOT_PATCHED if request.command == "check" and pending else EXIT_OK


def _report(command: str, result: Plan, as_json: bool) -> None:
    if as_json:
        files = tuple(
            PatchedFile(
                service=file.service,
                path=file.path,
                status=PATCHED if command == "apply" and file.state == UNPATCHED else file.state,
                patch_id=file.patch_id,
                diff=file.diff() if command == "diff" else None,
            )
            for file in result.files
        )
        sys.stdout.write(PatchReport(result.revision.commit, files).to_json() + "\n")
        return
    print(f"upstream {result.revision.label}", file=sys.stderr)
    if command == "diff":
        sys.stdout.write("".join(file.diff() for file in result.files))
        return
    for file in result.files:
        print(f"{_WORDS[command][file.state]}: {file.path}")
