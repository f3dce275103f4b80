"""Ensure the upstream source is on disk at exactly the pinned commit.

A git source lives in `<cache-dir>/<commit>`: fetched (that commit only, shallow) into a staging
directory beside it, checked out detached, HEAD verified, then renamed into place, so an
interrupted run never leaves a half-written checkout where the program looks. A present checkout
whose HEAD is the commit is reused as it is (the patch engine edits Dockerfiles in place and
keeps them idempotent), and one at another commit is replaced. Runs of the same commit at once
(two stacks deployed on one machine) end with the one checkout whichever renames first.

Files are written under umask 022 so their permission bits, which the build context hash includes,
are the same on every machine (phantom rebuilds, pulumi-docker-build #222/#358).
"""

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from host.contract import CheckoutResult
from host.process import HostError, run, run_checked

_GIT_ENV = {
    # Never wait for a password on a CI runner: fail instead.
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
_GIT_CONFIG = ("-c", "core.autocrlf=false", "-c", "advice.detachedHead=false")


def ensure_git_checkout(
    url: str, commit: str, cache_dir: Path, required: Sequence[str]
) -> CheckoutResult:
    """The checkout of `url` at `commit` in `cache_dir/commit`, fetched if missing or wrong."""
    target = cache_dir / commit
    if _head(target) == commit:
        _require(target, commit, required)
        return CheckoutResult(path=str(target), commit=commit, url=url, action="reused")
    cache_dir.mkdir(parents=True, exist_ok=True)
    previous_umask = os.umask(0o022)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=cache_dir))
    # mkdtemp creates 0700; give the checkout root the same mode as everything under it.
    staging.chmod(0o755)
    try:
        _fetch(url, commit, staging)
        _require(staging, commit, required)
        _move_into_place(staging, target, commit)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.umask(previous_umask)
    return CheckoutResult(path=str(target), commit=commit, url=url, action="cloned")


def use_existing_checkout(path: Path, required: Sequence[str]) -> CheckoutResult:
    """A checkout the user provides, checked for the files the build needs."""
    if not path.is_dir():
        raise HostError(f"source path {path} is not a directory")
    commit = _head(path)
    _require(path, commit or "its working tree", required)
    return CheckoutResult(path=str(path), commit=commit, url=None, action="reused")


def _git(directory: Path, *args: str) -> list[str]:
    return ["git", *_GIT_CONFIG, "-C", str(directory), *args]


def _head(directory: Path) -> str | None:
    """HEAD of the work tree at exactly `directory`, or None when it is not the top of one."""
    if not (directory / ".git").exists():
        return None
    result = run(_git(directory, "rev-parse", "HEAD"), env=_GIT_ENV)
    return result.stdout.strip() if result.returncode == 0 else None


def _fetch(url: str, commit: str, staging: Path) -> None:
    what = f"fetching commit {commit} from {url}"
    run_checked(_git(staging, "init", "--quiet"), what, env=_GIT_ENV)
    run_checked(
        # After `--`, git never reads the URL as an option (`--upload-pack=...` runs a command).
        _git(staging, "fetch", "--quiet", "--depth", "1", "--no-tags", "--", url, commit),
        what,
        env=_GIT_ENV,
    )
    run_checked(_git(staging, "checkout", "--quiet", "--detach", "FETCH_HEAD"), what, env=_GIT_ENV)
    head = _head(staging)
    if head != commit:
        raise HostError(f"{what}: HEAD is {head}, not the requested commit")


def _require(root: Path, commit: str, required: Sequence[str]) -> None:
    missing = [path for path in required if not (root / path).is_file()]
    if missing:
        raise HostError(
            f"the checkout at {commit} has no {', '.join(missing)}; "
            "is this the Online Boutique repository?"
        )


def _move_into_place(staging: Path, target: Path, commit: str) -> None:
    """Rename `staging` to `target`; a target at another commit is moved aside and removed."""
    if target.exists():
        if _head(target) == commit:
            # Another run finished the same checkout first; keep its copy.
            shutil.rmtree(staging, ignore_errors=True)
            return
        stale = Path(tempfile.mkdtemp(prefix=f".{commit}.stale.", dir=target.parent))
        target.rename(stale / "checkout")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError as error:
        # Another run of the same commit put its checkout there since the check above.
        if _head(target) == commit:
            shutil.rmtree(staging, ignore_errors=True)
            return
        raise HostError(
            f"cannot move the checkout of {commit} into {target}: {error.strerror}; "
            "remove what is there and run again"
        ) from error
