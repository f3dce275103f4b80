"""ManifestVerification: proves one pushed digest before any tag points at it.

Creates:
- `command.local.Command` `<name>-verify`: `python -m verify <repository>@<digest> --json
  [--deep] [--allow GLOB]... --platform P... [--gcp]`, triggered by the digest only. A failing
  verification (exit 1, or 2 for registry/auth errors) fails `pulumi up` with the tool's
  message on stderr, and the Index that would move the tag, which depends on this Command, is
  not touched.

No credential is ever an input: the tool reads Application Default Credentials (`--gcp`), or
`REGISTRY_USERNAME`/`REGISTRY_PASSWORD` or Docker's config.json from the environment of the
process that runs Pulumi. A token in the inputs would change every run and re-run every
verification.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_command as command

from plan.verification import (
    VerifyOptions,
    attestation_referrers,
    candidate_ref,
    verified_platforms,
    verify_command,
)


@dataclass(frozen=True)
class ManifestVerificationArgs:
    """Which pushed image to verify, and how."""

    repository: pulumi.Input[str]
    """`<registry>/<service>`, where the image was pushed by digest."""
    digest: pulumi.Input[str]
    """Digest the push produced; the only trigger of the verification."""
    platforms: Sequence[str]
    """Platforms the image must hold (`--platform`)."""
    options: VerifyOptions
    """`--deep`, `--allow` globs and `--gcp`."""
    python: str
    """Interpreter that runs `-m verify` (`plan.host_commands.interpreter`)."""


class ManifestVerification(pulumi.ComponentResource):
    """A verified candidate image and the digests of its platforms."""

    ref: pulumi.Output[str]
    """The verified image, `<repository>@<digest>` (an Index source)."""
    platforms: pulumi.Output[Mapping[str, str]]
    """`{platform: manifest digest}` as the verification read them."""
    verification: command.local.Command
    """The verification Command, for resources that must wait for it."""
    attestations: pulumi.Output[Mapping[str, str]]
    """`{"index" | platform: referrer digest}` of the signed attestations (`attest` config)."""

    def __init__(
        self,
        name: str,
        args: ManifestVerificationArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("boutique:manifest_verification:ManifestVerification", name, None, opts)
        self.ref = pulumi.Output.all(args.repository, args.digest).apply(_candidate)
        self.verification = command.local.Command(
            f"{name}-verify",
            create=self.ref.apply(partial(_command, args.python, args.platforms, args.options)),
            # The digest is the image's content: the verification re-runs exactly when a new
            # image was pushed (pulumi-command triggers replace, which is what a new digest is).
            triggers=[args.digest],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.platforms = self.verification.stdout.apply(verified_platforms)
        self.attestations = self.verification.stdout.apply(attestation_referrers)
        self.register_outputs(
            {"ref": self.ref, "platforms": self.platforms, "attestations": self.attestations}
        )


def _candidate(repository_and_digest: list[str]) -> str:
    return candidate_ref(*repository_and_digest)


def _command(python: str, platforms: Sequence[str], options: VerifyOptions, ref: str) -> str:
    return verify_command(python, ref, platforms, options)
