"""``--sbom DIR``: checking the directory before the run, writing the documents after it.

Documents are written only when every platform's layers were read (exit 0 or 1; on exit 1 the
SBOM shows, e.g., which component owns the binary for the wrong machine). All are written to
hidden temporary files in DIR first and then renamed, so DIR never holds a half-written or
partial set: when a write or a rename fails, the documents already renamed are put back as they
were (or removed, where there was none) and every temporary file is removed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from verify.checks import ImageResult
from verify.reference import Reference


class SbomUsageError(ValueError):
    """``--sbom``/``--sbom-format`` arguments that cannot work."""


class SbomWriteError(Exception):
    """DIR could not take the documents; none of them was written."""


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
    """Write one document per platform of ``result`` (all ``platforms`` or none). Raises
    :class:`SbomWriteError` when one cannot be written, with the documents DIR held before put
    back (DIR itself, if it was created, stays)."""
    from verify.sbom.documents import file_name, render  # cyclonedx loads only if asked

    inventories = [platform.inventory for platform in result.platforms.values()]
    if len(inventories) != platforms or any(inventory is None for inventory in inventories):
        return []
    rendered = [
        (file_name(inventory, document_format), render(ref, inventory, document_format))
        for inventory in inventories
        if inventory is not None
    ]
    staged: list[tuple[Path, Path]] = []
    replaced: list[tuple[Path, bytes | None]] = []
    target = directory
    try:
        directory.mkdir(exist_ok=True)
        for name, text in rendered:
            target = directory / name
            handle, staging = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
            staged.append((Path(staging), target))
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
        for temporary, target in staged:
            before = target.read_bytes() if target.is_file() else None
            os.replace(temporary, target)
            replaced.append((target, before))
    except OSError as error:
        for document, before in replaced:
            if before is None:
                document.unlink()
            else:
                document.write_bytes(before)
        raise SbomWriteError(
            f"--sbom {directory}: cannot write {target}: {error.strerror}; no document was written"
        ) from error
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    return [final for _, final in staged]
