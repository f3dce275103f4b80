"""`python -m patches` run as a process: output, JSON contract, exit codes, messages."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patches import cli

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "patches"
DEFINITIONS = str(FIXTURES / "definitions.toml")
OLD = "a" * 40
NEW = "b" * 40


def run(*arguments: str, definitions: str | None = DEFINITIONS) -> subprocess.CompletedProcess[str]:
    extra = ["--definitions", definitions] if definitions else []
    return subprocess.run(
        [sys.executable, "-m", "patches", *arguments, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def record(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patches.record", *arguments, "--definitions", DEFINITIONS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def old_tree(tmp_path: Path) -> Path:
    root = tmp_path / "old"
    shutil.copytree(FIXTURES / "old", root)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_apply_prints_one_line_per_file_and_is_idempotent(old_tree: Path) -> None:
    first = run("apply", str(old_tree))
    assert (first.returncode, first.stdout) == (
        0,
        "untouched: src/gosvc/Dockerfile\n"
        "patched: src/nodesvc/Dockerfile\n"
        "patched: src/pysvc/Dockerfile\n",
    )
    assert first.stderr == "upstream aaaaaaaa (fixture-v0)\n"
    patched = snapshot(old_tree)
    second = run("apply", str(old_tree))
    assert (second.returncode, second.stdout) == (
        0,
        "untouched: src/gosvc/Dockerfile\n"
        "already patched: src/nodesvc/Dockerfile\n"
        "already patched: src/pysvc/Dockerfile\n",
    )
    assert snapshot(old_tree) == patched


def test_apply_json_follows_the_contract(old_tree: Path) -> None:
    result = run("apply", str(old_tree), "--json")
    assert result.returncode == 0
    assert result.stdout.startswith('{\n  "revision": ')  # indented by two, for readers
    document = json.loads(result.stdout)
    assert document["revision"] == OLD
    assert [(f["service"], f["path"], f["status"]) for f in document["files"]] == [
        ("gosvc", "src/gosvc/Dockerfile", "untouched"),
        ("nodesvc", "src/nodesvc/Dockerfile", "patched"),
        ("pysvc", "src/pysvc/Dockerfile", "patched"),
    ]
    ids = [f["patchId"] for f in document["files"]]
    assert ids[0] is None
    assert all(isinstance(i, str) and len(i) == 64 and int(i, 16) >= 0 for i in ids[1:])
    assert set(document["files"][0]) == {"service", "path", "status", "patchId"}
    again = json.loads(run("apply", str(old_tree), "--json").stdout)
    statuses = [f["status"] for f in again["files"]]
    assert statuses == ["untouched", "already-patched", "already-patched"]
    assert [f["patchId"] for f in again["files"]] == ids


def test_check_exits_1_until_applied(old_tree: Path) -> None:
    before = run("check", str(old_tree))
    assert before.returncode == 1
    assert "needs patch: src/pysvc/Dockerfile\n" in before.stdout
    run("apply", str(old_tree))
    after = run("check", str(old_tree), "--json")
    assert after.returncode == 0
    assert {f["status"] for f in json.loads(after.stdout)["files"]} == {
        "untouched",
        "already-patched",
    }


def test_diff_prints_the_changes_without_making_them(old_tree: Path) -> None:
    before = snapshot(old_tree)
    result = run("diff", str(old_tree), "--service", "pysvc")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "--- a/src/pysvc/Dockerfile",
        "+++ b/src/pysvc/Dockerfile",
        "@@ -2,7 +2,7 @@",
        ' # In the build tests "python:3.12-alpine" is the busybox test base; copying the '
        "stage's own",
        " # busybox binary stands in for compiling a native extension module.",
        " ",
        "-FROM --platform=$BUILDPLATFORM python:3.12-alpine AS base",
        "+FROM python:3.12-alpine AS base",
        " ",
        " FROM base AS builder",
        " ",
    ]
    assert snapshot(old_tree) == before
    as_json = json.loads(run("diff", str(old_tree), "--json").stdout)
    diffs = {f["service"]: (f["status"], f["diff"]) for f in as_json["files"]}
    assert diffs["pysvc"] == ("unpatched", result.stdout)
    assert diffs["gosvc"] == ("untouched", "")
    run("apply", str(old_tree))
    assert run("diff", str(old_tree)).stdout == ""


def test_drift_exits_2_with_one_message_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "new"
    shutil.copytree(FIXTURES / "new", root)
    go = root / "src" / "gosvc" / "Dockerfile"
    go.write_text(go.read_text().replace("ARG TARGETARCH=amd64", "ARG TARGETARCH=arm64"))
    before = snapshot(root)
    result = run("apply", str(root), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("patches apply: drift: src/gosvc/Dockerfile (gosvc)")
    assert (
        "line 10: expected ARG TARGETARCH=amd64 in stage builder; found ARG TARGETARCH=arm64"
        in result.stderr
    )
    assert result.stderr.endswith("Nothing was changed.\n")
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("apply", "{tree}", "--revision", "5f4ccc7d"), "is not a full commit sha"),
        (
            ("apply", "{tree}", "--revision", "5F4CCC7D1C4312C72E97CBA777C4F6A586026E59"),
            "argument --revision: '5F4CCC7D1C4312C72E97CBA777C4F6A586026E59' is not a full "
            "commit sha (40 lower-case hex digits)",
        ),
        (("apply", "{tree}", "--revision", "c" * 40), "is not a supported upstream; allowed:"),
        (("apply", "{tree}", "--service", "websvc"), "--service 'websvc' has no patch definitions"),
        (("apply", "{tree}/missing"), "is not a directory"),
        (("patch", "{tree}"), "invalid choice: 'patch'"),
        (("apply",), "the following arguments are required: SOURCE_DIR"),
    ],
)
def test_usage_errors_exit_2(old_tree: Path, arguments: tuple[str, ...], message: str) -> None:
    result = run(*(a.format(tree=old_tree) for a in arguments))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def help_of(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "patches", *arguments, "--help"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},  # one usage line, whatever the terminal
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return result.stdout


def test_help_names_each_command_what_it_does_and_the_exit_codes() -> None:
    shown = help_of()
    assert shown.startswith("usage: python -m patches [-h] COMMAND ...\n")
    assert "\nPatch the Online Boutique Dockerfiles so arm64 images hold arm64 binaries.\n" in shown
    for command, purpose in [
        ("apply", "patch the Dockerfiles in place (idempotent, all or nothing)"),
        ("check", "exit 1 when a Dockerfile still needs its patches, 0 when all are patched"),
        ("diff", "print the unified diff that apply would make"),
    ]:
        assert re.search(rf"\n    {command} +{re.escape(purpose)}\n", shown), (command, shown)
    assert shown.endswith(
        "\nExit codes: 0 ok; 1 check found unpatched files; 2 drift, unknown upstream, usage.\n"
    )


@pytest.mark.parametrize(
    ("command", "purpose"),
    [
        ("apply", "patch the Dockerfiles in place (idempotent, all or nothing)"),
        ("check", "exit 1 when a Dockerfile still needs its patches, 0 when all are patched"),
        ("diff", "print the unified diff that apply would make"),
    ],
)
def test_each_command_s_help_shows_its_options(command: str, purpose: str) -> None:
    shown = help_of(command)
    assert shown.startswith(
        f"usage: python -m patches {command} [-h] [--service NAME] [--revision FULL_SHA] [--json] "
        "[--definitions FILE] SOURCE_DIR\n"
    )
    assert f"\n{purpose}\n" in shown
    for option, text in [
        ("SOURCE_DIR", "checkout root"),
        ("--service NAME", "only this service (repeatable); default: every patchable service"),
        ("--revision FULL_SHA", "the upstream commit the tree is at; default: recognised from"),
        ("--json", "print JSON on stdout"),
        ("--definitions FILE", "patch definitions (TOML); default: the upstream definitions"),
    ]:
        assert re.search(rf"\n  {re.escape(option)} +{re.escape(text)}", shown), (option, shown)


def test_forced_revision_applies_only_to_a_matching_tree(old_tree: Path) -> None:
    assert run("check", str(old_tree), "--revision", NEW).returncode == 2
    assert run("apply", str(old_tree), "--revision", OLD).returncode == 0


def test_default_definitions_do_not_recognise_the_fixtures(old_tree: Path) -> None:
    result = run("check", str(old_tree), definitions=None)
    assert result.returncode == 2
    assert "holds no Dockerfile of a known service (adservice, cartservice" in result.stderr


def test_broken_definitions_file_exits_2_naming_it(old_tree: Path, tmp_path: Path) -> None:
    broken = tmp_path / "defs.toml"
    broken.write_text('[[revision]]\ncommit = "abc"\n')
    result = run("check", str(old_tree), definitions=str(broken))
    assert result.returncode == 2
    assert (
        f"{broken}: revision #1: key 'commit' = 'abc' is not a full 40-hex-digit" in result.stderr
    )


def test_record_reproduces_the_fixture_definitions() -> None:
    """The maintainer tool regenerates exactly the recorded blocks from the fixture trees."""
    recorded = (FIXTURES / "definitions.toml").read_text()
    for tree, commit, tag in (("old", OLD, "fixture-v0"), ("new", NEW, "fixture-v0.10.6")):
        result = record(str(FIXTURES / tree), "--commit", commit, "--tag", tag, "--like", commit)
        assert result.returncode == 0, result.stderr
        assert result.stdout in recorded


def test_record_stops_where_an_operation_no_longer_fits(tmp_path: Path) -> None:
    root = tmp_path / "new"
    shutil.copytree(FIXTURES / "new", root)
    node = root / "src" / "nodesvc" / "Dockerfile"
    node.write_text(node.read_text().replace("node:20-alpine", "node:22-alpine AS deps\nFROM deps"))
    result = record(str(root), "--commit", "c" * 40, "--like", NEW)
    assert result.returncode == 2
    assert "src/nodesvc/Dockerfile: precondition of drop --platform" in result.stderr
    assert "line 9: expected FROM --platform=$BUILDPLATFORM node:… AS builder" in result.stderr


def test_apply_through_a_link_out_of_the_tree_exits_2_and_changes_nothing(
    old_tree: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (old_tree / "src" / "pysvc").rename(elsewhere)
    (old_tree / "src" / "pysvc").symlink_to(elsewhere, target_is_directory=True)
    outside, inside = (elsewhere / "Dockerfile").read_bytes(), snapshot(old_tree)
    result = run("apply", str(old_tree), "--json")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"patches apply: src/pysvc/Dockerfile resolves to {elsewhere / 'Dockerfile'}, outside "
        f"SOURCE_DIR {old_tree} (a symlink leads out of the tree); nothing was changed\n"
    )
    assert (elsewhere / "Dockerfile").read_bytes() == outside
    assert snapshot(old_tree) == inside


# `patches.cli.main` run in this process (mutation testing sees what it reaches).

CHECK_OLD = (
    "untouched: src/gosvc/Dockerfile\n"
    "needs patch: src/nodesvc/Dockerfile\n"
    "needs patch: src/pysvc/Dockerfile\n"
)


def test_main_reads_the_arguments_it_is_given_not_the_process_command_line(
    old_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["python -m patches", "apply", "--bogus"])
    assert cli.main(["check", str(old_tree), "--definitions", DEFINITIONS]) == 1
    assert capsys.readouterr() == (CHECK_OLD, "upstream aaaaaaaa (fixture-v0)\n")


def test_main_without_arguments_reads_the_process_command_line(
    old_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    command_line = ["python -m patches", "check", str(old_tree), "--definitions", DEFINITIONS]
    monkeypatch.setattr(sys, "argv", command_line)
    assert cli.main() == 1
    assert capsys.readouterr() == (CHECK_OLD, "upstream aaaaaaaa (fixture-v0)\n")


def test_main_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 2
    assert capsys.readouterr() == (
        "",
        "usage: python -m patches [-h] COMMAND ...\n"
        "python -m patches: error: the following arguments are required: COMMAND\n",
    )
