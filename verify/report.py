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


def failure_lines(result: ImageResult) -> list[str]:
    """One stderr line per problem: ``verify: REF: PLATFORM: reason``."""
    return [
        f"verify: {result.ref}: {problem.platforms}: {problem.reason}"
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
    return (
        f"verified {result.ref}@{result.digest}: {'; '.join(parts)}; "
        f"{result.attestations} attestation manifest(s) skipped"
    )
