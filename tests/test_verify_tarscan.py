"""The layer tar reader on hostile archives: every byte read to the true end, bounded memory."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.verify_bytes import (
    AARCH64,
    END_OF_ARCHIVE,
    X86_64,
    Entry,
    elf_header,
    tar_bytes,
    tar_header,
    tar_member,
    zstd_bytes,
)
from verify.digests import Readable
from verify.layers import CHUNK_BYTES, LayerFormatError, decompressed
from verify.tarscan import (
    MAX_EXTENDED_HEADER_BYTES,
    ElfFile,
    HardLink,
    normalized_path,
    scan_tar,
)

ARM_TOOL = tar_member("usr/bin/arm-tool", elf_header(AARCH64))
HIDDEN_X86 = tar_member("usr/bin/hidden", elf_header(X86_64))


class CountingSource:
    """A byte stream that counts what the reader pulled from it."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.pulled = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._stream.read(size)
        self.pulled += len(chunk)
        return chunk


def scan(data: bytes, max_bytes: int = 1 << 40) -> tuple[ElfFile, ...]:
    return scan_tar(io.BytesIO(data), max_bytes).elf_files


def test_a_header_with_a_bad_checksum_is_not_taken_for_the_end() -> None:
    # tarfile's stream mode stopped here and never saw the x86-64 file behind the bad header.
    bad = tar_header("usr/bin/decoy", 0, good_checksum=False)
    with pytest.raises(LayerFormatError, match=f"offset {len(ARM_TOOL)}: header checksum"):
        scan(ARM_TOOL + bad + HIDDEN_X86 + END_OF_ARCHIVE)


@pytest.mark.parametrize(
    ("cut", "why"),
    [
        (len(ARM_TOOL) + 100, "ends inside a header"),
        (len(ARM_TOOL) + len(HIDDEN_X86) - 300, "ends inside the data of /usr/bin/hidden"),
        (len(ARM_TOOL) + len(HIDDEN_X86) + 700, "ends inside the end-of-archive blocks"),
    ],
)
def test_an_archive_cut_short_fails_with_its_offset(cut: int, why: str) -> None:
    archive = ARM_TOOL + HIDDEN_X86 + END_OF_ARCHIVE
    with pytest.raises(LayerFormatError, match=why) as raised:
        scan(archive[:cut])
    assert "tar archive at offset" in str(raised.value)


@pytest.mark.parametrize("ending", [b"", bytes(512), END_OF_ARCHIVE, END_OF_ARCHIVE + bytes(9216)])
def test_clean_ends_are_accepted(ending: bytes) -> None:
    # The stream may end at a header boundary, after one zero block, or after the two
    # end-of-archive blocks and zero padding (GNU tar pads to 10 KiB records).
    assert scan(ARM_TOOL + HIDDEN_X86 + ending) == (
        ElfFile("/usr/bin/arm-tool", AARCH64),
        ElfFile("/usr/bin/hidden", X86_64),
    )


def test_a_header_after_a_single_zero_block_fails() -> None:
    with pytest.raises(LayerFormatError, match="a header follows a single zero block"):
        scan(ARM_TOOL + bytes(512) + HIDDEN_X86 + END_OF_ARCHIVE)


def test_data_after_the_end_of_archive_fails() -> None:
    offset = len(ARM_TOOL) + len(END_OF_ARCHIVE)
    with pytest.raises(LayerFormatError, match=f"offset {offset}: data other than zeros"):
        scan(ARM_TOOL + END_OF_ARCHIVE + HIDDEN_X86 + END_OF_ARCHIVE)


@pytest.mark.parametrize(
    ("typeflag", "size"), [(b"L", 1 << 30), (b"K", 2 << 20), (b"x", 512 << 20), (b"g", 3 << 20)]
)
def test_huge_extended_headers_are_refused_before_they_are_read(typeflag: bytes, size: int) -> None:
    # A 32 KiB layer declaring a 1 GiB GNU long name used to cost 3.1 GiB of memory.
    source = CountingSource(
        io.BytesIO(tar_header("././@LongLink", size, typeflag) + bytes(4 << 20))
    )
    with pytest.raises(LayerFormatError, match=f"extended header .* of {size} bytes"):
        scan_tar(source)
    assert source.pulled <= CHUNK_BYTES


def test_extended_headers_up_to_the_limit_apply_to_the_next_member() -> None:
    name = "opt/" + "n" * (MAX_EXTENDED_HEADER_BYTES - 100)
    long_name = tar_header("././@LongLink", len(name) + 1, b"L") + name.encode() + b"\0"
    long_name += bytes(-len(long_name) % 512)
    member = tar_member("truncated-name", elf_header(X86_64))
    assert scan(long_name + member + END_OF_ARCHIVE) == (ElfFile("/" + name, X86_64),)


def test_pax_path_and_gnu_long_name_precedence() -> None:
    pax_records = b"22 path=usr/bin/paxed\n"
    pax = tar_header("pax", len(pax_records), b"x") + pax_records.ljust(512, b"\0")
    assert scan(pax + tar_member("short", elf_header(AARCH64)) + END_OF_ARCHIVE) == (
        ElfFile("/usr/bin/paxed", AARCH64),
    )
    gnu = tar_header("././@LongLink", 13, b"L") + b"usr/bin/gnu\0\0".ljust(512, b"\0")
    both = pax + gnu + tar_member("short", elf_header(AARCH64)) + END_OF_ARCHIVE
    assert scan(both) == (ElfFile("/usr/bin/gnu", AARCH64),)


def test_sparse_files_are_refused() -> None:
    with pytest.raises(LayerFormatError, match="sparse files are not supported"):
        scan(tar_header("sparse", 0, b"S") + END_OF_ARCHIVE)


def test_decompressed_bytes_are_capped() -> None:
    # 64 MiB of zeros inside a tar member compress to a few KiB of zstd.
    size = 64 << 20
    blob = zstd_bytes(tar_header("bomb", size) + bytes(size) + END_OF_ARCHIVE)
    inflated = CountingSource(decompressed(io.BytesIO(blob)))
    with pytest.raises(LayerFormatError, match=r"more than 8388608 bytes \(--max-layer-bytes\)"):
        scan_tar(inflated, max_bytes=8 << 20)
    assert inflated.pulled <= (8 << 20) + CHUNK_BYTES


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("./usr/bin/x", "/usr/bin/x"),
        ("usr/bin/x", "/usr/bin/x"),
        ("/abs", "/abs"),
        ("usr/lib/node_modules/../../../bin/busybox", "/bin/busybox"),
        ("usr//./bin/../sbin/x", "/usr/sbin/x"),
        ("../etc/passwd", None),
        ("usr/../../etc/passwd", None),
    ],
)
def test_paths_are_normalised_as_the_extractor_resolves_them(name: str, path: str | None) -> None:
    assert normalized_path(name) == path


def test_a_name_with_dot_dot_is_checked_under_the_path_it_lands_on() -> None:
    member = tar_member("usr/lib/node_modules/../../../bin/busybox", elf_header(X86_64))
    assert scan(member + END_OF_ARCHIVE) == (ElfFile("/bin/busybox", X86_64),)


@pytest.mark.parametrize("kind", [tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_name_that_climbs_above_the_root_is_a_finding(kind: bytes) -> None:
    archive = tar_bytes([Entry("../../bin/busybox", elf_header(X86_64), kind, "x")])
    with pytest.raises(LayerFormatError, match=r"'\.\./\.\./bin/busybox' climbs above the root"):
        scan(archive)


def test_hard_links_count_under_their_own_names() -> None:
    # node-gyp's layout: the loaded addon is a hard link to the object file's build output.
    archive = tar_bytes(
        [
            Entry("app/build/Release/obj.target/x.node", elf_header(X86_64)),
            Entry(
                "app/build/node-v115-linux-x64/x.node",
                kind=tarfile.LNKTYPE,
                target="app/build/Release/obj.target/x.node",
            ),
            Entry("app/README", b"text"),
            Entry("app/readme-link", kind=tarfile.LNKTYPE, target="app/README"),
            Entry("app/lower-link", kind=tarfile.LNKTYPE, target="usr/bin/in-a-lower-layer"),
        ]
    )
    result = scan_tar(io.BytesIO(archive))
    assert result.elf_files == (
        ElfFile("/app/build/Release/obj.target/x.node", X86_64),
        ElfFile(
            "/app/build/node-v115-linux-x64/x.node",
            X86_64,
            link_target="/app/build/Release/obj.target/x.node",
        ),
    )
    # Links to files that are not ELF files of this layer are kept for the layers below.
    assert result.hard_links == (
        HardLink("/app/readme-link", "/app/README"),
        HardLink("/app/lower-link", "/usr/bin/in-a-lower-layer"),
    )
