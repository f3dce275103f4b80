"""Builders of crafted binaries for the SBOM tests: Go binaries in both build-information
formats, and a .NET single-file bundle, laid out as their linkers lay them out; and
:class:`ReadableContent`, to hand a binary to the reader from a plain stream."""

from __future__ import annotations

import struct

from verify.digests import Readable
from verify.sbom import gobuildinfo
from verify.sbom.binaries import CHUNK_BYTES, DOTNET_BUNDLE_SIGNATURE

AARCH64 = 0xB7
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
BASE_ADDRESS = 0x400000
TEXT, RODATA, DATA = 0x1000, 0x3000, 0x6000
"""File offsets of the segments (vaddr = BASE_ADDRESS + offset)."""
NOTE = 0x200
BLOB, STRING_HEADERS = 0x40, 0x800
"""Offsets in the data segment of the build information and (pointer format) the string
headers: the version's, then the module information's."""

MODINFO = (
    "path\texample.com/shop/cmd/frontend\n"
    "mod\texample.com/shop\t(devel)\t\n"
    "dep\tgithub.com/google/uuid\tv1.6.0\th1:abc=\n"
    "dep\tgoogle.golang.org/grpc\tv1.60.0\th1:def=\n"
    "=>\tgoogle.golang.org/grpc\tv1.60.1\th1:ghi=\n"
    "build\t-compiler=gc\n"
    "build\tGOARCH=arm64\n"
)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _wrapped_modinfo(text: str) -> bytes:
    return gobuildinfo.MODINFO_START + text.encode() + gobuildinfo.MODINFO_END


def _elf(segments: list[tuple[int, int, int, int]], size: int, machine: int = AARCH64) -> bytearray:
    """An ELF64 little-endian image of ``size`` bytes with (type, flags, offset..end) headers."""
    image = bytearray(size)
    header = b"\x7fELF\x02\x01\x01".ljust(16, b"\0")
    header += struct.pack(
        "<HHIQQQIHHHHHH", 2, machine, 1, 0, 64, 0, 0, 64, 56, len(segments), 64, 0, 0
    )
    image[:64] = header
    for number, (kind, flags, offset, end) in enumerate(segments):
        entry = struct.pack(
            "<IIQQQQQQ",
            kind,
            flags,
            offset,
            BASE_ADDRESS + offset,
            0,
            end - offset,
            end - offset,
            8,
        )
        image[64 + 56 * number : 64 + 56 * (number + 1)] = entry
    return image


def go_binary(
    inline: bool,
    modinfo: str = MODINFO,
    version: str = "go1.16.15",
    machine: int = AARCH64,
    code_bytes: int = 0,
) -> bytes:
    """A stripped Go ELF binary: build ID note, text, rodata, data with the build information.

    The text and rodata also hold decoy magics (as in a program that reads build information),
    and extra ``go1.`` strings, so only the right candidate may be taken. ``code_bytes`` more
    of code puts the read-only and data segments past the first reads, as in a real binary
    (the offsets below then move by that much).
    """
    rodata, data = RODATA + code_bytes, DATA + code_bytes
    size = data + 0x2000
    image = _elf(
        [
            (PT_NOTE, PF_R, NOTE, NOTE + 0x20),
            (PT_LOAD, PF_R | PF_X, 0, rodata),
            (PT_LOAD, PF_R, rodata, data),
            (PT_LOAD, PF_R | PF_W, data, size),
        ],
        size,
        machine,
    )
    note = struct.pack("<III", 4, 8, 4) + b"Go\0\0" + b"buildid!"
    image[NOTE : NOTE + len(note)] = note
    decoy = gobuildinfo.MAGIC + b"\x08\x02" + b"\0" * 16
    image[TEXT : TEXT + len(decoy)] = decoy
    image[rodata : rodata + len(decoy)] = decoy
    image[rodata + 0x100 : rodata + 0x110] = b"go1.99.0 decoys!"
    blob = bytearray(gobuildinfo.MAGIC + bytes([8, gobuildinfo.FLAG_INLINE if inline else 0]))
    blob = blob.ljust(32, b"\0")
    if inline:
        wrapped = _wrapped_modinfo(modinfo)
        blob += _uvarint(len(version)) + version.encode() + _uvarint(len(wrapped)) + wrapped
    else:
        version_at, modinfo_at = rodata + 0x400, rodata + 0x800
        wrapped = _wrapped_modinfo(modinfo)
        image[version_at : version_at + len(version) + 6] = version.encode() + b"extra!"
        image[modinfo_at : modinfo_at + len(wrapped)] = wrapped
        # Two string headers further into the data segment, and the pointers to them.
        headers_at = data + STRING_HEADERS
        image[headers_at : headers_at + 32] = struct.pack(
            "<QQQQ",
            BASE_ADDRESS + version_at,
            len(version),
            BASE_ADDRESS + modinfo_at,
            len(wrapped),
        )
        blob[16:32] = struct.pack("<QQ", BASE_ADDRESS + headers_at, BASE_ADDRESS + headers_at + 16)
    # The data segment starts with other data; the blob is 16-byte aligned after it.
    image[data + BLOB : data + BLOB + len(blob)] = blob
    return bytes(image)


def dotnet_bundle(deps_json: bytes) -> bytes:
    """A single-file host (ELF image) with files appended, the deps.json among them."""
    image_end = 0x2000
    host = _elf([(PT_LOAD, PF_R | PF_X, 0, image_end)], image_end)
    appended = bytearray(b"assembly bytes " * 100)
    deps_offset = image_end + len(appended)
    appended += deps_json + b"runtimeconfig"
    header_offset = image_end + len(appended)
    bundle_id = b"bundle-1"
    header = struct.pack("<IIi", 6, 0, 2) + bytes([len(bundle_id)]) + bundle_id
    header += struct.pack("<qqqqQ", deps_offset, len(deps_json), 0, 0, 0)
    placeholder = struct.pack("<q", header_offset) + DOTNET_BUNDLE_SIGNATURE
    host[0x1000 : 0x1000 + len(placeholder)] = placeholder
    return bytes(host + appended + header + b"\0" * 64)


class ReadableContent:
    """:class:`verify.sbom.binaries.MemberContent` over any readable (skip reads and drops)."""

    def __init__(self, source: Readable) -> None:
        self._source = source

    def read(self, size: int = -1, /) -> bytes:
        return self._source.read(size)

    def view(self, size: int) -> memoryview:
        return memoryview(self._source.read(size))

    def skip(self, size: int) -> int:
        skipped = 0
        while skipped < size and (data := self._source.read(min(size - skipped, CHUNK_BYTES))):
            skipped += len(data)
        return skipped
