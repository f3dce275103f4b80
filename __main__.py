"""boutique-multiarch: Online Boutique as multi-arch images (linux/amd64 + linux/arm64).

Reads and validates the stack configuration, then declares the checkout and its Dockerfile
patches, the buildx builder(s), the registry (Artifact Registry with repository-scoped IAM, an
existing registry, or one started on this host) and per service: images pushed by digest,
verified, and only then tagged by an Index. Exports what GKE stacks read: `registry`, `images`,
and `source` (the upstream URL and commit the images were built from).
"""

import gc

import pulumi

from components.binary_authorization import binary_authorization
from components.buildx_builder import buildx_builders
from components.dockerfile_patches import DockerfilePatches, DockerfilePatchesArgs
from components.registry_target import registry_target
from components.service_image import ServiceImage, ServiceImageArgs
from components.upstream_source import UpstreamSource, UpstreamSourceArgs
from plan.binary_authorization import referrer_kms
from plan.host_commands import stack_owner
from plan.verification import verify_options
from stack_config import read_settings

# What is imported so far (the Pulumi SDKs, pydantic, this program's modules) lives until the
# program ends: frozen, it is no longer walked by every garbage collection of the evaluation,
# about a fifth of its CPU time (benchmarks/README.md).
gc.freeze()
settings, registry_password = read_settings()
owner = stack_owner(pulumi.get_organization(), pulumi.get_project(), pulumi.get_stack())
dockerfiles = [service.dockerfile for service in settings.services]

source = UpstreamSource(
    "upstream",
    UpstreamSourceArgs(source=settings.source, required=dockerfiles),
)
patches = DockerfilePatches(
    "patches",
    DockerfilePatchesArgs(
        root=source.root,
        services=[service.name for service in settings.services],
        dockerfiles=dockerfiles,
        commit=settings.commit,
    ),
)
builder, platform_builders = buildx_builders(settings.builder, settings.platforms, owner)
target = registry_target(settings.destination, registry_password, settings.cache, settings.tag)

binauthz = binary_authorization(settings.destination, settings.attest)

images = {
    service.name: ServiceImage(
        service.name,
        ServiceImageArgs(
            service=service.name,
            platforms=settings.platforms,
            per_platform=settings.strategy == "perPlatform",
            target=target,
            tag=settings.tag,
            context=source.path(service.context),
            dockerfile=patches.dockerfile(service.name),
            patch_id=patches.patch_id(service.name),
            labels=source.labels,
            builder=builder.name,
            platform_builders={platform: own.name for platform, own in platform_builders.items()},
            verify=verify_options(
                settings.verify,
                service.name,
                gcp=target.verify_gcp,
                commit=settings.commit,
                attest_key=settings.attest.key,
                attest_kms=referrer_kms(settings.destination, settings.attest),
            ),
            binauthz_note=None if binauthz is None else binauthz.note,
            binauthz_key=None if binauthz is None else binauthz.key_version,
            signing_key=binauthz,
        ),
    )
    for service in settings.services
}

pulumi.export("registry", target.registry)
pulumi.export(
    "images",
    {
        name: {
            "ref": image.ref,
            "digest": image.digest,
            "tag": settings.tag,
            "platforms": image.platforms,
            "proof": image.proof,
            "attestations": image.attestations,
        }
        for name, image in images.items()
    },
)
pulumi.export("source", source.origin)
