"""What an ELF file's bytes say about the software inside, read once from the layer stream.

The file is fed chunk by chunk through :class:`MarkerStream`, which finds fixed byte markers
(also across chunk boundaries) and captures a bounded number of bytes around them, or at a file
offset still ahead. Nothing is seeked and nothing is buffered beyond those captures:

- Go build information (:mod:`verify.sbom.gobuildinfo`): the inline format is complete in the
  bytes after the magic. The pointer format names addresses; they are turned into file offsets
  with the program headers (captured at the start of the file). String headers lie ahead in the
  data segment and are captured there; the strings themselves lie behind, in the read-only
  segment, so every module-information sentinel seen on the way is kept (bounded in number and
  size) and the one at the resolved offset is taken. The Go version string of that format is
  not kept (finding it would mean searching all read-only data for ``go1.``, which doubled the
  cost of the deep pass on Go images): pre-1.18 binaries get their modules, not their version.
- .NET single-file bundles: the host holds the bundle signature, preceded by the offset of the
  bundle header (at the end of the file, ahead). The header names the offset and size of the
  embedded ``*.deps.json``, which lies behind: each ``"runtimeTarget"`` seen (the first key of a
  deps.json) is kept with the bytes around it, and the one at the named offset is taken.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from verify.digests import Readable
from verify.sbom import gobuildinfo
from verify.sbom.gobuildinfo import BuildInfoError

CHUNK_BYTES = 1 << 20
HEAD_BYTES = 16 << 10
"""The first read of a file: its ELF header, program headers and notes."""
GO_HEADER_CAPTURE_BYTES = 128
"""Bytes kept from the Go magic on: the header, and inline, the version and the lengths."""
GO_VERSION_BYTES = 64
MODINFO_CAPTURE_BYTES = 256 << 10
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
    found: int = 0


class MarkerStream:
    """Finds markers in a stream fed chunk by chunk and captures bytes around or at offsets."""

    def __init__(self) -> None:
        self.offset = 0
        """File offset of the next byte fed."""
        self._window_base = 0
        """File offset of the first byte still available (the kept tail's start)."""
        self._tail = b""
        self._tail_bytes = 0
        self._watches: list[_Watch] = []
        self._pending: list[_Capture] = []

    def watch(
        self,
        marker: bytes,
        before: int,
        after: int,
        done: Done,
        limit: int = CANDIDATES_PER_MARKER,
    ) -> None:
        """Capture ``before`` bytes before and ``after`` bytes after each of the first ``limit``
        occurrences of ``marker``."""
        self._watches.append(_Watch(marker, before, after, done, limit))
        self._tail_bytes = max(self._tail_bytes, len(marker) - 1 + before)

    def capture_at(self, start: int, length: int, done: Done) -> bool:
        """Capture ``length`` bytes at ``start``; False when ``start`` has already passed."""
        if start < self._window_base or length <= 0:
            return False
        self._pending.append(_Capture(start, length, done))
        return True

    def feed(self, chunk: bytes) -> None:
        tail, tail_base = self._tail, self._window_base
        chunk_base = self.offset
        self.offset += len(chunk)
        self._fill(tail, tail_base, chunk, chunk_base)
        searched: set[int] = set()
        # A capture completed in this chunk may start a watch, which must see the chunk too.
        while unsearched := [watch for watch in self._watches if id(watch) not in searched]:
            for watch in unsearched:
                searched.add(id(watch))
                for position in self._matches(watch, tail, chunk, chunk_base):
                    start = max(tail_base, position - watch.before)
                    length = position + len(watch.marker) + watch.after - start
                    self._pending.append(_Capture(start, length, watch.done))
            self._fill(tail, tail_base, chunk, chunk_base)
        # The chunk is not copied: only a short tail is kept for markers across the boundary.
        keep = self._tail_bytes
        if keep:
            self._tail = (tail + chunk)[-keep:] if len(chunk) < keep else chunk[-keep:]
        else:
            self._tail = b""
        self._window_base = self.offset - len(self._tail)

    @staticmethod
    def _matches(watch: _Watch, tail: bytes, chunk: bytes, chunk_base: int) -> list[int]:
        """File offsets of new occurrences: across the boundary, then inside the chunk."""
        found: list[int] = []
        overlap = len(watch.marker) - 1
        if tail and overlap:
            edge = tail[-overlap:]
            seam = edge + chunk[:overlap]
            position = seam.find(watch.marker)
            while 0 <= position < len(edge) and watch.found < watch.limit:
                watch.found += 1
                found.append(chunk_base - len(edge) + position)
                position = seam.find(watch.marker, position + 1)
        position = chunk.find(watch.marker)
        while position >= 0 and watch.found < watch.limit:
            watch.found += 1
            found.append(chunk_base + position)
            position = chunk.find(watch.marker, position + 1)
        return found

    @property
    def idle(self) -> bool:
        """True when nothing is watched or awaited: the rest of the file need not be fed."""
        return not self._watches and not self._pending

    def unwatch(self, marker: bytes) -> None:
        """Stop looking for ``marker``."""
        self._watches = [watch for watch in self._watches if watch.marker != marker]

    def finish(self) -> None:
        """End of file: hand over what the captures still open have got."""
        pending, self._pending = self._pending, []
        for capture in pending:
            if capture.data:
                capture.done(capture.start, bytes(capture.data))

    def _fill(self, tail: bytes, tail_base: int, chunk: bytes, chunk_base: int) -> None:
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
        self._go_header: gobuildinfo.Header | None = None
        self._go_version = ""
        self._modinfo = b""
        self._modinfo_offset: int | None = None
        self._modinfo_length = 0
        self._modinfo_candidates: dict[int, bytes] = {}
        self._deps_candidates: dict[int, bytes] = {}
        self._deps_location: tuple[int, int] | None = None
        self._stream.capture_at(0, 64, self._elf_header)

    def read(self, content: Readable, first: bytes = b"") -> BinaryFindings:
        """Feed the file (``first``: bytes already read from its start) and decode what was seen.

        Reading stops as soon as nothing more is looked for; the caller skips the rest.
        """
        if first:
            self._stream.feed(first)
        # Headers and notes sit in the first page: most files are done after a small read.
        size = HEAD_BYTES
        while not self._stream.idle and (chunk := content.read(size)):
            self._stream.feed(chunk)
            size = CHUNK_BYTES
        self._stream.finish()
        self._resolve_go()
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

    def _file_offset(self, address: int) -> int | None:
        for segment in self._segments:
            if segment.kind == PT_LOAD and (
                segment.address <= address < segment.address + segment.size
            ):
                return segment.offset + address - segment.address
        return None

    # Go

    def _start_go(self) -> None:
        """A Go binary: search its data segment for the build information, and its read-only
        data for what the pointer format may point at. The code segment is not searched."""
        data = [segment.offset for segment in self._segments if self._is_data(segment)]
        readonly = [
            segment.offset
            for segment in self._segments
            if segment.kind == PT_LOAD and not segment.flags & PF_X
        ]
        self._at(min(data, default=0), self._watch_magic)
        self._at(min(readonly, default=0), self._watch_strings)

    def _at(self, offset: int, start: Callable[[], None]) -> None:
        """Run ``start`` when the stream reaches ``offset`` (now, if it has passed)."""
        if not self._stream.capture_at(offset, 1, lambda _start, _data: start()):
            start()

    def _watch_magic(self) -> None:
        # "\xff" is common in binaries, which makes searching for the whole magic slow;
        # the rest of it is searched for, and the byte before it checked.
        after = GO_HEADER_CAPTURE_BYTES - len(gobuildinfo.MAGIC)
        self._stream.watch(gobuildinfo.MAGIC[1:], 1, after, self._go_blob)

    def _watch_strings(self) -> None:
        # Only the module information is kept (its sentinels are a fast 16-byte search). The
        # pointer format's Go version string is not: searching the read-only data for "go1."
        # cost more than the whole rest of the SBOM on Go images (see docs/attestations.md).
        modinfo = self._keep(self._modinfo_candidates)
        self._stream.watch(gobuildinfo.MODINFO_START, 0, MODINFO_CAPTURE_BYTES, modinfo)

    @staticmethod
    def _is_data(segment: _Segment) -> bool:
        """A writable, non-executable loaded segment (where the linker puts the header)."""
        return segment.kind == PT_LOAD and segment.flags & (PF_X | PF_W) == PF_W

    def _in_data_segment(self, offset: int) -> bool:
        return any(
            self._is_data(segment) and segment.offset <= offset < segment.offset + segment.size
            for segment in self._segments
        )

    def _go_blob(self, start: int, blob: bytes) -> None:
        # The magic also occurs as a constant in programs that read build information:
        # only the 16-byte-aligned one in the data segment is the header (as Go decides).
        if self._go_header is not None or start % gobuildinfo.ALIGNMENT:
            return
        if not blob.startswith(gobuildinfo.MAGIC) or not self._in_data_segment(start):
            return
        for marker in (gobuildinfo.MAGIC[1:], gobuildinfo.MODINFO_START):
            self._stream.unwatch(marker)
        try:
            header = gobuildinfo.parse_header(blob)
            if header.inline:
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
        for address, handler in (
            (header.version_address, self._version_header),
            (header.modinfo_address, self._modinfo_header),
        ):
            at = self._file_offset(address)
            if at is None or not self._stream.capture_at(at, size, handler):
                self.findings.problems.append(
                    f"Go build information: string header at 0x{address:x} is not readable"
                )

    def _string(self, data: bytes) -> tuple[int | None, int]:
        assert self._go_header is not None
        address, length = gobuildinfo.string_header(data, self._go_header)
        return self._file_offset(address), length

    def _version_header(self, _start: int, data: bytes) -> None:
        offset, length = self._string(data)
        if offset is None or length > GO_VERSION_BYTES:
            return
        if not self._stream.capture_at(offset, length, self._version_bytes):
            self.findings.problems.append(
                "Go version of a pre-1.18 (pointer-format) binary lies before its build "
                "information and is not read in one pass; its modules are"
            )

    def _version_bytes(self, _start: int, data: bytes) -> None:
        self._go_version = data.decode("utf-8", "replace")

    def _modinfo_header(self, _start: int, data: bytes) -> None:
        offset, length = self._string(data)
        self._modinfo_offset, self._modinfo_length = offset, length
        if offset is not None and length <= MODINFO_CAPTURE_BYTES:
            self._stream.capture_at(offset, length, self._modinfo_bytes)

    def _modinfo_bytes(self, _start: int, data: bytes) -> None:
        self._modinfo = data

    def _more_modinfo(self, _start: int, data: bytes) -> None:
        self._modinfo += data

    def _resolve_go(self) -> None:
        header = self._go_header
        if header is None:
            if self._go_binary and not self.findings.problems:
                self.findings.problems.append("Go binary without build information")
            return
        if not header.inline:
            if not self._modinfo and self._modinfo_offset in self._modinfo_candidates:
                candidate = self._modinfo_candidates[self._modinfo_offset]
                self._modinfo = candidate[: self._modinfo_length]
            if not self._modinfo:
                self._modinfo = self._delimited_modinfo()
        text = gobuildinfo.unwrap_modinfo(self._modinfo)
        self.findings.go = gobuildinfo.parse_modinfo(self._go_version, text)

    def _delimited_modinfo(self) -> bytes:
        """The first sentinel-delimited module information seen (the pointer did not resolve)."""
        for data in self._modinfo_candidates.values():
            end = data.find(gobuildinfo.MODINFO_END)
            if end >= 0:
                return data[: end + len(gobuildinfo.MODINFO_END)]
        return b""

    # .NET single-file bundles

    def _bundle_signature(self, _start: int, data: bytes) -> None:
        self._stream.unwatch(DOTNET_BUNDLE_SIGNATURE)
        header_offset = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
        if not header_offset:
            return  # an apphost that is not a bundle (the placeholder is zero)
        if not self._stream.capture_at(header_offset, DOTNET_HEADER_BYTES, self._bundle_header):
            self.findings.problems.append(".NET bundle header offset lies before its signature")
            return
        # The deps.json is one of the files appended after the host: keep what may start it.
        deps = self._keep(self._deps_candidates)
        self._stream.watch(DEPS_JSON_MARKER, DEPS_JSON_LEAD, DEPS_JSON_MAX_BYTES, deps)

    def _bundle_header(self, _start: int, data: bytes) -> None:
        self._stream.unwatch(DEPS_JSON_MARKER)
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
