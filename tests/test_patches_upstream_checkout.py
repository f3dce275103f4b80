"""Optional: the shipped patch sets on a real upstream checkout (BOUTIQUE_UPSTREAM_DIR).

Nothing upstream is committed here, so CI runs without it and this module is skipped. Point
BOUTIQUE_UPSTREAM_DIR at a checkout of a supported commit (with or without .git) to run it;
the checkout itself is never modified: its Dockerfiles are copied to a temporary tree first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from patches.definitions import load
from patches.dockerfile import parse
from patches.platforms import BUILD, TARGET, automatic_arg_problems, stage_platform

UPSTREAM = os.environ.get("BOUTIQUE_UPSTREAM_DIR", "")
pytestmark = pytest.mark.skipif(
    not UPSTREAM,
    reason="BOUTIQUE_UPSTREAM_DIR is not set (no upstream checkout to patch; none is committed)",
)

REPO = Path(__file__).resolve().parent.parent
PYTHON = ("emailservice", "loadgenerator", "recommendationservice", "shoppingassistantservice")
NODE = ("currencyservice", "paymentservice")
CROSS_COMPILING = (
    "adservice",
    "cartservice",
    "checkoutservice",
    "frontend",
    "productcatalogservice",
    "shippingservice",
)


def copy_dockerfiles(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for revision in load().revisions:
        for file in revision.files:
            source = Path(UPSTREAM) / file.path
            if source.is_file() and not (root / file.path).exists():
                (root / file.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, root / file.path)
    return root


def apply(root: Path) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "patches", "apply", str(root), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, json.loads(result.stdout or "{}"), result.stderr


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_apply_patches_exactly_the_intended_files_and_is_idempotent(tmp_path: Path) -> None:
    root = copy_dockerfiles(tmp_path)
    before = snapshot(root)
    code, document, stderr = apply(root)
    assert code == 0, stderr
    revision = load().revision(str(document["revision"]))
    assert revision is not None
    for entry in document["files"]:
        definition = revision.file(entry["service"])
        assert definition is not None
        changed = (root / entry["path"]).read_bytes() != before[entry["path"]]
        if definition.operations:
            assert entry["status"] in ("patched", "already-patched")
            assert changed == (entry["status"] == "patched")
        else:
            assert (entry["status"], changed) == ("untouched", False)
        dockerfile = parse((root / entry["path"]).read_text())
        assert automatic_arg_problems(dockerfile) == ()
        platforms = {
            s.clause.name or "final": stage_platform(dockerfile, s) for s in dockerfile.stages
        }
        if entry["service"] in PYTHON + NODE:
            assert set(platforms.values()) == {TARGET}, (entry["path"], platforms)
        if entry["service"] in CROSS_COMPILING:
            assert platforms == {"builder": BUILD, "final": TARGET}, (entry["path"], platforms)
    patched = snapshot(root)
    code, again, stderr = apply(root)
    assert code == 0, stderr
    assert {f["status"] for f in again["files"]} <= {"already-patched", "untouched"}
    assert snapshot(root) == patched


def test_hand_modified_file_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    root = copy_dockerfiles(tmp_path)
    target = root / "src" / "emailservice" / "Dockerfile"
    target.write_text(target.read_text().replace("EXPOSE 8080", "EXPOSE 9090"))
    before = snapshot(root)
    code, _, stderr = apply(root)
    assert code == 2
    assert "drift: src/emailservice/Dockerfile (emailservice)" in stderr
    assert "found 'EXPOSE 9090'" in stderr
    assert snapshot(root) == before
