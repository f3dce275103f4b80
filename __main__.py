"""boutique-multiarch: Online Boutique as multi-arch images (linux/amd64 + linux/arm64).

Reads and validates the stack configuration, then declares the checkout and its Dockerfile
patches, the buildx builder(s), the registry (Artifact Registry with repository-scoped IAM, an
existing registry, or one started on this host) and per service: images pushed by digest,
verified, and only then tagged by an Index. Exports what GKE stacks read: `registry`, `images`,
and `source` (the upstream URL and commit the images were built from).
"""

import os
import sys

import pulumi
from pulumi.runtime import config as runtime_config

from components.artifact_repository import ArtifactRepository, ArtifactRepositoryArgs
from components.buildx_builder import BuildxBuilder, BuildxBuilderArgs
from components.dockerfile_patches import DockerfilePatches, DockerfilePatchesArgs
from components.local_registry import LocalRegistry, LocalRegistryArgs
from components.registry_target import artifact_registry_target, external_registry_target
from components.service_image import ServiceImage, ServiceImageArgs
from components.upstream_source import UpstreamSource, UpstreamSourceArgs
from plan.host_commands import builder_spec, interpreter
from plan.naming import LOCAL_REGISTRY_DIR, arch_of
from plan.settings import (
    CONFIG_KEYS,
    PROJECT,
    ArtifactRegistry,
    ConfigError,
    GitSource,
    Settings,
    check_known_keys,
    parse_settings,
)
from plan.verification import verify_options


def read_settings() -> tuple[Settings, pulumi.Output[str] | None]:
    """The validated settings and the `registryPassword` secret; one error if anything is wrong."""
    config, gcp_config = pulumi.Config(PROJECT), pulumi.Config("gcp")
    password = config.get_secret("registryPassword")
    try:
        # The SDK has no public way to list every config key; these are the two places
        # pulumi.Config itself reads from (the CLI's PULUMI_CONFIG and values set in-process).
        check_known_keys(
            {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()},
            {*runtime_config.get_config_secret_keys_env(), *runtime_config._SECRET_KEYS.get()},
        )
        settings = parse_settings(
            raw={key: value for key in CONFIG_KEYS if (value := config.get(key)) is not None},
            gcp={key: value for key in ("project", "region") if (value := gcp_config.get(key))},
            registry_password_set=password is not None,
        )
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from error
    return settings, password


settings, registry_password = read_settings()
python = interpreter(sys.executable, os.getcwd())
dockerfiles = [service.dockerfile for service in settings.services]

source = UpstreamSource(
    "upstream",
    UpstreamSourceArgs(source=settings.source, required=dockerfiles, python=python),
)
patches = DockerfilePatches(
    "patches",
    DockerfilePatchesArgs(
        root=source.root,
        services=[service.name for service in settings.services],
        dockerfiles=dockerfiles,
        commit=settings.source.commit if isinstance(settings.source, GitSource) else None,
        python=python,
    ),
)
builder = BuildxBuilder(
    "buildx",
    BuildxBuilderArgs(
        name=settings.builder.name,
        spec=builder_spec(settings.builder, settings.platforms),
        python=python,
    ),
)
platform_builders = {
    platform: BuildxBuilder(
        f"buildx-{arch_of(platform)}",
        BuildxBuilderArgs(name=own.name, spec=builder_spec(own, [platform]), python=python),
    )
    for platform, own in settings.builder.platform_builders.items()
}
if isinstance(settings.destination, ArtifactRegistry):
    repository = ArtifactRepository(
        "artifacts", ArtifactRepositoryArgs(destination=settings.destination, cache=settings.cache)
    )
    target = artifact_registry_target(repository, settings.cache)
else:
    local_registry = (
        LocalRegistry(
            "local",
            LocalRegistryArgs(
                address=settings.destination.host, data_dir=LOCAL_REGISTRY_DIR, python=python
            ),
        )
        if settings.destination.start
        else None
    )
    target = external_registry_target(
        settings.destination,
        registry_password,
        settings.cache,
        started=None if local_registry is None else local_registry.address,
    )

images = {
    service.name: ServiceImage(
        service.name,
        ServiceImageArgs(
            service=service.name,
            platforms=settings.platforms,
            per_platform=settings.strategy == "perPlatform",
            registry=target.registry,
            tag=settings.tag,
            context=source.path(service.context),
            dockerfile=patches.dockerfile(service.name),
            patch_id=patches.patch_id(service.name),
            labels=source.labels,
            builder=builder.name,
            platform_builders={platform: own.name for platform, own in platform_builders.items()},
            login=target.login,
            cache_registry=target.cache_registry,
            verify=verify_options(
                settings.verify,
                service.name,
                gcp=target.verify_gcp,
                commit=settings.source.commit if isinstance(settings.source, GitSource) else None,
            ),
            python=python,
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
        }
        for name, image in images.items()
    },
)
pulumi.export("source", source.origin)
