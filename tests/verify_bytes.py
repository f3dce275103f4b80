"""Builders of crafted bytes for the verifier's unit tests: ELF headers, tar layers, manifests."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import zstandard

from verify.digests import sha256_digest

X86_64, AARCH64, I386, ARM, S390 = 0x3E, 0xB7, 0x03, 0x28, 0x16


def elf_header(machine: int, bits: int = 64, order: Literal["little", "big"] = "little") -> bytes:
    """A minimal ELF header: e_ident, e_type = ET_EXEC, e_machine, then padding to 64 bytes."""
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if order == "little" else 2, 1])
    ident = ident.ljust(16, b"\0")
    body = (2).to_bytes(2, order) + machine.to_bytes(2, order) + (1).to_bytes(4, order)
    return (ident + body).ljust(64, b"\0")


@dataclass(frozen=True)
class Entry:
    """One tar entry to craft."""

    name: str
    data: bytes = b""
    kind: bytes = tarfile.REGTYPE
    target: str = ""


def tar_bytes(entries: Iterable[Entry], format: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar archive of ``entries``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.kind
            info.linkname = entry.target
            info.mode = 0o755
            if entry.kind == tarfile.REGTYPE:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def zstd_bytes(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


def descriptor(media_type: str, data: bytes, platform: str | None = None) -> dict[str, object]:
    """An OCI descriptor of ``data``, with ``os/arch[/variant]`` as its platform if given."""
    result: dict[str, object] = {
        "mediaType": media_type,
        "digest": sha256_digest(data),
        "size": len(data),
    }
    if platform is not None:
        os_name, arch, *variant = platform.split("/")
        fields = {"os": os_name, "architecture": arch}
        if variant:
            fields["variant"] = variant[0]
        result["platform"] = fields
    return result


def json_bytes(document: object) -> bytes:
    return json.dumps(document).encode()
