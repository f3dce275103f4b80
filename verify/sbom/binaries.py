"""What an ELF file's bytes say about the software inside, read once from the layer stream.

The file is fed chunk by chunk through :class:`MarkerStream`, which finds fixed byte markers
(also across chunk boundaries), captures a bounded number of bytes around them or at a file
offset still ahead, and keeps references to ranges it may need later. Nothing is seeked:
stretches nothing asks for are skipped in the tar stream without being copied or searched.

- Go build information (:mod:`verify.sbom.gobuildinfo`), found as Go's ``debug/buildinfo``
  finds it in a file without section headers: in the first writable, non-executable loaded
  segment, 16-byte aligned. The program headers (at the start of the file) give that segment's
  file offset, so the code and read-only segments before it are skipped rather than searched,
  and only that segment is searched (Go 1.18 and later put the header at or near its start).
  The inline format (1.18+) is complete in the bytes after the magic. The pointer format (Go
  1.13-1.17) names addresses, turned into file offsets through the program headers: the string
  headers lie ahead in the data segment, the strings behind, in read-only data. So the first
  :data:`RETAINED_BYTES` of the read-only segments are kept as references to the chunks the
  stream already holds (no copy, no search) until the header says which format it is.
- .NET single-file bundles: the host holds the bundle signature, preceded by the offset of the
  bundle header (at the end of the file, ahead). The header names the offset and size of the
  embedded ``*.deps.json``, which lies behind: each ``"runtimeTarget"`` seen (the first key of a
  deps.json) is kept with the bytes around it, and the one at the named offset is taken.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from verify.sbom import gobuildinfo
from verify.sbom.gobuildinfo import BuildInfoError

CHUNK_BYTES = 1 << 20
HEAD_BYTES = 16 << 10
"""The first read of a file: its ELF header, program headers and notes."""
GO_HEADER_CAPTURE_BYTES = 128
"""Bytes kept from the Go magic on: the header, and inline, the version and the lengths."""
GO_VERSION_BYTES = 64
MODINFO_CAPTURE_BYTES = 256 << 10
RETAINED_BYTES = 16 << 20
"""Read-only data of one Go binary kept for the pointer format's strings (they sit in
``.rodata``, at the start of the read-only segment; a 20 MB binary has about 11 MB of it)."""
DOTNET_BUNDLE_SIGNATURE = bytes.fromhex(
    "8b1202b96a612038727b930214d7a03213f5b9e6efae3318ee3b2dce24b36aae"
)
DOTNET_HEADER_BYTES = 4096
DEPS_JSON_MARKER = b'"runtimeTarget"'
DEPS_JSON_LEAD = 16
"""Bytes kept before the marker: the ``{`` and whitespace that start the document."""
DEPS_JSON_MAX_BYTES = 4 << 20
CANDIDATES_PER_MARKER = 8
"""At most this many captures per marker and file (bounds the memory a hostile file can take)."""

PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W = 1, 2
NOTE_MAX_BYTES = 4096
GO_NOTE_NAME = b"Go\0\0"
GO_NOTE_BUILD_ID = 4
"""The Go linker's build ID note (``.note.go.buildid``), kept in stripped binaries too."""

Done = Callable[[int, bytes], None]
"""Called with a capture's file offset and bytes when it is complete."""
Chunk = bytes | memoryview


class MemberContent(Protocol):
    """The rest of a file after its first bytes, as the tar reader hands it over."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes, copied (b"" at the end)."""
        ...

    def view(self, size: int) -> memoryview:
        """Up to ``size`` bytes without copying them (empty at the end)."""
        ...

    def skip(self, size: int) -> int:
        """Pass over up to ``size`` bytes; how many were passed (fewer at the end)."""
        ...


@dataclass
class _Capture:
    start: int
    length: int
    done: Done
    data: bytearray = field(default_factory=bytearray)


@dataclass
class _Watch:
    marker: bytes
    before: int
    after: int
    done: Done
    limit: int
    until: int | None
    found: int = 0


@dataclass
class _Retained:
    start: int
    length: int
    pieces: list[memoryview] = field(default_factory=list)
    got: int = 0
    """Bytes kept so far, from ``start`` on without a gap."""


class MarkerStream:
    """Finds markers in a stream fed chunk by chunk, captures bytes around them or at offsets,
    and keeps ranges by reference; :meth:`next_needed` says where reading must go on."""

    def __init__(self) -> None:
        self.offset = 0
        """File offset of the next byte fed."""
        self._window_base = 0
        """File offset of the first byte still available (the kept tail's start)."""
        self._tail = b""
        self._tail_bytes = 0
        self._watches: list[_Watch] = []
        self._pending: list[_Capture] = []
        self._retained: list[_Retained] = []
        self._last: tuple[Chunk, int] = (b"", 0)
        """The chunk fed last and its offset (a range to keep may start inside it)."""

    def watch(
        self,
        marker: bytes,
        before: int,
        after: int,
        done: Done,
        limit: int = CANDIDATES_PER_MARKER,
        until: int | None = None,
    ) -> None:
        """Capture ``before`` bytes before and ``after`` bytes after each of the first ``limit``
        occurrences of ``marker`` (that end at file offset ``until`` at the latest)."""
        self._watches.append(_Watch(marker, before, after, done, limit, until))
        self._tail_bytes = max(self._tail_bytes, len(marker) - 1 + before)

    def capture_at(self, start: int, length: int, done: Done) -> bool:
        """Capture ``length`` bytes at ``start``; False when ``start`` has already passed."""
        if start < self._window_base or length <= 0:
            return False
        self._pending.append(_Capture(start, length, done))
        return True

    def retain(self, start: int, length: int) -> bool:
        """Keep references to the ``length`` bytes at ``start`` for :meth:`retained`; False
        when ``start`` lies before the chunk fed last."""
        chunk, chunk_base = self._last
        if start < chunk_base or length <= 0:
            return False
        kept = _Retained(start, length)
        self._retained.append(kept)
        self._keep(kept, chunk, chunk_base)
        return True

    def retained(self, start: int, length: int) -> bytes | None:
        """The ``length`` bytes at ``start`` when a kept range holds them all, else None."""
        for kept in self._retained:
            if kept.start <= start and start + length <= kept.start + kept.got:
                out = bytearray()
                at = kept.start
                for piece in kept.pieces:
                    low, high = max(start, at), min(start + length, at + len(piece))
                    if low < high:
                        out += piece[low - at : high - at]
                    at += len(piece)
                    if at >= start + length:
                        break
                return bytes(out)
        return None

    def release(self) -> None:
        """Drop every kept range (and with them the chunks they hold)."""
        self._retained = []
        self._last = (b"", self.offset)

    @property
    def watching(self) -> bool:
        """True while a marker is searched for (every byte fed must be searchable bytes)."""
        return bool(self._watches)

    def next_needed(self) -> int | None:
        """The file offset of the next byte anything needs; None when nothing does."""
        if self._watches:
            return self.offset
        wanted = [capture.start + len(capture.data) for capture in self._pending]
        wanted += [kept.start + kept.got for kept in self._retained if kept.got < kept.length]
        return max(self.offset, min(wanted)) if wanted else None

    def skip(self, size: int) -> None:
        """``size`` bytes passed unseen (only up to :meth:`next_needed`)."""
        self.offset += size
        self._tail = b""
        self._window_base = self.offset
        self._last = (b"", self.offset)

    def feed(self, chunk: Chunk) -> None:
        tail, tail_base = self._tail, self._window_base
        chunk_base = self.offset
        self.offset += len(chunk)
        self._last = (chunk, chunk_base)
        for kept in self._retained:
            self._keep(kept, chunk, chunk_base)
        self._fill(tail, tail_base, chunk, chunk_base)
        searchable = chunk if isinstance(chunk, bytes) else None
        searched: set[int] = set()
        # A capture completed in this chunk may start a watch, which must see the chunk too.
        while unsearched := [watch for watch in self._watches if id(watch) not in searched]:
            if searchable is None:
                searchable = bytes(chunk)  # a view fed before the watch began
            for watch in unsearched:
                searched.add(id(watch))
                for position in self._matches(watch, tail, searchable, chunk_base):
                    start = max(tail_base, position - watch.before)
                    length = position + len(watch.marker) + watch.after - start
                    self._pending.append(_Capture(start, length, watch.done))
            self._fill(tail, tail_base, chunk, chunk_base)
        self._watches = [
            watch for watch in self._watches if watch.until is None or watch.until > self.offset
        ]
        # The chunk is not copied: only a short tail is kept for markers across the boundary.
        keep = self._tail_bytes
        if keep:
            end = bytes(chunk[-keep:])
            self._tail = (tail + end)[-keep:] if len(chunk) < keep else end
        else:
            self._tail = b""
        self._window_base = self.offset - len(self._tail)

    @staticmethod
    def _matches(watch: _Watch, tail: bytes, chunk: bytes, chunk_base: int) -> list[int]:
        """File offsets of new occurrences: across the boundary, then inside the chunk."""
        found: list[int] = []
        overlap = len(watch.marker) - 1
        end = len(chunk) if watch.until is None else max(watch.until - chunk_base, 0)
        if tail and overlap:
            edge = tail[-overlap:]
            seam = edge + chunk[:overlap]
            position = seam.find(watch.marker, 0, end + len(edge))
            while 0 <= position < len(edge) and watch.found < watch.limit:
                watch.found += 1
                found.append(chunk_base - len(edge) + position)
                position = seam.find(watch.marker, position + 1, end + len(edge))
        position = chunk.find(watch.marker, 0, end)
        while position >= 0 and watch.found < watch.limit:
            watch.found += 1
            found.append(chunk_base + position)
            position = chunk.find(watch.marker, position + 1, end)
        return found

    def unwatch(self, marker: bytes) -> None:
        """Stop looking for ``marker``."""
        self._watches = [watch for watch in self._watches if watch.marker != marker]

    def finish(self) -> None:
        """End of file: hand over what the captures still open have got."""
        pending, self._pending = self._pending, []
        for capture in pending:
            if capture.data:
                capture.done(capture.start, bytes(capture.data))

    @staticmethod
    def _keep(kept: _Retained, chunk: Chunk, chunk_base: int) -> None:
        """Add the part of ``chunk`` a kept range still lacks (a view: nothing is copied)."""
        position = kept.start + kept.got
        end = chunk_base + len(chunk)
        if kept.got < kept.length and chunk_base <= position < end:
            size = min(kept.length - kept.got, end - position)
            kept.pieces.append(memoryview(chunk)[position - chunk_base :][:size])
            kept.got += size

    def _fill(self, tail: bytes, tail_base: int, chunk: Chunk, chunk_base: int) -> None:
        """Give open captures the bytes they need from the kept tail and the new chunk."""
        progress = True
        while progress:  # a completed capture may ask for another one in the same chunk
            progress = False
            still_open: list[_Capture] = []
            pending, self._pending = self._pending, []
            for capture in pending:
                for piece, base in ((tail, tail_base), (chunk, chunk_base)):
                    position = capture.start + len(capture.data)
                    if base <= position < base + len(piece):
                        need = capture.length - len(capture.data)
                        capture.data += piece[position - base : position - base + need]
                if len(capture.data) == capture.length:
                    capture.done(capture.start, bytes(capture.data))
                    progress = True
                else:
                    still_open.append(capture)
            self._pending = still_open + self._pending


@dataclass
class BinaryFindings:
    """What one ELF file revealed; empty fields mean "not found"."""

    go: gobuildinfo.BuildInfo | None = None
    deps_json: bytes | None = None
    """The deps.json embedded in a .NET single-file bundle."""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Segment:
    kind: int
    flags: int
    offset: int
    address: int
    size: int


class BinaryReader:
    """Reads one ELF file's content for Go build information and .NET bundle manifests.

    Only Go binaries (recognised by the Go build ID note near the start of the file) are
    searched for build information, and only files with bytes after their ELF image (a
    single-file bundle appends its files there) for a bundle; other ELF files cost a header.
    """

    def __init__(self, file_size: int) -> None:
        self.findings = BinaryFindings()
        self._file_size = file_size
        self._stream = MarkerStream()
        self._segments: list[_Segment] = []
        self._big_endian = False
        self._image_end = 0
        self._go_binary = False
        self._go_data: _Segment | None = None
        self._go_header: gobuildinfo.Header | None = None
        self._go_version = ""
        self._modinfo = b""
        self._deps_candidates: dict[int, bytes] = {}
        self._deps_location: tuple[int, int] | None = None
        self._stream.capture_at(0, 64, self._elf_header)

    def read(self, content: MemberContent, first: bytes = b"") -> BinaryFindings:
        """Feed the file (``first``: bytes already read from its start) and decode what was seen.

        What nothing asks for is skipped; bytes are copied only while a marker is searched for.
        Reading stops as soon as nothing more is needed; the caller skips the rest.
        """
        if first:
            self._stream.feed(first)
        # Headers and notes sit in the first page: most files are done after a small read.
        size = HEAD_BYTES
        while (needed := self._stream.next_needed()) is not None:
            if needed > self._stream.offset:
                skipped = content.skip(needed - self._stream.offset)
                self._stream.skip(skipped)
                if self._stream.offset < needed:
                    break
                continue
            chunk = content.read(size) if self._stream.watching else content.view(size)
            if not chunk:
                break
            self._stream.feed(chunk)
            size = CHUNK_BYTES
        self._stream.finish()
        self._resolve_go()
        self._stream.release()
        self._resolve_bundle()
        return self.findings

    @staticmethod
    def _keep(candidates: dict[int, bytes]) -> Done:
        def done(start: int, data: bytes) -> None:
            candidates[start] = data

        return done

    # ELF headers: segments, notes, the end of the image

    def _elf_header(self, _start: int, data: bytes) -> None:
        if len(data) < 52 or data[4] not in (1, 2) or data[5] not in (1, 2):
            return
        self._big_endian = data[5] == 2
        order = ">" if self._big_endian else "<"
        wide = data[4] == 2
        if wide:
            (phoff,) = struct.unpack_from(order + "Q", data, 32)
            (shoff,) = struct.unpack_from(order + "Q", data, 40)
            entry_size, count, section_size, sections = struct.unpack_from(order + "HHHH", data, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", data, 28)
            (shoff,) = struct.unpack_from(order + "I", data, 32)
            entry_size, count, section_size, sections = struct.unpack_from(order + "HHHH", data, 42)
        self._image_end = shoff + section_size * sections
        if count and entry_size >= (56 if wide else 32) and count * entry_size <= 65536:
            headers = self._program_headers(wide, entry_size)
            self._stream.capture_at(phoff, count * entry_size, headers)

    def _program_headers(self, wide: bool, entry_size: int) -> Done:
        order = ">" if self._big_endian else "<"

        def done(_start: int, data: bytes) -> None:
            for at in range(0, len(data) - entry_size + 1, entry_size):
                if wide:
                    kind, flags, offset, address, _, size = struct.unpack_from(
                        order + "IIQQQQ", data, at
                    )
                else:
                    kind, offset, address, _, size, _, flags = struct.unpack_from(
                        order + "IIIIIII", data, at
                    )
                self._segments.append(_Segment(kind, flags, offset, address, size))
                self._image_end = max(self._image_end, offset + size)
            for segment in self._segments:
                if segment.kind == PT_NOTE and segment.size <= NOTE_MAX_BYTES:
                    self._stream.capture_at(segment.offset, segment.size, self._notes)
            if self._file_size > self._image_end:
                self._stream.watch(DOTNET_BUNDLE_SIGNATURE, 8, 0, self._bundle_signature)

        return done

    def _notes(self, _start: int, data: bytes) -> None:
        order = ">" if self._big_endian else "<"
        at = 0
        while at + 12 <= len(data):
            name_size, desc_size, kind = struct.unpack_from(order + "III", data, at)
            name = data[at + 12 : at + 12 + name_size]
            if name == GO_NOTE_NAME and kind == GO_NOTE_BUILD_ID:
                self._go_binary = True
                self._start_go()
                return
            at += 12 + _aligned4(name_size) + _aligned4(desc_size)

    def _file_offset(self, address: int, length: int) -> int | None:
        """The file offset of ``length`` bytes at ``address``, all inside one loaded segment's
        file bytes; None otherwise."""
        for segment in self._segments:
            if segment.kind == PT_LOAD and (
                segment.address <= address and address + length <= segment.address + segment.size
            ):
                return segment.offset + address - segment.address
        return None

    # Go

    def _start_go(self) -> None:
        """A Go binary: skip to its data segment and search that for the build information;
        keep the read-only data before it (by reference) for the pointer format's strings."""
        data = next((segment for segment in self._segments if self._is_data(segment)), None)
        if data is None:
            return  # reported as a Go binary without build information
        self._go_data = data
        budget = RETAINED_BYTES
        for segment in self._segments:
            if segment.kind != PT_LOAD or segment.flags & (PF_X | PF_W) or budget <= 0:
                continue
            length = min(segment.size, data.offset - segment.offset, budget)
            if self._stream.retain(segment.offset, length):
                budget -= length
        if not self._stream.capture_at(data.offset, 1, lambda _start, _data: self._watch_magic()):
            self._watch_magic()

    def _watch_magic(self) -> None:
        # "\xff" is common in binaries, which makes searching for the whole magic slow;
        # the rest of it is searched for, and the byte before it checked.
        assert self._go_data is not None
        after = GO_HEADER_CAPTURE_BYTES - len(gobuildinfo.MAGIC)
        end = self._go_data.offset + self._go_data.size
        self._stream.watch(gobuildinfo.MAGIC[1:], 1, after, self._go_blob, until=end)

    @staticmethod
    def _is_data(segment: _Segment) -> bool:
        """A writable, non-executable loaded segment (where the linker puts the header)."""
        return segment.kind == PT_LOAD and segment.flags & (PF_X | PF_W) == PF_W

    def _go_blob(self, start: int, blob: bytes) -> None:
        # The magic also occurs as a constant in programs that read build information:
        # only the 16-byte-aligned one in the data segment is the header (as Go decides).
        data = self._go_data
        if self._go_header is not None or start % gobuildinfo.ALIGNMENT or data is None:
            return
        if not blob.startswith(gobuildinfo.MAGIC) or start < data.offset:
            return
        self._stream.unwatch(gobuildinfo.MAGIC[1:])
        try:
            header = gobuildinfo.parse_header(blob)
            if header.inline:
                self._stream.release()  # nothing behind is needed
                self._go_version, offset, length = gobuildinfo.inline_layout(blob)
                if length > MODINFO_CAPTURE_BYTES:
                    raise BuildInfoError(f"module information of {length} bytes is too large")
                # It starts inside the captured bytes; the rest follows them.
                self._modinfo = blob[offset : offset + length]
                rest = length - len(self._modinfo)
                self._stream.capture_at(start + len(blob), rest, self._more_modinfo)
                self._go_header = header
                return
        except BuildInfoError as error:
            self.findings.problems.append(f"Go build information: {error}")
            return
        self._go_header = header
        size = 2 * header.pointer_size
        self._read_at(header.version_address, size, self._version_header, "version")
        self._read_at(header.modinfo_address, size, self._modinfo_header, "module information")

    def _read_at(self, address: int, length: int, done: Done, what: str) -> None:
        """Hand ``done`` the ``length`` bytes at ``address``: from the kept read-only data when
        they lie behind, captured when they lie ahead; a problem when neither can be."""
        offset = self._file_offset(address, length)
        if offset is not None:
            kept = self._stream.retained(offset, length)
            if kept is not None:
                done(offset, kept)
                return
            if self._stream.capture_at(offset, length, done):
                return
        self.findings.problems.append(
            f"Go build information: the {what} at 0x{address:x} ({length} bytes) is not read"
        )

    def _string(self, data: bytes, bound: int, what: str) -> tuple[int, int] | None:
        """A Go string header's (address, length); None (a problem) when it is cut short or
        the length is over ``bound``."""
        assert self._go_header is not None
        try:
            address, length = gobuildinfo.string_header(data, self._go_header)
        except BuildInfoError as error:
            self.findings.problems.append(f"Go build information: the {what}'s {error}")
            return None
        if length > bound:
            self.findings.problems.append(
                f"Go build information: the {what} is {length} bytes, over {bound}"
            )
            return None
        return address, length

    def _version_header(self, _start: int, data: bytes) -> None:
        string = self._string(data, GO_VERSION_BYTES, "version")
        if string is not None:
            self._read_at(*string, self._version_bytes, "version string")

    def _version_bytes(self, _start: int, data: bytes) -> None:
        text = data.decode("ascii") if data.isascii() else ""
        if text.isprintable() and text.strip() == text and text:
            self._go_version = text
        else:
            self.findings.problems.append("Go build information: the version is not text")

    def _modinfo_header(self, _start: int, data: bytes) -> None:
        string = self._string(data, MODINFO_CAPTURE_BYTES, "module information")
        if string is not None:
            self._read_at(*string, self._modinfo_bytes, "module information string")

    def _modinfo_bytes(self, _start: int, data: bytes) -> None:
        self._modinfo = data

    def _more_modinfo(self, _start: int, data: bytes) -> None:
        self._modinfo += data

    def _resolve_go(self) -> None:
        if self._go_header is None:
            if self._go_binary and not self.findings.problems:
                self.findings.problems.append("Go binary without build information")
            return
        text = gobuildinfo.unwrap_modinfo(self._modinfo)
        self.findings.go = gobuildinfo.parse_modinfo(self._go_version, text)

    # .NET single-file bundles

    def _bundle_signature(self, _start: int, data: bytes) -> None:
        self._stream.unwatch(DOTNET_BUNDLE_SIGNATURE)
        header_offset = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
        if not header_offset:
            return  # an apphost that is not a bundle (the placeholder is zero)
        if not self._stream.capture_at(header_offset, DOTNET_HEADER_BYTES, self._bundle_header):
            self.findings.problems.append(".NET bundle header offset lies before its signature")
            return
        # The deps.json is one of the files appended after the host, before the header: keep
        # what may start it. (The header may be read in the chunk that holds the deps.json, before
        # that chunk is searched, so the watch ends at the header's offset, not when it is read.)
        deps = self._keep(self._deps_candidates)
        self._stream.watch(
            DEPS_JSON_MARKER, DEPS_JSON_LEAD, DEPS_JSON_MAX_BYTES, deps, until=header_offset
        )

    def _bundle_header(self, _start: int, data: bytes) -> None:
        try:
            (major,) = struct.unpack_from("<I", data, 0)
            if major < 2:
                self.findings.problems.append(f".NET bundle version {major} names no deps.json")
                return
            # A .NET BinaryWriter length is the same 7-bit (LEB128) encoding as Go's uvarint.
            id_length, position = gobuildinfo.read_uvarint(data, 12)
            deps_offset, deps_size = struct.unpack_from("<qq", data, position + id_length)
        except (struct.error, BuildInfoError):
            self.findings.problems.append(".NET bundle header is truncated")
            return
        if deps_size > DEPS_JSON_MAX_BYTES:
            self.findings.problems.append(
                f".NET bundle deps.json is {deps_size} bytes, over {DEPS_JSON_MAX_BYTES}"
            )
        elif deps_size > 0:
            self._deps_location = (deps_offset, deps_size)

    def _resolve_bundle(self) -> None:
        """Take the deps.json candidate at the offset the bundle header named."""
        if self._deps_location is None:
            return
        deps_offset, deps_size = self._deps_location
        for start, candidate in self._deps_candidates.items():
            if start <= deps_offset < start + len(candidate):
                found = candidate[deps_offset - start : deps_offset - start + deps_size]
                if len(found) == deps_size:
                    self.findings.deps_json = found
                    return
        self.findings.problems.append(".NET bundle deps.json was not found at its offset")


def _aligned4(size: int) -> int:
    return (size + 3) & ~3
