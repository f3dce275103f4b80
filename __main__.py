"""boutique-multiarch: Online Boutique as multi-arch images (linux/amd64 + linux/arm64).

Reads and validates the stack configuration, then declares the checkout, the buildx builder,
the registry (Artifact Registry with repository-scoped IAM, or an existing registry) and one
multi-platform image per service, and exports what GKE stacks read: `registry` and `images`.
"""

import os
import sys

import pulumi

from components.artifact_repository import ArtifactRepository, ArtifactRepositoryArgs
from components.buildx_builder import BuildxBuilder, BuildxBuilderArgs
from components.registry_target import artifact_registry_target, external_registry_target
from components.service_image import ServiceImage, ServiceImageArgs
from components.upstream_source import UpstreamSource, UpstreamSourceArgs
from plan.host_commands import builder_spec, interpreter
from plan.settings import (
    CONFIG_KEYS,
    PROJECT,
    ArtifactRegistry,
    ConfigError,
    Settings,
    parse_settings,
)


def read_settings() -> tuple[Settings, pulumi.Output[str] | None]:
    """The validated settings and the `registryPassword` secret; one error if anything is wrong."""
    config, gcp_config = pulumi.Config(PROJECT), pulumi.Config("gcp")
    password = config.get_secret("registryPassword")
    try:
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

source = UpstreamSource(
    "upstream",
    UpstreamSourceArgs(
        source=settings.source,
        required=[service.dockerfile for service in settings.services],
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
if isinstance(settings.destination, ArtifactRegistry):
    repository = ArtifactRepository(
        "artifacts", ArtifactRepositoryArgs(destination=settings.destination, cache=settings.cache)
    )
    target = artifact_registry_target(repository, settings.cache)
else:
    target = external_registry_target(settings.destination, registry_password, settings.cache)

images = {
    service.name: ServiceImage(
        service.name,
        ServiceImageArgs(
            service=service.name,
            platforms=settings.platforms,
            registry=target.registry,
            tag=settings.tag,
            context=source.path(service.context),
            dockerfile=source.path(service.dockerfile),
            labels=source.labels,
            builder=builder.name,
            login=target.login,
            cache_registry=target.cache_registry,
        ),
    )
    for service in settings.services
}

pulumi.export("registry", target.registry)
pulumi.export(
    "images",
    {
        name: {"ref": image.ref, "digest": image.digest, "tag": settings.tag}
        for name, image in images.items()
    },
)
