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

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from patches.contract import PatchReport, PatchRequest
from plan.tools import tool_command

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
    root: str,
    services: Sequence[str],
    dockerfiles: Sequence[str],
    commit: str | None,
    python: str | None = None,
) -> str:
    """Apply the patches to `services`, first restoring `dockerfiles` from `commit` (when given)
    if the tree has drifted; prints `python -m patches apply --json` output (`python`: see
    `plan.tools.tool_command`)."""
    services = tuple(services)
    apply = tool_command(PatchRequest("apply", root, services, revision=commit, json=True), python)
    if commit is None:
        return apply
    check = tool_command(PatchRequest("check", root, services, revision=commit), python)
    git = ["git", "-c", "core.autocrlf=false", "-C", root]
    restore = shlex.join([*git, "checkout", "--quiet", commit, "--", *dockerfiles])
    # `$?` after `||` is check's exit status: 0 (patched) and 1 (pristine) skip the restore.
    return f"umask 022 && {{ {check} >/dev/null 2>&1 || [ $? -ne 2 ] || {restore}; }} && {apply}"


def parse_patch_result(root_and_stdout: Sequence[str]) -> Mapping[str, PatchedDockerfile]:
    """The tool's `patches.contract.PatchReport` as the Dockerfile per service. `status` is
    left out on purpose: it differs between a first and a second run, so it must never reach
    a resource input."""
    root, stdout = root_and_stdout
    return {
        file.service: PatchedDockerfile(
            path=f"{root}/{file.path}", patch_id=file.patch_id or NO_PATCH
        )
        for file in PatchReport.from_json(stdout).files
    }
