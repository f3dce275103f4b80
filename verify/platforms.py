"""Platforms (``os/architecture[/variant]``) and how index entries match a required platform.

Variants that name an architecture's baseline are dropped before comparing, so ``linux/arm64``
matches ``linux/arm64/v8`` (what some builders write), and ``linux/amd64`` matches
``linux/amd64/v1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BASELINE_VARIANTS = {("arm64", "v8"), ("amd64", "v1")}
_PART = re.compile(r"[a-z0-9_.-]+")

PLATFORM_FORM = "os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8"


class PlatformError(ValueError):
    """A platform string that does not follow :data:`PLATFORM_FORM`."""


@dataclass(frozen=True)
class Platform:
    """A normalised platform; equality is the matching rule."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def of(cls, os: str, architecture: str, variant: str | None = None) -> Platform:
        """Build a platform from manifest fields, dropping a baseline variant."""
        variant = (variant or "").lower()
        if (architecture, variant) in _BASELINE_VARIANTS:
            variant = ""
        return cls(os=os.lower(), architecture=architecture.lower(), variant=variant)

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch[/variant]`` or raise :class:`PlatformError`."""
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(_PART.fullmatch(part) for part in parts):
        raise PlatformError(f"platform {text!r} is not valid; expected {PLATFORM_FORM}")
    return Platform.of(*parts)


DEFAULT_PLATFORMS = (Platform.of("linux", "amd64"), Platform.of("linux", "arm64"))
