"""Go build information as the linker embeds it in every binary (port of ``debug/buildinfo``).

Since Go 1.13 the linker writes a 32-byte header into ``.go.buildinfo``, at the start of the
writable data segment, 16-byte aligned: the magic ``\\xff Go buildinf:``, one byte of pointer
size, one byte of flags. Bit 1 of the flags says how the two strings follow:

- inline (Go 1.18 and later): right after the header, the Go version and then the module
  information, each a uvarint length followed by the bytes;
- pointers (older): at offsets 16 and 16 + pointer size, the addresses of two Go string headers
  (data pointer, length) in the byte order of bit 0, which the caller resolves.

The module information is wrapped in two 16-byte sentinels and reads, one record per line,
``path``, ``mod``, ``dep``, ``=>`` (replaces the line before) and ``build`` (tab-separated), as
``runtime/debug.ParseBuildInfo`` reads it. Stripped binaries keep all of this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MAGIC = b"\xff Go buildinf:"
HEADER_BYTES = 32
ALIGNMENT = 16
FLAG_BIG_ENDIAN = 0x1
FLAG_INLINE = 0x2
MODINFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
MODINFO_END = bytes.fromhex("f932433186182072008242104116d8f2")


class BuildInfoError(ValueError):
    """Bytes after the magic that are not a Go build information header."""


@dataclass(frozen=True)
class Header:
    """The decoded 32-byte header."""

    pointer_size: int
    big_endian: bool
    inline: bool
    version_address: int = 0
    """Pointer format only: address of the version's string header."""
    modinfo_address: int = 0
    """Pointer format only: address of the module information's string header."""


@dataclass(frozen=True)
class Module:
    """One Go module: ``path``, ``version`` (``(devel)`` for a main module built from a tree)."""

    path: str
    version: str
    sum: str = ""


@dataclass(frozen=True)
class BuildInfo:
    """What a Go binary says about how it was built."""

    go_version: str
    """``go1.23.4``; empty when the pointer-format version could not be resolved."""
    path: str = ""
    """The main package's import path (``path`` line)."""
    main: Module | None = None
    deps: tuple[Module, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)


def parse_header(data: bytes) -> Header:
    """Decode the header at the start of ``data`` (which begins with the magic)."""
    if len(data) < HEADER_BYTES or not data.startswith(MAGIC):
        raise BuildInfoError("no Go build information header")
    pointer_size, flags = data[14], data[15]
    big_endian = bool(flags & FLAG_BIG_ENDIAN)
    if flags & FLAG_INLINE:
        return Header(pointer_size, big_endian, inline=True)
    if pointer_size not in (4, 8):
        raise BuildInfoError(f"pointer size {pointer_size} is neither 4 nor 8")
    order: Literal["big", "little"] = "big" if big_endian else "little"
    first = int.from_bytes(data[16 : 16 + pointer_size], order)
    second = int.from_bytes(data[16 + pointer_size : 16 + 2 * pointer_size], order)
    return Header(pointer_size, big_endian, False, first, second)


def read_uvarint(data: bytes, offset: int) -> tuple[int, int]:
    """A Go ``uvarint`` at ``offset``: its value and the offset after it."""
    value, shift = 0, 0
    for position in range(offset, min(len(data), offset + 10)):
        byte = data[position]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position + 1
        shift += 7
    raise BuildInfoError("truncated or overlong length")


def inline_layout(data: bytes) -> tuple[str, int, int]:
    """Inline format: the version, and the offset and length of the module information."""
    length, offset = read_uvarint(data, HEADER_BYTES)
    version = data[offset : offset + length]
    if len(version) != length:
        raise BuildInfoError("version string runs past the captured bytes")
    modinfo_length, modinfo_offset = read_uvarint(data, offset + length)
    return version.decode("utf-8", "replace"), modinfo_offset, modinfo_length


def string_header(data: bytes, header: Header) -> tuple[int, int]:
    """A Go string header (pointer, length) in the header's pointer size and byte order."""
    size = header.pointer_size
    if len(data) < 2 * size:
        raise BuildInfoError("string header is truncated")
    order: Literal["big", "little"] = "big" if header.big_endian else "little"
    return int.from_bytes(data[:size], order), int.from_bytes(data[size : 2 * size], order)


def unwrap_modinfo(raw: bytes) -> str:
    """Module information without its sentinels (as ``debug/buildinfo`` strips them)."""
    if len(raw) >= 33 and raw[-17] == ord("\n"):
        raw = raw[16:-16]
    return raw.decode("utf-8", "replace")


def parse_modinfo(go_version: str, text: str) -> BuildInfo:
    """Parse module information text (``runtime/debug.ParseBuildInfo``'s format)."""
    path = ""
    main: Module | None = None
    deps: list[Module] = []
    settings: dict[str, str] = {}
    for line in text.splitlines():
        word, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if word == "path":
            path = rest
        elif word == "mod" and len(fields) >= 2:
            main = Module(fields[0], fields[1], fields[2] if len(fields) > 2 else "")
        elif word == "dep" and len(fields) >= 2:
            deps.append(Module(fields[0], fields[1], fields[2] if len(fields) > 2 else ""))
        elif word == "=>" and len(fields) >= 2 and (deps or main):
            # A replacement names the module actually built in place of the line before.
            replacement = Module(fields[0], fields[1], fields[2] if len(fields) > 2 else "")
            if deps:
                deps[-1] = replacement
            else:
                main = replacement
        elif word == "build":
            key, _, value = rest.partition("=")
            settings[key] = value
    return BuildInfo(go_version, path, main, tuple(deps), settings)
