"""``--sbom`` argument checks: one clear error before any request, nothing created; in
process, with the checks' verdict faked, the documents written after a verdict of 0 or 1 and
not after 2."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.test_verify_cli import clean_environment, closed_port, run
from tests.verify_bytes import Entry, gzip_bytes, tar_bytes
from verify import cli
from verify.checks import ImageResult, PlatformResult, Problem, Verifier
from verify.layers import decompressed
from verify.platforms import Platform
from verify.sbom.capture import LayerCapture
from verify.sbom.inventory import platform_inventory
from verify.sbom.output import SbomUsageError, check_directory
from verify.tarscan import scan_tar


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1:1/a:1"], "verify: --sbom needs --deep: the SBOM is read from the layers"),
        (
            ["127.0.0.1:1/a:1", "127.0.0.1:1/b:1", "--deep"],
            "verify: --sbom describes one image; 2 references",
        ),
    ],
)
def test_sbom_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, "--sbom", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message)
    assert not (tmp_path / "out").exists()


def test_sbom_directory_must_be_a_directory(tmp_path: Path) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("x")
    result = run("127.0.0.1:1/a:1", "--deep", "--sbom", str(occupied))
    assert result.returncode == 2
    assert result.stderr == f"verify: --sbom {occupied}: exists and is not a directory\n"
    missing_parent = tmp_path / "no" / "such"
    result = run("127.0.0.1:1/a:1", "--deep", "--sbom", str(missing_parent))
    assert result.returncode == 2
    assert "its parent directory does not exist" in result.stderr


def test_sbom_directory_is_checked_in_process_and_not_created(tmp_path: Path) -> None:
    # What the process above prints, in full, and the two places DIR may be.
    occupied = tmp_path / "file"
    occupied.write_text("x")
    with pytest.raises(SbomUsageError) as raised:
        check_directory(str(occupied))
    assert str(raised.value) == f"--sbom {occupied}: exists and is not a directory"
    missing_parent = tmp_path / "no" / "such"
    with pytest.raises(SbomUsageError) as raised:
        check_directory(str(missing_parent))
    assert str(raised.value) == (
        f"--sbom {missing_parent}: its parent directory does not exist (DIR itself is created)"
    )
    assert check_directory(str(tmp_path)) == tmp_path
    assert check_directory(str(tmp_path / "out")) == tmp_path / "out"
    assert sorted(tmp_path.iterdir()) == [occupied]  # checked, not created


def test_unknown_sbom_format_is_refused(tmp_path: Path) -> None:
    result = run("127.0.0.1:1/a:1", "--deep", "--sbom", str(tmp_path), "--sbom-format", "xml")
    assert result.returncode == 2
    assert "invalid choice: 'xml' (choose from 'spdx', 'cyclonedx')" in result.stderr


def test_a_plain_verification_loads_none_of_the_sbom_or_signing_libraries() -> None:
    import subprocess
    import sys

    from tests.test_verify_cli import REPO

    probe = (
        "import sys, verify.cli, verify.checks, verify.layers; "
        "print(sorted({name.split('.')[0] for name in sys.modules} & "
        "{'debian', 'packageurl', 'cyclonedx', 'cryptography', 'spdx_tools'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def _checked(platform: str, digest: str) -> PlatformResult:
    """What the checks leave for one platform of a --deep --sbom run: its inventory, read from
    a real layer."""
    layer = tar_bytes([Entry("etc/os-release", b"ID=debian\nVERSION_ID=12\n")])
    scan = scan_tar(decompressed(io.BytesIO(gzip_bytes(layer))), capture=LayerCapture())
    system, architecture = platform.split("/")
    inventory = platform_inventory([scan], Platform.of(system, architecture), digest)
    return PlatformResult(digest=digest, config_architecture=architecture, inventory=inventory)


DIGESTS = {"linux/amd64": "sha256:" + "a" * 64, "linux/arm64": "sha256:" + "b" * 64}


def _checks_come_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, problem: Problem | None
) -> str:
    """One reference whose checks (faked) read both platforms' inventories and come to
    ``problem``; the reference."""
    ref = f"127.0.0.1:{closed_port()}/shop/cart:1"
    checked = ImageResult(
        ref=ref,
        digest="sha256:" + "c" * 64,
        platforms={name: _checked(name, digest) for name, digest in DIGESTS.items()},
        problems=[] if problem is None else [problem],
    )

    def verify_all(_verifier: Verifier, refs: list[tuple[str, object]]) -> list[ImageResult]:
        assert [text for text, _ in refs] == [ref]
        return [checked]

    monkeypatch.setattr(Verifier, "verify_all", verify_all)
    clean_environment(monkeypatch, tmp_path)
    return ref


@pytest.mark.parametrize(
    ("problem", "code", "written"),
    [
        (None, 0, True),
        (Problem("linux/arm64", "a foreign binary", 1), 1, True),  # the SBOM shows why
        (Problem("linux/arm64", "the registry refused", 2), 2, False),  # not a verdict
    ],
    ids=["verified", "failed", "error"],
)
def test_the_sbom_is_written_after_a_verdict_of_0_or_1(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem: Problem | None,
    code: int,
    written: bool,
) -> None:
    ref = _checks_come_to(monkeypatch, tmp_path, problem)
    out = tmp_path / "sbom"

    assert cli.main([ref, "--deep", "--sbom", str(out), "--sbom-format", "cyclonedx"]) == code

    err = capsys.readouterr().err
    if not written:
        assert not out.exists()
        assert "verify: wrote" not in err
        return
    paths = [out / "linux-amd64.cdx.json", out / "linux-arm64.cdx.json"]
    assert sorted(out.iterdir()) == paths
    assert [line for line in err.splitlines() if "wrote" in line] == [
        f"verify: wrote {path}" for path in paths
    ]
    for path, digest in zip(paths, DIGESTS.values(), strict=True):
        image = json.loads(path.read_text())["metadata"]["component"]
        assert image["version"] == digest
        assert "repository_url=127.0.0.1" in image["purl"] and "/shop/cart" in image["purl"]


def test_an_sbom_that_cannot_be_written_after_a_pass_is_exit_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not 1 (the image passed): what was asked for could not be done. No summary line."""
    ref = _checks_come_to(monkeypatch, tmp_path, None)
    out = tmp_path / "sbom"
    blocked = out / "linux-arm64.spdx.json"
    (blocked / "kept").mkdir(parents=True)  # a directory where the arm64 document goes

    assert cli.main([ref, "--deep", "--sbom", str(out)]) == 2

    captured = capsys.readouterr()
    assert captured.err == (
        f"verify: --sbom {out}: cannot write {blocked}: Is a directory; no document was written\n"
    )
    assert captured.out.startswith(f"verified {ref}@")  # the checks' verdict still stands
    assert sorted(path.name for path in out.iterdir()) == [blocked.name]
