"""What the tool prints: the ``--json`` document, the summary line, the failure lines.

The JSON document is :class:`verify.contract.ImageReport`, the contract with the
ManifestVerification component; this module fills it from an :class:`ImageResult`.
"""

from __future__ import annotations

from collections.abc import Mapping

from verify.checks import ImageResult
from verify.contract import ElfSummary, ImageReport, PlatformReport, RunSummary


def image_report(
    result: ImageResult,
    runs: Mapping[str, RunSummary] | None = None,
    referrers: Mapping[str, str] | None = None,
) -> ImageReport:
    """The ``--json`` document of one reference, with the ``--run`` outcome of each started
    platform and the ``--attest`` referrers."""
    started = runs or {}
    return ImageReport(
        ref=result.ref,
        digest=result.digest,
        media_type=result.media_type,
        platforms={
            name: PlatformReport(
                digest=platform.digest,
                config_architecture=platform.config_architecture,
                elf=None
                if platform.elf is None
                else ElfSummary(
                    checked=platform.elf.checked,
                    mismatched=platform.elf.mismatched,
                    mismatched_paths=tuple(platform.elf.mismatched_paths),
                ),
                run=started.get(name),
            )
            for name, platform in result.platforms.items()
        },
        attestations=result.attestations,
        referrers=referrers,
    )


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
