"""The command line that patches the configured services' Dockerfiles, and how to read its result.

The DockerfilePatches component runs `patch_command` with `pulumi_command.local.run_output` on
every preview and up. For the commit cache (a git source) the command first restores the
configured Dockerfiles from the pinned commit, then applies the patches: a checkout patched by an
older patch set (or by hand) would otherwise read as drift, and the cache is ours to rewrite.
A checkout the user provides (`source.path`) is patched as it is; drift there is reported.
`umask 022` keeps the restored files' modes, which the image context hash includes, the same on
every machine.
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
    """Restore `dockerfiles` from `commit` (when given) and apply the patches to `services`;
    prints `python -m patches apply --json` output."""
    apply = [python, "-m", "patches", "apply", root, "--json"]
    if commit is not None:
        apply += ["--revision", commit]
    apply += [argument for service in services for argument in ("--service", service)]
    if commit is None:
        return shlex.join(apply)
    restore = ["git", "-c", "core.autocrlf=false", "-C", root, "checkout", "--quiet", commit]
    restore += ["--", *dockerfiles]
    return f"umask 022 && {shlex.join(restore)} && {shlex.join(apply)}"


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
