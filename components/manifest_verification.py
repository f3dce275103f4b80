"""ManifestVerification: proves one pushed digest before any tag points at it.

Creates:
- `command.local.Command` `<name>-verify`: `python -m verify --json [--deep] [--allow GLOB]...
  --platform P... [--gcp] [--run --probe P [--env N=V]... [--run-timeout S] [--skip-run P]...]
  [--attest --key K --create-key | --attest --kms V] -- <repository>@<digest>`, triggered by
  the digest, after the KMS key that signs its attestations exists; the probe definition is part
  of the command line, whose change replaces (re-runs) the Command too. A failing
  verification (exit 1, or 2 for registry/auth errors, no Docker or no emulation) fails
  `pulumi up` with the tool's message on stderr, and the Index that would move the tag, which
  depends on this Command, is not touched. A platform whose run is skipped is logged as a
  warning with its reason.

No credential is ever an input: the tool reads Application Default Credentials (`--gcp`), or
`REGISTRY_USERNAME`/`REGISTRY_PASSWORD` or Docker's config.json from the environment of the
process that runs Pulumi. A token in the inputs would change every run and re-run every
verification.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi_command as command

from plan.tools import tool_command
from plan.verification import (
    VerifyOptions,
    attestation_referrers,
    candidate_ref,
    verified_platforms,
    verified_proof,
    verify_request,
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
    """`--deep`, `--allow` globs, `--gcp` and the runtime proof (`--run`)."""
    signing_key: pulumi.Resource | None = None
    """What holds the KMS key that signs the attestations (BinaryAuthorization), or None."""


class ManifestVerification(pulumi.ComponentResource):
    """A verified candidate image and the digests of its platforms."""

    ref: pulumi.Output[str]
    """The verified image, `<repository>@<digest>` (an Index source)."""
    platforms: pulumi.Output[Mapping[str, str]]
    """`{platform: manifest digest}` as the verification read them."""
    proof: pulumi.Output[Mapping[str, Mapping[str, Any]]]
    """`{platform: {elfFiles, probe, seconds} | {elfFiles, skipped}}`: what was proven."""
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
            create=self.ref.apply(partial(_command, args.platforms, args.options)),
            # The digest is the image's content: the verification re-runs exactly when a new
            # image was pushed (pulumi-command triggers replace, which is what a new digest is).
            triggers=[args.digest],
            opts=pulumi.ResourceOptions(
                parent=self,
                # `--kms` may sign with the attestor's key version, which must exist (and be
                # generated: the attestor reads its public key) before the first signature.
                depends_on=[] if args.signing_key is None else [args.signing_key],
            ),
        )
        self.platforms = self.verification.stdout.apply(verified_platforms)
        self.proof = self.verification.stdout.apply(
            partial(verified_proof, args.platforms, args.options.run)
        )
        skipped = {} if args.options.run is None else args.options.run.skipped
        for platform in args.platforms:
            if platform in skipped:
                pulumi.log.warn(
                    f"runtime proof of {platform} skipped: {skipped[platform]}", resource=self
                )
        self.attestations = self.verification.stdout.apply(attestation_referrers)
        self.register_outputs(
            {
                "ref": self.ref,
                "platforms": self.platforms,
                "proof": self.proof,
                "attestations": self.attestations,
            }
        )


def _candidate(repository_and_digest: list[str]) -> str:
    return candidate_ref(*repository_and_digest)


def _command(platforms: Sequence[str], options: VerifyOptions, ref: str) -> str:
    return tool_command(verify_request(ref, platforms, options))
