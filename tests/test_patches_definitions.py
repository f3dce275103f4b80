"""Definitions: the shipped patch sets are the documented ones; malformed files are refused."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from patches import record
from patches.definitions import (
    DEFAULT_DEFINITIONS,
    DefinitionsError,
    content_digest,
    line_fingerprint,
    load,
)
from patches.operations import DropFromPlatform, RemoveArgDefault, RemoveGlobalArg

V0 = "5f4ccc7d1c4312c72e97cba777c4f6a586026e59"
V0_10_6 = "5b3a712ab85ccb8f6f7cd5b720d36ba9a8d041eb"
PYTHON = ("emailservice", "loadgenerator", "recommendationservice", "shoppingassistantservice")
NODE = ("currencyservice", "paymentservice")
GO = ("checkoutservice", "frontend", "productcatalogservice", "shippingservice")
ALL = ("adservice", "cartservice", *GO, *NODE, *PYTHON)


def test_shipped_definitions_cover_both_commits_and_every_service() -> None:
    definitions = load(DEFAULT_DEFINITIONS)
    assert [(r.commit, r.tag) for r in definitions.revisions] == [(V0, "v0"), (V0_10_6, "v0.10.6")]
    for revision in definitions.revisions:
        assert sorted(f.service for f in revision.files) == sorted(ALL)
        cart = revision.file("cartservice")
        assert cart is not None
        assert cart.path == "src/cartservice/src/Dockerfile"
        for file in revision.files:
            assert file.path in (f"src/{file.service}/Dockerfile", cart.path)
            assert (file.patched != file.pristine) == bool(file.operations)


def test_v0_patches_only_the_python_and_node_stages() -> None:
    revision = load(DEFAULT_DEFINITIONS).revision(V0)
    assert revision is not None
    operations = {f.service: f.operations for f in revision.files}
    for service in ("adservice", "cartservice", *GO):
        assert operations[service] == (), f"{service} must stay byte-identical at v0"
    for service in PYTHON:
        assert operations[service] == (DropFromPlatform(stage="base", image="python:"),)
    for service in NODE:
        assert operations[service] == (DropFromPlatform(stage="builder", image="node:"),)


def test_v0_10_6_also_removes_the_pinning_arg_defaults() -> None:
    revision = load(DEFAULT_DEFINITIONS).revision(V0_10_6)
    assert revision is not None
    operations = {f.service: f.operations for f in revision.files}
    for service in ALL:
        first = operations[service][0]
        assert isinstance(first, RemoveGlobalArg)
        assert (first.name, first.default) == ("BUILDPLATFORM", "linux/amd64")
    assert operations["adservice"][1:] == ()
    assert operations["cartservice"][1:] == (
        RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64"),
    )
    for service in GO:
        assert operations[service][1:] == (
            RemoveArgDefault(stage="builder", name="TARGETOS", default="linux"),
            RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64"),
        )
    for service in PYTHON:
        assert operations[service][1:] == (DropFromPlatform(stage="base", image="python:"),)
    for service in NODE:
        assert operations[service][1:] == (DropFromPlatform(stage="builder", image="node:"),)


def test_digests_ignore_crlf_and_fingerprints_name_lines() -> None:
    assert content_digest("a\nb\n") == content_digest("a\r\nb\r\n") != content_digest("a\nb")
    assert len(line_fingerprint("x\ny\n")) == 4
    assert line_fingerprint("x\ny\n") == line_fingerprint("x\r\ny")


REVISION = 'commit = "' + "a" * 40 + '"\n'
FILE = (
    '[[revision.file]]\nservice = "svc"\npath = "src/svc/Dockerfile"\n'
    f'pristine = "{"0" * 64}"\nlines = "00"\n'
)
PATCHED = f'patched = "{"1" * 64}"\npatched_lines = "01"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("revision = 1\n", "key 'revision' must be an array of tables"),
        ("[[revision]]\ncommit = 'abc'\n", "revision #1: key 'commit' = 'abc' is not a full"),
        ("[[revision]]\n" + REVISION + "branch = 'x'\n", "unknown key 'branch'; allowed: commit"),
        ("[[revision]]\n" + REVISION + "[[revision]]\n" + REVISION, "a commit is listed twice"),
        (
            "[[revision]]\n"
            + REVISION
            + FILE
            + FILE.replace("[[revision.file]]\n", "\n[[revision.file]]\n"),
            "a service is listed twice",
        ),
        (
            "[[revision]]\n" + REVISION + FILE.replace("src/svc", "../svc"),
            "key 'path' = '../svc/Dockerfile' must stay inside the checkout",
        ),
        (
            "[[revision]]\n" + REVISION + FILE.replace('"0000', '"zz00'),
            "file #1: key 'pristine'",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + PATCHED,
            "'patched' and 'patched_lines' need 'patches'",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + PATCHED + 'patches = [{ op = "rewrite" }]\n',
            "patch #1: key 'op' = 'rewrite' is not an operation; allowed: drop-from-platform",
        ),
        (
            "[[revision]]\n"
            + REVISION
            + FILE
            + PATCHED
            + 'patches = [{ op = "drop-from-platform" }]\n',
            "drop-from-platform needs keys image, platform, stage",
        ),
        (
            "[[revision]]\n"
            + REVISION
            + FILE
            + PATCHED
            + 'patches = [{ op = "remove-global-arg", name = "X", default = "y", why = "z" }]\n',
            "unknown key 'why'; allowed: comment, default, name",
        ),
        (
            "[[revision]]\n"
            + REVISION
            + FILE
            + PATCHED
            + 'patches = [{ op = "remove-global-arg", name = "X", default = 1 }]\n',
            "key 'default' = 1 must be a string",
        ),
        ("[[revision]\n", "cannot read patch definitions"),
    ],
)
def test_malformed_definitions_are_refused_naming_the_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    path, error = refusal(tmp_path, text)
    assert error.startswith(str(path))
    assert message in error


def refusal(tmp_path: Path, text: str) -> tuple[Path, str]:
    """The definitions file written with `text`, and the message `load` refuses it with."""
    path = tmp_path / "definitions.toml"
    path.write_text(text)
    with pytest.raises(DefinitionsError) as raised:
        load(path)
    return path, str(raised.value)


OPS = 'patches = [{ op = "drop-from-platform", stage = "base", image = "python:" }]\n'
FIRST_FILE = ": revision #1 (aaaaaaaa) file #1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("revision = [1]\n", ": revision #1: expected a table, found 1"),
        (
            "[[revision]]\n" + REVISION + "file = 1\n",
            ": revision #1: key 'file' must be an array of tables",
        ),
        ("[[revision]]\n" + REVISION + "file = [1]\n", f"{FIRST_FILE}: expected a table, found 1"),
        (
            "[[revision]]\n" + REVISION + FILE.replace('"svc"', '"Svc"'),
            f"{FIRST_FILE}: key 'service' = 'Svc' is not a service name",
        ),
        (
            "[[revision]]\n" + REVISION + FILE.replace('"src/svc', '"/src/svc'),
            f"{FIRST_FILE}: key 'path' = '/src/svc/Dockerfile' is not a relative path",
        ),
        (
            "[[revision]]\n" + REVISION + FILE.replace('"0000', '"zz00'),
            f"{FIRST_FILE}: key 'pristine' = 'zz{'0' * 62}' is not a sha256 hex digest",
        ),
        (
            "[[revision]]\n" + REVISION + FILE.replace('lines = "00"', 'lines = "0"'),
            f"{FIRST_FILE}: key 'lines' = '0' is not a line fingerprint (hex pairs)",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + 'patched_lines = "01"\n',
            f"{FIRST_FILE}: 'patched' and 'patched_lines' need 'patches'",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + f'patched = "{"1" * 64}"\n',
            f"{FIRST_FILE}: 'patched' and 'patched_lines' need 'patches'",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + PATCHED.replace("1" * 64, "1" * 63) + OPS,
            f"{FIRST_FILE}: key 'patched' = '{'1' * 63}' is not a sha256 hex digest",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + PATCHED.replace('"01"', '"0"') + OPS,
            f"{FIRST_FILE}: key 'patched_lines' = '0' is not a line fingerprint",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + "patches = [1]\n",
            f"{FIRST_FILE} patch #1: expected a table, found 1",
        ),
        ("branch = 1\n", ": unknown key 'branch'; allowed: revision"),
        (
            "[[revision]]\n" + REVISION + FILE + 'why = "x"\n',
            f"{FIRST_FILE}: unknown key 'why'; "
            "allowed: lines, patched, patched_lines, patches, path, pristine, service",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + "patches = 1\n",
            f"{FIRST_FILE}: key 'patches' must be an array of tables",
        ),
        (
            "[[revision]]\n" + REVISION + FILE + PATCHED + 'patches = [{ stage = "base" }]\n',
            f"{FIRST_FILE} patch #1: key 'op' = None is not an operation; "
            "allowed: drop-from-platform, remove-arg-default, remove-global-arg",
        ),
    ],
)
def test_each_malformed_entry_is_refused_with_the_whole_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path, error = refusal(tmp_path, text)
    assert error == f"{path}{message}"


def test_a_revision_without_a_tag_is_named_by_its_short_commit(tmp_path: Path) -> None:
    path = tmp_path / "definitions.toml"
    path.write_text("[[revision]]\n" + REVISION + FILE)
    (revision,) = load(path).revisions
    assert (revision.tag, revision.label) == ("", "aaaaaaaa")


@pytest.mark.usefixtures("ascii_locale")
def test_definitions_are_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    path = tmp_path / "definitions.toml"
    path.write_bytes(("[[revision]]\n" + REVISION + 'tag = "v0-β"\n' + FILE).encode())
    (revision,) = load(path).revisions
    assert revision.label == "aaaaaaaa (v0-β)"


# The maintainer tool `python -m patches.record`, run in this process (mutation testing sees
# what it reaches; tests/test_patches_cli.py runs it as a process).

RECORD_FIXTURES = Path(__file__).parent / "fixtures" / "patches"


@pytest.mark.parametrize(
    ("tree", "commit", "tag"),
    [("old", "a" * 40, "fixture-v0"), ("new", "b" * 40, "fixture-v0.10.6")],
)
def test_record_prints_the_recorded_block_of_each_fixture_tree(
    capsys: pytest.CaptureFixture[str], tree: str, commit: str, tag: str
) -> None:
    definitions = str(RECORD_FIXTURES / "definitions.toml")
    arguments = [str(RECORD_FIXTURES / tree), "--commit", commit, "--tag", tag]
    assert record.main([*arguments, "--like", commit, "--definitions", definitions]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith("[[revision]]\n")
        and printed in (RECORD_FIXTURES / "definitions.toml").read_text()
    )
    # --like is required: which recorded definitions carry over must always be said.
    with pytest.raises(SystemExit):
        record.main([*arguments, "--definitions", definitions])


def test_record_refuses_a_tree_an_operation_no_longer_fits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "new"
    shutil.copytree(RECORD_FIXTURES / "new", root)
    node = root / "src" / "nodesvc" / "Dockerfile"
    node.write_text(node.read_text().replace("node:20-alpine", "node:22-alpine AS deps\nFROM deps"))
    definitions = str(RECORD_FIXTURES / "definitions.toml")
    arguments = [str(root), "--commit", "c" * 40, "--like", "b" * 40, "--definitions", definitions]
    assert record.main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "src/nodesvc/Dockerfile" in captured.err


def test_record_help_shows_its_usage_and_what_each_option_is_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one usage line, whatever the terminal
    with pytest.raises(SystemExit) as exited:
        record.main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    # --commit and --like are required (no brackets); --tag and --definitions are optional.
    assert shown.startswith(
        "usage: python -m patches.record [-h] --commit COMMIT [--tag TAG] --like KNOWN_SHA "
        "[--definitions DEFINITIONS] SOURCE_DIR\n"
    )
    assert "\nMaintainer tool: record a new upstream revision's patch set from a checkout" in shown
    for option, purpose in [
        ("--commit COMMIT", "full sha of the new upstream commit"),
        ("--tag TAG", "its tag, for messages"),
        ("--like KNOWN_SHA", "revision to copy"),
    ]:
        assert re.search(rf"\n  {option} +{purpose}\n", shown), (option, shown)
    assert re.search(r"\n  SOURCE_DIR\n", shown), shown


def test_record_without_a_tag_prints_an_empty_one(capsys: pytest.CaptureFixture[str]) -> None:
    definitions = str(RECORD_FIXTURES / "definitions.toml")
    arguments = [str(RECORD_FIXTURES / "old"), "--commit", "c" * 40, "--like", "a" * 40]
    assert record.main([*arguments, "--definitions", definitions]) == 0
    assert capsys.readouterr().out.startswith(f'[[revision]]\ncommit = "{"c" * 40}"\ntag = ""\n')


def test_record_reads_the_shipped_definitions_by_default_and_names_them_when_like_is_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    unknown = "d" * 40
    arguments = [str(RECORD_FIXTURES / "old"), "--commit", "c" * 40, "--like", unknown]
    assert record.main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"patches.record: --like {unknown!r} is not in {DEFAULT_DEFINITIONS}\n"
