"""DockerfilePatches: the configured services' Dockerfiles, patched so arm64 images hold arm64.

Creates no resource: a `pulumi_command.local.run_output` call of `python -m patches apply
--json --service S... -- <checkout>` runs on every preview and every up, after the checkout (it
takes the checkout root as input), so a fresh runner or a reset checkout is always patched
before an Image reads its Dockerfile. For the commit cache, a tree that reads as drift (e.g.
patched by an older patch set) is first restored from the pinned commit (see `plan.patching`).
A drifted Dockerfile otherwise, or an unknown upstream, makes the tool exit 2, and the program
run fails with the tool's message.

Images take their Dockerfile path and the patch id from here, so none is built before the
patches, and a new patch set changes exactly the Images whose Dockerfile it patches.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter

import pulumi
import pulumi_command as command

from plan.patching import PatchedDockerfile, parse_patch_result, patch_command


@dataclass(frozen=True)
class DockerfilePatchesArgs:
    """Which checkout and which services to patch."""

    root: pulumi.Input[str]
    """Checkout root (UpstreamSource.root): the patches run once the checkout is ensured."""
    services: Sequence[str]
    """Services whose Dockerfiles are patched (the configured ones only)."""
    dockerfiles: Sequence[str]
    """Their Dockerfiles relative to the root, restored from `commit` before patching."""
    commit: str | None
    """Pinned commit of the commit cache; None for a checkout the user provides."""


class DockerfilePatches(pulumi.ComponentResource):
    """The patched Dockerfile and patch id of each configured service."""

    dockerfiles: pulumi.Output[dict[str, str]]
    """Per service, the path of its patched Dockerfile."""
    patch_ids: pulumi.Output[dict[str, str]]
    """Per service, the id of the patches applied (`none` when none applies)."""

    def __init__(
        self, name: str, args: DockerfilePatchesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:dockerfile_patches:DockerfilePatches", name, None, opts)
        line = pulumi.Output.from_input(args.root).apply(
            partial(
                patch_command,
                services=args.services,
                dockerfiles=args.dockerfiles,
                commit=args.commit,
            )
        )
        applied = command.local.run_output(
            command=line, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        files = pulumi.Output.all(args.root, applied.stdout).apply(parse_patch_result)
        self.dockerfiles = files.apply(_paths)
        self.patch_ids = files.apply(_patch_ids)
        self.register_outputs({"dockerfiles": self.dockerfiles, "patch_ids": self.patch_ids})

    def dockerfile(self, service: str) -> pulumi.Output[str]:
        """The patched Dockerfile of `service`."""
        return self.dockerfiles.apply(itemgetter(service))

    def patch_id(self, service: str) -> pulumi.Output[str]:
        """The id of the patches applied to `service`'s Dockerfile."""
        return self.patch_ids.apply(itemgetter(service))


def _paths(files: Mapping[str, PatchedDockerfile]) -> dict[str, str]:
    return {service: file.path for service, file in files.items()}


def _patch_ids(files: Mapping[str, PatchedDockerfile]) -> dict[str, str]:
    return {service: file.patch_id for service, file in files.items()}
