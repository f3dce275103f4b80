"""The table `scripts/local-up` ends with, read from the stack output `images`.

`pulumi stack output images --json` gives, per service, `ref`, `digest`, `tag`, `platforms`
(`{platform: manifest digest}`) and, where the verification records it, `proof`
(`{platform: {elfFiles, probe, seconds} | {skipped: reason}}`). The columns for ELF files
checked and the runtime proof appear only when some service's output carries them.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from host.process import HostError

SHORT_DIGEST_HEX = 12
PULL_PLATFORM = "linux/arm64"
PREFERRED_SERVICE = "frontend"
"""The web UI: the image a newcomer is most likely to try."""


def short_digest(digest: str) -> str:
    """`sha256:0123456789ab` (the first 12 hex digits, as `docker images` shows them)."""
    algorithm, _, hex_digits = digest.partition(":")
    return f"{algorithm}:{hex_digits[:SHORT_DIGEST_HEX]}" if hex_digits else digest


def arch(platform: str) -> str:
    """`arm64` of `linux/arm64` and of `linux/arm64/v8`: the architecture, never the variant."""
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def elf_cell(proof: Mapping[str, Any]) -> str:
    """`amd64 41, arm64 41` from each platform's `elfFiles`."""
    counts = [
        f"{arch(platform)} {entry['elfFiles']}"
        for platform, entry in sorted(proof.items())
        if isinstance(entry, Mapping) and "elfFiles" in entry
    ]
    return ", ".join(counts) or "-"


def run_cell(proof: Mapping[str, Any]) -> str:
    """`amd64 grpc:3550 2.1s, arm64 skipped (reason)` from each platform's runtime probe."""
    cells = []
    for platform, entry in sorted(proof.items()):
        if not isinstance(entry, Mapping):
            continue
        if "skipped" in entry:
            cells.append(f"{arch(platform)} skipped ({entry['skipped']})")
        elif "probe" in entry:
            seconds = entry.get("seconds")
            took = f" {seconds:.1f}s" if isinstance(seconds, int | float) else ""
            cells.append(f"{arch(platform)} {entry['probe']}{took}")
    return ", ".join(cells) or "-"


def _images(text: str) -> dict[str, Mapping[str, Any]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise HostError(f"the stack output `images` is not JSON: {error}") from error
    if not isinstance(document, dict) or not all(
        isinstance(entry, Mapping) and isinstance(entry.get("ref"), str)
        for entry in document.values()
    ):
        raise HostError(
            "the stack output `images` is not an object of {service: {ref, digest, platforms}}"
        )
    return document


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render(text: str) -> list[str]:
    """The table, a blank line, and the commands that pull and re-check one image."""
    images = _images(text)
    if not images:
        return ["the stack output `images` is empty: no service was built"]
    proofs = {name: entry.get("proof") or {} for name, entry in images.items()}
    with_elf = any(elf_cell(proof) != "-" for proof in proofs.values())
    with_run = any(run_cell(proof) != "-" for proof in proofs.values())
    header = ["service", "platforms", "digest"]
    header += ["ELF files checked"] * with_elf + ["runtime proof"] * with_run
    rows = [header]
    for name, entry in sorted(images.items()):
        row = [
            name,
            ", ".join(sorted(entry.get("platforms") or {})) or "-",
            short_digest(str(entry.get("digest", ""))) or "-",
        ]
        row += [elf_cell(proofs[name])] * with_elf + [run_cell(proofs[name])] * with_run
        rows.append(row)
    example = PREFERRED_SERVICE if PREFERRED_SERVICE in images else min(images)
    ref = images[example]["ref"]
    platforms = sorted(images[example].get("platforms") or {})
    pull_platform = PULL_PLATFORM if PULL_PLATFORM in platforms or not platforms else platforms[0]
    return [
        *_columns(rows),
        "",
        f"pull one: docker pull --platform {pull_platform} {ref}",
        f"check it: .venv/bin/python -m verify {ref} --deep",
    ]
