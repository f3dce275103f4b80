"""Layer streams on crafted bytes: tar entry kinds, long names, whiteouts, gzip and zstd."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable

import pytest

from tests.verify_bytes import (
    AARCH64,
    X86_64,
    Entry,
    elf_header,
    gzip_bytes,
    tar_bytes,
    zstd_bytes,
)
from verify.digests import DigestingReader, DigestMismatch, SizeMismatch, sha256_digest
from verify.layers import CHUNK_BYTES, GzipReader, LayerFormatError, ZstdReader, decompressed
from verify.tarscan import ElfFile, is_whiteout, normalized_path, scan_tar

LONG_DIRECTORY = "usr/lib/" + "/".join(["a-rather-long-directory-name"] * 8)

MIXED_LAYER = [
    Entry("usr/", kind=tarfile.DIRTYPE),
    Entry("usr/bin/app", elf_header(X86_64)),
    Entry("./usr/bin/arm-tool", elf_header(AARCH64, 32, "big")),
    Entry("usr/bin/script", b"#!/bin/sh\necho hi\n"),
    Entry("usr/bin/empty"),
    Entry("usr/bin/link-to-app", kind=tarfile.SYMTYPE, target="app"),
    Entry("usr/bin/hard-app", kind=tarfile.LNKTYPE, target="usr/bin/app"),
    Entry("usr/bin/.wh.removed"),
    Entry("usr/share/.wh..wh..opq"),
    Entry(f"{LONG_DIRECTORY}/libfar.so", elf_header(X86_64, 64, "little")),
]
MIXED_EXPECTED = (
    ElfFile("/usr/bin/app", X86_64),
    ElfFile("/usr/bin/arm-tool", AARCH64),
    ElfFile("/usr/bin/hard-app", X86_64, link_target="/usr/bin/app"),
    ElfFile(f"/{LONG_DIRECTORY}/libfar.so", X86_64),
)


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_scan_records_elf_files_under_every_name(format: int) -> None:
    scan = scan_tar(io.BytesIO(tar_bytes(MIXED_LAYER, format)))
    assert scan.elf_files == MIXED_EXPECTED
    # app, arm-tool, script, empty, libfar.so: links, directories and whiteouts are not counted
    # as regular files, but the hard link to app is one more name of an ELF file.
    assert scan.regular_files == 5


@pytest.mark.parametrize("compress", [lambda data: data, gzip_bytes, zstd_bytes])
def test_decompression_is_chosen_by_magic_bytes(compress: Callable[[bytes], bytes]) -> None:
    scan = scan_tar(decompressed(io.BytesIO(compress(tar_bytes(MIXED_LAYER)))))
    assert scan.elf_files == MIXED_EXPECTED


def test_large_incompressible_member_is_skipped_in_chunks() -> None:
    noise = os.urandom(3 * CHUNK_BYTES + 12345)
    layer = tar_bytes([Entry("blob.bin", noise), Entry("after", elf_header(AARCH64))])
    source = _CountingSource(gzip_bytes(layer))
    scan = scan_tar(decompressed(source))
    assert scan.elf_files == (ElfFile("/after", AARCH64),)
    # The compressed blob is over 3 MiB; it is pulled from the network side in bounded reads.
    assert 0 < source.largest_read <= CHUNK_BYTES


class _CountingSource:
    """A source that records the largest read it served and the bytes it gave in all, to prove
    reads stay bounded."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)
        self.largest_read = 0
        self.given = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._stream.read(size)
        self.largest_read = max(self.largest_read, len(chunk))
        self.given += len(chunk)
        return chunk


def test_gzip_output_is_bounded_per_read() -> None:
    # Highly compressible: 64 MiB of zeros inflate from ~64 KiB; no read may return it whole.
    zeros = gzip_bytes(b"\0" * (64 << 20))
    reader = GzipReader(_CountingSource(zeros))
    total, largest = 0, 0
    while chunk := reader.read(CHUNK_BYTES):
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert total == 64 << 20
    assert largest <= CHUNK_BYTES


def test_zero_byte_read_inflates_nothing() -> None:
    reader = GzipReader(_CountingSource(gzip_bytes(b"\0" * (8 << 20))))
    assert reader.read(0) == b""
    assert len(reader.read(100)) == 100


def test_multi_member_gzip_and_zero_padding_are_read_through() -> None:
    first, second = b"first member " * 1000, b"second member " * 1000
    stream = gzip_bytes(first) + gzip_bytes(second) + b"\0" * 700
    reader = GzipReader(io.BytesIO(stream))
    assert b"".join(iter(lambda: reader.read(4096), b"")) == first + second


@pytest.mark.parametrize(
    "tail",
    [b"garbage", b"XX", b"\0" * 10 + b"garbage", b"\0" * (2 << 20) + b"x"],
    ids=["garbage", "two-letters", "zeros-then-garbage", "garbage-past-a-chunk-of-zeros"],
)
def test_trailing_garbage_after_gzip_is_rejected(tail: bytes) -> None:
    reader = GzipReader(io.BytesIO(gzip_bytes(b"data") + tail))
    with pytest.raises(LayerFormatError) as raised:
        while reader.read(4096):
            pass
    assert str(raised.value) == "gzip stream has trailing data that is not a gzip member"


def test_a_gzip_member_split_across_reads_is_found_after_the_first() -> None:
    # The next member's magic arrives one byte per read: it is awaited, not taken for garbage.
    reader = GzipReader(_OneByteAtATime(gzip_bytes(b"first") + gzip_bytes(b"second")))
    assert b"".join(iter(lambda: reader.read(4096), b"")) == b"firstsecond"


class _Pieces:
    """A source that answers each read with its next piece (never more than asked), recording
    the sizes it was asked for."""

    def __init__(self, *pieces: bytes) -> None:
        self._pieces = list(pieces)
        self.asked: list[int | None] = []

    def read(self, size: int = -1, /) -> bytes:
        self.asked.append(size)
        if not self._pieces:
            return b""
        piece = self._pieces.pop(0)
        assert size is not None and 0 < len(piece) <= size  # the pieces fit a bounded read
        return piece


def test_members_and_padding_in_reads_of_their_own_are_read_in_bounded_chunks() -> None:
    """Each member, and the zero padding after the last, arrives by itself: the reader looks
    for what follows a member, and reads padding to its end, in chunks of CHUNK_BYTES."""
    first, second = b"first member " * 1000, b"second member " * 1000
    source = _Pieces(gzip_bytes(first), gzip_bytes(second), b"\0" * 512, b"\0" * 512)
    reader = GzipReader(source)
    assert b"".join(iter(lambda: reader.read(4096), b"")) == first + second
    assert source.asked == [CHUNK_BYTES] * 5


def test_letters_after_padding_in_a_read_of_their_own_are_refused() -> None:
    source = _Pieces(gzip_bytes(b"data"), b"\0" * 512, b"XX")
    reader = GzipReader(source)
    with pytest.raises(LayerFormatError) as raised:
        while reader.read(4096):
            pass
    assert str(raised.value) == "gzip stream has trailing data that is not a gzip member"


class _OneByteAtATime:
    """A source that answers every read with at most one byte."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(min(size, 1))


@pytest.mark.parametrize(
    ("blob", "content"),
    [
        (b"", b""),
        (b"a", b"a"),
        (b"abc", b"abc"),
        (b"abcdefgh", b"abcdefgh"),
        (gzip_bytes(b"in one-byte reads"), b"in one-byte reads"),
        (zstd_bytes(b"zstd too"), b"zstd too"),
    ],
    ids=["empty", "one-byte", "three-bytes", "plain", "gzip", "zstd"],
)
def test_the_magic_bytes_are_read_across_short_reads_and_short_blobs(
    blob: bytes, content: bytes
) -> None:
    """The first four bytes (zstd's magic is four long) arrive one per read, or the blob ends
    first: the format is still found, and no byte is lost or read twice."""
    stream = decompressed(_OneByteAtATime(blob))
    assert b"".join(iter(lambda: stream.read(4096), b"")) == content


@pytest.mark.parametrize("size", [-1, None], ids=["minus-one", "none"])
def test_a_gzip_read_of_no_size_returns_at_most_a_chunk(size: int | None) -> None:
    data = bytes(range(256)) * (8 << 12)  # 8 MiB that deflate to a few KiB: one source read
    reader = GzipReader(io.BytesIO(gzip_bytes(data)))
    assert reader.read(10) == data[:10]
    assert reader.read(size) == data[10 : 10 + CHUNK_BYTES]  # type: ignore[arg-type]


def test_a_gzip_member_cut_before_its_trailer_gives_all_its_bytes_then_fails() -> None:
    """Read one byte at a time, a member whose deflate data is whole but whose trailer (CRC32
    and size) is missing: every byte it holds comes out, then the error, never data dropped."""
    data = b"\0" * 100_000  # runs of zeros: one deflate code holds more bytes than a read takes
    reader = GzipReader(io.BytesIO(gzip_bytes(data)[:-8]))
    got = bytearray()
    with pytest.raises(LayerFormatError) as raised:
        while chunk := reader.read(1):
            got += chunk
    assert str(raised.value) == "gzip stream ends before its last member is complete"
    assert bytes(got) == data


def test_truncated_gzip_is_rejected() -> None:
    blob = gzip_bytes(os.urandom(100_000))
    reader = GzipReader(io.BytesIO(blob[: len(blob) // 2]))
    with pytest.raises(LayerFormatError) as raised:
        while reader.read(4096):
            pass
    assert str(raised.value) == "gzip stream ends before its last member is complete"


def test_corrupt_gzip_is_rejected() -> None:
    blob = bytearray(gzip_bytes(tar_bytes(MIXED_LAYER)))
    blob[-8] ^= 0xFF  # the CRC32 of the member
    with pytest.raises(LayerFormatError) as raised:
        scan_tar(decompressed(io.BytesIO(bytes(blob))))
    assert str(raised.value) == "gzip data is corrupt: Error -6 Incorrect checksum found"


def test_multi_frame_zstd_is_read_across_frames() -> None:
    first = tar_bytes([Entry("a", elf_header(X86_64))])
    # A tar split across two zstd frames: the scanner must not stop at the first frame's end.
    blob = zstd_bytes(first[:700]) + zstd_bytes(first[700:])
    assert scan_tar(decompressed(io.BytesIO(blob))).elf_files == (ElfFile("/a", X86_64),)


def test_corrupt_zstd_is_rejected() -> None:
    blob = bytearray(zstd_bytes(tar_bytes(MIXED_LAYER)))
    blob[len(blob) // 2 :] = b"\xff" * (len(blob) - len(blob) // 2)
    with pytest.raises(LayerFormatError) as raised:
        scan_tar(decompressed(io.BytesIO(bytes(blob))))
    assert str(raised.value).startswith("zstd data is corrupt: ")


def test_garbage_is_not_a_tar_archive() -> None:
    with pytest.raises(LayerFormatError, match="offset 0: header checksum mismatch"):
        scan_tar(decompressed(io.BytesIO(b"this is not a tar archive" * 40)))


def test_digesting_reader_hashes_the_whole_blob_including_the_tail() -> None:
    blob = gzip_bytes(tar_bytes(MIXED_LAYER)) + b"\0" * 5000
    reader = DigestingReader(io.BytesIO(blob), sha256_digest(blob), len(blob), "layer")
    scan_tar(decompressed(reader))
    reader.finish()
    assert reader.bytes_read == len(blob)


def test_digesting_reader_reports_a_mismatch() -> None:
    blob = gzip_bytes(tar_bytes(MIXED_LAYER))
    expected = sha256_digest(blob + b"x")
    reader = DigestingReader(io.BytesIO(blob), expected, len(blob), "layer sha256:x")
    scan_tar(decompressed(reader))
    with pytest.raises(DigestMismatch) as raised:
        reader.finish()
    assert (raised.value.expected, raised.value.actual) == (expected, sha256_digest(blob))
    assert str(raised.value) == (
        f"layer sha256:x: content digest is {sha256_digest(blob)}, expected {expected}"
    )


def test_a_digesting_reader_never_reads_past_the_declared_size() -> None:
    data = b"0123456789"
    whole = _CountingSource(data)
    reader = DigestingReader(whole, sha256_digest(data[:6]), 6, "blob b")
    assert reader.read(4) == b"0123"
    assert reader.read(0) == b""  # like any stream: nothing asked, nothing read
    assert reader.read() == b"45"
    assert reader.read() == b""
    assert whole.given == 6
    with pytest.raises(SizeMismatch) as raised:
        reader.finish()
    assert str(raised.value) == "blob b goes on after the 6 bytes its descriptor declares"
    # One byte more is enough to see that it goes on; the rest is never pulled.
    assert whole.given == 7


def test_finish_reads_and_hashes_what_was_not_read_yet() -> None:
    data = os.urandom(3000)
    reader = DigestingReader(io.BytesIO(data), sha256_digest(data), len(data), "blob c")
    assert reader.read(1000) == data[:1000]
    reader.finish()
    assert reader.bytes_read == len(data)


def test_a_stream_shorter_than_its_size_names_both_lengths() -> None:
    reader = DigestingReader(io.BytesIO(b"abc"), sha256_digest(b"abc"), 5, "blob d")
    with pytest.raises(SizeMismatch) as raised:
        reader.finish()
    assert str(raised.value) == "blob d ends after 3 bytes; its descriptor declares 5"


@pytest.mark.parametrize(
    ("name", "path"),
    [("./usr/bin/x", "/usr/bin/x"), ("usr/bin/x", "/usr/bin/x"), ("/abs", "/abs")],
)
def test_paths_are_made_absolute(name: str, path: str) -> None:
    assert normalized_path(name) == path


def test_whiteouts_are_recognised_by_basename() -> None:
    assert is_whiteout("/etc/.wh.passwd")
    assert is_whiteout("/etc/.wh..wh..opq")
    assert not is_whiteout("/etc/passwd.wh.")
    assert not is_whiteout("/.whatever/file")


def test_an_uncompressed_layer_reads_back_its_first_bytes_then_the_rest() -> None:
    stream = decompressed(io.BytesIO(b"abcdefgh"))  # not gzip or zstd: the bytes themselves
    assert stream.read(0) == b""
    assert stream.read(2) == b"ab"
    assert stream.read(2) == b"cd"
    assert stream.read(3) == b"efg"
    again = decompressed(io.BytesIO(b"abcdefgh"))
    assert again.read(4) == b"abcd"
    assert again.read(6) == b"efgh"
    whole = decompressed(io.BytesIO(b"abcdefgh"))
    assert whole.read(6) == b"abcdef"


def test_zstd_reads_are_bounded_by_the_size_asked_and_cross_frames() -> None:
    data = os.urandom(3 << 20)
    source = _CountingSource(zstd_bytes(data))
    reader = ZstdReader(source)
    assert reader.read(0) == b""
    assert reader.read(10) == data[:10]
    assert reader.read(-1) == data[10 : 10 + CHUNK_BYTES]
    # The compressed side is read in chunks of CHUNK_BYTES too.
    assert source.largest_read == CHUNK_BYTES
    frames = ZstdReader(io.BytesIO(zstd_bytes(b"a" * 100) + zstd_bytes(b"b" * 100)))
    assert frames.read(150) == b"a" * 100 + b"b" * 50
