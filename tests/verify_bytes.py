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


def tar_header(
    name: str,
    size: int = 0,
    typeflag: bytes = b"0",
    linkname: str = "",
    *,
    good_checksum: bool = True,
) -> bytes:
    """One raw POSIX (ustar) header block, for archives ``tarfile`` would refuse to write."""
    block = bytearray(512)
    block[0:100] = name.encode().ljust(100, b"\0")[:100]
    block[100:108] = b"0000755\0"
    block[108:116] = block[116:124] = b"0000000\0"
    block[124:136] = f"{size:011o}\0".encode()
    block[136:148] = b"00000000000\0"
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157:257] = linkname.encode().ljust(100, b"\0")[:100]
    block[257:265] = b"ustar\x0000"
    checksum = sum(block) + (0 if good_checksum else 1)
    block[148:156] = f"{checksum:06o}\0 ".encode()
    return bytes(block)


def tar_member(name: str, data: bytes) -> bytes:
    """A regular-file header and its data padded to whole blocks."""
    return tar_header(name, len(data)) + data + bytes(-len(data) % 512)


END_OF_ARCHIVE = bytes(1024)
