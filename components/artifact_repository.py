"""ArtifactRepository: the Artifact Registry repository the images go to, and who may use it.

Creates:
- `gcp.artifactregistry.Repository` `<name>-repository` (format DOCKER; `registry_uri` is the
  registry path), with cleanup policies that keep every tagged version except old ephemeral
  tags and never select an untagged one (`plan.cleanup`; `python -m verify gc` collects those);
- when tags are immutable, a mutable `<name>-cache-repository` for the build cache (a cache tag
  is overwritten by every build, which an immutable repository refuses), with cleanup policies
  of its own that delete superseded cache versions;
- one `gcp.artifactregistry.RepositoryIamMember` per writer (`roles/artifactregistry.writer`, on
  both repositories) and per reader (`roles/artifactregistry.reader`, on the image repository).
  Roles are granted on the repositories only, never on the project.
"""

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from plan.cleanup import CleanupPolicy, cache_cleanup_policies, image_cleanup_policies
from plan.naming import (
    ARTIFACT_REGISTRY_HOST,
    CACHE_REPOSITORY_SUFFIX,
    ROLE_READER,
    ROLE_WRITER,
    member_slug,
)
from plan.settings import ArtifactRegistry


@dataclass(frozen=True)
class ArtifactRepositoryArgs:
    """What the repository looks like and who may use it."""

    destination: ArtifactRegistry
    """Validated `repository`, `writers` (who pushes: CI, deployers) and `readers` (who pulls:
    e.g. GKE node service accounts)."""
    cache: bool
    """Whether builds use a registry cache (decides whether a cache repository is needed)."""
    tag: str
    """The stack's `tag`: kept by the cleanup policies even when ephemeral tags are deleted."""


class ArtifactRepository(pulumi.ComponentResource):
    """A Docker repository in Artifact Registry with repository-scoped IAM."""

    registry: pulumi.Output[str]
    """Registry path images are pushed under: `<location>-docker.pkg.dev/<project>/<id>`."""
    cache_registry: pulumi.Output[str]
    """Registry path of the build cache (the image repository unless tags are immutable)."""
    host: pulumi.Output[str]
    """Registry host that credentials apply to."""

    def __init__(
        self, name: str, args: ArtifactRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:artifact_repository:ArtifactRepository", name, None, opts)
        settings = args.destination.repository
        repository = gcp.artifactregistry.Repository(
            f"{name}-repository",
            project=args.destination.project,
            repository_id=settings.id,
            location=settings.location,
            format="DOCKER",
            description=settings.description,
            labels=dict(settings.labels),
            docker_config={"immutable_tags": settings.immutable_tags},
            cleanup_policies=None
            if settings.cleanup is None
            else _policy_args(image_cleanup_policies(settings.cleanup, args.tag)),
            cleanup_policy_dry_run=settings.cleanup.dry_run if settings.cleanup else None,
            # The repository holds the images clusters pull: `pulumi destroy` must not delete it
            # by accident. Lift with `repository.protect: false` + `pulumi up` before destroying.
            opts=pulumi.ResourceOptions(parent=self, protect=settings.protect),
        )
        repositories = [repository]
        self.registry = repository.registry_uri
        self.cache_registry = repository.registry_uri
        if settings.immutable_tags and args.cache:
            cache_repository = gcp.artifactregistry.Repository(
                f"{name}-cache-repository",
                project=args.destination.project,
                repository_id=f"{settings.id}{CACHE_REPOSITORY_SUFFIX}",
                location=settings.location,
                format="DOCKER",
                description=f"Build cache of {settings.id} (mutable tags)",
                labels=dict(settings.labels),
                cleanup_policies=None
                if settings.cleanup is None
                else _policy_args(cache_cleanup_policies(settings.cleanup)),
                cleanup_policy_dry_run=settings.cleanup.dry_run if settings.cleanup else None,
                opts=pulumi.ResourceOptions(parent=self),
            )
            repositories.append(cache_repository)
            self.cache_registry = cache_repository.registry_uri
        self.host = pulumi.Output.format(ARTIFACT_REGISTRY_HOST, location=repository.location)

        writers, readers = args.destination.writers, args.destination.readers
        grants = [(member, ROLE_WRITER, repo) for member in writers for repo in repositories]
        grants += [(member, ROLE_READER, repository) for member in readers]
        for member, role, target in grants:
            role_name = role.rsplit(".", 1)[-1]
            prefix = "cache-" if target is not repository else ""
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-{prefix}{role_name}-{member_slug(member)}",
                project=target.project,
                location=target.location,
                repository=target.name,
                role=role,
                member=member,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.register_outputs(
            {"registry": self.registry, "cache_registry": self.cache_registry, "host": self.host}
        )


def _policy_args(
    policies: tuple[CleanupPolicy, ...],
) -> list[gcp.artifactregistry.RepositoryCleanupPolicyArgs]:
    return [_policy_arg(policy) for policy in policies]


def _policy_arg(policy: CleanupPolicy) -> gcp.artifactregistry.RepositoryCleanupPolicyArgs:
    registry = gcp.artifactregistry
    if policy.keep_count is not None:
        return registry.RepositoryCleanupPolicyArgs(
            id=policy.id,
            action=policy.action,
            most_recent_versions=registry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                keep_count=policy.keep_count
            ),
        )
    return registry.RepositoryCleanupPolicyArgs(
        id=policy.id,
        action=policy.action,
        condition=registry.RepositoryCleanupPolicyConditionArgs(
            tag_state=policy.tag_state,
            older_than=policy.older_than,
            tag_prefixes=list(policy.tag_prefixes) or None,
        ),
    )
