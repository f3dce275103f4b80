"""The command line that patches the configured services' Dockerfiles, and how to read its result.

The DockerfilePatches component runs `patch_command` with `pulumi_command.local.run_output` on
every preview and up. For the commit cache (a git source) the line first runs `patches check`:
only when it reports drift (exit 2) are the configured Dockerfiles restored from the pinned
commit, then `patches apply` runs. A cache patched by an older patch set (or by hand) would
otherwise read as drift forever, and the cache is ours to rewrite; a tree that is pristine or
already patched is not touched at all, so a build of another stack reading the same cache never
sees a file mid-rewrite. A checkout the user provides (`source.path`) is patched as it is, and
drift there fails the run. `umask 022` keeps restored files' modes, which the image context hash
includes, the same on every machine.
"""

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NO_PATCH = "none"
"""The patch-id label value of a Dockerfile no patch applies to."""


@dataclass(frozen=True)
class PatchedDockerfile:
    """A Dockerfile as the images build it, after the patches."""

    path: str
    """Path of the Dockerfile: the checkout root joined with the tool's relative path."""
    patch_id: str
    """The tool's `patchId` (sha256 of the definitions applied), or NO_PATCH."""


def patch_command(
    python: str, root: str, services: Sequence[str], dockerfiles: Sequence[str], commit: str | None
) -> str:
    """Apply the patches to `services`, first restoring `dockerfiles` from `commit` (when given)
    if the tree has drifted; prints `python -m patches apply --json` output."""
    revision = [] if commit is None else ["--revision", commit]
    selection = [*revision, *(arg for service in services for arg in ("--service", service))]
    # After `--` the checkout root is never read as an option, whatever it starts with.
    apply = shlex.join([python, "-m", "patches", "apply", "--json", *selection, "--", root])
    if commit is None:
        return apply
    check = shlex.join([python, "-m", "patches", "check", *selection, "--", root])
    git = ["git", "-c", "core.autocrlf=false", "-C", root]
    restore = shlex.join([*git, "checkout", "--quiet", commit, "--", *dockerfiles])
    # `$?` after `||` is check's exit status: 0 (patched) and 1 (pristine) skip the restore.
    return f"umask 022 && {{ {check} >/dev/null 2>&1 || [ $? -ne 2 ] || {restore}; }} && {apply}"


def parse_patch_result(root_and_stdout: Sequence[str]) -> Mapping[str, PatchedDockerfile]:
    """The tool's JSON (`{revision, files: [{service, path, status, patchId}]}`) as the
    Dockerfile per service. `status` is left out on purpose: it differs between a first and a
    second run, so it must never reach a resource input."""
    root, stdout = root_and_stdout
    document = json.loads(stdout)
    return {
        entry["service"]: PatchedDockerfile(
            path=f"{root}/{entry['path']}", patch_id=entry["patchId"] or NO_PATCH
        )
        for entry in document["files"]
    }
