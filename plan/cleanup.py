"""Artifact Registry cleanup policies that cannot break a multi-arch image.

A multi-arch push stores an index (tagged) plus per-platform manifests and attestation manifests
(untagged versions referenced by the index). Deleting an untagged child of a live index breaks
the image, and Artifact Registry refuses deleting children still referenced
(`GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE`). So the only delete rule generated selects *tagged*
versions by age; a keep rule protects the most recent versions whatever their age.
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
    """For a keep policy: how many of the most recent versions to keep."""
    tag_state: str | None = None
    """For a delete policy: always `TAGGED` (see the module docstring)."""
    older_than: str | None = None
    """For a delete policy: minimum age, as seconds with an `s` suffix."""
    tag_prefixes: tuple[str, ...] = ()
    """For a delete policy: only tags with these prefixes (empty: any tag)."""


def cleanup_policies(cleanup: CleanupSettings) -> tuple[CleanupPolicy, ...]:
    """Keep the `keepCount` most recent versions; delete tagged versions older than the limit."""
    return (
        CleanupPolicy(id="keep-most-recent", action="KEEP", keep_count=cleanup.keep_count),
        CleanupPolicy(
            id="delete-old-tagged",
            action="DELETE",
            tag_state="TAGGED",
            older_than=f"{cleanup.older_than_days * _SECONDS_PER_DAY}s",
            tag_prefixes=cleanup.tag_prefixes,
        ),
    )
