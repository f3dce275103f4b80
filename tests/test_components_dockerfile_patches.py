"""The DockerfilePatches command line and parser, run for real on a git work tree.

The tree is the patch engine's v0-shaped fixture (tests/fixtures/patches/old), committed to a
fresh git repository. The fixture definitions name a made-up commit, so a copy of them names
the repository's real HEAD instead; the component's exact command line (`plan.patching`) gets
`--definitions` for its `check` and `apply` and runs as pulumi-command runs it: `/bin/sh -c`
from the project directory.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from patches.definitions import load
from plan.patching import NO_PATCH, PatchedDockerfile, parse_patch_result, patch_command
from plan.tools import interpreter
from tests.program_mocks import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "patches"
FIXTURE_COMMIT = "a" * 40
SERVICES = ["pysvc", "nodesvc", "gosvc"]
DOCKERFILES = [f"src/{service}/Dockerfile" for service in SERVICES]
PYTHON = interpreter(sys.executable, str(ROOT))


def git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, str, Path]:
    """A git work tree shaped like upstream v0, its HEAD, and definitions naming that HEAD."""
    root = tmp_path / "upstream"
    shutil.copytree(FIXTURES / "old", root)
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "v0")
    head = git(root, "rev-parse", "HEAD")
    definitions = tmp_path / "definitions.toml"
    text = (FIXTURES / "definitions.toml").read_text()
    definitions.write_text(text.replace(FIXTURE_COMMIT, head))
    return root, head, definitions


def run(line: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", line], cwd=ROOT, capture_output=True, text=True, check=False
    )


def patch_line(root: Path, commit: str | None, definitions: Path) -> str:
    """The component's line, with the test definitions given to both `check` and `apply`."""
    line = patch_command(str(root), SERVICES, DOCKERFILES, commit, PYTHON)
    for command in ("check", "apply"):
        line = line.replace(
            f"-m patches {command} ", f"-m patches {command} --definitions {definitions} "
        )
    assert line.count("--definitions") == (1 if commit is None else 2), line
    return line


def expected(root: Path, commit: str, definitions: Path) -> dict[str, PatchedDockerfile]:
    revision = load(definitions).revision(commit)
    assert revision is not None
    files = {}
    for service in SERVICES:
        definition = revision.file(service)
        assert definition is not None
        files[service] = PatchedDockerfile(
            path=f"{root}/{definition.path}", patch_id=definition.patch_id or NO_PATCH
        )
    return files


def test_the_tools_json_becomes_a_dockerfile_and_patch_id_per_service(
    checkout: tuple[Path, str, Path],
) -> None:
    root, head, definitions = checkout
    first = run(patch_line(root, head, definitions))
    assert first.returncode == 0, first.stderr
    parsed = parse_patch_result([str(root), first.stdout])
    assert parsed == expected(root, head, definitions)
    assert parsed["gosvc"].patch_id == NO_PATCH
    assert parsed["pysvc"].patch_id != NO_PATCH
    # A second run (every preview and up) gives the same result and rewrites nothing: a build
    # of another stack reading this cache never sees a file mid-rewrite.
    patched = {path: (root / path).read_bytes() for path in DOCKERFILES}
    written = {path: os.stat(root / path).st_mtime_ns for path in DOCKERFILES}
    second = run(patch_line(root, head, definitions))
    assert second.returncode == 0, second.stderr
    assert parse_patch_result([str(root), second.stdout]) == parsed
    assert {path: (root / path).read_bytes() for path in DOCKERFILES} == patched
    assert {path: os.stat(root / path).st_mtime_ns for path in DOCKERFILES} == written
    assert git(root, "status", "--porcelain", "--", "src/gosvc") == ""


def test_a_checkout_patched_otherwise_is_restored_from_the_commit_first(
    checkout: tuple[Path, str, Path],
) -> None:
    root, head, definitions = checkout
    assert run(patch_line(root, head, definitions)).returncode == 0
    patched = (root / "src/pysvc/Dockerfile").read_bytes()
    # As an older patch set (or a hand edit) would have left it: the engine calls it drift.
    (root / "src/pysvc/Dockerfile").write_bytes(patched.replace(b"FROM ", b"FROM  ", 1))
    apply_only = run(
        patch_line(root, None, definitions).replace(" --json ", f" --json --revision {head} ")
    )
    assert apply_only.returncode == 2, apply_only.stderr
    assert "src/pysvc/Dockerfile" in apply_only.stderr
    restored = run(patch_line(root, head, definitions))
    assert restored.returncode == 0, restored.stderr
    assert (root / "src/pysvc/Dockerfile").read_bytes() == patched


def test_a_users_checkout_is_not_restored_and_drift_fails_with_the_tools_message(
    checkout: tuple[Path, str, Path],
) -> None:
    root, _, definitions = checkout
    drifted = (root / "src/nodesvc/Dockerfile").read_text() + "RUN echo local change\n"
    (root / "src/nodesvc/Dockerfile").write_text(drifted)
    before = {path: (root / path).read_bytes() for path in DOCKERFILES}
    line = patch_line(root, None, definitions)
    assert "git" not in line
    result = run(line)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "src/nodesvc/Dockerfile" in result.stderr and "drift" in result.stderr
    assert {path: (root / path).read_bytes() for path in DOCKERFILES} == before


def test_restored_dockerfiles_get_the_same_mode_whatever_the_callers_umask(
    checkout: tuple[Path, str, Path],
) -> None:
    root, head, definitions = checkout
    assert run(patch_line(root, head, definitions)).returncode == 0
    patched = (root / "src/pysvc/Dockerfile").read_bytes()
    (root / "src/pysvc/Dockerfile").write_bytes(patched + b"# edited\n")
    # The restore rewrites the drifted and patched files (git writes them with the process's
    # umask, the engine keeps the mode it finds); the context hash includes modes, so a
    # runner's umask must not change them.
    result = run(f"umask 077; {patch_line(root, head, definitions)}")
    assert result.returncode == 0, result.stderr
    assert (root / "src/pysvc/Dockerfile").read_bytes() == patched
    for path in DOCKERFILES:
        assert stat.S_IMODE(os.stat(root / path).st_mode) == 0o644, path


def test_a_checkout_root_that_looks_like_an_option_is_patched_as_a_directory(
    checkout: tuple[Path, str, Path], tmp_path: Path
) -> None:
    """The root follows `--`: a directory named `--help`, relative to where the line runs, is
    patched (read as an option, the tool would print its help, exit 0 and patch nothing)."""
    root, _, definitions = checkout
    (tmp_path / "--help").symlink_to(root)
    line = patch_command("--help", SERVICES, DOCKERFILES, None, sys.executable).replace(
        " --json ", f" --json --definitions {definitions} "
    )
    result = subprocess.run(
        ["/bin/sh", "-c", line],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed = parse_patch_result(["--help", result.stdout])
    assert parsed["pysvc"].path == "--help/src/pysvc/Dockerfile"
    assert parsed["pysvc"].patch_id != NO_PATCH
    assert git(root, "status", "--porcelain", "--", "src/pysvc") == "M src/pysvc/Dockerfile"


def test_the_line_checks_restores_and_applies_at_the_commit_with_the_given_interpreter() -> None:
    line = patch_command("up", ["pysvc", "gosvc"], DOCKERFILES[::2], FIXTURE_COMMIT, "py")
    check = f"py -m patches check --revision {FIXTURE_COMMIT} --service pysvc --service gosvc -- up"
    restore = (
        f"git -c core.autocrlf=false -C up checkout --quiet {FIXTURE_COMMIT} -- "
        "src/pysvc/Dockerfile src/gosvc/Dockerfile"
    )
    apply = (
        f"py -m patches apply --json --revision {FIXTURE_COMMIT} --service pysvc --service gosvc "
        "-- up"
    )
    assert line == (
        f"umask 022 && {{ {check} >/dev/null 2>&1 || [ $? -ne 2 ] || {restore}; }} && {apply}"
    )
