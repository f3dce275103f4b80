"""``python -m verify --deep --sbom DIR`` against a real loopback registry: one document per
platform from the same pass, in both formats, also next to a failed verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.dockerenv import BUSYBOX_CACHE, Registry
from tests.integration.registrypush import Pusher
from tests.sbom_bytes import go_binary
from tests.test_verify_cli import run
from tests.verify_bytes import X86_64, Entry, elf_header, gzip_bytes, tar_bytes

pytestmark = pytest.mark.registry
STATUS = (
    b"Package: busybox-static\nStatus: install ok installed\nArchitecture: {arch}\n"
    b"Version: 1:1.35.0-4\n"
)


def _layers(arch: str, foreign_addon: bool) -> list[bytes]:
    busybox = (BUSYBOX_CACHE / arch / "bin" / "busybox").read_bytes()
    base = [
        Entry("etc/os-release", b"ID=debian\nVERSION_ID=12\n"),
        Entry("var/lib/dpkg/status", STATUS.replace(b"{arch}", arch.encode())),
        Entry("var/lib/dpkg/info/busybox-static.list", b"/bin/busybox\n"),
        Entry("bin/busybox", busybox),
    ]
    app = [Entry("app/node_modules/pprof/package.json", b'{"name": "pprof", "version": "4.0.0"}')]
    if foreign_addon:
        app.append(Entry("app/node_modules/pprof/pprof.node", elf_header(X86_64)))
    if arch == "arm64":
        app.append(Entry("app/server", go_binary(inline=True)))
    return [gzip_bytes(tar_bytes(base)), gzip_bytes(tar_bytes(app))]


def _require_busybox() -> None:
    if not (BUSYBOX_CACHE / "arm64" / "bin" / "busybox").is_file():
        from tests.integration.conftest import missing_prerequisite

        missing_prerequisite(f"no busybox binaries under {BUSYBOX_CACHE}")


def _push(registry: Registry, repository: str, foreign_addon: bool) -> str:
    layers = {arch: _layers(arch, foreign_addon) for arch in ("amd64", "arm64")}
    Pusher(registry).image(repository, "1", layers, repository)
    return f"{registry.address}/{repository}:1"


_verify = run


def _purls(document: dict) -> set[str]:
    return {
        reference["referenceLocator"]
        for package in document["packages"]
        for reference in package["externalRefs"]
    }


def test_sbom_per_platform_in_spdx_and_cyclonedx(registry: Registry, tmp_path: Path) -> None:
    _require_busybox()
    ref = _push(registry, "sbom/clean", foreign_addon=False)
    result = _verify(ref, "--deep", "--json", "--sbom", str(tmp_path / "spdx"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    amd64 = json.loads((tmp_path / "spdx" / "linux-amd64.spdx.json").read_text())
    arm64 = json.loads((tmp_path / "spdx" / "linux-arm64.spdx.json").read_text())
    assert sorted(path.name for path in (tmp_path / "spdx").iterdir()) == [
        "linux-amd64.spdx.json",
        "linux-arm64.spdx.json",
    ]
    assert arm64["packages"][0]["versionInfo"] == report["platforms"]["linux/arm64"]["digest"]
    assert "pkg:deb/debian/busybox-static@1:1.35.0-4?arch=amd64&distro=debian-12" in _purls(amd64)
    assert "pkg:golang/google.golang.org/grpc@v1.60.1" in _purls(arm64)
    assert "pkg:golang/google.golang.org/grpc@v1.60.1" not in _purls(amd64)
    busybox = next(p for p in arm64["packages"] if p["name"] == "busybox-static")
    assert busybox["annotations"][0]["comment"] == "ELF machines: AArch64=1"

    result = _verify(ref, "--deep", "--sbom", str(tmp_path / "cdx"), "--sbom-format", "cyclonedx")
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "cdx" / "linux-arm64.cdx.json").read_text())
    assert document["specVersion"] == "1.6"


def test_failed_verification_still_shows_the_owner_of_the_foreign_binary(
    registry: Registry, tmp_path: Path
) -> None:
    _require_busybox()
    ref = _push(registry, "sbom/foreign", foreign_addon=True)
    result = _verify(ref, "--deep", "--sbom", str(tmp_path))
    assert result.returncode == 1
    assert "pprof.node is an ELF binary for x86-64" in result.stderr
    arm64 = json.loads((tmp_path / "linux-arm64.spdx.json").read_text())
    pprof = next(p for p in arm64["packages"] if p["name"] == "pprof")
    assert pprof["annotations"][0]["comment"] == (
        "ELF machines: x86-64=1; not for linux/arm64: /app/node_modules/pprof/pprof.node"
    )


def test_missing_image_writes_nothing(registry: Registry, tmp_path: Path) -> None:
    result = _verify(f"{registry.address}/sbom/absent:1", "--deep", "--sbom", str(tmp_path / "out"))
    assert result.returncode == 2
    assert not (tmp_path / "out").exists()


def test_documents_that_cannot_be_written_exit_2_and_leave_dir_as_it_was(
    registry: Registry, tmp_path: Path
) -> None:
    _require_busybox()
    ref = _push(registry, "sbom/blocked", foreign_addon=False)
    blocked = tmp_path / "linux-arm64.spdx.json"
    (blocked / "kept").mkdir(parents=True)  # a directory where the arm64 document goes
    result = _verify(ref, "--deep", "--sbom", str(tmp_path))
    assert result.returncode == 2  # not 1: the image passed, the SBOM could not be written
    assert result.stderr == (
        f"verify: --sbom {tmp_path}: cannot write {blocked}: Is a directory; "
        "no document was written\n"
    )
    assert [path.name for path in tmp_path.iterdir()] == [blocked.name]
    assert [path.name for path in blocked.iterdir()] == ["kept"]
