"""What the tool prints: the ``--json`` document, the summary line, the failure lines.

The JSON shape is a contract with the ManifestVerification component; keep it stable:
``{ref, digest, mediaType, platforms: {"linux/amd64": {digest, configArchitecture,
elf: null | {checked, mismatched, mismatchedPaths}}}, attestations}``; with ``--run``
each started platform also gets ``run`` (:func:`verify.run.run_json`), added by the CLI.
"""

from __future__ import annotations

from typing import Any

from verify.checks import ImageResult


def image_json(result: ImageResult) -> dict[str, Any]:
    """The ``--json`` document of one reference."""
    return {
        "ref": result.ref,
        "digest": result.digest,
        "mediaType": result.media_type,
        "platforms": {
            name: {
                "digest": platform.digest,
                "configArchitecture": platform.config_architecture,
                "elf": None
                if platform.elf is None
                else {
                    "checked": platform.elf.checked,
                    "mismatched": platform.elf.mismatched,
                    "mismatchedPaths": platform.elf.mismatched_paths,
                },
            }
            for name, platform in result.platforms.items()
        },
        "attestations": result.attestations,
    }


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on escaped (``\\n``, ``\\x1b``, ...).

    Registry answers (error messages, headers, manifest fields, tar member names) reach the
    failure lines; escaped, none of them can end a line early, move the cursor or recolour
    the output, so no line can be forged (a fake ``verified ...`` line, say).
    """
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def failure_lines(result: ImageResult) -> list[str]:
    """One stderr line per problem: ``verify: REF: PLATFORM: reason``."""
    return [
        printable(f"verify: {result.ref}: {problem.platforms}: {problem.reason}")
        for problem in result.problems
    ]


def summary_line(result: ImageResult) -> str:
    """The human-readable line for a verified reference."""
    parts = []
    for name, platform in result.platforms.items():
        text = f"{name} {platform.digest}"
        if platform.elf is not None:
            text += f" ({platform.elf.checked} ELF files checked)"
        parts.append(text)
    return printable(
        f"verified {result.ref}@{result.digest}: {'; '.join(parts)}; "
        f"{result.attestations} attestation manifest(s) skipped"
    )
