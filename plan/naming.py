"""Names, references and labels derived from the settings, in one place.

Templates are `str.format` strings so components can fill them with `Output.format` when a part
(the registry path, the checkout root) is only known once a resource or command has run.
"""

from collections.abc import Mapping

CHECKOUT_CACHE_DIR = ".cache/upstream"
"""Checkouts keyed by commit, relative to the project directory (the programs' working directory).
Relative, so image contexts are the same path on every machine and never cause a diff."""

LOCAL_REGISTRY_DIR = ".cache/registry"
"""Data directory of a registry the stack starts (`registry.start`), relative to the project
directory like the checkout cache."""

IMAGE_REPOSITORY = "{registry}/{service}"
"""Where a service's images are pushed by digest (no tag) before they are verified."""

IMAGE_REF = "{registry}/{service}:{tag}"
"""The tag an Index points at a service's verified image."""

CACHE_REF = "{registry}/{service}:buildcache"
"""The registry cache of a service: one mutable tag, overwritten by every build."""

PLATFORM_CACHE_REF = "{registry}/{service}:buildcache-{arch}"
"""The registry cache of one platform's image of a service (strategy perPlatform)."""

CACHE_REPOSITORY_SUFFIX = "-cache"
"""Suffix of the mutable repository that holds the cache when image tags are immutable."""

ARTIFACT_REGISTRY_HOST = "{location}-docker.pkg.dev"
"""The Docker host of Artifact Registry in a location; credentials are given per host."""

ARTIFACT_REGISTRY_USERNAME = "oauth2accesstoken"
"""Artifact Registry's user name for logging in with an OAuth2 access token."""

ROLE_WRITER = "roles/artifactregistry.writer"
ROLE_READER = "roles/artifactregistry.reader"

LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_PATCH_ID = "dev.boutique-multiarch.patch-id"
"""Image label with the id of the Dockerfile patches applied (`none` when none applies)."""


def arch_of(platform: str) -> str:
    """`arm64` for `linux/arm64`: the part of a platform that names per-platform resources."""
    return platform.split("/")[1]


def oci_labels(url: str | None, revision: str | None) -> Mapping[str, str]:
    """The OCI annotations that tie an image to the upstream source it was built from."""
    labels = {LABEL_SOURCE: url, LABEL_REVISION: revision}
    return {key: value for key, value in labels.items() if value is not None}


def member_slug(member: str) -> str:
    """The part of a resource name that identifies an IAM member (stable when the list changes)."""
    return member.replace("://", "-").replace(":", "-").replace("/", "-")
