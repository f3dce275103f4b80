"""``--sbom`` argument checks: one clear error before any request, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_verify_cli import run
from verify.sbom.output import SbomUsageError, check_directory


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
