"""Artifact Registry cleanup policies that never delete what a cluster may pull.

A multi-arch push stores an index plus per-platform and attestation manifests, each a version of
its own; only the index carries the tag. Artifact Registry's documentation defines the policies'
tag states ("Untagged: applies to untagged versions only") but does not say that a policy's
DELETE of an untagged version skips a child still referenced by a tagged index (docs/cleanup.md
cites what was found). So no policy generated here ever selects untagged versions of the image
repository: unreferenced versions are collected by `python -m verify gc`, which proves them
unreachable first.

Image repository: tagged versions are kept (a conditional KEEP of every tagged version), except
the tags with an explicitly configured ephemeral prefix (`ephemeralTagPrefixes`, e.g. `pr-`),
which a DELETE removes once older than `olderThanDays`. A KEEP of the `keepCount` most recent
versions exempts recent ones from any delete. With ephemeral prefixes the KEEP of tagged versions
cannot be generated (keep wins over delete), so it keeps the tags starting with the stack's own
`tag` instead (settings refuse a `tag` that starts with an ephemeral prefix).

Cache repository (immutable tags only): its versions are build cache manifests, whose children
are blobs, never versions; nothing a cluster pulls lives there. Its current cache tags are kept
and untagged cache versions older than `olderThanDays` are deleted.
"""

from dataclasses import dataclass

from plan.settings import CleanupSettings

_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class CleanupPolicy:
    """One Artifact Registry cleanup policy."""

    id: str
    """Policy id, unique within the repository."""
    action: str
    """`KEEP` or `DELETE`."""
    keep_count: int | None = None
    """For a keep-most-recent policy: how many of the most recent versions to keep."""
    tag_state: str | None = None
    """`TAGGED` or `UNTAGGED`; None for a keep-most-recent policy."""
    older_than: str | None = None
    """For a delete policy: minimum age, as seconds with an `s` suffix."""
    tag_prefixes: tuple[str, ...] = ()
    """Only versions with a tag starting with one of these (empty: no prefix condition)."""


def image_cleanup_policies(cleanup: CleanupSettings, stack_tag: str) -> tuple[CleanupPolicy, ...]:
    """The image repository's policies: tagged versions are kept unless ephemeral and old;
    untagged versions are never selected (see the module docstring)."""
    keep_recent = CleanupPolicy(id="keep-most-recent", action="KEEP", keep_count=cleanup.keep_count)
    if not cleanup.ephemeral_tag_prefixes:
        return (
            keep_recent,
            CleanupPolicy(id="keep-tagged", action="KEEP", tag_state="TAGGED"),
        )
    return (
        keep_recent,
        CleanupPolicy(
            id="keep-stack-tag", action="KEEP", tag_state="TAGGED", tag_prefixes=(stack_tag,)
        ),
        CleanupPolicy(
            id="delete-old-ephemeral-tags",
            action="DELETE",
            tag_state="TAGGED",
            older_than=_age(cleanup.older_than_days),
            tag_prefixes=cleanup.ephemeral_tag_prefixes,
        ),
    )


def cache_cleanup_policies(cleanup: CleanupSettings) -> tuple[CleanupPolicy, ...]:
    """The cache repository's policies: keep the cache tags, delete superseded cache versions."""
    return (
        CleanupPolicy(id="keep-cache-tags", action="KEEP", tag_state="TAGGED"),
        CleanupPolicy(
            id="delete-old-untagged-cache",
            action="DELETE",
            tag_state="UNTAGGED",
            older_than=_age(cleanup.older_than_days),
        ),
    )


def _age(days: int) -> str:
    return f"{days * _SECONDS_PER_DAY}s"
