"""The SBOM read from crafted layers: every inventory source, the overlay rules, the binaries'
build information found across any chunking, and both document formats validated by their
reference tools (spdx-tools, the CycloneDX 1.6 JSON schema)."""

from __future__ import annotations

import ctypes
import io
import json
import os
import re
import resource
import shutil
import signal
import struct
import tarfile
import tempfile
import time
import warnings
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from tests.sbom_bytes import ReadableContent, dotnet_bundle, go_binary
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify.checks import ImageResult, PlatformResult
from verify.digests import Readable
from verify.layers import decompressed
from verify.platforms import Platform
from verify.reference import parse_reference
from verify.sbom import gobuildinfo
from verify.sbom.binaries import (
    DEPS_JSON_MAX_BYTES,
    DOTNET_BUNDLE_SIGNATURE,
    BinaryReader,
)
from verify.sbom.capture import JAR_MAX_BYTES, POM_MAX_BYTES, LayerCapture
from verify.sbom.documents import (
    ELF_FOREIGN_PROPERTY,
    FORMATS,
    _spdx_id,
    cyclonedx_document,
    render,
    spdx_document,
)
from verify.sbom.inventory import Inventory, Package, platform_inventory
from verify.sbom.output import SbomWriteError, write_documents
from verify.sbom.overlay import FinalView
from verify.sbom.sources import Component, dotnet
from verify.tarscan import LayerScan, scan_tar

ARM64 = Platform.of("linux", "arm64")
DIGEST = "sha256:" + "ab" * 32
REF = parse_reference("127.0.0.1:5000/shop/frontend:1")


def _scan(entries: list[Entry]) -> LayerScan:
    return scan_tar(
        decompressed(io.BytesIO(gzip_bytes(tar_bytes(entries)))), capture=LayerCapture()
    )


def _inventory(*layers: list[Entry]) -> Inventory:
    return platform_inventory([_scan(entries) for entries in layers], ARM64, DIGEST)


def _by_purl(inventory: Inventory) -> dict[str, Package]:
    return {package.component.purl: package for package in inventory.packages}


class _Dribble:
    """A stream that returns at most ``size`` bytes per read (markers split across reads)."""

    def __init__(self, data: bytes, size: int) -> None:
        self._stream = io.BytesIO(data)
        self._size = size

    def read(self, size: int = -1, /) -> bytes:
        return self._stream.read(self._size if size < 0 else min(size, self._size))

    @property
    def position(self) -> int:
        return self._stream.tell()


def _read_binary(data: bytes, chunk: int) -> BinaryReader:
    reader = BinaryReader(len(data))
    stream: Readable = _Dribble(data[20:], chunk)
    reader.read(ReadableContent(stream), data[:20])
    return reader


# Go build information


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "pointers"])
@pytest.mark.parametrize("chunk", [1 << 20, 4096, 13, 1])
def test_go_build_information_in_both_formats_and_any_chunking(inline: bool, chunk: int) -> None:
    findings = _read_binary(go_binary(inline), chunk).findings
    info = findings.go
    assert info is not None
    # The decoy magic in rodata and the other "go1." string are not taken; the pointer
    # format's strings, behind the header, come from the read-only data kept by reference.
    assert findings.problems == []
    assert info.go_version == "go1.16.15"
    assert info.path == "example.com/shop/cmd/frontend"
    assert info.main == gobuildinfo.Module("example.com/shop", "(devel)", "")
    # The "=>" line replaces grpc v1.60.0 by v1.60.1.
    assert [(dep.path, dep.version) for dep in info.deps] == [
        ("github.com/google/uuid", "v1.6.0"),
        ("google.golang.org/grpc", "v1.60.1"),
    ]
    assert info.settings["GOARCH"] == "arm64"


def test_a_non_go_elf_file_is_not_searched_past_its_headers() -> None:
    binary = elf_header(AARCH64) + b"\0" * 100 + gobuildinfo.MAGIC + b"\x08\x02" + b"\0" * 200
    reader = BinaryReader(len(binary))
    stream = _Dribble(binary[20:], 16)
    findings = reader.read(ReadableContent(stream), binary[:20])
    assert findings.go is None and findings.problems == []
    # Without a Go note there is nothing to look for: reading stopped after the ELF header.
    assert stream._stream.tell() < len(binary) - 20


def test_inline_header_with_a_truncated_version_is_a_reported_problem() -> None:
    data = bytearray(go_binary(inline=True))
    at = data.index(gobuildinfo.MAGIC, 0x6000)
    data[at + 32] = 0x7F  # the version's length now runs past the captured header bytes
    findings = _read_binary(bytes(data), 1 << 20).findings
    assert findings.go is None
    assert any("runs past" in problem for problem in findings.problems)


def test_real_go_binary(tmp_path: Path) -> None:
    """A Go binary built by Debian's toolchain (docker-registry, an integration prerequisite)."""
    registry = shutil.which("docker-registry")
    if registry is None:
        from tests.integration.conftest import missing_prerequisite

        missing_prerequisite("docker-registry is not on PATH")
    data = Path(registry).read_bytes()
    findings = _read_binary(data, 1 << 20).findings
    assert findings.go is not None
    assert findings.go.path == "github.com/docker/distribution/cmd/registry"
    assert findings.go.go_version.startswith("go1.")


# .NET


DEPS_JSON = json.dumps(
    {
        "runtimeTarget": {"name": ".NETCoreApp,Version=v9.0/linux-arm64"},
        "targets": {
            ".NETCoreApp,Version=v9.0/linux-arm64": {
                "Grpc.Net.Client/2.71.0": {"runtime": {"lib/net9.0/Grpc.Net.Client.dll": {}}},
                "SQLitePCLRaw.lib.e_sqlite3/2.1.6": {
                    "native": {"runtimes/linux-arm64/native/libe_sqlite3.so": {}}
                },
            }
        },
        "libraries": {
            "cartservice/1.0.0": {"type": "project"},
            "Grpc.Net.Client/2.71.0": {"type": "package"},
            "SQLitePCLRaw.lib.e_sqlite3/2.1.6": {"type": "package"},
            "runtimepack.Microsoft.NETCore.App.Runtime.linux-arm64/9.0.1": {"type": "runtimepack"},
        },
    },
    indent=2,
).encode()
NUGET_PURLS = {
    "pkg:nuget/Grpc.Net.Client@2.71.0",
    "pkg:nuget/SQLitePCLRaw.lib.e_sqlite3@2.1.6",
    "pkg:nuget/Microsoft.NETCore.App.Runtime.linux-arm64@9.0.1",
}


@pytest.mark.parametrize("chunk", [1 << 20, 7])
def test_deps_json_inside_a_single_file_bundle(chunk: int) -> None:
    findings = _read_binary(dotnet_bundle(DEPS_JSON), chunk).findings
    assert findings.problems == []
    assert findings.deps_json == DEPS_JSON


def test_dotnet_sources_bundle_and_plain_deps_json() -> None:
    bundled = _inventory([Entry("app/cartservice", dotnet_bundle(DEPS_JSON))])
    assert {p.component.purl for p in bundled.packages} == NUGET_PURLS
    plain = _inventory(
        [
            Entry("app/cartservice.deps.json", DEPS_JSON),
            Entry("app/libe_sqlite3.so", elf_header(X86_64)),
        ]
    )
    packages = _by_purl(plain)
    assert set(packages) == NUGET_PURLS
    # The native asset is owned by its package, and its wrong machine is visible.
    sqlite = packages["pkg:nuget/SQLitePCLRaw.lib.e_sqlite3@2.1.6"]
    assert sqlite.elf == {"/app/libe_sqlite3.so": X86_64}
    assert sqlite.foreign(AARCH64) == ["/app/libe_sqlite3.so"]


def _bundle_header_at(data: bytes) -> int:
    at = data.index(DOTNET_BUNDLE_SIGNATURE)
    (header_offset,) = struct.unpack_from("<q", data, at - 8)
    return int(header_offset)


def _bundle_with(
    *,
    header_offset: int | None = None,
    major: int | None = None,
    deps: tuple[int, int] | None = None,
    after: bytes = b"",
) -> bytes:
    """The crafted bundle with the signature's header offset, the header's major version or
    its deps.json (offset, size) replaced, and ``after`` appended."""
    data = bytearray(dotnet_bundle(DEPS_JSON))
    header = _bundle_header_at(bytes(data))
    if header_offset is not None:
        at = data.index(DOTNET_BUNDLE_SIGNATURE)
        data[at - 8 : at] = struct.pack("<q", header_offset)
    if major is not None:
        data[header : header + 4] = struct.pack("<I", major)
    if deps is not None:
        # major, minor, file count (12 bytes), the id's length (1 byte), the 8-byte id.
        data[header + 21 : header + 37] = struct.pack("<qq", *deps)
    return bytes(data + after)


def _bundle_findings(data: bytes) -> tuple[list[str], bytes | None]:
    findings = _read_binary(data, 1 << 20).findings
    return findings.problems, findings.deps_json


@pytest.mark.parametrize("major", [2, 6, 0xFFFFFFFF])
def test_every_bundle_version_from_2_on_names_its_deps_json(major: int) -> None:
    assert _bundle_findings(_bundle_with(major=major)) == ([], DEPS_JSON)


def test_a_bundle_version_before_2_is_a_problem() -> None:
    assert _bundle_findings(_bundle_with(major=1)) == (
        [".NET bundle version 1 names no deps.json"],
        None,
    )


def test_a_bundle_header_cut_short_by_the_end_of_the_file_is_a_problem() -> None:
    data = dotnet_bundle(DEPS_JSON)
    assert _bundle_findings(_bundle_with(header_offset=len(data) - 2)) == (
        [".NET bundle header is truncated"],
        None,
    )


def test_a_bundle_header_offset_already_passed_is_a_problem() -> None:
    assert _bundle_findings(_bundle_with(header_offset=16)) == (
        [".NET bundle header offset lies before its signature"],
        None,
    )


def test_the_deps_json_size_bound_is_inclusive() -> None:
    # Exactly the bound is looked for (and here not found); one byte more is refused unread.
    at_bound = _bundle_with(deps=(0, DEPS_JSON_MAX_BYTES))
    assert _bundle_findings(at_bound) == (
        [".NET bundle deps.json was not found at its offset"],
        None,
    )
    over = _bundle_with(deps=(0, DEPS_JSON_MAX_BYTES + 1))
    message = (
        f".NET bundle deps.json is {DEPS_JSON_MAX_BYTES + 1} bytes, over {DEPS_JSON_MAX_BYTES}"
    )
    assert _bundle_findings(over) == ([message], None)


@pytest.mark.parametrize("size", [0, -1])
def test_a_bundle_naming_an_empty_deps_json_has_none(size: int) -> None:
    assert _bundle_findings(_bundle_with(deps=(0, size))) == ([], None)


def test_a_one_byte_deps_json_is_looked_for() -> None:
    assert _bundle_findings(_bundle_with(deps=(0, 1))) == (
        [".NET bundle deps.json was not found at its offset"],
        None,
    )


def test_deps_json_is_found_when_the_header_is_read_in_the_same_chunk() -> None:
    # A long manifest after the header (a self-contained app lists hundreds of files): the
    # header's 4096 bytes arrive in the chunk that also holds the deps.json.
    data = _bundle_with(after=bytes(8192))
    assert _bundle_findings(data) == ([], DEPS_JSON)


def test_only_the_first_bundle_signature_counts() -> None:
    # A second placeholder in a later read (an apphost among the appended files) is not read.
    second = struct.pack("<q", 16) + DOTNET_BUNDLE_SIGNATURE
    data = _bundle_with(after=bytes(8192) + second)
    findings = _read_binary(data, 4096).findings
    assert (findings.problems, findings.deps_json) == ([], DEPS_JSON)


def test_reading_a_bundle_stops_once_its_header_and_deps_json_are_read() -> None:
    # The deps.json candidate is kept for DEPS_JSON_MAX_BYTES past its marker at most; no
    # marker is searched for after the header, so the rest of the file is not read.
    data = _bundle_with(after=bytes(DEPS_JSON_MAX_BYTES + (3 << 20)))
    stream = _Dribble(data[20:], 1 << 20)
    findings = BinaryReader(len(data)).read(ReadableContent(stream), data[:20])
    assert (findings.problems, findings.deps_json) == ([], DEPS_JSON)
    assert stream.position < DEPS_JSON_MAX_BYTES + (2 << 20) < len(data)


def _deps(document: object) -> bytes:
    return json.dumps(document).encode()


def test_dotnet_components_carry_every_field_and_their_native_assets() -> None:
    view = FinalView(files={"/app/cartservice.deps.json": DEPS_JSON})
    assert dotnet(view) == [
        Component(
            "nuget",
            "Grpc.Net.Client",
            "2.71.0",
            "pkg:nuget/Grpc.Net.Client@2.71.0",
            "/app/cartservice.deps.json",
        ),
        Component(
            "nuget",
            "SQLitePCLRaw.lib.e_sqlite3",
            "2.1.6",
            "pkg:nuget/SQLitePCLRaw.lib.e_sqlite3@2.1.6",
            "/app/cartservice.deps.json",
            files={"/app/libe_sqlite3.so"},
        ),
        Component(
            "nuget",
            "Microsoft.NETCore.App.Runtime.linux-arm64",
            "9.0.1",
            "pkg:nuget/Microsoft.NETCore.App.Runtime.linux-arm64@9.0.1",
            "/app/cartservice.deps.json",
        ),
    ]
    assert view.notes == []


def test_dotnet_reads_malformed_parts_of_a_deps_json_leniently() -> None:
    # Each document has one part of the wrong shape; the libraries around it are still listed,
    # without native files where the target cannot be read, and nothing is reported.
    package = {"type": "package"}
    native: dict[str, object] = {"native": {"runtimes/linux-arm64/native/libx.so": {}}}
    view = FinalView(
        files={
            # A library entry that is not an object is skipped; a key without a version is a
            # package without one.
            "/a/a.deps.json": _deps({"libraries": {"Junk/1": "package", "Lonely": package}}),
            # Targets that are not an object.
            "/b/b.deps.json": _deps({"targets": ["net"], "libraries": {"B/2": package}}),
            # The runtime target that is not an object.
            "/c/c.deps.json": _deps(
                {
                    "runtimeTarget": {"name": "net"},
                    "targets": {"net": ["C/3"]},
                    "libraries": {"C/3": package},
                }
            ),
            # A library's assets that are not an object.
            "/d/d.deps.json": _deps(
                {
                    "runtimeTarget": {"name": "net"},
                    "targets": {"net": {"D/4": "native"}},
                    "libraries": {"D/4": package},
                }
            ),
            # Libraries that are not an object: nothing to list.
            "/f/f.deps.json": _deps({"libraries": ["F/6"]}),
            # A runtime target without a name is looked up as "".
            "/e/e.deps.json": _deps(
                {
                    "runtimeTarget": {},
                    "targets": {"": {"E/5": native}},
                    "libraries": {"E/5": package},
                }
            ),
        }
    )
    found = {(c.name, c.version, c.purl, c.source): c.files for c in dotnet(view)}
    assert found == {
        ("Lonely", "", "pkg:nuget/Lonely", "/a/a.deps.json"): set(),
        ("B", "2", "pkg:nuget/B@2", "/b/b.deps.json"): set(),
        ("C", "3", "pkg:nuget/C@3", "/c/c.deps.json"): set(),
        ("D", "4", "pkg:nuget/D@4", "/d/d.deps.json"): set(),
        ("E", "5", "pkg:nuget/E@5", "/e/e.deps.json"): {"/e/libx.so"},
    }
    assert view.notes == []


# OS packages


DPKG_STATUS = b"""\
Package: libc6
Status: install ok installed
Architecture: arm64
Version: 2.36-9+deb12u9

Package: removed-one
Status: deinstall ok config-files
Architecture: arm64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u1
"""
OS_RELEASE_DEBIAN = b'PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\nVERSION_ID="12"\n'


def test_dpkg_status_with_file_lists() -> None:
    inventory = _inventory(
        [
            Entry("etc/os-release", OS_RELEASE_DEBIAN),
            Entry("var/lib/dpkg/status", DPKG_STATUS),
            Entry("var/lib/dpkg/info/libc6:arm64.list", b"/.\n/lib/aarch64-linux-gnu/libc.so.6\n"),
            Entry("lib/aarch64-linux-gnu/libc.so.6", elf_header(AARCH64)),
        ]
    )
    packages = _by_purl(inventory)
    assert set(packages) == {
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=arm64&distro=debian-12",
        "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all&distro=debian-12",
    }
    libc = packages["pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=arm64&distro=debian-12"]
    assert (libc.component.name, libc.component.version) == ("libc6", "2.36-9+deb12u9")
    assert libc.elf == {"/lib/aarch64-linux-gnu/libc.so.6": AARCH64}
    assert inventory.unowned_elf == 0


def test_a_dpkg_paragraph_without_a_name_or_a_version_is_no_package() -> None:
    status = (
        b"Package: no-version\nStatus: install ok installed\n\n"
        b"Status: install ok installed\nVersion: 1.0\n\n"
        b"Package: whole\nStatus: install ok installed\nVersion: 2.0\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing said on stderr (python-debian warns of apt_pkg)
        inventory = _inventory(
            [Entry("etc/os-release", OS_RELEASE_DEBIAN), Entry("var/lib/dpkg/status", status)]
        )
    assert set(_by_purl(inventory)) == {"pkg:deb/debian/whole@2.0?distro=debian-12"}


def test_distroless_status_d_with_md5sums() -> None:
    inventory = _inventory(
        [
            Entry("var/lib/dpkg/status.d/libssl3", b"Package: libssl3\nVersion: 3.0.15-1\n"),
            Entry(
                "var/lib/dpkg/status.d/libssl3.md5sums",
                b"0123456789abcdef0123456789abcdef  usr/lib/aarch64-linux-gnu/libssl.so.3\n",
            ),
            Entry("usr/lib/aarch64-linux-gnu/libssl.so.3", elf_header(AARCH64)),
        ]
    )
    (package,) = inventory.packages
    assert package.component.purl == "pkg:deb/debian/libssl3@3.0.15-1"
    assert package.elf == {"/usr/lib/aarch64-linux-gnu/libssl.so.3": AARCH64}


def test_chisel_manifest_of_a_chiseled_ubuntu_image() -> None:
    lines = [
        {"jsonwall": "1.0", "schema": "1.0", "count": 4},
        {"kind": "package", "name": "libc6", "version": "2.39-0ubuntu8.3", "arch": "arm64"},
        {"kind": "package", "name": "libicu74", "version": "74.2-1ubuntu3.1", "arch": "arm64"},
        {"kind": "path", "path": "/usr/lib/aarch64-linux-gnu/libc.so.6", "slices": ["libc6_libs"]},
        {"kind": "slice", "name": "libc6_libs"},
    ]
    wall = zstandard.ZstdCompressor().compress(
        "\n".join(json.dumps(line) for line in lines).encode()
    )
    inventory = _inventory(
        [
            Entry("etc/os-release", b"ID=ubuntu\nVERSION_ID=24.04\n"),
            Entry("var/lib/chisel/manifest.wall", wall),
            Entry("usr/lib/aarch64-linux-gnu/libc.so.6", elf_header(AARCH64)),
        ]
    )
    packages = _by_purl(inventory)
    libc = packages["pkg:deb/ubuntu/libc6@2.39-0ubuntu8.3?arch=arm64&distro=ubuntu-24.04"]
    assert libc.elf == {"/usr/lib/aarch64-linux-gnu/libc.so.6": AARCH64}
    assert "pkg:deb/ubuntu/libicu74@74.2-1ubuntu3.1?arch=arm64&distro=ubuntu-24.04" in packages


def test_alpine_installed_database() -> None:
    installed = b"""\
C:Q1abc=
P:musl
V:1.2.5-r0
A:aarch64
F:lib
R:ld-musl-aarch64.so.1
R:libc.musl-aarch64.so.1

P:python3
V:3.12.8-r1
A:aarch64
F:usr/bin
R:python3.12
"""
    inventory = _inventory(
        [
            Entry("etc/os-release", b"ID=alpine\nVERSION_ID=3.21.2\n"),
            Entry("lib/apk/db/installed", installed),
            Entry("lib/ld-musl-aarch64.so.1", elf_header(AARCH64)),
            Entry("usr/bin/python3.12", elf_header(X86_64)),
        ]
    )
    packages = _by_purl(inventory)
    musl = packages["pkg:apk/alpine/musl@1.2.5-r0?arch=aarch64&distro=alpine-3.21.2"]
    assert musl.elf == {"/lib/ld-musl-aarch64.so.1": AARCH64}
    python = packages["pkg:apk/alpine/python3@3.12.8-r1?arch=aarch64&distro=alpine-3.21.2"]
    assert python.foreign(AARCH64) == ["/usr/bin/python3.12"]


# Language packages, on real metadata where this machine has it


def _dist_info_entries(distribution: str, site: str) -> list[Entry]:
    from importlib.metadata import distribution as find

    found = find(distribution)
    folder = Path(str(found._path))  # type: ignore[attr-defined]  # the dist-info directory
    return [
        Entry(f"{site}/{folder.name}/{name}", (folder / name).read_bytes())
        for name in ("METADATA", "RECORD")
    ]


def test_python_dist_info_from_real_installed_packages() -> None:
    site = "usr/local/lib/python3.12/site-packages"
    entries = _dist_info_entries("packageurl-python", site) + _dist_info_entries("zstandard", site)
    from importlib.metadata import files, version

    native = next(str(f) for f in files("zstandard") or [] if str(f).endswith(".so"))
    entries.append(Entry(f"{site}/{native}", elf_header(X86_64)))
    packages = _by_purl(_inventory(entries))
    assert set(packages) == {
        f"pkg:pypi/packageurl-python@{version('packageurl-python')}",
        f"pkg:pypi/zstandard@{version('zstandard')}",
    }
    # RECORD paths are relative to site-packages; the extension module is owned by zstandard.
    zstd = packages[f"pkg:pypi/zstandard@{version('zstandard')}"]
    assert zstd.foreign(AARCH64) == [f"/{site}/{native}"]


def test_python_metadata_that_is_not_ascii_is_read_as_utf_8() -> None:
    site = "usr/lib/python3.12/site-packages"
    inventory = _inventory(
        [
            Entry(f"{site}/cafe-1.0.dist-info/METADATA", "Name: café\nVersion: 1.0\n".encode()),
            Entry(f"{site}/odd-2.dist-info/METADATA", b"Name: odd\xff\nVersion: 2\xfe\n"),
        ]
    )
    assert [(p.component.name, p.component.version) for p in inventory.packages] == [
        ("café", "1.0"),
        ("odd\ufffd", "2\ufffd"),
    ]
    assert [p.component.purl for p in inventory.packages] == [
        "pkg:pypi/caf%c3%a9@1.0",  # packageurl lowercases a PyPI name, escapes too
        "pkg:pypi/odd%ef%bf%bd@2%EF%BF%BD",
    ]


NPM_ROOT = Path("/usr/lib/node_modules/npm")


def test_node_packages_from_real_npm_metadata() -> None:
    if not (NPM_ROOT / "node_modules").is_dir():
        pytest.skip(f"no npm installation with bundled packages at {NPM_ROOT}")
    app = "usr/src/app/node_modules"
    entries, expected = [], set()
    for package_json in sorted((NPM_ROOT / "node_modules").glob("*/package.json"))[:25]:
        document = json.loads(package_json.read_bytes())
        entries.append(
            Entry(f"{app}/{package_json.parent.name}/package.json", package_json.read_bytes())
        )
        name = document["name"]
        scope, _, bare = name.rpartition("/")
        assert not scope  # the first entries of npm's bundle are unscoped
        expected.add(f"pkg:npm/{bare}@{document['version']}")
    # A scoped package and a nested native module, owned by the nearest package.
    entries += [
        Entry(
            f"{app}/@google-cloud/profiler/package.json",
            b'{"name": "@google-cloud/profiler", "version": "6.0.3"}',
        ),
        Entry(f"{app}/pprof/package.json", b'{"name": "pprof", "version": "4.0.0"}'),
        Entry(f"{app}/pprof/build/Release/pprof.node", elf_header(X86_64)),
        Entry(f"{app}/pprof/test/fixture/package.json", b'{"name": "fixture", "version": "0"}'),
    ]
    packages = _by_purl(_inventory(entries))
    assert expected <= set(packages)
    assert "pkg:npm/%40google-cloud/profiler@6.0.3" in packages
    assert "pkg:npm/fixture@0" not in packages  # not directly under node_modules
    assert packages["pkg:npm/pprof@4.0.0"].foreign(AARCH64) == [
        f"/{app}/pprof/build/Release/pprof.node"
    ]


def _jar(poms: dict[str, str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        for name, text in poms.items():
            jar.writestr(name, text)
    return buffer.getvalue()


def test_maven_pom_properties_in_jars_and_the_jar_bound() -> None:
    jar = _jar(
        {
            "META-INF/maven/io.grpc/grpc-core/pom.properties": (
                "#Generated by Maven\ngroupId=io.grpc\nartifactId=grpc-core\nversion=1.68.1\n"
            )
        }
    )
    big = TarEntryOfSize("app/lib/huge.jar", JAR_MAX_BYTES + 1)
    layer = tar_bytes(
        [Entry("app/lib/grpc-core-1.68.1.jar", jar), Entry("app/lib/broken.jar", b"PK no")]
    )
    scans = [
        scan_tar(io.BytesIO(layer), capture=LayerCapture()),
        scan_tar(io.BytesIO(big.tar()), capture=LayerCapture()),
    ]
    inventory = platform_inventory(scans, ARM64, DIGEST)
    (package,) = inventory.packages
    assert package.component.purl == "pkg:maven/io.grpc/grpc-core@1.68.1"
    assert any("broken.jar: not a readable jar" in note for note in inventory.notes)
    assert any("huge.jar" in note and "bound" in note for note in inventory.notes)


def _pom(group: str, artifact: str, version: str, size: int | None = None) -> str:
    """A ``pom.properties`` text, padded with comment lines to ``size`` bytes when given."""
    text = f"groupId={group}\nartifactId={artifact}\nversion={version}\n"
    if size is None:
        return text
    padding = size - len(text)
    assert padding >= 2
    return text + "#" + "x" * (padding - 2) + "\n"


def _maven_purls(*jars: tuple[str, bytes]) -> set[str]:
    scan = scan_tar(io.BytesIO(tar_bytes([Entry(*jar) for jar in jars])), capture=LayerCapture())
    return {
        package.component.purl for package in platform_inventory([scan], ARM64, DIGEST).packages
    }


def test_only_maven_pom_properties_up_to_their_bound_are_read_from_a_jar() -> None:
    jar = _jar(
        {
            # Exactly the bound: read.
            "META-INF/maven/io.grpc/grpc-core/pom.properties": _pom(
                "io.grpc", "grpc-core", "1.68.1", POM_MAX_BYTES
            ),
            # One byte over: skipped.
            "META-INF/maven/io.grpc/grpc-api/pom.properties": _pom(
                "io.grpc", "grpc-api", "1.68.1", POM_MAX_BYTES + 1
            ),
            # Not where Maven writes a jar's coordinates: never a package.
            "META-INF/maven/io.grpc/grpc-core/build.properties": _pom("x.build", "b", "1"),
            "config/pom.properties": _pom("x.config", "c", "1"),
        }
    )
    assert _maven_purls(("app/lib/grpc.jar", jar)) == {"pkg:maven/io.grpc/grpc-core@1.68.1"}


def test_a_jar_of_exactly_the_jar_bound_is_read() -> None:
    pom = {"META-INF/maven/io.grpc/grpc-core/pom.properties": _pom("io.grpc", "grpc-core", "1")}
    stored = zipfile.ZIP_STORED  # so that padding adds exactly its own length
    padding = JAR_MAX_BYTES - len(_jar({**pom, "pad": ""}, stored))
    jar = _jar({**pom, "pad": "\0" * padding}, stored)
    assert len(jar) == JAR_MAX_BYTES
    assert _maven_purls(("app/lib/big.jar", jar)) == {"pkg:maven/io.grpc/grpc-core@1"}


class TarEntryOfSize:
    """A tar with one member of a given size, streamed from zeros (not held in a test literal)."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(self.name)
            info.size = self.size
            archive.addfile(info, io.BytesIO(b"\0" * self.size))
        return buffer.getvalue()


# Go in the inventory


def test_go_modules_are_components_and_the_main_module_owns_the_binary() -> None:
    binary = go_binary(inline=True)
    packages = _by_purl(_inventory([Entry("app/server", binary), Entry("app/other", binary)]))
    assert set(packages) == {
        "pkg:golang/example.com/shop",
        "pkg:golang/github.com/google/uuid@v1.6.0",
        "pkg:golang/google.golang.org/grpc@v1.60.1",
        "pkg:golang/stdlib@1.16.15",
    }
    main = packages["pkg:golang/example.com/shop"]
    # Two binaries, one module: merged, owning both, each an AArch64 file.
    assert main.elf == {"/app/server": AARCH64, "/app/other": AARCH64}
    assert sorted(main.sources) == ["/app/other", "/app/server"]


# Whiteouts, opaque directories, replacements


def test_overlay_rules_decide_what_is_inventoried() -> None:
    dist = "usr/lib/python3.12/site-packages"

    def metadata(name: str) -> Entry:
        return Entry(
            f"{dist}/{name}-1.0.dist-info/METADATA", f"Name: {name}\nVersion: 1.0\n".encode()
        )

    lower = [
        metadata("deleted"),
        metadata("kept"),
        Entry("opt/gone/node_modules/a/package.json", b'{"name": "a", "version": "1.0.0"}'),
        Entry("usr/bin/tool", elf_header(X86_64)),
        Entry("srv/replaced/node_modules/b/package.json", b'{"name": "b", "version": "1.0.0"}'),
        metadata("replaced"),
    ]
    upper = [
        Entry(f"{dist}/.wh.deleted-1.0.dist-info"),  # a whiteout of the whole directory
        Entry("opt/gone/.wh..wh..opq"),  # opaque: the lower content of /opt/gone is hidden
        Entry("usr/bin/tool", b"#!/bin/sh\n"),  # a script replaces the binary
        Entry("srv/replaced", kind=tarfile.SYMTYPE, target="/elsewhere"),  # a link replaces a dir
        Entry(f"{dist}/replaced-1.0.dist-info/METADATA", b"Name: replaced\nVersion: 2.0\n"),
    ]
    inventory = _inventory(lower, upper)
    assert {p.component.purl for p in inventory.packages} == {
        "pkg:pypi/kept@1.0",
        "pkg:pypi/replaced@2.0",
    }
    assert inventory.unowned_elf == 0  # /usr/bin/tool is no longer an ELF file


# Documents


SAMPLE_LAYER = [
    Entry("etc/os-release", OS_RELEASE_DEBIAN),
    Entry("var/lib/dpkg/status", DPKG_STATUS),
    Entry("app/server", go_binary(inline=True)),
    Entry("app/node_modules/pprof/package.json", b'{"name": "pprof", "version": "4.0.0"}'),
    Entry("app/node_modules/pprof/pprof.node", elf_header(X86_64)),
    Entry("usr/bin/static-tool", elf_header(AARCH64)),
    Entry("app/huge.jar", b"PK not a jar"),
]


def _sample_inventory() -> Inventory:
    return _inventory(SAMPLE_LAYER)


def test_spdx_document_validates_with_spdx_tools(tmp_path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document = spdx_document(REF, _sample_inventory())
    path = tmp_path / "linux-arm64.spdx.json"
    path.write_text(json.dumps(document))
    messages = validate_full_spdx_document(parse_file(str(path)), "SPDX-2.3")
    assert [message.validation_message for message in messages] == []
    image = document["packages"][0]
    assert image["externalRefs"][0]["referenceLocator"] == (
        f"pkg:oci/frontend@sha256:{'ab' * 32}?arch=arm64"
        "&repository_url=127.0.0.1:5000/shop/frontend"
    )
    pprof = next(p for p in document["packages"] if p["name"] == "pprof")
    assert pprof["annotations"][0]["comment"] == (
        "ELF machines: x86-64=1; not for linux/arm64: /app/node_modules/pprof/pprof.node"
    )
    assert "1 ELF file(s) owned by no listed component" in document["comment"]
    assert "huge.jar: not a readable jar" in document["comment"]


def test_cyclonedx_document_validates_against_the_1_6_schema() -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = cyclonedx_document(REF, _sample_inventory())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    assert document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["type"] == "container"
    components = {c["purl"]: c for c in document["components"]}
    assert "pkg:golang/google.golang.org/grpc@v1.60.1" in components
    properties = components["pkg:npm/pprof@4.0.0"]["properties"]
    assert {
        "name": ELF_FOREIGN_PROPERTY,
        "value": "/app/node_modules/pprof/pprof.node",
    } in properties


def _by_name_and_value(properties: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(properties, key=lambda item: (item["name"], item.get("value", "")))


def test_cyclonedx_document_describes_the_image_and_every_component_in_full() -> None:
    # Not validated against the schema here (the test above does): loading the validator takes
    # 5 s, paid again by every mutant this test kills.
    unversioned = Entry("app/node_modules/bare/package.json", b'{"name": "bare", "version": ""}')
    inventory = _inventory(SAMPLE_LAYER, [unversioned])
    document = json.loads(cyclonedx_document(REF, inventory))
    image_purl = f"pkg:oci/frontend@{DIGEST}?arch=arm64&repository_url=127.0.0.1:5000/shop/frontend"
    assert document["metadata"]["component"] == {
        "bom-ref": "image",
        "name": "shop/frontend",
        "purl": image_purl,
        "type": "container",
        "version": DIGEST,
    }
    components = {component["purl"]: component for component in document["components"]}
    # The same number names the same component in both formats: component-N is SPDXRef-*-N.
    spdx_numbers = {
        package["externalRefs"][0]["referenceLocator"]: package["SPDXID"].rpartition("-")[2]
        for package in spdx_document(REF, inventory)["packages"][1:]
    }
    assert {purl: c["bom-ref"] for purl, c in components.items()} == {
        purl: f"component-{number}" for purl, number in spdx_numbers.items()
    }
    assert len(components) == len(inventory.packages) == 8
    for package in inventory.packages:
        component = components[package.component.purl]
        assert component["name"] == package.component.name
        assert component["type"] == "library"
        assert component.get("version") == (package.component.version or None)
    assert components["pkg:golang/google.golang.org/grpc@v1.60.1"]["version"] == "v1.60.1"
    assert components["pkg:golang/example.com/shop"]["version"] == "(devel)"
    # SPDX leaves an unknown version out too, rather than writing an empty one.
    spdx_versions = {
        package["name"]: package.get("versionInfo")
        for package in spdx_document(REF, inventory)["packages"][1:]
    }
    assert spdx_versions == {
        package.component.name: package.component.version or None for package in inventory.packages
    }
    assert spdx_versions["bare"] is None
    assert "version" not in components["pkg:npm/bare"]
    assert _by_name_and_value(components["pkg:npm/pprof@4.0.0"]["properties"]) == [
        {"name": "boutique:elf:machines", "value": "x86-64=1"},
        {"name": "boutique:elf:notForPlatform", "value": "/app/node_modules/pprof/pprof.node"},
        {"name": "boutique:source", "value": "/app/node_modules/pprof/package.json"},
    ]
    assert _by_name_and_value(components["pkg:golang/example.com/shop"]["properties"]) == [
        {"name": "boutique:elf:machines", "value": "AArch64=1"},
        {"name": "boutique:source", "value": "/app/server"},
    ]
    assert components["pkg:npm/bare"]["properties"] == [
        {"name": "boutique:source", "value": "/app/node_modules/bare/package.json"}
    ]
    # The image depends on every component, and nothing claims a finer graph.
    dependencies = {
        entry["ref"]: sorted(entry.get("dependsOn", [])) for entry in document["dependencies"]
    }
    assert dependencies == {
        "image": sorted(component["bom-ref"] for component in components.values()),
        **{component["bom-ref"]: [] for component in components.values()},
    }


def test_spdx_names_a_component_by_its_purl_type_and_lists_each_elf_machine() -> None:
    pprof = "app/node_modules/pprof"
    inventory = _inventory(
        [
            Entry(f"{pprof}/package.json", b'{"name": "pprof", "version": "4.0.0"}'),
            Entry(f"{pprof}/prebuilds/linux-arm64/pprof.node", elf_header(AARCH64)),
            Entry(f"{pprof}/prebuilds/linux-x64/pprof.node", elf_header(X86_64)),
        ]
    )
    packages = spdx_document(REF, inventory)["packages"]
    assert [package["SPDXID"] for package in packages] == ["SPDXRef-Image", "SPDXRef-npm-1"]
    assert packages[1]["annotations"][0]["comment"] == (
        "ELF machines: AArch64=1, x86-64=1; not for linux/arm64: "
        f"/{pprof}/prebuilds/linux-x64/pprof.node"
    )
    # An SPDX ID holds only letters, digits, '.' and '-': any other character of the purl
    # type (one may hold '+') becomes '-'.
    assert [_spdx_id(kind, 2) for kind in ("Maven.v2-x", "c++", "a_b c")] == [
        "SPDXRef-Maven.v2-x-2",
        "SPDXRef-c---2",
        "SPDXRef-a-b-c-2",
    ]


def test_spdx_document_of_a_nested_repository_and_a_variant_platform_in_full() -> None:
    ref = parse_reference("127.0.0.1:5000/shop/web/frontend:1")
    native = "/app/node_modules/pprof/prebuilds"
    pprof = Package(
        Component("npm", "pprof", "4.0.0", "pkg:npm/pprof@4.0.0", "/app/package-lock.json"),
        sources=["/app/package-lock.json", "/app/node_modules/pprof/package.json"],
        elf={
            f"{native}/linux-arm/pprof.node": 0x28,
            f"{native}/linux-x64/pprof.node": 0x3E,
            f"{native}/linux-arm64/pprof.node": 0xB7,
        },
    )
    shop = Package(Component("golang", "example.com/shop", "", "pkg:golang/example.com/shop", ""))
    shop.sources = ["/app/server"]
    notes = ["/app/huge.jar: not a readable jar", "/app/x/package.json: not JSON"]
    inventory = Inventory(Platform.of("linux", "arm", "v7"), DIGEST, [pprof, shop], 2, notes)
    document = spdx_document(ref, inventory)
    created = document["creationInfo"]["created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    image_purl = (
        f"pkg:oci/frontend@{DIGEST}?arch=arm"
        "&repository_url=127.0.0.1:5000/shop/web/frontend&variant=v7"
    )
    assert document == {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"127.0.0.1:5000/shop/web/frontend@{DIGEST}",
        "documentNamespace": f"https://boutique-multiarch.invalid/spdx/{'ab' * 32}",
        "comment": "2 ELF file(s) owned by no listed component; not read: "
        "/app/huge.jar: not a readable jar; /app/x/package.json: not JSON",
        "creationInfo": {"created": created, "creators": ["Tool: boutique-verify-1"]},
        "packages": [
            {
                "SPDXID": "SPDXRef-Image",
                "name": "shop/web/frontend",
                "versionInfo": DIGEST,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "primaryPackagePurpose": "CONTAINER",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": image_purl,
                    }
                ],
            },
            {
                "SPDXID": "SPDXRef-npm-1",
                "name": "pprof",
                "versionInfo": "4.0.0",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "sourceInfo": "read from /app/package-lock.json, "
                "/app/node_modules/pprof/package.json",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": "pkg:npm/pprof@4.0.0",
                    }
                ],
                "annotations": [
                    {
                        "annotationType": "OTHER",
                        "annotator": "Tool: boutique-verify-1",
                        "annotationDate": created,
                        "comment": "ELF machines: AArch64=1, ARM=1, x86-64=1; "
                        f"not for linux/arm/v7: {native}/linux-arm64/pprof.node, "
                        f"{native}/linux-x64/pprof.node",
                    }
                ],
            },
            {
                "SPDXID": "SPDXRef-golang-2",
                "name": "example.com/shop",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "sourceInfo": "read from /app/server",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": "pkg:golang/example.com/shop",
                    }
                ],
            },
        ],
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": "SPDXRef-Image",
            },
            {
                "spdxElementId": "SPDXRef-Image",
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": "SPDXRef-npm-1",
            },
            {
                "spdxElementId": "SPDXRef-Image",
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": "SPDXRef-golang-2",
            },
        ],
    }


def test_spdx_creation_time_is_utc_whatever_the_local_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        with monkeypatch.context() as patched:
            patched.setenv("TZ", "AHEAD-14")  # POSIX form: local time is 14 hours ahead of UTC
            time.tzset()
            before = datetime.now(UTC).replace(microsecond=0)
            created = spdx_document(REF, _inventory([]))["creationInfo"]["created"]
            after = datetime.now(UTC)
    finally:
        time.tzset()
    assert before <= datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) <= after


@pytest.mark.parametrize(
    ("document_format", "version_field"),
    [("spdx", ("spdxVersion", "SPDX-2.3")), ("cyclonedx", ("specVersion", "1.6"))],
)
def test_a_document_is_json_indented_by_two_spaces_and_ends_in_a_newline(
    document_format: str, version_field: tuple[str, str]
) -> None:
    assert document_format in FORMATS
    metadata = Entry("site/cafe-1.0.dist-info/METADATA", "Name: café\nVersion: 1.0\n".encode())
    text = render(REF, _inventory(SAMPLE_LAYER, [metadata]), document_format)
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    key, version = version_field
    assert json.loads(text)[key] == version
    # Non-ASCII is escaped: the file's bytes are the same in any encoding Python runs with.
    assert "café" in text.encode("ascii").decode("unicode_escape")


def test_capture_keeps_no_jar_or_metadata_past_its_bound(tmp_path: Path) -> None:
    status = TarEntryOfSize("var/lib/dpkg/status", (16 << 20) + 1)
    scan = scan_tar(io.BytesIO(status.tar()), capture=LayerCapture())
    assert scan.inventory is not None
    assert scan.inventory.files == {}
    assert scan.inventory.notes == [
        f"/var/lib/dpkg/status: {(16 << 20) + 1} bytes, over the {16 << 20}-byte bound"
    ]


def test_struct_layout_of_the_crafted_bundle_is_what_the_reader_expects() -> None:
    # Guards the fixture itself: the signature is preceded by the header offset.
    data = dotnet_bundle(DEPS_JSON)
    from verify.sbom.binaries import DOTNET_BUNDLE_SIGNATURE

    at = data.index(DOTNET_BUNDLE_SIGNATURE)
    (header_offset,) = struct.unpack_from("<q", data, at - 8)
    assert struct.unpack_from("<I", data, header_offset)[0] == 6


def test_hostile_metadata_is_noted_or_read_leniently_never_fatal() -> None:
    inventory = _inventory(
        [
            Entry("var/lib/dpkg/status", b"\xff\xfe\x00junk: \x80\n\nPackage: ok\nVersion: 1\n"),
            Entry("var/lib/dpkg/status.d/x", b"\x00\x01\x02"),
            Entry("site/bad-1.0.dist-info/METADATA", b"Name: bad\nVersion: 1.0\n"),
            Entry("site/bad-1.0.dist-info/RECORD", b"a" * 140_000 + b",sha256=x,1\n"),
            Entry("app/node_modules/n/package.json", b"[1, 2"),
            Entry("app/node_modules/deep/package.json", b"[" * 100_000),
            Entry("app/x.deps.json", b'{"libraries": 7}'),
            Entry("var/lib/chisel/manifest.wall", b"not zstd"),
            Entry("lib/apk/db/installed", b"P\nV:\n\n\x00:\n"),
        ]
    )
    assert {p.component.purl for p in inventory.packages} == {
        "pkg:deb/debian/ok@1",
        "pkg:pypi/bad@1.0",
    }
    assert any("RECORD: not CSV" in note for note in inventory.notes)
    assert any("package.json: not JSON" in note for note in inventory.notes)
    assert any("manifest.wall: not zstd" in note for note in inventory.notes)


# Writing the documents (--sbom DIR): every platform's or none, never half-written


AMD64 = Platform.of("linux", "amd64")
DOCUMENTS = ["linux-amd64.spdx.json", "linux-arm64.spdx.json"]


def _verified(*platforms: Platform) -> ImageResult:
    result = ImageResult(ref=str(REF), digest=DIGEST)
    for platform in platforms:
        inventory = platform_inventory([_scan(SAMPLE_LAYER)], platform, DIGEST)
        result.platforms[str(platform)] = PlatformResult(
            DIGEST, platform.architecture, inventory=inventory
        )
    return result


INOTIFY_EVENTS = {
    0x2: "modify",
    0x8: "close_write",
    0x40: "moved_from",
    0x80: "moved_to",
    0x100: "create",
    0x200: "delete",
}


class _DirectoryEvents:
    """What the kernel saw happen to the names in one directory (inotify), as (event, name)."""

    def __init__(self, directory: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if (
            self._fd < 0
            or self._libc.inotify_add_watch(self._fd, bytes(directory), sum(INOTIFY_EVENTS)) < 0
        ):
            raise OSError(ctypes.get_errno(), f"inotify on {directory}")

    def read(self) -> list[tuple[str, str]]:
        data = b""
        while True:
            try:
                data += os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
        os.close(self._fd)
        events, offset = [], 0
        while offset < len(data):
            _, mask, _, length = struct.unpack_from("iIII", data, offset)
            name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
            events.append((INOTIFY_EVENTS[mask], name))
            offset += 16 + length
        return events


def test_documents_are_staged_under_hidden_names_in_dir_then_renamed(tmp_path: Path) -> None:
    result = _verified(AMD64, ARM64)
    events = _DirectoryEvents(tmp_path)
    written = write_documents(tmp_path, REF, result, 2, "spdx")
    # mkstemp's eight random characters stand as "*": the staging file of a document is
    # `.<document>.*` in DIR itself (a rename on one filesystem: no reader sees it half-written).
    seen = [(kind, re.sub(r"\.[a-z0-9_]{8}$", ".*", name)) for kind, name in events.read()]
    staging = [f".{name}.*" for name in DOCUMENTS]
    assert seen == [
        *[(kind, name) for name in staging for kind in ("create", "modify", "close_write")],
        *[
            event
            for name in DOCUMENTS
            for event in (("moved_from", f".{name}.*"), ("moved_to", name))
        ],
    ]
    assert written == [tmp_path / name for name in DOCUMENTS]
    assert sorted(path.name for path in tmp_path.iterdir()) == DOCUMENTS
    # Each file is its platform's document (up to the time of creation, in whole seconds).
    undated = re.compile(r'"(created|annotationDate)": "[^"]*"')
    inventories = [platform.inventory for platform in result.platforms.values()]
    for path, inventory in zip(written, inventories, strict=True):
        assert inventory is not None
        assert undated.sub("", path.read_text(encoding="utf-8")) == undated.sub(
            "", render(REF, inventory, "spdx")
        )


def test_documents_do_not_depend_on_the_system_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-directory"))
    written = write_documents(tmp_path / "out", REF, _verified(AMD64, ARM64), 2, "cyclonedx")
    assert [path.name for path in written] == ["linux-amd64.cdx.json", "linux-arm64.cdx.json"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "linux-amd64.cdx.json",
        "linux-arm64.cdx.json",
    ]
    assert {json.loads(path.read_text())["bomFormat"] for path in written} == {"CycloneDX"}


@pytest.mark.parametrize(
    ("result", "platforms"),
    [
        (_verified(AMD64), 2),  # a platform's layers were never reached
        (_verified(AMD64, ARM64), 3),
    ],
    ids=["one-of-two", "two-of-three"],
)
def test_documents_are_written_for_every_platform_or_for_none(
    tmp_path: Path, result: ImageResult, platforms: int
) -> None:
    assert write_documents(tmp_path / "out", REF, result, platforms, "spdx") == []
    assert not (tmp_path / "out").exists()


def test_a_platform_whose_layers_were_not_all_read_writes_no_document(tmp_path: Path) -> None:
    result = _verified(AMD64, ARM64)
    result.platforms[str(ARM64)].inventory = None
    assert write_documents(tmp_path / "out", REF, result, 2, "spdx") == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("before", [None, b"an earlier run's document\n"])
def test_a_document_that_cannot_be_renamed_leaves_dir_as_it_was(
    tmp_path: Path, before: bytes | None
) -> None:
    amd64, arm64 = (tmp_path / name for name in DOCUMENTS)
    if before is not None:
        amd64.write_bytes(before)
    (arm64 / "kept").mkdir(parents=True)  # a directory where the arm64 document goes
    with pytest.raises(SbomWriteError) as raised:
        write_documents(tmp_path, REF, _verified(AMD64, ARM64), 2, "spdx")
    assert str(raised.value) == (
        f"--sbom {tmp_path}: cannot write {arm64}: Is a directory; no document was written"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == (
        DOCUMENTS if before is not None else DOCUMENTS[1:]
    )
    if before is not None:
        assert amd64.read_bytes() == before
    assert [path.name for path in arm64.iterdir()] == ["kept"]


def test_a_document_that_cannot_be_written_leaves_no_file_behind(tmp_path: Path) -> None:
    # A file size limit makes the write fail like a full disk (EFBIG instead of ENOSPC).
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limits[1]))
    try:
        with pytest.raises(SbomWriteError) as raised:
            write_documents(tmp_path, REF, _verified(AMD64, ARM64), 2, "spdx")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert str(raised.value) == (
        f"--sbom {tmp_path}: cannot write {tmp_path / DOCUMENTS[0]}: File too large; "
        "no document was written"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    directory = tmp_path / "gone" / "out"  # its parent was removed after --sbom was checked
    with pytest.raises(SbomWriteError) as raised:
        write_documents(directory, REF, _verified(AMD64, ARM64), 2, "spdx")
    assert str(raised.value) == (
        f"--sbom {directory}: cannot write {directory}: No such file or directory; "
        "no document was written"
    )
    assert list(tmp_path.iterdir()) == []
