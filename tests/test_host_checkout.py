"""`python -m host checkout`, run for real against a local bare git repository (file://)."""

import http.server
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from host import __main__ as host_cli
from host.checkout import ensure_git_checkout, use_existing_checkout
from host.contract import CheckoutResult
from host.process import HostError
from plan.host_commands import checkout_request
from plan.settings import GitSource, PathSource
from plan.tools import tool_command
from tests.integration.conftest import missing_prerequisite
from tests.program_mocks import ROOT

DOCKERFILE = "src/emailservice/Dockerfile"
CART_DOCKERFILE = "src/cartservice/src/Dockerfile"


@dataclass(frozen=True)
class Upstream:
    """A bare repository with two commits; `first` is not the tip (fetched by SHA)."""

    url: str
    first: str
    second: str
    work: Path


def _git(cwd: Path, *args: str) -> str:
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.com")
    result = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return make_upstream(tmp_path)


def make_upstream(tmp_path: Path) -> Upstream:
    """A work tree with emailservice and cartservice Dockerfiles, and its bare clone."""
    work = tmp_path / "work"
    (work / "src/emailservice").mkdir(parents=True)
    (work / "src/cartservice/src").mkdir(parents=True)
    (work / DOCKERFILE).write_text("FROM scratch\n")
    (work / CART_DOCKERFILE).write_text("FROM scratch\n")
    (work / "src/emailservice/run.sh").write_text("#!/bin/sh\n")
    (work / "src/emailservice/run.sh").chmod(0o755)
    _git(tmp_path, "init", "--quiet", "-b", "main", str(work))
    _git(work, "add", ".")
    _git(work, "commit", "--quiet", "-m", "first")
    first = _git(work, "rev-parse", "HEAD")
    (work / DOCKERFILE).write_text("FROM scratch\nLABEL second=1\n")
    _git(work, "commit", "--quiet", "-am", "second")
    second = _git(work, "rev-parse", "HEAD")
    _git(tmp_path, "clone", "--quiet", "--bare", str(work), str(tmp_path / "upstream.git"))
    return Upstream(f"file://{tmp_path / 'upstream.git'}", first, second, work)


def run_host(
    command_line: str, cwd: Path, env: dict[str, str] | None = None, own_session: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command line the way pulumi-command does: `/bin/sh -c` in the project directory,
    in `env` (default: this process's environment); `own_session`: without a terminal."""
    return subprocess.run(
        ["/bin/sh", "-c", command_line],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=own_session,
        timeout=120,
    )


def checkout(
    project: Path, upstream: Upstream, commit: str, required: tuple[str, ...] = (DOCKERFILE,)
) -> subprocess.CompletedProcess[str]:
    command_line = tool_command(
        checkout_request(GitSource(upstream.url, commit), required), sys.executable
    )
    return run_host(command_line, project)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in project directory (where Pulumi runs commands), with `host` importable."""
    directory = tmp_path / "project"
    directory.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return directory


def test_fetches_exactly_the_pinned_commit_into_the_cache(
    project: Path, upstream: Upstream
) -> None:
    result = checkout(project, upstream, upstream.first)
    assert result.returncode == 0, result.stderr
    ensured = CheckoutResult.from_json(result.stdout)
    assert ensured == CheckoutResult(
        path=f".cache/upstream/{upstream.first}",
        commit=upstream.first,
        url=upstream.url,
        action="cloned",
    )
    root = project / ensured.path
    assert _git(root, "rev-parse", "HEAD") == upstream.first
    assert (root / DOCKERFILE).read_text() == "FROM scratch\n"
    assert sorted(p.name for p in (project / ".cache/upstream").iterdir()) == [upstream.first]


def test_present_checkout_is_reused_without_the_network(project: Path, upstream: Upstream) -> None:
    assert checkout(project, upstream, upstream.first).returncode == 0
    (project / ".cache/upstream" / upstream.first / "src/emailservice/Dockerfile").write_text(
        "FROM scratch\n# patched\n"
    )
    bare = Path(upstream.url.removeprefix("file://"))
    bare.rename(bare.with_suffix(".gone"))
    result = checkout(project, upstream, upstream.first)
    assert result.returncode == 0, result.stderr
    assert CheckoutResult.from_json(result.stdout).action == "reused"
    # Patched files in the checkout are left alone (the patch engine keeps them idempotent).
    patched = project / ".cache/upstream" / upstream.first / DOCKERFILE
    assert patched.read_text() == "FROM scratch\n# patched\n"


def test_checkout_at_another_commit_is_replaced(project: Path, upstream: Upstream) -> None:
    target = project / ".cache/upstream" / upstream.second
    target.parent.mkdir(parents=True)
    _git(project, "clone", "--quiet", str(upstream.work), str(target))
    _git(target, "checkout", "--quiet", "--detach", upstream.first)
    result = checkout(project, upstream, upstream.second)
    assert result.returncode == 0, result.stderr
    assert CheckoutResult.from_json(result.stdout).action == "cloned"
    assert _git(target, "rev-parse", "HEAD") == upstream.second
    assert sorted(p.name for p in target.parent.iterdir()) == [upstream.second]


def test_file_modes_do_not_depend_on_the_callers_umask(project: Path, upstream: Upstream) -> None:
    previous = os.umask(0o077)
    try:
        assert checkout(project, upstream, upstream.first).returncode == 0
    finally:
        os.umask(previous)
    root = project / ".cache/upstream" / upstream.first
    assert stat.S_IMODE((root / DOCKERFILE).stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "src/emailservice/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "src/emailservice").stat().st_mode) == 0o755
    assert stat.S_IMODE(root.stat().st_mode) == 0o755


def test_unknown_commit_fails_clearly_and_leaves_nothing(project: Path, upstream: Upstream) -> None:
    missing = "0" * 40
    result = checkout(project, upstream, missing)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"fetching commit {missing} from {upstream.url} failed" in result.stderr
    assert list((project / ".cache/upstream").iterdir()) == []


def test_an_option_like_url_reaches_git_as_the_repository(
    project: Path, upstream: Upstream, tmp_path: Path
) -> None:
    """Config refuses it; the host tool still passes it after `--`, so git names it as the
    repository it cannot fetch instead of reading it as `--upload-pack` (and the commit as the
    repository)."""
    marker = tmp_path / "upload-pack-ran"
    url = f"--upload-pack=touch {marker}"
    command_line = f"{sys.executable} -m host checkout --url='{url}' --commit {upstream.first} "
    result = run_host(command_line + "--cache-dir .cache/upstream", project)
    assert result.returncode == 2
    assert f"'{url}'" in result.stderr.partition(" failed: ")[2], result.stderr
    assert not marker.exists()
    assert list((project / ".cache/upstream").iterdir()) == []


def test_checkout_without_a_required_dockerfile_is_refused(
    project: Path, upstream: Upstream
) -> None:
    result = checkout(project, upstream, upstream.first, (DOCKERFILE, "src/frontend/Dockerfile"))
    assert result.returncode == 2
    assert f"the checkout at {upstream.first} has no src/frontend/Dockerfile" in result.stderr
    assert list((project / ".cache/upstream").iterdir()) == []


def test_existing_path_is_used_as_it_is(project: Path, upstream: Upstream) -> None:
    command_line = tool_command(
        checkout_request(PathSource(str(upstream.work), None), (DOCKERFILE, CART_DOCKERFILE)),
        sys.executable,
    )
    result = run_host(command_line, project)
    assert result.returncode == 0, result.stderr
    assert CheckoutResult.from_json(result.stdout) == CheckoutResult(
        path=str(upstream.work), commit=upstream.second, url=None, action="reused"
    )
    assert not (project / ".cache").exists()


def test_existing_path_that_is_not_a_directory_is_refused(project: Path, tmp_path: Path) -> None:
    command_line = tool_command(
        checkout_request(PathSource(str(tmp_path / "nowhere"), None), ()), sys.executable
    )
    result = run_host(command_line, project)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: source path {tmp_path / 'nowhere'} is not a directory"


def test_usage_error_exits_2(project: Path, upstream: Upstream) -> None:
    result = run_host(
        f"{sys.executable} -m host checkout --url {upstream.url} --cache-dir c", project
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "python -m host: error: checkout --url needs --commit and --cache-dir"
    )
    assert json.loads(result.stdout or "null") is None


@pytest.mark.parametrize("in_git", [False, True])
def test_an_existing_path_without_a_required_file_names_what_it_is(
    project: Path, upstream: Upstream, tmp_path: Path, in_git: bool
) -> None:
    """A plain directory is named by its working tree, a git work tree by its HEAD commit."""
    source = upstream.work if in_git else tmp_path / "plain"
    source.mkdir(exist_ok=True)
    command_line = tool_command(
        checkout_request(PathSource(str(source), None), ("src/frontend/Dockerfile",)),
        sys.executable,
    )
    result = run_host(command_line, project)
    assert result.returncode == 2 and result.stdout == ""
    what = upstream.second if in_git else "its working tree"
    assert result.stderr.strip() == (
        f"error: the checkout at {what} has no src/frontend/Dockerfile; "
        "is this the Online Boutique repository?"
    )


# In-process: `ensure_git_checkout` and the CLI's `main` called directly, against the same kind of
# local bare repository (fast enough to run for every mutant of host/checkout.py).


def with_post_checkout_hook(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `git init` from now on installs a post-checkout hook running `script` (a shell
    line) in the work tree: a user's git template, which the checkout's own git runs honour."""
    hooks = tmp_path / "template" / "hooks"
    hooks.mkdir(parents=True)
    (hooks / "post-checkout").write_text(f"#!/bin/sh\n{script}\n")
    (hooks / "post-checkout").chmod(0o755)
    monkeypatch.setenv("GIT_TEMPLATE_DIR", str(hooks.parent))


def test_the_result_is_printed_as_one_line_of_sorted_json_cloned_then_reused(
    upstream: Upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    arguments = ["checkout", "--url", upstream.url, "--commit", upstream.first]
    arguments += ["--cache-dir", str(cache), "--require", DOCKERFILE]
    for action in ("cloned", "reused"):
        assert host_cli.main(arguments) == 0
        printed = {"action": action, "commit": upstream.first, "path": str(cache / upstream.first)}
        assert capsys.readouterr().out == json.dumps({**printed, "url": upstream.url}) + "\n"


def test_a_reused_checkout_without_a_required_file_is_named_by_its_commit(
    upstream: Upstream, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    missing = ("src/frontend/Dockerfile", "src/adservice/Dockerfile")
    with pytest.raises(HostError) as refused:
        ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE, *missing))
    assert str(refused.value) == (
        f"the checkout at {upstream.first} has no src/frontend/Dockerfile, "
        "src/adservice/Dockerfile; is this the Online Boutique repository?"
    )
    # The checkout is the right commit, only the wrong repository: it stays for other stacks.
    assert _git(cache / upstream.first, "rev-parse", "HEAD") == upstream.first


@pytest.fixture
def german(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller whose git would speak German (git ships its translations; C.UTF-8 is in every
    glibc): the checkout's git runs must still report in English, the same on every machine."""
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("LANGUAGE", "de")


def test_a_git_that_cannot_start_is_named_with_the_fetch_and_leaves_nothing(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, german: None
) -> None:
    broken = tmp_path / "gitconfig"
    broken.write_text("[core\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(broken))
    cache = tmp_path / "cache"
    with pytest.raises(HostError) as failed:
        ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    assert str(failed.value) == (
        f"fetching commit {upstream.first} from {upstream.url} failed: "
        f"fatal: bad config line 1 in file {broken}"
    )
    assert list(cache.iterdir()) == []


def test_the_fetch_runs_in_a_hidden_directory_named_after_the_commit_beside_the_target(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the target, so the final rename stays on one filesystem (atomic); hidden and named
    after the commit, so what an interrupted run leaves is never taken for a checkout."""
    with_post_checkout_hook(f'pwd >> "{tmp_path / "worked-in"}"', tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    (worked_in,) = (tmp_path / "worked-in").read_text().splitlines()
    assert Path(worked_in).parent == cache
    assert Path(worked_in).name.startswith(f".{upstream.first}.")
    assert sorted(p.name for p in cache.iterdir()) == [upstream.first]


def test_a_checkout_is_replaced_without_the_system_temp_directory(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staging and the old checkout's removal both stay in the cache directory: the system
    temp directory may be another filesystem, where a rename fails (here it does not exist)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temp-dir"))
    cache = tmp_path / "cache"
    target = cache / upstream.second
    cache.mkdir()
    _git(tmp_path, "clone", "--quiet", str(upstream.work), str(target))
    _git(target, "checkout", "--quiet", "--detach", upstream.first)
    result = ensure_git_checkout(upstream.url, upstream.second, cache, (DOCKERFILE,))
    assert result == CheckoutResult(str(target), upstream.second, upstream.url, "cloned")
    assert _git(target, "rev-parse", "HEAD") == upstream.second
    assert sorted(p.name for p in cache.iterdir()) == [upstream.second]
    assert not (tmp_path / "no-temp-dir").exists()


def test_a_directory_at_the_target_that_is_not_a_checkout_is_replaced(
    upstream: Upstream, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    target = cache / upstream.first
    target.mkdir(parents=True)
    (target / "left-by-hand").write_text("not a checkout\n")
    result = ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    assert result == CheckoutResult(str(target), upstream.first, upstream.url, "cloned")
    assert _git(target, "rev-parse", "HEAD") == upstream.first
    assert not (target / "left-by-hand").exists()
    assert sorted(p.name for p in cache.iterdir()) == [upstream.first]


@pytest.fixture
def lock_commands(tmp_path: Path) -> Iterator[str]:
    """Shell commands that make `locked/file` in the current directory, a file this user cannot
    remove: in a read-only directory, and for root (which ignores modes) immutable too. Every
    one under `tmp_path` is unlocked afterwards."""
    commands = "mkdir locked && : > locked/file && chmod 555 locked"
    as_root = os.geteuid() == 0
    if as_root:
        probe = tmp_path / "immutable-probe"
        probe.touch()
        tried = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True, check=False)
        if tried.returncode != 0:
            missing_prerequisite(
                f"root cannot make a file immutable here ({tried.stderr.strip()})",
                "run the tests as a user other than root, or give root CAP_LINUX_IMMUTABLE",
            )
        commands += " && chattr +i locked/file"
    yield commands
    for locked in tmp_path.rglob("locked"):
        if as_root:
            subprocess.run(["chattr", "-i", str(locked / "file")], check=False)
        locked.chmod(0o755)


def test_what_cannot_be_removed_of_a_replaced_checkout_stays_hidden_in_the_cache_dir(
    upstream: Upstream, tmp_path: Path, lock_commands: str
) -> None:
    """The new checkout still takes the old one's place; the remains are set aside in a hidden
    directory named after the commit that replaced them."""
    cache = tmp_path / "cache"
    target = cache / upstream.second
    cache.mkdir()
    _git(tmp_path, "clone", "--quiet", str(upstream.work), str(target))
    _git(target, "checkout", "--quiet", "--detach", upstream.first)
    subprocess.run(["/bin/sh", "-c", lock_commands], cwd=target, check=True)
    result = ensure_git_checkout(upstream.url, upstream.second, cache, (DOCKERFILE,))
    assert result == CheckoutResult(str(target), upstream.second, upstream.url, "cloned")
    assert _git(target, "rev-parse", "HEAD") == upstream.second
    assert not (target / "locked").exists()
    (remains,) = (path for path in cache.iterdir() if path != target)
    assert remains.name.startswith(f".{upstream.second}.stale.")
    left = sorted(str(path.relative_to(remains)) for path in remains.rglob("*"))
    assert left == ["checkout", "checkout/locked", "checkout/locked/file"]


def test_a_staging_directory_that_cannot_be_removed_does_not_hide_why_the_checkout_failed(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_commands: str
) -> None:
    """A git hook (the user's template) leaves a file in the staging directory that cannot be
    removed; the refusal of the checkout is still the error raised."""
    with_post_checkout_hook(lock_commands, tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    with pytest.raises(HostError) as refused:
        ensure_git_checkout(upstream.url, upstream.first, cache, ("src/frontend/Dockerfile",))
    assert str(refused.value) == (
        f"the checkout at {upstream.first} has no src/frontend/Dockerfile; "
        "is this the Online Boutique repository?"
    )
    (remains,) = cache.iterdir()
    assert remains.name.startswith(f".{upstream.first}.")
    assert sorted(str(path.relative_to(remains)) for path in remains.rglob("*")) == [
        "locked",
        "locked/file",
    ]


class _CredentialsRequired(http.server.BaseHTTPRequestHandler):
    """A git HTTP server that asks every request for a user name and password."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="upstream"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_fetch_that_asks_for_credentials_fails_instead_of_waiting_for_them(
    project: Path, monkeypatch: pytest.MonkeyPatch, german: None
) -> None:
    """No credential helper, no askpass program: git would ask on the terminal (and a CI
    runner or a Pulumi command would wait forever); it fails with git's reason, in English.
    Run in a session of its own, so no terminal is there even when the tests have one (where
    code that let git prompt would wait for a user name)."""
    for variable in ("GIT_ASKPASS", "SSH_ASKPASS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    server = http.server.HTTPServer(("127.0.0.1", 0), _CredentialsRequired)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    commit = "1" * 40
    command_line = tool_command(
        checkout_request(GitSource(f"{origin}/upstream.git", commit), (DOCKERFILE,)),
        sys.executable,
    )
    try:
        result = run_host(command_line, project, own_session=True)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: fetching commit {commit} from {origin}/upstream.git failed: "
        f"fatal: could not read Username for '{origin}': terminal prompts disabled\n"
    )
    assert list((project / ".cache/upstream").iterdir()) == []


@pytest.mark.parametrize(
    ("hook", "reason"),
    [
        ("exit 1", "exit status 1"),
        ("git rev-parse --verify refs/no-such-ref; exit 1", "fatal: Needed a single revision"),
    ],
)
def test_a_checkout_a_git_hook_refuses_is_named_with_the_fetch_and_leaves_nothing(
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    german: None,
    hook: str,
    reason: str,
) -> None:
    """A post-checkout hook's exit status is git checkout's: the refusal is git's last word
    (the hook's own, in English like git's) or, when it says nothing, the exit status."""
    with_post_checkout_hook(hook, tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    with pytest.raises(HostError) as failed:
        ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    assert str(failed.value) == (
        f"fetching commit {upstream.first} from {upstream.url} failed: {reason}"
    )
    assert list(cache.iterdir()) == []


def test_a_branch_name_instead_of_a_commit_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    """git fetches a branch as readily as a commit; only a HEAD equal to what was asked for
    proves the checkout is the pinned commit (a branch moves)."""
    cache = tmp_path / "cache"
    with pytest.raises(HostError) as refused:
        ensure_git_checkout(upstream.url, "main", cache, (DOCKERFILE,))
    assert str(refused.value) == (
        f"fetching commit main from {upstream.url}: HEAD is {upstream.second}, "
        "not the requested commit"
    )
    assert list(cache.iterdir()) == []


def test_a_url_with_no_repository_is_named_with_git_s_cause_not_its_advice(
    tmp_path: Path,
) -> None:
    """git states the cause first, then advice ending `and the repository exists.`."""
    url = f"file://{tmp_path / 'nowhere.git'}"
    cache = tmp_path / "cache"
    with pytest.raises(HostError) as failed:
        ensure_git_checkout(url, "1" * 40, cache, (DOCKERFILE,))
    assert str(failed.value) == (
        f"fetching commit {'1' * 40} from {url} failed: "
        f"fatal: '{tmp_path / 'nowhere.git'}' does not appear to be a git repository"
    )
    assert list(cache.iterdir()) == []


def test_a_given_repository_without_commits_has_no_head_commit(tmp_path: Path) -> None:
    """git rev-parse HEAD fails there (and prints `HEAD`); the checkout is named by its tree."""
    source = tmp_path / "fresh"
    _git(tmp_path, "init", "--quiet", str(source))
    (source / "src/frontend").mkdir(parents=True)
    (source / "src/frontend/Dockerfile").write_text("FROM scratch\n")
    result = use_existing_checkout(source, ("src/frontend/Dockerfile",))
    assert result == CheckoutResult(str(source), None, None, "reused")


def test_concurrent_runs_of_one_commit_all_succeed_and_leave_one_checkout(
    project: Path, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stacks deployed at once on one machine fetch the same commit into the same cache.
    A post-checkout hook holds every run until all have fetched, so they reach the rename
    together: whichever loses finds the winner's checkout there and keeps it."""
    runs = 6
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    with_post_checkout_hook(
        f': > "{arrived}/$$"; i=0; '
        f'while [ "$(ls "{arrived}" | wc -l)" -lt {runs} ] && [ $i -lt 3000 ]; '
        "do sleep 0.01; i=$((i+1)); done",
        tmp_path,
        monkeypatch,
    )
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "host", "checkout", "--url", upstream.url]
    command += ["--commit", upstream.first, "--cache-dir", str(cache), "--require", DOCKERFILE]
    processes = [
        subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(runs)
    ]
    outcomes = [(process.wait(timeout=120), *process.communicate()) for process in processes]
    assert [(code, err.decode()) for code, _, err in outcomes] == [(0, "")] * runs
    printed = {json.loads(out)["path"] for _, out, _ in outcomes}
    assert printed == {str(cache / upstream.first)}
    assert [path.name for path in cache.iterdir()] == [upstream.first]
    assert _git(cache / upstream.first, "rev-parse", "HEAD") == upstream.first


def test_a_target_the_checkout_cannot_be_renamed_onto_is_named_and_left_as_it_is(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A dangling symbolic link where the checkout goes (a cache dir moved by hand): the
    checkout is not put anywhere else, and the link is not followed or removed."""
    cache = tmp_path / "cache"
    cache.mkdir()
    target = cache / upstream.first
    target.symlink_to(tmp_path / "gone")
    with pytest.raises(HostError) as failed:
        ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    assert str(failed.value) == (
        f"cannot move the checkout of {upstream.first} into {target}: Not a directory; "
        "remove what is there and run again"
    )
    assert [path.name for path in cache.iterdir()] == [upstream.first]
    assert target.is_symlink() and os.readlink(target) == str(tmp_path / "gone")
    assert not (tmp_path / "gone").exists()


def another_run_renames_first(
    theirs: Path, target: Path, commit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From now on, just before this run renames its staging directory of `commit` onto
    `target`, another run's checkout `theirs` is renamed there (both renames are real)."""
    real_rename = Path.rename

    def rename(self: Path, destination: Path) -> Path:
        if Path(destination) == target and self.name.startswith(f".{commit}."):
            real_rename(theirs, target)
        return real_rename(self, destination)

    monkeypatch.setattr(Path, "rename", rename)


@pytest.mark.parametrize("staging_removable", [True, False])
def test_a_run_that_loses_the_rename_to_another_run_of_the_commit_keeps_the_winner_s_checkout(
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lock_commands: str,
    staging_removable: bool,
) -> None:
    """The interleaving the concurrent test above can only hit by chance, made certain: another
    run's real checkout of the same commit lands on the target between this run's look at the
    target and its rename (the rename itself is the real one, and fails as it would)."""
    cache = tmp_path / "cache"
    winner = Path(ensure_git_checkout(upstream.url, upstream.first, tmp_path / "other", ()).path)
    (winner / "winner").write_text("kept\n")
    target = cache / upstream.first
    another_run_renames_first(winner, target, upstream.first, monkeypatch)
    if not staging_removable:
        with_post_checkout_hook(lock_commands, tmp_path, monkeypatch)
    assert_the_other_checkout_kept(upstream, cache, "kept\n", staging_removable)


def test_a_run_that_loses_the_rename_to_a_run_of_another_commit_is_named(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What lands there first is not this commit's checkout: it is not replaced behind the other
    run's back, and the error names the target."""
    cache = tmp_path / "cache"
    other = Path(ensure_git_checkout(upstream.url, upstream.second, tmp_path / "other", ()).path)
    target = cache / upstream.first
    another_run_renames_first(other, target, upstream.first, monkeypatch)
    with pytest.raises(HostError) as failed:
        ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    assert str(failed.value) == (
        f"cannot move the checkout of {upstream.first} into {target}: Directory not empty; "
        "remove what is there and run again"
    )
    assert _git(target, "rev-parse", "HEAD") == upstream.second
    assert [path.name for path in cache.iterdir()] == [upstream.first]


@pytest.mark.parametrize("staging_removable", [True, False])
def test_a_checkout_another_run_finished_while_this_one_fetched_is_kept(
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lock_commands: str,
    staging_removable: bool,
) -> None:
    """The other run's checkout appears at the target while this one fetches (a post-checkout
    hook copies the fetched tree there): this run keeps it and drops its own copy, and a copy
    that cannot be removed stays hidden beside it without failing the run."""
    cache = tmp_path / "cache"
    target = cache / upstream.first
    hook = f'cp -a . "{target}" && echo winner > "{target}/winner"'
    with_post_checkout_hook(
        hook if staging_removable else f"{hook} && {lock_commands}", tmp_path, monkeypatch
    )
    assert_the_other_checkout_kept(upstream, cache, "winner\n", staging_removable)


def assert_the_other_checkout_kept(
    upstream: Upstream, cache: Path, marker: str, staging_removable: bool
) -> None:
    """A checkout of `upstream.first` into `cache` succeeds, keeping the other run's checkout
    (its `winner` file holds `marker`); this run's copy is gone, or only its locked part stays
    hidden beside it."""
    target = cache / upstream.first
    result = ensure_git_checkout(upstream.url, upstream.first, cache, (DOCKERFILE,))
    assert result == CheckoutResult(str(target), upstream.first, upstream.url, "cloned")
    assert (target / "winner").read_text() == marker
    hidden = sorted(path.name for path in cache.iterdir() if path != target)
    if staging_removable:
        assert hidden == []
    else:
        (left,) = hidden
        assert left.startswith(f".{upstream.first}.")
        assert [path.name for path in (cache / left).iterdir()] == ["locked"]


HELP = [
    (
        [],
        (
            "usage: python -m host [-h] {checkout,builder,registry} ...\n"
            "\n"
            "Command line of the host scripts (run from the project directory with `python -m "
            "host`).\n"
            "\n"
            "positional arguments:\n"
            "  {checkout,builder,registry}\n"
            "    checkout            ensure the upstream checkout\n"
            "    builder             ensure or remove the buildx builder\n"
            "    registry            ensure or remove a loopback registry\n"
            "\n"
            "options:\n"
            "  -h, --help            show this help message and exit\n"
        ),
    ),
    (
        ["checkout"],
        (
            "usage: python -m host checkout [-h] (--url URL | --path PATH) [--commit COMMIT] "
            "[--cache-dir CACHE_DIR] [--require REQUIRE]\n"
            "\n"
            "options:\n"
            "  -h, --help            show this help message and exit\n"
            "  --url URL             git URL to fetch the commit from\n"
            "  --path PATH           an existing checkout to use as it is\n"
            "  --commit COMMIT       full commit SHA to check out (with --url)\n"
            "  --cache-dir CACHE_DIR\n"
            "                        directory of checkouts keyed by commit\n"
            "  --require REQUIRE     a file the checkout must contain\n"
        ),
    ),
    (
        ["builder"],
        (
            "usage: python -m host builder [-h] {ensure,remove} ...\n"
            "\n"
            "positional arguments:\n"
            "  {ensure,remove}\n"
            "    ensure         create or reconcile the builder\n"
            "    remove         remove the builder\n"
            "\n"
            "options:\n"
            "  -h, --help       show this help message and exit\n"
        ),
    ),
    (
        ["builder", "ensure"],
        (
            "usage: python -m host builder ensure [-h] --spec SPEC --owner OWNER\n"
            "\n"
            "options:\n"
            "  -h, --help     show this help message and exit\n"
            "  --spec SPEC    builder spec as JSON\n"
            "  --owner OWNER  the stack ensuring it (organization/project/stack)\n"
        ),
    ),
    (
        ["builder", "remove"],
        (
            "usage: python -m host builder remove [-h] --name NAME [--owner OWNER]\n"
            "\n"
            "options:\n"
            "  -h, --help     show this help message and exit\n"
            "  --name NAME    builder name\n"
            "  --owner OWNER  the stack removing it; without it, an owned builder is kept\n"
        ),
    ),
    (
        ["registry"],
        (
            "usage: python -m host registry [-h] {ensure,remove} ...\n"
            "\n"
            "positional arguments:\n"
            "  {ensure,remove}\n"
            "    ensure         reuse the registry at the address, or start one\n"
            "    remove         stop the registry ensure started for the data directory\n"
            "\n"
            "options:\n"
            "  -h, --help       show this help message and exit\n"
        ),
    ),
    (
        ["registry", "ensure"],
        (
            "usage: python -m host registry ensure [-h] --address ADDRESS --data-dir DATA_DIR "
            "[--image IMAGE]\n"
            "\n"
            "options:\n"
            "  -h, --help           show this help message and exit\n"
            "  --address ADDRESS    loopback host:port, e.g. 127.0.0.1:5000\n"
            "  --data-dir DATA_DIR  config, storage, pid and log files\n"
            "  --image IMAGE        image run under Docker when docker-registry is absent\n"
        ),
    ),
    (
        ["registry", "remove"],
        (
            "usage: python -m host registry remove [-h] --address ADDRESS --data-dir DATA_DIR\n"
            "\n"
            "options:\n"
            "  -h, --help           show this help message and exit\n"
            "  --address ADDRESS    loopback host:port, e.g. 127.0.0.1:5000\n"
            "  --data-dir DATA_DIR  config, storage, pid and log files\n"
        ),
    ),
]
"""What `python -m host ... --help` shows (200 columns): each command, option and its purpose."""


@pytest.mark.parametrize(("command", "shown"), HELP, ids=[" ".join(c) or "host" for c, _ in HELP])
def test_help_shows_each_command_and_option_with_its_purpose(
    command: list[str],
    shown: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per usage, whatever the terminal
    with pytest.raises(SystemExit) as exited:
        host_cli.main([*command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr() == (shown, "")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ([], "the following arguments are required: command"),
        (
            ["checkout"],
            "one of the arguments --url --path is required",
        ),
        (
            ["builder"],
            "the following arguments are required: action",
        ),
        (
            ["registry"],
            "the following arguments are required: action",
        ),
        (
            ["builder", "ensure", "--owner", "o/p/s"],
            "the following arguments are required: --spec",
        ),
        (
            ["builder", "ensure", "--spec", "{}"],
            "the following arguments are required: --owner",
        ),
        (
            ["builder", "remove"],
            "the following arguments are required: --name",
        ),
        (
            ["registry", "ensure", "--data-dir", "d"],
            "the following arguments are required: --address",
        ),
        (
            ["registry", "remove", "--address", "127.0.0.1:5000"],
            "the following arguments are required: --data-dir",
        ),
    ],
)
def test_a_command_line_without_what_it_requires_is_a_usage_error(
    arguments: list[str],
    error: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Usage on the first line (the help tests show it whole), then the one missing piece."""
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        host_cli.main(arguments)
    assert exited.value.code == 2
    prog = " ".join(["python -m host", *(word for word in arguments[:2] if word[0] != "-")])
    out, err = capsys.readouterr()
    assert (out, err.splitlines()[1:]) == ("", [f"{prog}: error: {error}"])
    assert err.startswith(f"usage: {prog} [-h] ")
