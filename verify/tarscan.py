"""A streaming reader of a layer's tar archive that finds every name an ELF file is reachable by.

Written for hostile input rather than taken from ``tarfile``, whose stream mode takes a header
with a bad checksum, or an archive cut inside a header, for the end of the archive (the members
behind it are then never read) and holds GNU long names and PAX headers of any size in memory.
The rules follow Go's ``archive/tar``, which containerd and Docker extract layers with:

- Every header's checksum must match (unsigned or signed sum). The archive ends with two zero
  blocks, one zero block and the end of the stream, or the end of the stream at a header
  boundary; anything else (a cut header or member, a zero block followed by a header, data
  other than zeros after the end-of-archive blocks) is a :class:`LayerFormatError` naming the
  offset in the uncompressed archive.
- GNU long names and links (``L``, ``K``) and PAX headers (``x``, ``g``) are read only up to
  :data:`MAX_EXTENDED_HEADER_BYTES` (Go's limit too); a larger one is refused. PAX ``path``,
  ``linkpath`` and ``size`` apply to the next member; a GNU long name wins over a PAX path;
  global headers apply to nothing. Sparse files are refused rather than half-understood.
- Names are normalised as the extractor resolves them (``.`` and ``..`` removed); a name that
  climbs above ``/`` is refused. A hard link to an ELF file is reported under its own name too.
- At most ``max_bytes`` uncompressed bytes are read (the ``--max-layer-bytes`` cap).
"""

from __future__ import annotations

from dataclasses import dataclass

from verify.digests import Readable
from verify.elf import HEADER_BYTES, elf_machine
from verify.layers import CHUNK_BYTES, LayerFormatError
from verify.sbom.capture import LayerCapture, LayerInventory

BLOCK = 512
MAX_EXTENDED_HEADER_BYTES = 1 << 20
"""Largest GNU long name/link or PAX header accepted (as Go's ``archive/tar``)."""
DEFAULT_MAX_LAYER_BYTES = 64 << 30
"""Default of ``--max-layer-bytes``: 64 GiB uncompressed per layer."""
MAX_RECORDED_NAMES = 1_000_000
"""Largest number of ELF names and pending hard links one layer may report (bounds memory)."""

WHITEOUT_PREFIX = ".wh."
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR_TYPES = frozenset(b"0\x007")
# Types that never carry data blocks, whatever their size field says (as Go reads them).
_HEADER_ONLY_TYPES = frozenset(b"123456")
_HARD_LINK, _DIRECTORY = ord("1"), ord("5")
_GNU_LONG_NAME, _GNU_LONG_LINK, _GNU_SPARSE = ord("L"), ord("K"), ord("S")
_PAX_HEADER, _PAX_GLOBAL_HEADER = ord("x"), ord("g")
_POSIX_MAGIC, _STAR_TRAILER = b"ustar\x0000", b"tar\x00"


@dataclass(frozen=True)
class ElfFile:
    """A name under which a layer makes an ELF binary available."""

    path: str
    machine: int
    link_target: str | None = None
    """For a hard link: the name of the file it links to (checked under both names)."""


@dataclass(frozen=True)
class HardLink:
    """A hard link whose target is not an ELF file of the same layer (maybe of a lower one)."""

    path: str
    target: str


@dataclass(frozen=True)
class LayerScan:
    """What a layer holds, independent of the platform it is checked for."""

    regular_files: int
    elf_files: tuple[ElfFile, ...]
    hard_links: tuple[HardLink, ...] = ()
    """Hard links to names this layer holds no ELF file under, in archive order."""
    inventory: LayerInventory | None = None
    """What the SBOM needs from this layer (only when a capture was asked for)."""


def normalized_path(name: str) -> str | None:
    """A member name as the absolute path it is extracted to, or None when it climbs above ``/``.

    ``./usr/bin/x`` -> ``/usr/bin/x``; ``usr/lib/a/../../bin/x`` -> ``/usr/bin/x``.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def is_whiteout(path: str) -> bool:
    """True for overlay whiteouts (``.wh.<name>``) and opaque markers (``.wh..wh..opq``)."""
    return path.rsplit("/", 1)[-1].startswith(WHITEOUT_PREFIX)


class _Input:
    """The uncompressed archive in chunks, with the offset of the next byte and the size cap."""

    def __init__(self, source: Readable, max_bytes: int) -> None:
        self._source = source
        self._max_bytes = max_bytes
        self._chunk = b""
        self._at = 0
        self._pulled = 0
        self.offset = 0

    def _fill(self) -> bool:
        chunk = self._source.read(CHUNK_BYTES)
        if not chunk:
            return False
        self._pulled += len(chunk)
        if self._pulled > self._max_bytes:
            raise LayerFormatError(
                f"the layer inflates to more than {self._max_bytes} bytes "
                "(--max-layer-bytes); it is not read further"
            )
        self._chunk, self._at = chunk, 0
        return True

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes; fewer only at the end of the stream."""
        if self._at + size <= len(self._chunk):
            data = self._chunk[self._at : self._at + size]
            self._at += size
        else:
            parts = [self._chunk[self._at :]]
            got = len(parts[0])
            self._chunk, self._at = b"", 0
            while got < size and self._fill():
                piece = self._chunk[: size - got]
                self._at = len(piece)
                parts.append(piece)
                got += len(piece)
            data = b"".join(parts)
        self.offset += len(data)
        return data

    def view(self, size: int) -> memoryview:
        """Up to ``size`` of the next bytes without copying them: fewer at the end of a chunk,
        none at the end of the stream. The view keeps its chunk (immutable bytes) alive."""
        if self._at == len(self._chunk) and not self._fill():
            return memoryview(b"")
        step = min(size, len(self._chunk) - self._at)
        data = memoryview(self._chunk)[self._at : self._at + step]
        self._at += step
        self.offset += step
        return data

    def skip(self, size: int) -> bool:
        """Pass over ``size`` bytes; False when the stream ends first."""
        while size:
            available = len(self._chunk) - self._at
            if available == 0:
                if not self._fill():
                    return False
                continue
            step = min(size, available)
            self._at += step
            self.offset += step
            size -= step
        return True

    def rest_is_zero(self) -> bool:
        """Read to the end of the stream; True when every remaining byte is zero."""
        zero = not self._chunk[self._at :].strip(b"\0")
        self.offset += len(self._chunk) - self._at
        self._chunk, self._at = b"", 0
        while zero and self._fill():
            zero = not self._chunk.strip(b"\0")
            self.offset += len(self._chunk)
            self._at = len(self._chunk)
        return zero


def _octal(field: bytes) -> int | None:
    """A numeric header field: NUL/space-terminated octal, or GNU base-256 (positive only)."""
    if field and field[0] == 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if text.strip(b"01234567"):
        return None
    return int(text, 8)


def _checksum_matches(block: bytes) -> bool:
    stored = _octal(block[148:156])
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 0x20
    return stored == signed


def _text(field: bytes) -> str:
    """A NUL-terminated name field as text (bytes that are not UTF-8 kept as surrogates)."""
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


@dataclass
class _Header:
    """One member header with the extended headers before it applied."""

    offset: int
    typeflag: int
    name: str
    linkname: str
    size: int


class _MemberData:
    """The rest of one member's data, for a capture that reads further than the ELF header
    (a :class:`verify.sbom.binaries.MemberContent`: it may also skip, or look without copying)."""

    def __init__(self, source: _Input, size: int) -> None:
        self._source = source
        self.left = size

    def read(self, size: int = -1, /) -> bytes:
        wanted = self.left if size < 0 else min(size, self.left)
        data = self._source.take(wanted)
        self.left -= len(data)
        return data

    def view(self, size: int) -> memoryview:
        if not self.left:
            return memoryview(b"")
        data = self._source.view(min(size, self.left))
        self.left -= len(data)
        return data

    def skip(self, size: int) -> int:
        before = self._source.offset
        self._source.skip(min(size, self.left))
        skipped = self._source.offset - before
        self.left -= skipped
        return skipped


class TarScanner:
    """Reads one uncompressed tar stream to its end and records what :class:`LayerScan` holds;
    a ``capture`` (``--sbom``) sees every member and may read further into regular files."""

    def __init__(
        self, stream: Readable, max_bytes: int, capture: LayerCapture | None = None
    ) -> None:
        self._input = _Input(stream, max_bytes)
        self._capture = capture
        self._regular = 0
        self._elf: list[ElfFile] = []
        self._elf_by_path: dict[str, int] = {}
        self._links: list[HardLink] = []

    def scan(self) -> LayerScan:
        while (header := self._next_header()) is not None:
            self._member(header)
        inventory = None if self._capture is None else self._capture.inventory
        return LayerScan(self._regular, tuple(self._elf), tuple(self._links), inventory)

    def _fail(self, offset: int, why: str) -> LayerFormatError:
        return LayerFormatError(f"tar archive at offset {offset}: {why}")

    def _block(self, what: str) -> bytes | None:
        """The next 512-byte block; None at a clean end of the stream."""
        offset = self._input.offset
        block = self._input.take(BLOCK)
        if not block:
            return None
        if len(block) < BLOCK:
            raise self._fail(offset, f"the stream ends inside {what}")
        return block

    def _next_header(self) -> _Header | None:
        """The next member's header, extended headers applied; None at the end of the archive."""
        long_name = long_link = None
        pax: dict[str, str] = {}
        while True:
            offset = self._input.offset
            extended = long_name is not None or long_link is not None or bool(pax)
            block = self._block("a header")
            if block is None:
                if extended:
                    raise self._fail(offset, "the stream ends after an extended header")
                return None
            if block == _ZERO_BLOCK:
                if extended:
                    raise self._fail(offset, "an extended header is followed by a zero block")
                self._end_of_archive(offset)
                return None
            if not _checksum_matches(block):
                raise self._fail(offset, "header checksum mismatch (not a tar header)")
            typeflag, size = block[156], _octal(block[124:136])
            if size is None:
                raise self._fail(offset, "the size field is not a number")
            if typeflag in (_GNU_LONG_NAME, _GNU_LONG_LINK, _PAX_HEADER, _PAX_GLOBAL_HEADER):
                data = self._extended_data(offset, size)
                if typeflag == _GNU_LONG_NAME:
                    long_name = _text(data)
                elif typeflag == _GNU_LONG_LINK:
                    long_link = _text(data)
                elif typeflag == _PAX_HEADER:
                    pax.update(self._pax_records(offset, data))
                continue
            header = self._member_header(offset, block, size)
            if "path" in pax:
                header.name = pax["path"]
            if "linkpath" in pax:
                header.linkname = pax["linkpath"]
            if "size" in pax:
                if not pax["size"].isascii() or not pax["size"].isdigit():
                    raise self._fail(offset, "the PAX size is not a number")
                header.size = int(pax["size"])
            if long_name is not None:
                header.name = long_name
            if long_link is not None:
                header.linkname = long_link
            if header.typeflag == _GNU_SPARSE or any(key.startswith("GNU.sparse.") for key in pax):
                raise self._fail(offset, "sparse files are not supported")
            return header

    def _member_header(self, offset: int, block: bytes, size: int) -> _Header:
        name = _text(block[0:100])
        # Only the POSIX (ustar/PAX) format has a name prefix; GNU keeps times in those bytes.
        if block[257:265] == _POSIX_MAGIC:
            # The star variant (trailer "tar\0") keeps times after a shorter prefix.
            prefix = _text(block[345:476] if block[508:512] == _STAR_TRAILER else block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        return _Header(offset, block[156], name, _text(block[157:257]), size)

    def _extended_data(self, offset: int, size: int) -> bytes:
        if size > MAX_EXTENDED_HEADER_BYTES:
            raise self._fail(
                offset,
                f"an extended header (GNU long name or PAX) of {size} bytes; at most "
                f"{MAX_EXTENDED_HEADER_BYTES} are accepted",
            )
        data = self._input.take(size)
        if len(data) < size or not self._input.skip(-size % BLOCK):
            raise self._fail(offset, "the stream ends inside an extended header")
        return data

    def _pax_records(self, offset: int, data: bytes) -> dict[str, str]:
        """PAX records: ``<length> <key>=<value>\\n``, the length counting the whole record."""
        records: dict[str, str] = {}
        position = 0
        while position < len(data) and data[position] != 0:
            length_text, space, _ = data[position : position + 20].partition(b" ")
            if not space or not length_text.isdigit():
                raise self._fail(offset, "a PAX record has no valid length")
            length = int(length_text)
            record = data[position : position + length]
            if len(record) < length or not record.endswith(b"\n") or b"=" not in record:
                raise self._fail(offset, "a PAX record is malformed")
            key, _, value = record[len(length_text) + 1 : -1].partition(b"=")
            records[key.decode("utf-8", "surrogateescape")] = value.decode(
                "utf-8", "surrogateescape"
            )
            position += length
        return records

    def _end_of_archive(self, offset: int) -> None:
        """After a zero block: a second one (then only zeros) or the end of the stream."""
        second = self._block("the end-of-archive blocks")
        if second is None:
            return
        if second != _ZERO_BLOCK:
            raise self._fail(offset + BLOCK, "a header follows a single zero block")
        after = self._input.offset
        if not self._input.rest_is_zero():
            raise self._fail(after, "data other than zeros after the end-of-archive blocks")

    def _path(self, header: _Header, name: str) -> str:
        path = normalized_path(name)
        if path is None:
            raise self._fail(header.offset, f"member name {name!r} climbs above the root")
        return path

    def _member(self, header: _Header) -> None:
        path = self._path(header, header.name)
        if self._capture is not None:
            self._capture.member(path, is_dir=header.typeflag == _DIRECTORY)
        if header.typeflag in _HEADER_ONLY_TYPES:
            if header.typeflag == _HARD_LINK:
                self._hard_link(path, self._path(header, header.linkname))
            return
        data_offset = self._input.offset
        head = b""
        if header.typeflag in _REGULAR_TYPES and not is_whiteout(path):
            self._regular += 1
            head = self._input.take(min(HEADER_BYTES, header.size))
            machine = elf_machine(head)
            if machine is not None:
                self._record_elf(ElfFile(path, machine))
            else:
                self._elf_by_path.pop(path, None)
            if self._capture is not None and len(head) == min(HEADER_BYTES, header.size):
                rest = _MemberData(self._input, header.size - len(head))
                self._capture.regular(header.size, path, head, machine is not None, rest)
                if not self._input.skip(rest.left + (-header.size % BLOCK)):
                    raise self._fail(data_offset, f"the stream ends inside the data of {path}")
                return
        if not self._input.skip(header.size - len(head) + (-header.size % BLOCK)):
            raise self._fail(data_offset, f"the stream ends inside the data of {path}")

    def _hard_link(self, path: str, target: str) -> None:
        machine = self._elf_by_path.get(target)
        if machine is not None:
            self._record_elf(ElfFile(path, machine, link_target=target))
        else:
            self._check_recorded()
            self._links.append(HardLink(path, target))
            self._elf_by_path.pop(path, None)

    def _record_elf(self, elf: ElfFile) -> None:
        self._check_recorded()
        self._elf.append(elf)
        self._elf_by_path[elf.path] = elf.machine

    def _check_recorded(self) -> None:
        if len(self._elf) + len(self._links) >= MAX_RECORDED_NAMES:
            raise LayerFormatError(
                f"the layer holds more than {MAX_RECORDED_NAMES} ELF files and hard links"
            )


def scan_tar(
    stream: Readable,
    max_bytes: int = DEFAULT_MAX_LAYER_BYTES,
    capture: LayerCapture | None = None,
) -> LayerScan:
    """Read a whole uncompressed tar stream; see the module docstring for what is refused."""
    return TarScanner(stream, max_bytes, capture).scan()
