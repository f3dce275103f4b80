"""ServiceImage: one service built, pushed by digest, verified, and only then tagged.

Creates:
- strategy `multiPlatform`: `pulumi_docker_build.Image` `<name>-image`, one build for every
  platform; strategy `perPlatform`: `<name>-<arch>-image` per platform, each single-platform
  with its own registry cache ref and builder. Images have no tags: they push to
  `<registry>/<service>` by digest (`push_by_digest`), so nothing a cluster pulls moves yet;
- one ManifestVerification per Image (`<image name>-verification`), verifying that digest
  for the Image's platforms;
- `pulumi_docker_build.Index` `<name>-index`: points `<registry>/<service>:<tag>` at the
  verified digest(s), after every verification of the service has passed;
- strategy `perPlatform` with attestations (`attest`): `command.local.Command`
  `<name>-attest-index` after the Index: `python -m verify attest-index` signs the verification
  attestation of the joined index from the candidates' own, after checking its children;
- with Binary Authorization (`attest.binaryAuthorization`), `command.local.Command`
  `<name>-binauthz`: `python -m verify binauthz` creates (once) the KMS-signed ATTESTATION
  occurrence for the digest the tag points at, after checking its children are the verified
  manifests.

And, on every preview and up, `pulumi_command.local.run_output` calls of `python -m verify
published` (not resources; shallow: manifests only), so a run sees the registry as it is:
- per verified candidate, once its digest is known: it still exists (the Index waits for this,
  so a digest deleted by hand fails with the `pulumi up --replace` that repairs it instead of
  failing inside the Index);
- once the Index's ref is known (from the state when the Index does not change, else after it):
  the tag still points at that digest, which exists and holds exactly the verified manifests.
  Only a digest so confirmed is exported; a tag moved by another writer fails the run with the
  repair command. On a first run nothing is exported yet and nothing is checked in preview;
- with immutable tags, in preview, when new images will be built: the tag must not exist yet.

Image labels: the OCI source labels and `dev.boutique-multiarch.patch-id`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_docker_build as docker_build

from components.manifest_verification import ManifestVerification, ManifestVerificationArgs
from components.registry_target import RegistryTarget
from plan.binary_authorization import binauthz_request, occurrence_of
from plan.naming import (
    CACHE_REF,
    IMAGE_REF,
    IMAGE_REPOSITORY,
    LABEL_PATCH_ID,
    PLATFORM_CACHE_REF,
    arch_of,
)
from plan.tools import tool_command
from plan.verification import (
    VerifyOptions,
    attest_index_request,
    attests,
    candidate_check_request,
    digest_of_ref,
    immutable_tag_request,
    joined_attestation_referrers,
    merged_platforms,
    published_check_request,
    published_digest,
)


@dataclass(frozen=True)
class ServiceImageArgs:
    """How to build, verify and publish one service."""

    service: str
    """Service name; the image name under the registry path."""
    platforms: Sequence[str]
    """Platforms of the image (`linux/amd64`, `linux/arm64`)."""
    per_platform: bool
    """One single-platform Image per platform (strategy `perPlatform`) instead of one Image."""
    target: RegistryTarget
    """Where the image is pushed (registry and cache paths) and with which credentials."""
    tag: str
    """Tag the Index moves to the verified image (`tag` config)."""
    context: pulumi.Input[str]
    """Build context directory."""
    dockerfile: pulumi.Input[str]
    """Patched Dockerfile to build (DockerfilePatches)."""
    patch_id: pulumi.Input[str]
    """Id of the patches applied to the Dockerfile, for the image label."""
    labels: pulumi.Input[Mapping[str, str]]
    """OCI source labels (source URL, revision)."""
    builder: pulumi.Input[str]
    """Name of the buildx builder."""
    platform_builders: Mapping[str, pulumi.Input[str]]
    """`perPlatform`: builder names of the platforms that have a builder of their own."""
    verify: VerifyOptions
    """How each pushed digest is verified."""
    binauthz_note: pulumi.Input[str] | None = None
    """The attestor's note (`projects/P/notes/N`); None: no Binary Authorization attestation."""
    binauthz_key: pulumi.Input[str] | None = None
    """The KMS key version that signs the occurrence."""
    signing_key: pulumi.Resource | None = None
    """What holds the KMS key that signs the attestations (BinaryAuthorization), or None."""


class ServiceImage(pulumi.ComponentResource):
    """A verified multi-arch image of one Online Boutique service, published under its tag."""

    digest: pulumi.Output[str]
    """Digest of the index the tag points at (`sha256:…`), as confirmed in the registry: it holds
    exactly the verified manifests and the tag points at it."""
    ref: pulumi.Output[str]
    """`<registry>/<service>:<tag>@<digest>`: what a cluster should pull."""
    platforms: pulumi.Output[dict[str, str]]
    """`{platform: manifest digest}` as verified."""
    proof: pulumi.Output[dict[str, Any]]
    """`{platform: {elfFiles, probe, seconds} | {elfFiles, skipped}}` as verified."""
    attestations: pulumi.Output[dict[str, str]]
    """`{"index" | platform: referrer digest}` of the signed attestations (`attest` config)."""

    def __init__(
        self, name: str, args: ServiceImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if opts is not None and opts.parent is not None:
            raise ValueError("ServiceImage is declared at the top of the stack (see _child_urn)")
        super().__init__("boutique:service_image:ServiceImage", name, None, opts)
        tag_ref = pulumi.Output.format(
            IMAGE_REF, registry=args.target.registry, service=args.service, tag=args.tag
        )
        repository = pulumi.Output.format(
            IMAGE_REPOSITORY, registry=args.target.registry, service=args.service
        )
        labels = pulumi.Output.all(args.labels, args.patch_id).apply(_with_patch_id)
        builds = (
            [(f"{name}-{arch_of(p)}", [p]) for p in args.platforms]
            if args.per_platform
            else [(name, list(args.platforms))]
        )
        index_urn = _child_urn(name, "docker-build:index:Index", f"{name}-index")
        invoke = pulumi.InvokeOutputOptions(parent=self)
        verifications, image_urns, sources, candidates = [], [], [], []
        for build_name, platforms in builds:
            image = self._image(f"{build_name}-image", args, platforms, repository, labels)
            image_urns.append(image.urn)
            candidates.append(image.digest)
            verifications.append(
                ManifestVerification(
                    f"{build_name}-verification",
                    ManifestVerificationArgs(
                        repository=repository,
                        digest=image.digest,
                        platforms=platforms,
                        options=args.verify,
                        signing_key=args.signing_key,
                    ),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
            ref = verifications[-1].ref
            candidate = command.local.run_output(
                command=pulumi.Output.all(ref, image.urn, index_urn).apply(
                    partial(_candidate_check, args.verify.gcp)
                ),
                opts=invoke,
            )
            sources.append(pulumi.Output.all(ref, candidate.stdout).apply(_first))
        verified = pulumi.Output.all(*[v.platforms for v in verifications]).apply(merged_platforms)
        if args.target.immutable_tags:
            # `run_with_unknowns`: a preview in which new images will be built (their verified
            # platforms unknown) checks the tag before any build; otherwise, after verification
            # and before the Index, the tag must not exist or hold exactly the verified images.
            guard = verified.apply(
                partial(_immutable_guard, tag_ref, args.verify.gcp, invoke),
                run_with_unknowns=True,
            )
            sources = [pulumi.Output.all(source, guard).apply(_first) for source in sources]
        login = args.target.login
        index = docker_build.Index(
            f"{name}-index",
            tag=tag_ref,
            sources=sources,
            push=True,
            registry=None
            if login is None
            else docker_build.RegistryArgs(
                address=login.address, username=login.username, password=login.password
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The tag moves only after every image of the service passed verification.
                depends_on=[each.verification for each in verifications],
                # The provider's Index delete removes `<tag>@<digest>` by digest. After a tag
                # change (a replacement) that digest is often the one the new tag points at, so
                # the delete would remove the live image. Nothing here deletes an old tag: the
                # cleanup policies keep tagged versions (except configured ephemeral prefixes)
                # and `python -m verify gc` deletes only versions no tag reaches.
                retain_on_delete=True,
            ),
        )
        self.platforms = verified
        # A lost published digest is repaired by the Index alone when it wrote an index of its
        # own (perPlatform); a multi-platform Image's index may be the very digest it publishes.
        lost = [index_urn] if args.per_platform else [*image_urns, index_urn]
        published = command.local.run_output(
            command=pulumi.Output.all(index.ref, self.platforms, index_urn, *lost).apply(
                partial(_published_check, args.verify.gcp)
            ),
            opts=invoke,
        )
        self.digest = published.stdout.apply(published_digest)
        self.ref = pulumi.Output.concat(tag_ref, "@", self.digest)
        self.proof = pulumi.Output.all(
            *[verification.proof for verification in verifications]
        ).apply(merged_platforms)
        attestations = [verification.attestations for verification in verifications]
        if args.per_platform and attests(args.verify):
            # No verification read the index the Index joined: its verification attestation
            # is signed from the candidates' own (their statements, on candidate indexes that
            # nothing pulls, are left out of the output).
            joined = command.local.Command(
                f"{name}-attest-index",
                create=pulumi.Output.all(
                    repository, self.digest, self.platforms, *candidates
                ).apply(partial(_attest_index_line, args.verify)),
                # One statement per published digest.
                triggers=[self.digest],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[index]),
            )
            attestations = [
                *(attestation.apply(_platform_referrers) for attestation in attestations),
                joined.stdout.apply(joined_attestation_referrers),
            ]
        if args.binauthz_note is not None and args.binauthz_key is not None:
            occurrence = command.local.Command(
                f"{name}-binauthz",
                create=pulumi.Output.all(
                    repository, self.digest, self.platforms, args.binauthz_note, args.binauthz_key
                ).apply(_binauthz_line),
                # One occurrence per published digest; the tool reuses an existing one.
                triggers=[self.digest],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[index]),
            )
            attestations.append(occurrence.stdout.apply(_occurrence))
        self.attestations = pulumi.Output.all(*attestations).apply(merged_platforms)
        self.register_outputs(
            {
                "digest": self.digest,
                "ref": self.ref,
                "platforms": self.platforms,
                "proof": self.proof,
                "attestations": self.attestations,
            }
        )

    def _image(
        self,
        name: str,
        args: ServiceImageArgs,
        platforms: Sequence[str],
        repository: pulumi.Input[str],
        labels: pulumi.Input[Mapping[str, str]],
    ) -> docker_build.Image:
        """One Image of `platforms`, pushed to `repository` by digest, with its own cache ref."""
        login = args.target.login
        # perPlatform: one platform per Image, with a cache ref and a builder of its own.
        own = args.per_platform
        cache_ref = None
        cache_registry = args.target.cache_registry
        if cache_registry is not None:
            cache_ref = (
                pulumi.Output.format(
                    PLATFORM_CACHE_REF,
                    registry=cache_registry,
                    service=args.service,
                    arch=arch_of(platforms[0]),
                )
                if own
                else pulumi.Output.format(CACHE_REF, registry=cache_registry, service=args.service)
            )
        builder = args.platform_builders.get(platforms[0], args.builder) if own else args.builder
        return docker_build.Image(
            name,
            # No tag: the export pushes by digest, and only the Index moves the tag, after the
            # verification. Without tags the provider's delete has nothing to delete.
            push=False,
            exports=[
                docker_build.ExportArgs(
                    registry=docker_build.ExportRegistryArgs(
                        names=[repository],
                        push=True,
                        push_by_digest=True,
                        # OCI index and manifests, as buildx writes them with attestations
                        # anyway; the SDK's default would be Docker media types.
                        oci_media_types=True,
                    )
                )
            ],
            platforms=[docker_build.Platform(platform) for platform in platforms],
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=args.dockerfile),
            labels=labels,
            builder=docker_build.BuilderConfigArgs(name=builder),
            registries=[]
            if login is None
            else [
                docker_build.RegistryArgs(
                    address=login.address, username=login.username, password=login.password
                )
            ],
            cache_from=[]
            if cache_ref is None
            else [
                docker_build.CacheFromArgs(
                    registry=docker_build.CacheFromRegistryArgs(ref=cache_ref)
                )
            ],
            cache_to=[]
            if cache_ref is None
            else [
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=cache_ref,
                        mode=docker_build.CacheMode.MAX,
                        # A failed cache export must not fail a build that pushed fine.
                        ignore_error=True,
                    )
                )
            ],
            # Previews (pull requests) neither build nor write the cache deployments read; the
            # provider still checks every Dockerfile's syntax in preview, and CI builds the
            # patched Dockerfiles for real before merge.
            build_on_preview=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Images pushed by digest have no tag for the provider to delete. State written
                # before push-by-digest still lists the service's tag, and deleting such an
                # Image (it is replaced once by this change) would delete, by digest, the
                # manifest the Index now points that tag at. Keep what was pushed; once no tag
                # reaches it, `python -m verify gc` deletes it (docs/cleanup.md).
                retain_on_delete=True,
            ),
        )


def _child_urn(name: str, child_type: str, child_name: str) -> str:
    """The URN of a child of the ServiceImage `name`, which the program declares at the top of
    the stack. Written out rather than derived from `self.urn`: an invoke that depends on the
    component waits for all its children, the Index among them, which waits for the invoke."""
    owner = f"{pulumi.get_project()}::boutique:service_image:ServiceImage"
    return f"urn:pulumi:{pulumi.get_stack()}::{owner}${child_type}::{child_name}"


def _candidate_check(gcp: bool, values: list[str]) -> str:
    ref, image_urn, index_urn = values
    return tool_command(candidate_check_request(ref, [image_urn, index_urn], gcp))


def _published_check(gcp: bool, values: list[Any]) -> str:
    index_ref, platforms, index_urn, *lost = values
    # The Index reports `<tag>@<digest>`; the check confirms both halves in the registry.
    digest_of_ref(index_ref)
    return tool_command(published_check_request(index_ref, platforms, index_urn, lost, gcp))


def _immutable_guard(
    tag_ref: pulumi.Output[str],
    gcp: bool,
    invoke: pulumi.InvokeOutputOptions,
    platforms: Any,
) -> pulumi.Input[str]:
    """The tag check of an immutable repository. The invoke is called inside this callback, the
    only place that knows whether the verified platforms are known yet; its command depends on
    the tag alone, so it runs in a preview that will build new images."""
    known = platforms is not pulumi.UNKNOWN and pulumi.UNKNOWN not in platforms.values()
    check = tag_ref.apply(partial(_immutable_check, platforms if known else None, gcp))
    return command.local.run_output(command=check, opts=invoke).stdout


def _immutable_check(platforms: Mapping[str, str] | None, gcp: bool, tag_ref: str) -> str:
    return tool_command(immutable_tag_request(tag_ref, platforms, gcp))


def _first(values: list[Any]) -> Any:
    """The first value, as an Output that also waits for the others (checks it depends on)."""
    return values[0]


def _with_patch_id(labels_and_patch_id: list[Any]) -> dict[str, str]:
    labels, patch_id = labels_and_patch_id
    return {**labels, LABEL_PATCH_ID: patch_id}


def _attest_index_line(options: VerifyOptions, values: list[Any]) -> str:
    repository, digest, platforms, *candidates = values
    request = attest_index_request(f"{repository}@{digest}", platforms, candidates, options)
    return tool_command(request)


def _platform_referrers(referrers: Mapping[str, str]) -> dict[str, str]:
    return {subject: digest for subject, digest in referrers.items() if subject != "index"}


def _binauthz_line(values: list[Any]) -> str:
    return tool_command(binauthz_request(*values))


def _occurrence(stdout: str) -> dict[str, str]:
    return {"occurrence": occurrence_of(stdout)}
