"""Where images are pushed and with which credentials: Artifact Registry, an existing registry,
or one this stack starts on this host.

`registry_target` declares what the destination needs and returns a RegistryTarget, the small
record (not a resource) every ServiceImage takes whole:
- Artifact Registry: ArtifactRepository `artifacts` (the repository, its cache repository and
  IAM); the deployer's access token is read through the gcp provider on every run (it lives
  about an hour) and wrapped as a secret so it never reaches state or logs in plain text;
- a registry started here (StartedRegistry): LocalRegistry `local`; images wait for it;
- an existing registry: nothing; credentials from `registry.username` and `registryPassword`.
"""

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.artifact_repository import ArtifactRepository, ArtifactRepositoryArgs
from components.local_registry import LocalRegistry, LocalRegistryArgs
from plan.naming import ARTIFACT_REGISTRY_USERNAME, LOCAL_REGISTRY_DIR
from plan.settings import ArtifactRegistry, ExternalRegistry, StartedRegistry


@dataclass(frozen=True)
class RegistryLogin:
    """Credentials for pushing (and reading the cache); kept in memory by the provider."""

    address: pulumi.Input[str]
    """Registry host the credentials apply to."""
    username: pulumi.Input[str]
    """User name (`oauth2accesstoken` for Artifact Registry)."""
    password: pulumi.Input[str]
    """Password or access token; must be a secret Output."""


@dataclass(frozen=True)
class RegistryTarget:
    """The registry path images go under, the cache's, and the credentials for both."""

    registry: pulumi.Input[str]
    """Registry path images are pushed under (`<host>[/path]`); the `registry` stack output."""
    cache_registry: pulumi.Input[str] | None
    """Registry path of the build cache; None when `cache` is off."""
    login: RegistryLogin | None
    """Push credentials (password a secret Output), or None for an anonymous registry."""
    verify_gcp: bool
    """Whether the verification authenticates with Application Default Credentials."""
    immutable_tags: bool = False
    """The registry refuses moving a tag (`repository.immutableTags`)."""


def registry_target(
    destination: ArtifactRegistry | ExternalRegistry,
    password: pulumi.Output[str] | None,
    cache: bool,
    tag: str,
) -> RegistryTarget:
    """Declare what `destination` needs (see the module docstring) and say where to push.
    `password` is the `registryPassword` secret, `tag` the stack's tag (the repository's cleanup
    keeps it)."""
    if isinstance(destination, ArtifactRegistry):
        repository = ArtifactRepository(
            "artifacts", ArtifactRepositoryArgs(destination=destination, cache=cache, tag=tag)
        )
        return artifact_registry_target(
            repository, cache, immutable_tags=destination.repository.immutable_tags
        )
    started = None
    if isinstance(destination, StartedRegistry):
        started = LocalRegistry(
            "local",
            LocalRegistryArgs(address=destination.host, data_dir=LOCAL_REGISTRY_DIR),
        ).address
    return external_registry_target(destination, password, cache, started)


def artifact_registry_target(
    repository: ArtifactRepository, cache: bool, immutable_tags: bool = False
) -> RegistryTarget:
    """Push to the repository with the deployer's own access token (`oauth2accesstoken`)."""
    token = gcp.organizations.get_client_config_output().access_token
    return RegistryTarget(
        registry=repository.registry,
        cache_registry=repository.cache_registry if cache else None,
        login=RegistryLogin(
            address=repository.host,
            username=ARTIFACT_REGISTRY_USERNAME,
            password=pulumi.Output.secret(token),
        ),
        verify_gcp=True,
        immutable_tags=immutable_tags,
    )


def external_registry_target(
    registry: ExternalRegistry,
    password: pulumi.Output[str] | None,
    cache: bool,
    started: pulumi.Output[str] | None = None,
) -> RegistryTarget:
    """Push to an existing registry, anonymously or as `registry.username`. `started` is the
    address of a registry this stack starts (LocalRegistry): images then wait for it."""
    address: pulumi.Input[str] = registry.address
    if started is not None:
        address = pulumi.Output.concat(started, registry.address.removeprefix(registry.host))
    login = None
    if registry.username is not None and password is not None:
        login = RegistryLogin(
            address=registry.host,
            username=registry.username,
            password=pulumi.Output.secret(password),
        )
    return RegistryTarget(
        registry=address,
        cache_registry=address if cache else None,
        login=login,
        # The verification reads REGISTRY_USERNAME/REGISTRY_PASSWORD or Docker's config.json
        # from the environment of the process that runs Pulumi; never from its inputs.
        verify_gcp=False,
    )
