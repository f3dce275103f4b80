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
from verify import tarscan
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


def refusal(data: bytes) -> str:
    """The message the scanner refuses ``data`` with."""
    with pytest.raises(LayerFormatError) as raised:
        scan(data)
    return str(raised.value)


def pax(records: bytes, typeflag: bytes = b"x") -> bytes:
    """A PAX extended header (``x``) or global header (``g``) holding ``records``."""
    return tar_header("pax", len(records), typeflag) + records + bytes(-len(records) % 512)


def pax_record(key: str, value: str) -> bytes:
    """``<length> <key>=<value>\\n``, the length counting itself."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def with_size_field(field: bytes) -> bytes:
    """An empty member's header whose size field is ``field`` (checksum made right)."""
    block = bytearray(tar_header("sized", 0))
    block[124:136] = field
    block[148:156] = b" " * 8
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    return bytes(block)


def test_a_header_with_a_bad_checksum_is_not_taken_for_the_end() -> None:
    # tarfile's stream mode stopped here and never saw the x86-64 file behind the bad header.
    bad = tar_header("usr/bin/decoy", 0, good_checksum=False)
    assert refusal(ARM_TOOL + bad + HIDDEN_X86 + END_OF_ARCHIVE) == (
        f"tar archive at offset {len(ARM_TOOL)}: header checksum mismatch (not a tar header)"
    )


@pytest.mark.parametrize(
    ("archive", "why"),
    [
        (pax(b"xx path=a\n") + ARM_TOOL, "at offset 0: a PAX record has no valid length"),
        (
            pax(b"22path=usr/bin/paxed\n") + ARM_TOOL,
            "at offset 0: a PAX record has no valid length",
        ),
        (pax(b"99 path=a\n") + ARM_TOOL, "at offset 0: a PAX record is malformed"),
        (pax(b"9 pathx\n\n") + ARM_TOOL, "at offset 0: a PAX record is malformed"),
        (pax(b"10 path=ab") + ARM_TOOL, "at offset 0: a PAX record is malformed"),
        (pax(pax_record("size", "1x")) + ARM_TOOL, "at offset 1024: the PAX size is not a number"),
        (
            pax(pax_record("size", "\u0661")) + ARM_TOOL,
            "at offset 1024: the PAX size is not a number",
        ),
        (with_size_field(b"0000000009z\0"), "at offset 0: the size field is not a number"),
        (with_size_field(b"\t0000000012\0"), "at offset 0: the size field is not a number"),
        (with_size_field(b"X0000000012\0"), "at offset 0: the size field is not a number"),
        (with_size_field(b"000000012X\0\0"), "at offset 0: the size field is not a number"),
        (
            tar_header("././@LongLink", 2, b"L") + b"a\0".ljust(512, b"\0") + END_OF_ARCHIVE,
            "at offset 1024: an extended header is followed by a zero block",
        ),
        (
            with_size_field(b"\x80\x01" + bytes(10)) + bytes(512),  # 2**80 bytes: far past the end
            "at offset 512: the stream ends inside the data of /sized",
        ),
        (pax(pax_record("path", "a")), "at offset 1024: the stream ends after an extended header"),
        (
            pax(pax_record("path", "a")) + END_OF_ARCHIVE,
            "at offset 1024: an extended header is followed by a zero block",
        ),
        (
            tar_header("././@LongLink", 600, b"L") + b"a" * 100,
            "at offset 0: the stream ends inside an extended header",
        ),
        (
            tar_header("././@LongLink", 600, b"L") + b"a" * 600,
            "at offset 0: the stream ends inside an extended header",
        ),
        (
            pax(pax_record("GNU.sparse.major", "1")) + ARM_TOOL,
            "at offset 1024: sparse files are not supported",
        ),
        (tar_header("sparse", 0, b"S"), "at offset 0: sparse files are not supported"),
    ],
)
def test_malformed_headers_are_refused_with_their_offset(archive: bytes, why: str) -> None:
    assert refusal(archive) == f"tar archive {why}"


def test_pax_and_gnu_headers_name_the_link_target_and_size() -> None:
    elf = elf_header(X86_64)
    sized = pax(pax_record("size", str(len(elf)))) + tar_header("usr/bin/big", 0)
    assert scan(sized + elf + bytes(512 - len(elf)) + END_OF_ARCHIVE) == (
        ElfFile("/usr/bin/big", X86_64),
    )
    link = tar_header("usr/bin/l", 0, b"1", "ignored")
    linked = (ElfFile("/usr/bin/l", AARCH64, link_target="/usr/bin/arm-tool"),)
    by_pax = pax(pax_record("linkpath", "usr/bin/arm-tool")) + link
    assert scan(ARM_TOOL + by_pax + END_OF_ARCHIVE)[1:] == linked
    long_link = tar_header("././@LongLink", 17, b"K") + b"usr/bin/arm-tool\0".ljust(512, b"\0")
    assert scan(ARM_TOOL + long_link + link + END_OF_ARCHIVE)[1:] == linked
    # A global header applies to no member.
    real = tar_member("usr/bin/real", elf)
    assert scan(pax(pax_record("path", "x"), b"g") + real + END_OF_ARCHIVE) == (
        ElfFile("/usr/bin/real", X86_64),
    )


ELF = elf_header(X86_64)
OCTAL = f"{len(ELF):o}".encode()


@pytest.mark.parametrize(
    "field",
    [
        OCTAL.ljust(12, b"\0"),
        b"  " + OCTAL.ljust(10, b"\0"),
        OCTAL.rjust(11, b"0") + b" ",
        OCTAL.rjust(11, b"0") + b"\0",
    ],
    ids=["nul-padded", "leading-spaces", "space-ended", "nul-ended"],
)
def test_an_octal_size_field_ends_at_its_first_nul_and_its_spaces_are_padding(
    field: bytes,
) -> None:
    member = with_size_field(field) + ELF.ljust(512, b"\0")
    assert scan(member + END_OF_ARCHIVE) == (ElfFile("/sized", X86_64),)


def test_an_empty_size_field_is_an_empty_member() -> None:
    """All spaces and a NUL: size 0, so the next header is the next block."""
    assert scan(with_size_field(b" " * 11 + b"\0") + ARM_TOOL + END_OF_ARCHIVE) == (
        ElfFile("/usr/bin/arm-tool", AARCH64),
    )


def _with_checksum(block: bytes, signed: bool, field: str = "{:06o}\0 ") -> bytes:
    """``block`` with its checksum made over unsigned or signed bytes (old tar programs summed
    signed chars), written as ``field``."""
    summed = bytearray(block)
    summed[148:156] = b" " * 8
    values = (b - 256 if signed and b > 127 else b for b in summed)
    summed[148:156] = field.format(sum(values)).encode()
    return bytes(summed)


HIGH_BYTES = (
    tar_header("usr/bin/caf", len(elf_header(AARCH64)))[:11]
    + b"\x7f\x80\xc3\xa9"
    + tar_header("usr/bin/caf", len(elf_header(AARCH64)))[15:]
)
"""A header whose name holds 127, 128 and a UTF-8 "\u00e9": its signed and unsigned sums
differ, by the bytes from 128 on."""


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize(
    "field", ["{:06o}\0 ", "{:07o} ", "{:07o}\0"], ids=["nul-space", "space", "nul"]
)
def test_a_checksum_over_unsigned_or_signed_bytes_is_accepted(signed: bool, field: str) -> None:
    member = _with_checksum(HIGH_BYTES, signed, field) + elf_header(AARCH64).ljust(512, b"\0")
    [found] = scan(member + END_OF_ARCHIVE)
    assert (found.path, found.machine) == ("/usr/bin/caf\x7f\udc80\u00e9", AARCH64)


def test_a_checksum_of_six_octal_digits_is_read_whole() -> None:
    """Names and link targets of 0xff bytes sum to over 0o100000: the first digit counts."""
    block = bytearray(tar_header("x", 0))
    block[0:100] = b"\xff" * 100
    block[157:257] = b"\xff" * 100
    member = _with_checksum(bytes(block), signed=False)
    assert member[148] != ord("0")
    assert scan_tar(io.BytesIO(member + END_OF_ARCHIVE)).regular_files == 1
    first_digit_zeroed = member[:148] + b"0" + member[149:]
    assert refusal(first_digit_zeroed + END_OF_ARCHIVE) == (
        "tar archive at offset 0: header checksum mismatch (not a tar header)"
    )


def test_a_name_that_is_not_utf_8_keeps_its_bytes() -> None:
    member = tar_header("usr/bin/x", len(elf_header(X86_64)))
    block = bytearray(member)
    block[9] = 0xFF  # usr/bin/\xff
    named = _with_checksum(bytes(block), signed=False) + elf_header(X86_64).ljust(512, b"\0")
    assert scan(named + END_OF_ARCHIVE) == (ElfFile("/usr/bin/x\udcff", X86_64),)


def test_a_base_256_size_field_is_read() -> None:
    elf = elf_header(X86_64)
    member = with_size_field(b"\x80" + len(elf).to_bytes(11, "big")) + elf.ljust(512, b"\0")
    assert scan(member + END_OF_ARCHIVE) == (ElfFile("/sized", X86_64),)


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
    offset = cut - cut % 512 if "header" in why or "end-of" in why else len(ARM_TOOL) + 512
    assert refusal(archive[:cut]) == f"tar archive at offset {offset}: the stream {why}"


@pytest.mark.parametrize("ending", [b"", bytes(512), END_OF_ARCHIVE, END_OF_ARCHIVE + bytes(9216)])
def test_clean_ends_are_accepted(ending: bytes) -> None:
    # The stream may end at a header boundary, after one zero block, or after the two
    # end-of-archive blocks and zero padding (GNU tar pads to 10 KiB records).
    assert scan(ARM_TOOL + HIDDEN_X86 + ending) == (
        ElfFile("/usr/bin/arm-tool", AARCH64),
        ElfFile("/usr/bin/hidden", X86_64),
    )


def test_a_header_after_a_single_zero_block_fails() -> None:
    assert refusal(ARM_TOOL + bytes(512) + HIDDEN_X86 + END_OF_ARCHIVE) == (
        f"tar archive at offset {len(ARM_TOOL) + 512}: a header follows a single zero block"
    )


def test_data_after_the_end_of_archive_fails() -> None:
    offset = len(ARM_TOOL) + len(END_OF_ARCHIVE)
    assert refusal(ARM_TOOL + END_OF_ARCHIVE + HIDDEN_X86 + END_OF_ARCHIVE) == (
        f"tar archive at offset {offset}: data other than zeros after the end-of-archive blocks"
    )
    # Zeros past a whole chunk, then data, are found too.
    tail = bytes(CHUNK_BYTES + 512) + b"x"
    assert refusal(ARM_TOOL + END_OF_ARCHIVE + tail) == (
        f"tar archive at offset {offset}: data other than zeros after the end-of-archive blocks"
    )


@pytest.mark.parametrize(
    ("typeflag", "size"), [(b"L", 1 << 30), (b"K", 2 << 20), (b"x", 512 << 20), (b"g", 3 << 20)]
)
def test_huge_extended_headers_are_refused_before_they_are_read(typeflag: bytes, size: int) -> None:
    # A 32 KiB layer declaring a 1 GiB GNU long name used to cost 3.1 GiB of memory.
    source = CountingSource(
        io.BytesIO(tar_header("././@LongLink", size, typeflag) + bytes(4 << 20))
    )
    with pytest.raises(LayerFormatError) as raised:
        scan_tar(source)
    assert str(raised.value) == (
        f"tar archive at offset 0: an extended header (GNU long name or PAX) of {size} bytes; "
        "at most 1048576 are accepted"
    )
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


def test_decompressed_bytes_are_capped() -> None:
    # 64 MiB of zeros inside a tar member compress to a few KiB of zstd.
    size = 64 << 20
    blob = zstd_bytes(tar_header("bomb", size) + bytes(size) + END_OF_ARCHIVE)
    inflated = CountingSource(decompressed(io.BytesIO(blob)))
    with pytest.raises(LayerFormatError) as raised:
        scan_tar(inflated, max_bytes=8 << 20)
    assert str(raised.value) == (
        "the layer inflates to more than 8388608 bytes (--max-layer-bytes); it is not read further"
    )
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
    assert refusal(archive) == (
        "tar archive at offset 0: member name '../../bin/busybox' climbs above the root"
    )


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


def test_a_name_relinked_to_a_file_that_is_no_elf_is_no_longer_an_elf_name() -> None:
    archive = tar_bytes(
        [
            Entry("app/tool", elf_header(X86_64)),
            Entry("app/README", b"text"),
            Entry("app/tool", kind=tarfile.LNKTYPE, target="app/README"),
            Entry("app/alias", kind=tarfile.LNKTYPE, target="app/tool"),
        ]
    )
    result = scan_tar(io.BytesIO(archive))
    assert result.elf_files == (ElfFile("/app/tool", X86_64),)
    assert result.hard_links == (
        HardLink("/app/tool", "/app/README"),
        HardLink("/app/alias", "/app/tool"),
    )


def test_pax_records_are_read_in_order_up_to_the_zero_padding() -> None:
    # Two records in one header (path, then linkpath of a hard link), values holding '=' and
    # ' ', a key that is not UTF-8, and NUL padding inside the declared size.
    records = pax_record("path", "usr/bin/a b=c") + b"6 \xff=1\n" + pax_record("comment", "x")
    header = pax(records + bytes(3))
    member = tar_member("short", elf_header(AARCH64))
    assert scan(header + member + END_OF_ARCHIVE) == (ElfFile("/usr/bin/a b=c", AARCH64),)
    link = pax(pax_record("linkpath", "usr/bin/a b=c") + b"18 path=usr/bin/\xff\n")
    linked = scan(header + member + link + tar_header("l", 0, b"1") + END_OF_ARCHIVE)
    assert linked[1] == ElfFile("/usr/bin/\udcff", AARCH64, link_target="/usr/bin/a b=c")


def test_a_pax_length_of_twenty_digits_is_no_length() -> None:
    assert refusal(pax(b"0" * 19 + b"1 path=x\n") + END_OF_ARCHIVE) == (
        "tar archive at offset 0: a PAX record has no valid length"
    )


def test_an_extended_header_of_exactly_the_limit_is_read() -> None:
    name = "n" * (MAX_EXTENDED_HEADER_BYTES - 1)
    long_name = tar_header("././@LongLink", MAX_EXTENDED_HEADER_BYTES, b"L") + name.encode() + b"\0"
    member = tar_member("short", elf_header(X86_64))
    assert scan(long_name + member + END_OF_ARCHIVE) == (ElfFile("/" + name, X86_64),)


def test_zero_padding_past_a_chunk_is_accepted_and_other_bytes_refused() -> None:
    assert scan(ARM_TOOL + END_OF_ARCHIVE + bytes(2 * CHUNK_BYTES)) == (
        ElfFile("/usr/bin/arm-tool", AARCH64),
    )
    offset = len(ARM_TOOL) + len(END_OF_ARCHIVE)
    for tail in (b"XXXX", bytes(CHUNK_BYTES + 512) + b"X"):
        assert refusal(ARM_TOOL + END_OF_ARCHIVE + tail) == (
            f"tar archive at offset {offset}: data other than zeros after the end-of-archive blocks"
        )


def test_the_names_one_layer_may_record_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarscan, "MAX_RECORDED_NAMES", 3)
    entries = [
        Entry("a", elf_header(X86_64)),
        Entry("b", elf_header(X86_64)),
        Entry("lower", kind=tarfile.LNKTYPE, target="in/a/lower/layer"),
    ]
    assert len(scan(tar_bytes(entries))) == 2
    with pytest.raises(LayerFormatError) as raised:
        scan(tar_bytes([*entries, Entry("c", elf_header(X86_64))]))
    assert str(raised.value) == "the layer holds more than 3 ELF files and hard links"


def test_a_members_data_is_read_as_much_as_asked_and_never_past_its_end() -> None:
    """What a capture (--sbom) reads further into a regular file: the member's own bytes, as
    many as asked (0 is none, -1 is the rest), never the next header's."""
    data = tarscan._MemberData(tarscan._Input(io.BytesIO(b"abcdefNEXT"), 1 << 20), 6)
    assert data.read(0) == b""
    assert data.read(2) == b"ab"
    assert data.read(-1) == b"cdef"
    assert data.read(5) == b""
    assert data.left == 0


class _Chunks:
    """A source whose reads return at most ``size`` bytes, so a chunk ends every ``size``."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = io.BytesIO(data)
        self._size = size

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(min(size, self._size))


def test_the_input_views_up_to_a_chunks_end_and_knows_its_offset() -> None:
    data = tarscan._Input(_Chunks(b"abcdef", 4), 1 << 20)
    seen = []
    for size in (2, 5, 5, 1):  # within a chunk, to its end, into the next, past the stream's end
        seen.append((bytes(data.view(size)), data.offset))
    assert seen == [(b"ab", 2), (b"cd", 4), (b"ef", 6), (b"", 6)]
    assert data.take(3) == b""
    assert (bytes(data.view(1)), data.offset) == (b"", 6)


def test_the_input_takes_across_chunks_as_many_bytes_as_asked() -> None:
    data = tarscan._Input(_Chunks(b"abcdefghijkl", 4), 1 << 20)
    assert (data.take(10), data.offset) == (b"abcdefghij", 10)
    assert (data.take(10), data.offset) == (b"kl", 12)  # fewer only at the end
    assert (data.take(1), bytes(data.view(1)), data.offset) == (b"", b"", 12)


def test_the_size_cap_holds_the_last_byte_it_allows() -> None:
    exact = tarscan._Input(io.BytesIO(b"abcdef"), 6)
    assert exact.take(10) == b"abcdef"
    over = tarscan._Input(io.BytesIO(b"abcdef"), 5)
    with pytest.raises(LayerFormatError) as raised:
        over.take(10)
    assert str(raised.value) == (
        "the layer inflates to more than 5 bytes (--max-layer-bytes); it is not read further"
    )
