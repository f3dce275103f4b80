"""The engine on fixture trees: recognition, exact results, idempotency, drift, all or nothing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from patches import engine, record
from patches.definitions import Definitions, FileDefinition, load
from patches.engine import ALREADY_PATCHED, UNPATCHED, UNTOUCHED, PatchError, plan, write
from patches.operations import Operation, RemoveGlobalArg

FIXTURES = Path(__file__).parent / "fixtures" / "patches"
OLD = "a" * 40
NEW = "b" * 40
SERVICES = ("gosvc", "nodesvc", "pysvc")
NOBODY = 65534


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    return load(FIXTURES / "definitions.toml")


def copy_tree(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def refused(root: Path, definitions: Definitions, commit: str | None = None) -> str:
    """The message of the PatchError plan() raises for `root`, which must be left as it was."""
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        plan(root, definitions, commit=commit)
    assert snapshot(root) == before
    return str(raised.value)


def fixture_text(tree: str, service: str) -> str:
    return (FIXTURES / tree / "src" / service / "Dockerfile").read_text()


def expected_old(service: str) -> str:
    """What the old-shaped fixtures must look like after apply: one flag gone, nothing else."""
    text = fixture_text("old", service)
    return {
        "gosvc": text,
        "nodesvc": text.replace("FROM --platform=$BUILDPLATFORM node:", "FROM node:"),
        "pysvc": text.replace("FROM --platform=$BUILDPLATFORM python:", "FROM python:"),
    }[service]


def expected_new(service: str) -> str:
    text = fixture_text("new", service).replace(
        "# A default for builders that leave it empty\nARG BUILDPLATFORM=linux/amd64\n\n", ""
    )
    return {
        "gosvc": text.replace("ARG TARGETOS=linux", "ARG TARGETOS").replace(
            "ARG TARGETARCH=amd64", "ARG TARGETARCH"
        ),
        "nodesvc": text.replace("FROM --platform=$BUILDPLATFORM node:", "FROM node:"),
        "pysvc": text.replace("FROM --platform=$BUILDPLATFORM python:", "FROM python:"),
    }[service]


def test_old_tree_is_recognised_and_patched_exactly(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions)
    assert result.revision.commit == OLD
    assert [(f.service, f.state) for f in result.files] == [
        ("gosvc", UNTOUCHED),
        ("nodesvc", UNPATCHED),
        ("pysvc", UNPATCHED),
    ]
    write(result)
    for service in SERVICES:
        assert (root / "src" / service / "Dockerfile").read_text() == expected_old(service)


def test_new_tree_is_recognised_and_patched_exactly(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "new")
    result = plan(root, definitions)
    assert result.revision.commit == NEW
    assert all(f.state == UNPATCHED for f in result.files)
    write(result)
    for service in SERVICES:
        assert (root / "src" / service / "Dockerfile").read_text() == expected_new(service)


@pytest.mark.parametrize("tree", ["old", "new"])
def test_second_run_changes_nothing(tmp_path: Path, definitions: Definitions, tree: str) -> None:
    root = copy_tree(tmp_path, tree)
    write(plan(root, definitions))
    before = snapshot(root)
    times = {p: p.stat().st_mtime_ns for p in root.rglob("Dockerfile")}
    again = plan(root, definitions)
    assert {f.state for f in again.files} <= {ALREADY_PATCHED, UNTOUCHED}
    assert all(f.after == f.before for f in again.files)
    write(again)
    assert snapshot(root) == before
    assert {p: p.stat().st_mtime_ns for p in root.rglob("Dockerfile")} == times


def test_crlf_tree_is_recognised_and_keeps_its_line_endings(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "new")
    for path in root.rglob("Dockerfile"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    write(plan(root, definitions))
    for service in SERVICES:
        patched = (root / "src" / service / "Dockerfile").read_bytes()
        assert patched == expected_new(service).replace("\n", "\r\n").encode()
    assert {f.state for f in plan(root, definitions).files} == {ALREADY_PATCHED}


def test_write_keeps_the_file_mode(tmp_path: Path, definitions: Definitions) -> None:
    root = copy_tree(tmp_path, "old")
    target = root / "src" / "pysvc" / "Dockerfile"
    target.chmod(0o640)
    write(plan(root, definitions))
    assert target.stat().st_mode & 0o7777 == 0o640
    assert not [p for p in target.parent.iterdir() if p.name != "Dockerfile"]


@pytest.mark.parametrize(
    ("service", "old", "new", "message"),
    [
        (
            "pysvc",
            "python:3.14-alpine AS base",
            "pypy:3.14 AS base",
            "line 8: expected FROM --platform=$BUILDPLATFORM python:… AS base; "
            "found FROM --platform=$BUILDPLATFORM pypy:3.14 AS base",
        ),
        (
            "pysvc",
            "AS base\n",
            "AS runtime\n",
            "line 8: expected FROM --platform=$BUILDPLATFORM python:… AS base; "
            "found no stage 'base'",
        ),
        (
            "nodesvc",
            "FROM --platform=$BUILDPLATFORM node:",
            "FROM --platform=linux/amd64 node:",
            "line 8: expected FROM --platform=$BUILDPLATFORM node:… AS builder; "
            "found FROM --platform=linux/amd64 node:20-alpine AS builder",
        ),
        (
            "nodesvc",
            "ARG BUILDPLATFORM=linux/amd64",
            "ARG BUILDPLATFORM=linux/arm64",
            "line 6: expected ARG BUILDPLATFORM=linux/amd64; found ARG BUILDPLATFORM=linux/arm64",
        ),
        (
            "nodesvc",
            "# A default for builders that leave it empty",
            "# Pin the build platform",
            "line 5: expected # A default for builders that leave it empty; "
            "found # Pin the build platform",
        ),
        (
            "gosvc",
            "ARG BUILDPLATFORM=linux/amd64\n",
            "",
            "line 7: expected global ARG BUILDPLATFORM=linux/amd64; "
            "found no global ARG BUILDPLATFORM"
            ' (partially patched: "remove the global ARG BUILDPLATFORM=linux/amd64" looks applied, '
            '"remove the default of ARG TARGETOS=linux in stage builder" does not)',
        ),
        (
            "gosvc",
            "ARG TARGETOS=linux",
            "ARG TARGETOS=windows",
            "line 9: expected ARG TARGETOS=linux in stage builder; found ARG TARGETOS=windows",
        ),
        (
            "gosvc",
            "ARG TARGETARCH=amd64\n",
            "",
            "line 8: expected ARG TARGETARCH=amd64 in stage builder; "
            "found no ARG TARGETARCH in stage builder",
        ),
        (
            "gosvc",
            "AS builder",
            "AS compile",
            "line 8: expected ARG TARGETOS=linux in stage builder; found no stage 'builder'",
        ),
        (
            "pysvc",
            "ENV PYTHONUNBUFFERED=1",
            "ENV PYTHONUNBUFFERED=0",
            "line 18: expected line 18 of the upstream file; found 'ENV PYTHONUNBUFFERED=0'",
        ),
        (
            "pysvc",
            'ENTRYPOINT [ "python", "server.py" ]\n',
            'ENTRYPOINT [ "python", "server.py" ]\nEXPOSE 8080\n',
            "line 25: expected end of file; found 'EXPOSE 8080'",
        ),
        (
            "pysvc",
            'ENTRYPOINT [ "python", "server.py" ]\n',
            "",
            "line 24: expected line 24 of the upstream file (missing here); found end of file",
        ),
        (
            "pysvc",
            'ENTRYPOINT [ "python", "server.py" ]\n',
            'ENTRYPOINT [ "python", "server.py" ]',
            "line 24: expected the upstream file byte for byte; found other bytes",
        ),
        (
            "pysvc",
            "FROM --platform=$BUILDPLATFORM python:",
            "FROM python:",
            "line 8: expected FROM --platform=$BUILDPLATFORM python:… AS base; "
            "found FROM python:3.14-alpine AS base (partially patched: "
            '"drop --platform=$BUILDPLATFORM from FROM python:… AS base" looks applied, '
            '"remove the global ARG BUILDPLATFORM=linux/amd64" does not)',
        ),
    ],
)
def test_drift_names_file_line_expected_found_and_changes_nothing(
    tmp_path: Path, definitions: Definitions, service: str, old: str, new: str, message: str
) -> None:
    root = copy_tree(tmp_path, "new")
    target = root / "src" / service / "Dockerfile"
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        plan(root, definitions)
    error = str(raised.value)
    assert f"drift: src/{service}/Dockerfile ({service})" in error
    assert f"against bbbbbbbb (fixture-v0.10.6): {message}" in error
    assert error.endswith("Nothing was changed.")
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Resembling neither the upstream nor the patched file, it is read as upstream.
        (
            "FROM scratch\n",
            "line 1: expected FROM --platform=$BUILDPLATFORM python:… AS base; "
            "found no stage 'base'; stages: #0 (unnamed) at line 1",
        ),
        (
            "# escape=|\nFROM scratch\n",
            "line 1: escape directive '|' is not allowed; allowed: '\\\\' or '`'",
        ),
    ],
)
def test_a_replaced_dockerfile_is_described_against_the_upstream_file(
    tmp_path: Path, definitions: Definitions, text: str, message: str
) -> None:
    root = copy_tree(tmp_path, "new")
    (root / "src" / "pysvc" / "Dockerfile").write_text(text)
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        plan(root, definitions)
    assert f"\n  against bbbbbbbb (fixture-v0.10.6): {message}\nNothing" in str(raised.value)
    assert snapshot(root) == before


def test_drift_in_an_untouched_file_is_refused(tmp_path: Path, definitions: Definitions) -> None:
    root = copy_tree(tmp_path, "old")
    target = root / "src" / "gosvc" / "Dockerfile"
    target.write_text(target.read_text().replace("WORKDIR /src", "WORKDIR /go/src"))
    before = snapshot(root)
    with pytest.raises(
        PatchError, match=r"line 8: expected line 8 of the upstream file; found 'WORKDIR /go/src'"
    ):
        plan(root, definitions)
    assert snapshot(root) == before


def test_drift_after_patching_is_compared_with_the_patched_file(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "new")
    write(plan(root, definitions))
    target = root / "src" / "pysvc" / "Dockerfile"
    target.write_text(target.read_text().replace("WORKDIR /app", "WORKDIR /srv"))
    with pytest.raises(
        PatchError,
        match=r"\(fixture-v0\.10\.6\): line 17: expected line 17 of the patched file; "
        r"found 'WORKDIR /srv'\n",
    ):
        plan(root, definitions)


def long_file_drift(
    tmp_path: Path, pristine: str, text: str, operations: tuple[Operation, ...]
) -> list[str]:
    """The lines of the drift message for `text`, a changed `pristine` file of 200 lines or
    more (where difflib's autojunk, were it on, would start ignoring its frequent lines, such
    as blank ones), recorded by patches.record with `operations` as revision c…."""
    target = tmp_path / "src" / "longsvc" / "Dockerfile"
    target.parent.mkdir(parents=True)
    target.write_text(pristine)
    unrecorded = FileDefinition("longsvc", "src/longsvc/Dockerfile", "", "", "", "", operations)
    definitions = tmp_path / "definitions.toml"
    definitions.write_text(record.record(tmp_path, (unrecorded,), "c" * 40, ""))
    target.write_text(text)
    return refused(tmp_path, load(definitions)).splitlines()


def test_a_line_moved_in_a_long_file_is_named_where_the_file_departs(tmp_path: Path) -> None:
    """Its header comment moved below the blank lines that followed it."""
    steps = "".join(f"RUN echo step {n}\n" for n in range(1, 200))
    pristine = "# header\n\n\n\n\n\nFROM scratch AS base\n" + steps
    moved = "\n\n\n\n\n# header\nFROM scratch AS base\n" + steps
    lines = long_file_drift(tmp_path, pristine, moved, ())
    assert lines[2] == (
        "  against cccccccc: line 1: expected line 1 of the upstream file (missing here); found ''"
    )


def test_a_long_upstream_file_with_changed_lines_is_read_as_upstream(tmp_path: Path) -> None:
    """Ten of its lines changed: it resembles the upstream file more than the patched one
    (three lines shorter), and is described against the upstream file."""
    steps = "".join(f"RUN echo step {n}\n\n" for n in range(1, 100))
    pristine = (
        "# why the default\nARG BUILDPLATFORM=linux/amd64\n\n"
        "FROM --platform=$BUILDPLATFORM golang AS builder\n" + steps
    )
    changed = pristine
    for n in range(1, 11):
        changed = changed.replace(f"RUN echo step {n}\n", f"RUN echo stage {n}\n")
    remove = RemoveGlobalArg(name="BUILDPLATFORM", default="linux/amd64", comment="why the default")
    lines = long_file_drift(tmp_path, pristine, changed, (remove,))
    assert lines[2] == (
        "  against cccccccc: line 5: expected line 5 of the upstream file; found 'RUN echo stage 1'"
    )


def test_tree_mixing_revisions_is_refused(tmp_path: Path, definitions: Definitions) -> None:
    root = copy_tree(tmp_path, "old")
    shutil.copy(FIXTURES / "new" / "src" / "gosvc" / "Dockerfile", root / "src" / "gosvc")
    with pytest.raises(PatchError, match="mixed tree") as raised:
        plan(root, definitions)
    assert "gosvc: bbbbbbbb (fixture-v0.10.6)" in str(raised.value)
    assert "pysvc: aaaaaaaa (fixture-v0)" in str(raised.value)


def test_unknown_upstream_is_diagnosed_against_every_revision(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = tmp_path / "tree"
    (root / "src" / "pysvc").mkdir(parents=True)
    (root / "src" / "pysvc" / "Dockerfile").write_text("FROM python:3 AS base\n")
    with pytest.raises(PatchError) as raised:
        plan(root, definitions)
    error = str(raised.value)
    assert error.startswith("unknown upstream")
    for label in ("aaaaaaaa (fixture-v0)", "bbbbbbbb (fixture-v0.10.6)"):
        found = "found 'FROM python:3 AS base'"
        assert f"against {label}: line 1: expected line 1 of the patched file; {found}" in error


def test_unknown_upstream_is_one_whole_message_and_changes_nothing(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = tmp_path / "tree"
    (root / "src" / "pysvc").mkdir(parents=True)
    text = "FROM python:3 AS base\n"
    (root / "src" / "pysvc" / "Dockerfile").write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    found = "line 1: expected line 1 of the patched file; found 'FROM python:3 AS base'"
    assert refused(root, definitions) == (
        "unknown upstream: no selected Dockerfile matches a supported revision.\n"
        f"drift: src/pysvc/Dockerfile (pysvc) has sha256 {digest}\n"
        f"  against aaaaaaaa (fixture-v0): {found}\n"
        f"  against bbbbbbbb (fixture-v0.10.6): {found}\n"
        "Nothing was changed."
    )


def test_a_mixed_tree_lists_every_revision_each_file_matches(tmp_path: Path) -> None:
    """pysvc is the same file at c… and d…, gosvc exists only at e…: no revision holds both."""
    definitions = tmp_path / "definitions.toml"
    definitions.write_text(
        _revision_block(FIXTURES / "old", "c" * 40, OLD, ("pysvc",))
        + "\n"
        + _revision_block(FIXTURES / "old", "d" * 40, OLD, ("pysvc",))
        + "\n"
        + _revision_block(FIXTURES / "new", "e" * 40, NEW, ("gosvc",))
    )
    root = copy_tree(tmp_path, "old")
    shutil.copy(FIXTURES / "new" / "src" / "gosvc" / "Dockerfile", root / "src" / "gosvc")
    assert refused(root, load(definitions)) == (
        "mixed tree: the Dockerfiles belong to different supported revisions:\n"
        "  pysvc: cccccccc, dddddddd\n"
        "  gosvc: eeeeeeee\n"
        "Nothing was changed."
    )


def test_forced_revision_diagnoses_against_that_revision(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    with pytest.raises(PatchError) as raised:
        plan(root, definitions, commit=NEW)
    assert (
        "drift: src/nodesvc/Dockerfile (nodesvc) has sha256 "
        f"{hashlib.sha256(fixture_text('old', 'nodesvc').encode()).hexdigest()}\n"
        "  against bbbbbbbb (fixture-v0.10.6): line 5: expected FROM node:… AS builder "
        "(stage on the target platform); "
        "found FROM --platform=$BUILDPLATFORM node:20-alpine AS builder"
    ) in str(raised.value)
    assert plan(root, definitions, commit=OLD).revision.commit == OLD


def test_unknown_revision_lists_the_supported_ones(
    tmp_path: Path, definitions: Definitions
) -> None:
    with pytest.raises(
        PatchError, match=rf"--revision '{'c' * 40}'.*allowed: {OLD} \(fixture-v0\)"
    ):
        plan(copy_tree(tmp_path, "old"), definitions, commit="c" * 40)


def test_service_selection(tmp_path: Path, definitions: Definitions) -> None:
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions, services=("pysvc",))
    assert [f.service for f in result.files] == ["pysvc"]
    write(result)
    assert (root / "src" / "nodesvc" / "Dockerfile").read_text() == fixture_text("old", "nodesvc")
    with pytest.raises(
        PatchError, match="--service 'websvc' has no patch definitions; allowed: gosvc"
    ):
        plan(root, definitions, services=("websvc",))


def test_missing_file_of_a_selected_service(tmp_path: Path, definitions: Definitions) -> None:
    root = copy_tree(tmp_path, "old")
    (root / "src" / "nodesvc" / "Dockerfile").unlink()
    assert [f.service for f in plan(root, definitions).files] == ["gosvc", "pysvc"]
    with pytest.raises(
        PatchError, match=r"drift: src/nodesvc/Dockerfile \(nodesvc\): file not found"
    ):
        plan(root, definitions, services=("nodesvc", "pysvc"))


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_source_dir_must_be_a_checkout_root(
    tmp_path: Path, definitions: Definitions, make: str
) -> None:
    root = tmp_path / "x"
    if make == "file":
        root.write_text("")
    if make == "empty":
        root.mkdir()
    expected = "holds no Dockerfile" if make == "empty" else "is not a directory"
    with pytest.raises(PatchError, match=expected):
        plan(root, definitions)


def test_patch_ids_identify_the_definitions(definitions: Definitions) -> None:
    old, new = definitions.revisions
    assert old.file("gosvc").patch_id is None  # type: ignore[union-attr]
    ids = [f.patch_id for r in (old, new) for f in r.files if f.operations]
    assert all(i is not None and len(i) == 64 for i in ids)
    assert len(set(ids)) == len(ids)


def _two_revisions_sharing_a_file(tmp_path: Path, second_ops: str) -> Path:
    """Definitions where revisions c… and d… both contain the old pysvc file."""
    old = load(FIXTURES / "definitions.toml").revision(OLD)
    assert old is not None
    pysvc = old.file("pysvc")
    assert pysvc is not None
    entry = (
        '[[revision.file]]\nservice = "pysvc"\npath = "src/pysvc/Dockerfile"\n'
        f'pristine = "{pysvc.pristine}"\nlines = "{pysvc.lines}"\n'
        f'patched = "{pysvc.patched}"\npatched_lines = "{pysvc.patched_lines}"\n'
    )
    drop = '{ op = "drop-from-platform", stage = "base", image = "python:" }'
    path = tmp_path / "definitions.toml"
    path.write_text(
        f'[[revision]]\ncommit = "{"c" * 40}"\n{entry}patches = [{drop}]\n\n'
        f'[[revision]]\ncommit = "{"d" * 40}"\n{entry}patches = [{second_ops}]\n'
    )
    return path


def test_file_shared_by_revisions_with_the_same_patches_is_not_ambiguous(tmp_path: Path) -> None:
    drop = '{ op = "drop-from-platform", stage = "base", image = "python:" }'
    definitions = load(_two_revisions_sharing_a_file(tmp_path, drop))
    result = plan(copy_tree(tmp_path, "old"), definitions)
    assert result.revision.commit == "c" * 40


def test_file_shared_by_revisions_with_different_patches_needs_revision(tmp_path: Path) -> None:
    other = '{ op = "drop-from-platform", stage = "base", image = "python:3" }'
    definitions = load(_two_revisions_sharing_a_file(tmp_path, other))
    root = copy_tree(tmp_path, "old")
    with pytest.raises(PatchError, match=r"match several supported revisions .* pass --revision"):
        plan(root, definitions)
    assert plan(root, definitions, commit="d" * 40).revision.commit == "d" * 40


def test_revisions_that_patch_a_file_differently_are_named_in_one_message(
    tmp_path: Path,
) -> None:
    other = '{ op = "drop-from-platform", stage = "base", image = "python:3" }'
    definitions = load(_two_revisions_sharing_a_file(tmp_path, other))
    assert refused(copy_tree(tmp_path, "old"), definitions) == (
        f"the selected Dockerfiles match several supported revisions ({'c' * 40}, {'d' * 40}) "
        "that patch them differently; pass --revision"
    )


def _revision_block(tree: Path, commit: str, known: str, services: tuple[str, ...]) -> str:
    """The `[[revision]]` block patches.record writes for `services` of the fixture revision
    `known`, found in `tree` (their paths as the fixture definitions record them)."""
    revision = load(FIXTURES / "definitions.toml").revision(known)
    assert revision is not None
    files = tuple(f for f in revision.files if f.service in services)
    return record.record(tree, files, commit, "")


def _pysvc_only_at_d(tmp_path: Path) -> Path:
    """Definitions where c… defines gosvc as in the old tree and d… defines gosvc and pysvc as
    in the new one."""
    definitions = tmp_path / "definitions.toml"
    definitions.write_text(
        _revision_block(FIXTURES / "old", "c" * 40, OLD, ("gosvc",))
        + "\n"
        + _revision_block(FIXTURES / "new", "d" * 40, NEW, ("gosvc", "pysvc"))
    )
    return definitions


def test_a_drifted_service_the_recognised_revision_lacks_is_named_so(tmp_path: Path) -> None:
    """c… defines gosvc as in the old tree; only d… defines pysvc: the old tree is at c…, and
    its pysvc is drift that c… cannot explain."""
    definitions = _pysvc_only_at_d(tmp_path)
    root = copy_tree(tmp_path, "old")
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        plan(root, load(definitions))
    lines = str(raised.value).splitlines()
    assert lines[0].startswith("drift: src/pysvc/Dockerfile (pysvc) has sha256 ")
    assert lines[1:] == [
        "  against cccccccc: the service is not part of it",
        "Nothing was changed.",
    ]
    assert snapshot(root) == before


def test_a_service_whose_path_moved_between_revisions_is_looked_for_at_both(
    tmp_path: Path,
) -> None:
    moved = tmp_path / "moved"
    (moved / "src" / "pysvc" / "src").mkdir(parents=True)
    shutil.copy(FIXTURES / "new" / "src" / "pysvc" / "Dockerfile", moved / "src" / "pysvc" / "src")
    block = _revision_block(FIXTURES / "new", "d" * 40, NEW, ("pysvc",))
    definitions = tmp_path / "definitions.toml"
    definitions.write_text(
        _revision_block(FIXTURES / "old", "c" * 40, OLD, ("gosvc", "pysvc"))
        + "\n"
        + block.replace('path = "src/pysvc/Dockerfile"', 'path = "src/pysvc/src/Dockerfile"')
    )
    assert plan(moved, load(definitions)).revision.commit == "d" * 40
    root = copy_tree(tmp_path, "old")
    (root / "src" / "pysvc" / "Dockerfile").unlink()
    with pytest.raises(PatchError) as raised:
        plan(root, load(definitions), ("pysvc",))
    assert (
        "\ndrift: src/pysvc/Dockerfile or src/pysvc/src/Dockerfile (pysvc): file not found\n"
        in str(raised.value)
    )


def test_write_failure_on_one_file_leaves_every_file_untouched(tmp_path: Path) -> None:
    """A real OSError while staging the second file (its temp name exceeds NAME_MAX)."""
    root = copy_tree(tmp_path, "old")
    long_name = "D" * 250
    (root / "src" / "longsvc").mkdir()
    shutil.copy(root / "src" / "pysvc" / "Dockerfile", root / "src" / "longsvc" / long_name)
    fixture = (FIXTURES / "definitions.toml").read_text()
    old_block = fixture.split("[[revision]]")[1]
    pysvc_block = "[[revision.file]]" + old_block.split("[[revision.file]]")[3]
    long_block = pysvc_block.replace('"pysvc"', '"longsvc"').replace(
        "src/pysvc/Dockerfile", f"src/longsvc/{long_name}"
    )
    path = tmp_path / "definitions.toml"
    path.write_text(f'[[revision]]\ncommit = "{"e" * 40}"\n{pysvc_block}\n{long_block}')
    definitions = load(path)
    result = plan(root, definitions)
    assert [(f.service, f.state) for f in result.files] == [
        ("pysvc", UNPATCHED),
        ("longsvc", UNPATCHED),
    ]
    before = snapshot(root)
    with pytest.raises(
        PatchError,
        match=rf"^cannot write src/longsvc/{long_name} with its owner, group and mode kept: "
        r"File name too long; nothing was changed$",
    ):
        write(result)
    assert snapshot(root) == before


def leave_tree(root: Path, outside: Path, service: str) -> Path:
    """Move `service`'s directory to `outside` and link it back into the tree; return the
    Dockerfile outside."""
    outside.mkdir()
    (root / "src" / service).rename(outside / service)
    (root / "src" / service).symlink_to(outside / service, target_is_directory=True)
    return outside / service / "Dockerfile"


def test_a_service_directory_linked_out_of_the_tree_is_refused(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    elsewhere = leave_tree(root, tmp_path / "elsewhere", "pysvc")
    before = elsewhere.read_bytes()
    with pytest.raises(PatchError) as raised:
        write(plan(root, definitions))
    assert str(raised.value) == (
        f"src/pysvc/Dockerfile resolves to {elsewhere}, outside SOURCE_DIR {root} "
        "(a symlink leads out of the tree); nothing was changed"
    )
    assert elsewhere.read_bytes() == before
    assert (root / "src/nodesvc/Dockerfile").read_text() == fixture_text("old", "nodesvc")
    with pytest.raises(PatchError, match="outside SOURCE_DIR"):
        plan(root, definitions, ("pysvc",))


@contextlib.contextmanager
def append_only(directory: Path) -> Iterator[None]:
    """Files can be created in `directory` but not removed (chattr +a: root, and a filesystem
    that keeps the attribute, such as ext4 or tmpfs)."""
    if os.geteuid() != 0:
        pytest.skip("chattr +a needs root")
    try:
        subprocess.run(["chattr", "+a", str(directory)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"this filesystem cannot make a directory append-only: {error}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-a", str(directory)], check=True)


@contextlib.contextmanager
def files_limited_to(size: int) -> Iterator[None]:
    """Writing past `size` bytes of any file fails with EFBIG (RLIMIT_FSIZE, with SIGXFSZ
    ignored so that the process is not killed instead)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_staged_copy_that_can_be_neither_written_nor_removed_is_one_clear_error(
    tmp_path: Path, definitions: Definitions
) -> None:
    """Writing the temporary file fails, and so does removing it: the write's error is the
    one reported, and the Dockerfile is untouched."""
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions, ("pysvc",))
    directory = root / "src" / "pysvc"
    with append_only(directory), files_limited_to(16), pytest.raises(PatchError) as raised:
        write(result)
    assert str(raised.value) == (
        "cannot write src/pysvc/Dockerfile with its owner, group and mode kept: "
        "File too large; nothing was changed"
    )
    assert (directory / "Dockerfile").read_text() == fixture_text("old", "pysvc")


def test_a_dockerfile_linked_out_of_the_tree_is_refused(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    elsewhere = tmp_path / "Dockerfile.elsewhere"
    (root / "src/pysvc/Dockerfile").rename(elsewhere)
    (root / "src/pysvc/Dockerfile").symlink_to(elsewhere)
    with pytest.raises(PatchError, match=r"src/pysvc/Dockerfile resolves to .* outside"):
        plan(root, definitions)
    assert elsewhere.read_text() == fixture_text("old", "pysvc")


def test_a_link_that_stays_inside_the_tree_is_followed(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    (root / "src/pysvc").rename(root / "pysvc-real")
    (root / "src/pysvc").symlink_to("../pysvc-real", target_is_directory=True)
    write(plan(root, definitions))
    assert (root / "pysvc-real/Dockerfile").read_text() == expected_old("pysvc")


def test_a_directory_linked_out_of_the_tree_after_planning_is_refused(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions)
    elsewhere = leave_tree(root, tmp_path / "elsewhere", "pysvc")
    with pytest.raises(PatchError, match="outside SOURCE_DIR"):
        write(result)
    assert elsewhere.read_text() == fixture_text("old", "pysvc")
    assert (root / "src/nodesvc/Dockerfile").read_text() == fixture_text("old", "nodesvc")
    assert [p.name for p in elsewhere.parent.iterdir()] == ["Dockerfile"]


def test_write_keeps_the_owner_group_and_mode_of_a_file_of_another_user(
    tmp_path: Path, definitions: Definitions
) -> None:
    if os.geteuid() != 0:
        reason = "giving a file to another user needs root (CI runs the tests as root)"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    root = copy_tree(tmp_path, "old")
    target = root / "src" / "pysvc" / "Dockerfile"
    os.chown(target, 1234, 2345)
    target.chmod(0o2640)
    write(plan(root, definitions))
    status = target.stat()
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (1234, 2345, 0o2640)
    assert target.read_text() == expected_old("pysvc")


def test_a_file_edited_between_plan_and_write_aborts_the_whole_apply(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions)
    edited = root / "src" / "pysvc" / "Dockerfile"
    edited.write_text(fixture_text("old", "pysvc") + "# a colleague's edit\n")
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        write(result)
    message = str(raised.value)
    assert message.startswith("src/pysvc/Dockerfile changed while the patches were planned")
    assert message.endswith("nothing was changed, run the command again")
    assert snapshot(root) == before
    assert [p.name for p in edited.parent.iterdir()] == ["Dockerfile"]


def test_a_file_edited_while_the_others_are_staged_aborts_the_whole_apply(
    tmp_path: Path, definitions: Definitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit lands after the first file is staged: the check right before the moves sees it."""
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions)
    stage_copy = engine._stage_copy
    edited = root / "src" / "pysvc" / "Dockerfile"

    def stage_then_edit(target: Path, relative: str, text: str) -> Path:
        staged = stage_copy(target, relative, text)
        if relative == "src/nodesvc/Dockerfile":
            edited.write_text(edited.read_text() + "# edited meanwhile\n")
        return staged

    monkeypatch.setattr(engine, "_stage_copy", stage_then_edit)
    with pytest.raises(PatchError, match="src/pysvc/Dockerfile changed while"):
        write(result)
    assert (root / "src/nodesvc/Dockerfile").read_text() == fixture_text("old", "nodesvc")
    assert edited.read_text() == fixture_text("old", "pysvc") + "# edited meanwhile\n"
    assert sorted(p.name for p in (root / "src").rglob(".*")) == []


def test_a_result_that_differs_from_the_recorded_digest_changes_nothing(tmp_path: Path) -> None:
    """Definitions whose operations do not produce the recorded `patched` digest are refused."""
    root = copy_tree(tmp_path, "old")
    fixture = (FIXTURES / "definitions.toml").read_text()
    recorded = "c3c0146d440a3e0ffd7abf5077886fcb8464a178282e9ff3c336ca6d4a771945"  # nodesvc
    assert fixture.count(recorded) == 1
    path = tmp_path / "definitions.toml"
    path.write_text(fixture.replace(recorded, "0" * 64))
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        write(plan(root, load(path)))
    assert "src/nodesvc/Dockerfile" in str(raised.value) and "0" * 64 in str(raised.value)
    assert str(raised.value) == (
        f"src/nodesvc/Dockerfile at aaaaaaaa (fixture-v0): the patched result has sha256 "
        f"{recorded}, the definitions record {'0' * 64}; "
        "the definitions are inconsistent, nothing was changed"
    )
    assert snapshot(root) == before


def test_an_operation_that_does_not_fit_a_recognised_file_names_file_and_revision(
    tmp_path: Path,
) -> None:
    """The file is the pristine one d… records, but d…'s operation expects another image."""
    wrong_image = '{ op = "drop-from-platform", stage = "base", image = "pypy:" }'
    definitions = load(_two_revisions_sharing_a_file(tmp_path, wrong_image))
    assert refused(copy_tree(tmp_path, "old"), definitions, commit="d" * 40) == (
        "src/pysvc/Dockerfile at dddddddd: precondition of drop --platform=$BUILDPLATFORM "
        "from FROM pypy:… AS base: line 5: expected FROM --platform=$BUILDPLATFORM pypy:… "
        "AS base; found FROM --platform=$BUILDPLATFORM python:3.12-alpine AS base"
    )


@contextlib.contextmanager
def without_read_permission(path: Path) -> Iterator[None]:
    """`path` unreadable for the test process: mode 000, and as root (whom modes do not stop)
    the effective user is nobody meanwhile, so the tree must be reachable by everyone."""
    path.chmod(0)
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def test_an_unreadable_dockerfile_is_named_with_the_reason(definitions: Definitions) -> None:
    with tempfile.TemporaryDirectory() as top:
        Path(top).chmod(0o755)  # reachable by nobody (see without_read_permission)
        root = Path(top) / "old"
        shutil.copytree(FIXTURES / "old", root)
        unreadable = root / "src" / "pysvc" / "Dockerfile"
        with without_read_permission(unreadable), pytest.raises(PatchError) as raised:
            plan(root, definitions)
        assert str(raised.value) == "src/pysvc/Dockerfile: cannot read: Permission denied"


def test_a_dockerfile_that_is_not_utf8_is_named_with_the_decoding_error(
    tmp_path: Path, definitions: Definitions
) -> None:
    root = copy_tree(tmp_path, "old")
    (root / "src" / "pysvc" / "Dockerfile").write_bytes(b"FROM python:3\n\xff\n")
    assert refused(root, definitions) == (
        "src/pysvc/Dockerfile: not UTF-8 text "
        "('utf-8' codec can't decode byte 0xff in position 14: invalid start byte)"
    )


def test_a_failed_move_restores_the_files_already_moved(
    tmp_path: Path, definitions: Definitions
) -> None:
    """The second target became a directory after planning: refused before any move."""
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions)
    changed = [f.path for f in result.files if f.after != f.before]
    assert changed == ["src/nodesvc/Dockerfile", "src/pysvc/Dockerfile"]
    second = root / changed[1]
    second.unlink()
    (second / "occupied").mkdir(parents=True)
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        write(result)
    assert str(raised.value) == (
        "cannot read src/pysvc/Dockerfile: Is a directory; nothing was changed"
    )
    assert snapshot(root) == before
    assert (root / changed[0]).read_text() == fixture_text("old", "nodesvc")
    leftovers = [p.name for p in root.rglob(".*") if p.is_file()]
    assert leftovers == []


def test_a_move_that_fails_restores_the_files_already_moved(
    tmp_path: Path, definitions: Definitions
) -> None:
    """A real OSError from the second os.replace: its target is a mount point (EBUSY), whose
    bytes are still the planned ones, so every check before the moves passes."""
    if os.geteuid() != 0:
        pytest.skip("bind-mounting a file needs root")
    root = copy_tree(tmp_path, "old")
    result = plan(root, definitions)
    first, second = (root / f.path for f in result.files if f.after != f.before)
    same_bytes = tmp_path / "same-bytes"
    shutil.copy(second, same_bytes)
    mounted = subprocess.run(["mount", "--bind", str(same_bytes), str(second)], check=False)
    if mounted.returncode != 0:
        pytest.skip("bind mounts are not permitted here")
    try:
        with pytest.raises(PatchError) as raised:
            write(result)
    finally:
        subprocess.run(["umount", str(second)], check=True)
    message = str(raised.value)  # names the temporary file being moved onto the target
    assert message.startswith(f"cannot replace {second.parent}/.Dockerfile."), message
    assert message.endswith(": Device or resource busy; the files already replaced were restored")
    assert first.read_text() == fixture_text("old", "nodesvc")
    assert second.read_text() == fixture_text("old", "pysvc")
    assert [p.name for p in root.rglob(".*") if p.is_file()] == []


def test_each_refused_selection_is_one_whole_message(
    tmp_path: Path, definitions: Definitions
) -> None:
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    root = copy_tree(tmp_path, "old")
    refusals = {
        "not a directory": (lambda: plan(missing, definitions)),
        "no known Dockerfile": (lambda: plan(empty, definitions)),
        "unknown service": (lambda: plan(root, definitions, services=("websvc",))),
        "unknown revision": (lambda: plan(root, definitions, commit="c" * 40)),
    }
    messages = {}
    for case, call in refusals.items():
        with pytest.raises(PatchError) as raised:
            call()
        messages[case] = str(raised.value)
    assert messages == {
        "not a directory": f"SOURCE_DIR {str(missing)!r} is not a directory; "
        "pass the checkout root",
        "no known Dockerfile": f"SOURCE_DIR {str(empty)!r} holds no Dockerfile of a known "
        "service (gosvc, nodesvc, pysvc); pass the checkout root",
        "unknown service": "--service 'websvc' has no patch definitions; "
        "allowed: gosvc, nodesvc, pysvc",
        "unknown revision": f"--revision {'c' * 40!r} is not a supported upstream; "
        f"allowed: {OLD} (fixture-v0), {NEW} (fixture-v0.10.6)",
    }


def test_a_selected_service_the_forced_revision_lacks_is_refused_by_name(tmp_path: Path) -> None:
    """c… defines only gosvc, d… defines gosvc and pysvc: forcing c… with pysvc selected is a
    usage error naming the service, not a drift report."""
    definitions = _pysvc_only_at_d(tmp_path)
    root = copy_tree(tmp_path, "old")
    before = snapshot(root)
    with pytest.raises(PatchError) as raised:
        plan(root, load(definitions), ("gosvc", "pysvc"), "c" * 40)
    assert str(raised.value) == "--service 'pysvc' is not defined at cccccccc"
    assert snapshot(root) == before
    assert [f.service for f in plan(root, load(definitions), ("gosvc",), "c" * 40).files] == [
        "gosvc"
    ]
