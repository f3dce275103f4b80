"""``--sbom DIR``: checking the directory before the run, writing the documents after it.

Documents are written only when every platform's layers were read (exit 0 or 1; on exit 1 the
SBOM shows, e.g., which component owns the binary for the wrong machine). All are written to
temporary files first and then renamed, so DIR never holds a half-written or partial set.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from verify.checks import ImageResult
from verify.reference import Reference


class SbomUsageError(ValueError):
    """``--sbom``/``--sbom-format`` arguments that cannot work."""


def check_directory(directory: str) -> Path:
    """DIR must be a directory, or not exist yet inside an existing directory."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise SbomUsageError(f"--sbom {directory}: exists and is not a directory")
    if not path.exists() and not path.resolve().parent.is_dir():
        raise SbomUsageError(
            f"--sbom {directory}: its parent directory does not exist (DIR itself is created)"
        )
    return path


def write_documents(
    directory: Path, ref: Reference, result: ImageResult, platforms: int, document_format: str
) -> list[Path]:
    """Write one document per platform of ``result`` (all ``platforms`` or none)."""
    from verify.sbom.documents import file_name, render  # cyclonedx loads only if asked

    inventories = [platform.inventory for platform in result.platforms.values()]
    if len(inventories) != platforms or any(inventory is None for inventory in inventories):
        return []
    rendered = [
        (file_name(inventory, document_format), render(ref, inventory, document_format))
        for inventory in inventories
        if inventory is not None
    ]
    directory.mkdir(exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in rendered:
            handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            staged.append((temporary, directory / name))
        for temporary, final in staged:
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)
    return [final for _, final in staged]
