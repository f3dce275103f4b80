"""Maintainer tool: record a new upstream revision's patch set from a checkout of it.

    python -m patches.record SOURCE_DIR --commit FULL_SHA --tag TAG --like KNOWN_SHA

takes the services, paths and operations of the known revision, reads each Dockerfile from the
new checkout, applies the operations with all their checks, and prints a `[[revision]]` block
(digests and fingerprints included) to append to patches/upstream.toml after review. An
operation that no longer fits stops it with the line, what was expected and what was found.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from patches.definitions import (
    DEFAULT_DEFINITIONS,
    DefinitionsError,
    FileDefinition,
    content_digest,
    line_fingerprint,
    load,
)
from patches.dockerfile import DockerfileSyntaxError
from patches.engine import PatchError, apply_operations


def record(root: Path, known: tuple[FileDefinition, ...], commit: str, tag: str) -> str:
    """The TOML block for `commit`, with `known`'s operations applied to the files under `root`."""
    blocks = [f'[[revision]]\ncommit = "{commit}"\ntag = "{tag}"\n']
    for definition in known:
        path = root / definition.path
        try:
            text = path.read_bytes().decode("utf-8")
            after = apply_operations(text, definition.operations)
        except (OSError, UnicodeDecodeError, DockerfileSyntaxError, PatchError) as error:
            raise PatchError(f"{definition.path}: {error}") from error
        entry = [
            "[[revision.file]]",
            f'service = "{definition.service}"',
            f'path = "{definition.path}"',
            f'pristine = "{content_digest(text)}"',
            f'lines = "{line_fingerprint(text)}"',
        ]
        if definition.operations:
            entry += [
                f'patched = "{content_digest(after)}"',
                f'patched_lines = "{line_fingerprint(after)}"',
                "patches = [",
                *(f"  {_inline_table(op.as_data())}," for op in definition.operations),
                "]",
            ]
        blocks.append("\n".join(entry) + "\n")
    return "\n".join(blocks)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the new revision block; exit 2 with one message when an operation does not fit."""
    parser = argparse.ArgumentParser(prog="python -m patches.record", description=__doc__)
    parser.add_argument("source_dir", type=Path, metavar="SOURCE_DIR")
    parser.add_argument("--commit", required=True, help="full sha of the new upstream commit")
    parser.add_argument("--tag", default="", help="its tag, for messages")
    parser.add_argument("--like", required=True, metavar="KNOWN_SHA", help="revision to copy")
    parser.add_argument("--definitions", type=Path, default=DEFAULT_DEFINITIONS)
    arguments = parser.parse_args(argv)
    try:
        known = load(arguments.definitions).revision(arguments.like)
        if known is None:
            raise PatchError(f"--like {arguments.like!r} is not in {arguments.definitions}")
        print(record(arguments.source_dir, known.files, arguments.commit, arguments.tag), end="")
    except (PatchError, DefinitionsError) as error:
        print(f"patches.record: {error}", file=sys.stderr)
        return 2
    return 0


def _inline_table(data: dict[str, object]) -> str:
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in data.items()) + " }"


if __name__ == "__main__":
    raise SystemExit(main())
