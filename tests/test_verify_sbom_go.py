"""Go build information read from the layer stream: both header formats on amd64 and arm64,
what is skipped rather than copied, and hostile bytes that must end as "not read", never as a
crash or a wrong answer."""

from __future__ import annotations

import io
import random
import shutil
import struct
from pathlib import Path

import pytest

from tests.sbom_bytes import (
    AARCH64,
    BASE_ADDRESS,
    BLOB,
    DATA,
    MODINFO,
    RODATA,
    STRING_HEADERS,
    ReadableContent,
    go_binary,
)
from tests.verify_bytes import X86_64, Entry, gzip_bytes, tar_bytes
from verify.layers import LayerFormatError, decompressed
from verify.sbom import binaries, gobuildinfo
from verify.sbom.binaries import BinaryFindings, BinaryReader
from verify.sbom.capture import LayerCapture
from verify.tarscan import scan_tar

FIRST = 20
"""Bytes the tar reader has read before the capture sees a file (its ELF header check)."""


class _Recorder:
    """A file's content that records which byte ranges were copied, viewed and skipped."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self._data = data
        self._chunk = chunk
        self.at = FIRST
        self.copied: list[tuple[int, int]] = []
        self.viewed: list[tuple[int, int]] = []
        self.skipped = 0

    def _take(self, size: int, into: list[tuple[int, int]]) -> bytes:
        size = min(self._chunk if size < 0 else size, self._chunk)
        data = self._data[self.at : self.at + size]
        if data:
            into.append((self.at, self.at + len(data)))
        self.at += len(data)
        return data

    def read(self, size: int = -1, /) -> bytes:
        return self._take(size, self.copied)

    def view(self, size: int) -> memoryview:
        return memoryview(self._take(size, self.viewed))

    def skip(self, size: int) -> int:
        size = min(size, len(self._data) - self.at)
        self.at += size
        self.skipped += size
        return size


def _read(data: bytes, chunk: int = 1 << 20) -> tuple[BinaryFindings, _Recorder]:
    content = _Recorder(data, chunk)
    return BinaryReader(len(data)).read(content, data[:FIRST]), content


def _go_version_and_modules(findings: BinaryFindings) -> tuple[str, str, list[str]]:
    assert findings.go is not None, findings.problems
    return (
        findings.go.go_version,
        findings.go.path,
        [f"{dep.path}@{dep.version}" for dep in findings.go.deps],
    )


EXPECTED_MODULES = ["github.com/google/uuid@v1.6.0", "google.golang.org/grpc@v1.60.1"]


@pytest.mark.parametrize("machine", [X86_64, AARCH64], ids=["amd64", "arm64"])
@pytest.mark.parametrize("inline", [True, False], ids=["go1.18+", "pre-1.18"])
@pytest.mark.parametrize("chunk", [1 << 20, 4096, 7])
def test_version_and_modules_of_both_formats_with_the_code_skipped(
    machine: int, inline: bool, chunk: int
) -> None:
    code = 3 << 20
    version = "go1.21.5" if inline else "go1.16.15"
    data = go_binary(inline, version=version, machine=machine, code_bytes=code)
    findings, content = _read(data, chunk)
    assert findings.problems == []
    assert _go_version_and_modules(findings) == (
        version,
        "example.com/shop/cmd/frontend",
        EXPECTED_MODULES,
    )
    # The code segment (and its decoy magic) was skipped: neither copied nor looked at.
    rodata = RODATA + code
    assert content.skipped >= rodata - binaries.HEAD_BYTES - FIRST
    assert all(
        end <= binaries.HEAD_BYTES + FIRST or start >= rodata for start, end in content.viewed
    )
    # Only the data segment, where the header is searched for, may be copied.
    assert all(start >= DATA + code - chunk for start, _ in content.copied)
    # Nothing after the build information (and the string headers) was needed: reading stopped
    # within a chunk of it and the rest is left to the tar reader.
    assert content.at <= DATA + code + STRING_HEADERS + 32 + chunk


def test_a_go_binary_in_a_layer_leaves_the_members_after_it_intact() -> None:
    """The tar reader's skip and view keep its own position right: the next member is read."""
    status = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36\nArchitecture: arm64\n"
    entries = [
        Entry("app/old", go_binary(False, code_bytes=(2 << 20) + 0x30)),
        Entry("app/new", go_binary(True, version="go1.23.4", code_bytes=0x10)),
        Entry("var/lib/dpkg/status", status),
    ]
    layer = decompressed(io.BytesIO(gzip_bytes(tar_bytes(entries))))
    scan = scan_tar(layer, capture=LayerCapture())
    assert scan.inventory is not None
    found = scan.inventory.binaries
    assert {path: (f.go.go_version if f.go else None) for path, f in found.items()} == {
        "/app/old": "go1.16.15",
        "/app/new": "go1.23.4",
    }
    assert scan.inventory.files["/var/lib/dpkg/status"] == status
    assert [elf.path for elf in scan.elf_files] == ["/app/old", "/app/new"]


def test_real_stripped_go_binary_read_through_a_plain_stream() -> None:
    """Debian's docker-registry (stripped, externally linked: the header is 116 KiB into the
    data segment, behind .dynamic and .got) read through :class:`ReadableContent`."""
    registry = shutil.which("docker-registry")
    if registry is None:
        from tests.integration.conftest import missing_prerequisite

        missing_prerequisite("docker-registry is not on PATH")
    data = Path(registry).read_bytes()
    findings = BinaryReader(len(data)).read(ReadableContent(io.BytesIO(data[FIRST:])), data[:FIRST])
    assert findings.problems == []
    version, path, _ = _go_version_and_modules(findings)
    assert path == "github.com/docker/distribution/cmd/registry"
    assert version.startswith("go1.") and version[4:6].rstrip(".").isdigit()
    assert int(version.split(".")[1]) >= 18


# Hostile pointer-format binaries: each ends as a problem naming what was not read.

VERSION_HEADER = DATA + STRING_HEADERS
MODINFO_HEADER = VERSION_HEADER + 16
POINTERS = DATA + BLOB + 16


def _patched(offset: int, fmt: str, *values: int) -> bytes:
    data = bytearray(go_binary(inline=False))
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            _patched(POINTERS, "<Q", 0x7700_0000),
            "the version at 0x77000000 (16 bytes) is not read",
        ),
        (
            _patched(VERSION_HEADER, "<QQ", BASE_ADDRESS + RODATA + 0x400, 1 << 40),
            f"the version is {1 << 40} bytes, over {binaries.GO_VERSION_BYTES}",
        ),
        (
            # A string that runs past the end of its segment's file bytes.
            _patched(VERSION_HEADER, "<QQ", BASE_ADDRESS + DATA - 4, 9),
            f"the version string at 0x{BASE_ADDRESS + DATA - 4:x} (9 bytes) is not read",
        ),
        (
            _patched(VERSION_HEADER, "<QQ", BASE_ADDRESS + RODATA, 8),
            "the version is not text",
        ),
    ],
    ids=["pointer-nowhere", "huge-length", "past-segment", "not-text"],
)
def test_a_hostile_version_is_not_read_and_the_modules_still_are(data: bytes, problem: str) -> None:
    findings, _ = _read(data)
    assert findings.problems == [f"Go build information: {problem}"]
    version, _, modules = _go_version_and_modules(findings)
    assert version == ""
    assert modules == EXPECTED_MODULES


def test_module_information_over_its_bound_is_not_read() -> None:
    data = _patched(MODINFO_HEADER, "<QQ", BASE_ADDRESS + RODATA + 0x800, 1 << 30)
    findings, _ = _read(data)
    bound = binaries.MODINFO_CAPTURE_BYTES
    assert findings.problems == [
        f"Go build information: the module information is {1 << 30} bytes, over {bound}"
    ]
    assert _go_version_and_modules(findings) == ("go1.16.15", "", [])


def test_strings_past_the_kept_read_only_data_are_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the first RETAINED_BYTES of read-only data are kept; a pointer beyond is "not read"
    (the strings lie 0x400 and 0x800 bytes in; small reads, so they are not in the chunk that
    holds the header either)."""
    monkeypatch.setattr(binaries, "RETAINED_BYTES", 0x600)
    findings, _ = _read(go_binary(inline=False, code_bytes=1 << 20), chunk=4096)
    assert findings.problems == [
        "Go build information: the module information string at "
        f"0x{BASE_ADDRESS + RODATA + (1 << 20) + 0x800:x} ({len(MODINFO) + 32} bytes) is not read"
    ]
    assert _go_version_and_modules(findings) == ("go1.16.15", "", [])


def test_a_file_cut_inside_the_string_headers_is_a_problem() -> None:
    data = go_binary(inline=False)[: VERSION_HEADER + 20]
    findings, _ = _read(data)
    assert findings.problems == [
        "Go build information: the module information's string header is truncated"
    ]
    assert findings.go is not None and findings.go.go_version == "go1.16.15"


def test_random_damage_to_a_pointer_format_binary_never_raises() -> None:
    """Bytes of the headers, the data segment and the strings overwritten at random: the
    reader answers with findings or problems, and a version it reports is always text."""
    original = go_binary(inline=False)
    rng = random.Random(20261130)
    regions = [(0, 0x40), (0x40, 0x100), (DATA, DATA + 0x840), (RODATA + 0x400, RODATA + 0x900)]
    for _ in range(400):
        data = bytearray(original)
        start, end = rng.choice(regions)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(start, end)] = rng.randrange(256)
        findings, _ = _read(bytes(data), rng.choice([1 << 20, 64, 5]))
        if findings.go is not None and findings.go.go_version:
            assert findings.go.go_version.isprintable()
            assert len(findings.go.go_version) <= binaries.GO_VERSION_BYTES


def test_the_header_outside_the_data_segment_is_not_taken() -> None:
    """Only the writable segment is searched: a binary whose only (aligned) magic lies in
    read-only data has no build information."""
    data = bytearray(go_binary(inline=True))
    data[DATA + BLOB : DATA + BLOB + 16] = bytes(16)
    findings, _ = _read(bytes(data))
    assert findings.go is None
    assert findings.problems == ["Go binary without build information"]
    assert gobuildinfo.MAGIC in data[:DATA]


PROBE = """
import io, sys
from tests.sbom_bytes import go_binary
from tests.verify_bytes import Entry, gzip_bytes, tar_bytes
from verify.layers import LayerFormatError, decompressed
from verify.platforms import Platform
from verify.reference import parse_reference
from verify.sbom.capture import LayerCapture
from verify.sbom.documents import spdx_document
from verify.sbom.inventory import platform_inventory
from verify.tarscan import scan_tar

entries = [Entry("app/server", go_binary(inline=True))]
if sys.argv[1] == "dpkg":
    entries.append(Entry("var/lib/dpkg/status", b"Package: a\\nVersion: 1\\n"))
layer = decompressed(io.BytesIO(gzip_bytes(tar_bytes(entries))))
scan = scan_tar(layer, capture=LayerCapture())
inventory = platform_inventory([scan], Platform.of("linux", "arm64"), "sha256:" + "ab" * 32)
spdx_document(parse_reference("127.0.0.1:5000/shop/a:1"), inventory)
print(sorted({package.component.ecosystem for package in inventory.packages}))
print("debian" in sys.modules)
"""


@pytest.mark.parametrize(("image", "loaded"), [("go", "False"), ("dpkg", "True")])
def test_python_debian_loads_only_for_an_image_with_a_dpkg_database(
    image: str, loaded: str
) -> None:
    import subprocess
    import sys

    from tests.test_verify_cli import REPO

    result = subprocess.run(
        [sys.executable, "-c", PROBE, image], cwd=REPO, capture_output=True, text=True, check=True
    )
    ecosystems, debian = result.stdout.splitlines()
    assert ecosystems == ("['deb', 'golang']" if image == "dpkg" else "['golang']")
    assert debian == loaded


@pytest.mark.parametrize("inline", [True, False], ids=["go1.18+", "pre-1.18"])
@pytest.mark.parametrize("cut_in", ["code", "read-only data", "data"])
def test_a_layer_cut_inside_a_go_binary_is_a_format_error(inline: bool, cut_in: str) -> None:
    """Skipping and viewing count what the stream really gave: a member cut short in any
    segment fails the layer with the member's name, as it does without the capture."""
    code = 2 << 20
    entries = [Entry("app/server", go_binary(inline, code_bytes=code))]
    archive = tar_bytes(entries)
    member = archive.index(b"\x7fELF")
    cut = member + {"code": code // 2, "read-only data": RODATA + code + 0x500}.get(
        cut_in, DATA + code + 0x20
    )
    for capture in (None, LayerCapture()):
        with pytest.raises(
            LayerFormatError, match="the stream ends inside the data of /app/server"
        ):
            scan_tar(io.BytesIO(archive[:cut]), capture=capture)


# Bounds at their edges: a string ending on its segment's last byte, a version of exactly the
# bound, kept bytes up to the end of what was kept, and string headers in either byte order.


def test_a_version_ending_on_the_last_byte_of_read_only_data_is_read() -> None:
    data = bytearray(go_binary(inline=False))
    data[DATA - 9 : DATA] = b"go1.17.13"
    struct.pack_into("<QQ", data, VERSION_HEADER, BASE_ADDRESS + DATA - 9, 9)
    findings, _ = _read(bytes(data))
    assert findings.problems == []
    assert _go_version_and_modules(findings) == (
        "go1.17.13",
        "example.com/shop/cmd/frontend",
        EXPECTED_MODULES,
    )


def test_a_version_of_exactly_the_bound_is_read() -> None:
    version = "go1.16.15-" + "x" * (binaries.GO_VERSION_BYTES - 10)
    findings, _ = _read(go_binary(inline=False, version=version))
    assert findings.problems == []
    assert findings.go is not None and findings.go.go_version == version


def test_kept_bytes_are_given_up_to_the_end_of_the_kept_range_and_no_further() -> None:
    stream = binaries.MarkerStream()
    stream.feed(b"0123456789")
    assert stream.retain(4, 10)  # from inside the chunk fed last, on into the next one
    stream.feed(memoryview(b"abcdefgh"))
    assert stream.retained(4, 10) == b"456789abcd"
    assert stream.retained(8, 6) == b"89abcd"
    assert stream.retained(8, 7) is None  # one byte past what was kept
    assert stream.retained(3, 2) is None  # one byte before it


@pytest.mark.parametrize(
    ("pointer_size", "big_endian", "fields"),
    [(8, False, "<QQ"), (8, True, ">QQ"), (4, False, "<II"), (4, True, ">II")],
)
def test_a_string_header_is_read_in_its_pointer_size_and_byte_order(
    pointer_size: int, big_endian: bool, fields: str
) -> None:
    header = gobuildinfo.Header(pointer_size, big_endian, inline=False)
    # The bytes after it (the next string header) are not part of it.
    data = struct.pack(fields, 0x401000, 9) + b"\xff" * 16
    assert gobuildinfo.string_header(data, header) == (0x401000, 9)


# The header and module information decoders on their own, as debug/buildinfo and
# runtime/debug.ParseBuildInfo define them (Go's sources, read; no bytes taken from them).
Header = gobuildinfo.Header
Module = gobuildinfo.Module


def _header(pointer_size: int, flags: int, rest: bytes = b"") -> bytes:
    return (gobuildinfo.MAGIC + bytes([pointer_size, flags]) + rest).ljust(32, b"\0")


@pytest.mark.parametrize(
    ("data", "header"),
    [
        (_header(8, gobuildinfo.FLAG_INLINE), Header(8, False, True)),
        (_header(8, gobuildinfo.FLAG_INLINE | gobuildinfo.FLAG_BIG_ENDIAN), Header(8, True, True)),
        # Pointer format: the two addresses in the flag's byte order; what follows is not theirs.
        (
            _header(4, 0, struct.pack("<II", 0x1000, 0x2000) + b"\xff" * 8),
            Header(4, False, False, 0x1000, 0x2000),
        ),
        (
            _header(4, gobuildinfo.FLAG_BIG_ENDIAN, struct.pack(">II", 0x1000, 0x2000)),
            Header(4, True, False, 0x1000, 0x2000),
        ),
        (
            _header(8, gobuildinfo.FLAG_BIG_ENDIAN, struct.pack(">QQ", 0x401000, 0x402000)),
            Header(8, True, False, 0x401000, 0x402000),
        ),
    ],
    ids=["inline", "inline-big-endian", "pointers-32", "pointers-32-big-endian", "pointers-64-be"],
)
def test_a_header_of_32_bytes_is_decoded(data: bytes, header: Header) -> None:
    assert len(data) == gobuildinfo.HEADER_BYTES
    assert gobuildinfo.parse_header(data) == header


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_header(8, gobuildinfo.FLAG_INLINE)[:31], "no Go build information header"),
        (b"\xff Go buildinF:" + bytes(18), "no Go build information header"),
        (_header(5, 0), "pointer size 5 is neither 4 nor 8"),
        (_header(0, 0), "pointer size 0 is neither 4 nor 8"),
    ],
    ids=["31-bytes", "other-magic", "pointer-size-5", "pointer-size-0"],
)
def test_a_header_that_is_not_one_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(gobuildinfo.BuildInfoError) as raised:
        gobuildinfo.parse_header(data)
    assert str(raised.value) == problem


@pytest.mark.parametrize(
    ("data", "offset", "read"),
    [
        (b"\x00", 0, (0, 1)),
        (b"\x7f", 0, (127, 1)),
        (b"\x80\x01", 0, (128, 2)),
        (b"\xff\xff\x03", 0, (65535, 3)),
        (b"ab\xac\x02", 2, (300, 4)),
        (b"\xff" * 9 + b"\x01", 0, (2**64 - 1, 10)),  # the longest a uvarint may be
    ],
)
def test_a_uvarint_is_read_to_its_last_byte(
    data: bytes, offset: int, read: tuple[int, int]
) -> None:
    assert gobuildinfo.read_uvarint(data, offset) == read


@pytest.mark.parametrize(
    "data", [b"", b"\x80", b"\xff\xff", b"\x80" * 10 + b"\x00"], ids=["empty", "cut", "cut-2", "11"]
)
def test_a_truncated_or_overlong_uvarint_is_refused(data: bytes) -> None:
    with pytest.raises(gobuildinfo.BuildInfoError) as raised:
        gobuildinfo.read_uvarint(data, 0)
    assert str(raised.value) == "truncated or overlong length"


def test_the_inline_layout_gives_the_version_and_where_the_module_information_is() -> None:
    data = _header(8, gobuildinfo.FLAG_INLINE) + b"\x08go1.22.1\x05mods!"
    assert gobuildinfo.inline_layout(data) == ("go1.22.1", 42, 5)
    # A version that is not UTF-8 is kept, its bad bytes replaced (the binary is hostile input).
    odd = _header(8, gobuildinfo.FLAG_INLINE) + b"\x04go\xff1\x00"
    assert gobuildinfo.inline_layout(odd) == ("go\ufffd1", 38, 0)
    with pytest.raises(gobuildinfo.BuildInfoError) as raised:
        gobuildinfo.inline_layout(_header(8, gobuildinfo.FLAG_INLINE) + b"\x09go1.22.1")
    assert str(raised.value) == "version string runs past the captured bytes"


START, END = gobuildinfo.MODINFO_START, gobuildinfo.MODINFO_END


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (START + b"\n" + END, "\n"),  # 33 bytes: the shortest wrapped text
        (START + b"path\tx\n" + END, "path\tx\n"),
        (b"path\tx\n", "path\tx\n"),  # no sentinels: taken as it is
        (START + b"path\tx" + END, (START + b"path\tx" + END).decode("utf-8", "replace")),
        (START + b"path\t\xffx\n" + END, "path\t\ufffdx\n"),
    ],
    ids=["shortest", "wrapped", "bare", "no-newline-before-the-end", "not-utf-8"],
)
def test_module_information_is_unwrapped_only_when_its_sentinels_frame_a_line(
    raw: bytes, text: str
) -> None:
    assert gobuildinfo.unwrap_modinfo(raw) == text


MODINFO_TEXT = (
    "path\texample.com/shop/cmd/server\n"
    "mod\texample.com/shop\tv1.2.3\th1:main=\n"
    "dep\tgolang.org/x/net\tv0.20.0\th1:net=\n"
    "dep\tgoogle.golang.org/grpc\tv1.60.1\n"
    "dep\texample.com/fork-me\tv0.1.0\th1:old=\n"
    "=>\texample.com/forked\tv0.1.1\th1:new=\n"
    "unknown\tignored\tfields\n"
    "build\t-trimpath=true\n"
    "build\tGOARCH=arm64\n"
)


def test_module_information_records_are_read_as_debug_parses_them() -> None:
    info = gobuildinfo.parse_modinfo("go1.22.1", MODINFO_TEXT)
    assert info == gobuildinfo.BuildInfo(
        "go1.22.1",
        "example.com/shop/cmd/server",
        Module("example.com/shop", "v1.2.3", "h1:main="),
        (
            Module("golang.org/x/net", "v0.20.0", "h1:net="),
            Module("google.golang.org/grpc", "v1.60.1", ""),
            Module("example.com/forked", "v0.1.1", "h1:new="),  # the replacement, last dep
        ),
        {"-trimpath": "true", "GOARCH": "arm64"},
    )


@pytest.mark.parametrize(
    ("text", "main", "deps"),
    [
        ("", None, ()),
        ("mod\tex.com/a\t(devel)\n", Module("ex.com/a", "(devel)"), ()),
        ("mod\tex.com/a\n", None, ()),  # a record with one field is not a module
        ("dep\tex.com/b\tv1\n", None, (Module("ex.com/b", "v1"),)),
        ("dep\tex.com/b\n", None, ()),
        ("dep\tex.com/b\t\th1:b=\n", None, (Module("ex.com/b", "", "h1:b="),)),  # tabs only
        ("mod\tex.com/a\tv1\n=>\tex.com/r\tv2\n", Module("ex.com/r", "v2"), ()),
        ("mod\tex.com/a\tv1\n=>\tex.com/r\tv2\th1:r=\n", Module("ex.com/r", "v2", "h1:r="), ()),
        ("mod\tex.com/a\tv1\n=>\tex.com/r\n", Module("ex.com/a", "v1"), ()),
        ("=>\tex.com/r\tv2\n", None, ()),  # replaces nothing
        (
            "dep\tex.com/b\tv1\ndep\tex.com/c\tv1\n=>\tex.com/r\tv2\n",
            None,
            (Module("ex.com/b", "v1"), Module("ex.com/r", "v2")),
        ),
    ],
    ids=[
        "empty",
        "main",
        "main-without-version",
        "dep",
        "dep-without-version",
        "empty-field",
        "main-replaced",
        "main-replaced-with-sum",
        "short-replacement",
        "replacement-first",
        "last-dep-replaced",
    ],
)
def test_each_module_record_and_replacement(
    text: str, main: Module | None, deps: tuple[Module, ...]
) -> None:
    info = gobuildinfo.parse_modinfo("go1.22.1", text)
    assert (info.main, info.deps) == (main, deps)
