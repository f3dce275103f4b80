"""Image references: ``host[:port]/repository[:tag]`` or ``...@sha256:<hex>``.

The registry host is mandatory (the tool never guesses Docker Hub). Registries on the loopback
range or ``localhost`` are spoken to over plain HTTP, as Docker does; every other one over HTTPS.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from verify.digests import DIGEST_PATTERN

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?"
)

REFERENCE_FORMS = "host[:port]/repository[:tag] or host[:port]/repository[:tag]@sha256:<64 hex>"


class ReferenceError(ValueError):
    """A reference that does not follow :data:`REFERENCE_FORMS`."""


@dataclass(frozen=True)
class Reference:
    """A parsed image reference."""

    registry: str
    """``host[:port]`` exactly as written (IPv6 hosts keep their brackets)."""
    repository: str
    """Repository path inside the registry, e.g. ``boutique/frontend``."""
    tag: str | None
    """The tag, or None when the reference names only a digest."""
    digest: str | None
    """``sha256:<hex>`` when the reference pins a digest; it wins over the tag."""

    @property
    def manifest_reference(self) -> str:
        """What goes after ``/manifests/`` in the registry API: the digest, else the tag."""
        if self.digest is not None:
            return self.digest
        assert self.tag is not None
        return self.tag

    @property
    def hostname(self) -> str:
        """The host without port and without IPv6 brackets."""
        return split_host(self.registry)[0]

    @property
    def scheme(self) -> str:
        """``http`` for loopback registries (127.0.0.0/8, ::1, localhost), else ``https``."""
        return "http" if is_loopback(self.hostname) else "https"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def split_host(registry: str) -> tuple[str, str | None]:
    """``host[:port]`` as (the host without IPv6 brackets, the port or None). An IPv6 address
    with a port must be bracketed (``[::1]:5000``): unbracketed, every colon is the address's."""
    if registry.startswith("["):
        host, bracket, rest = registry[1:].partition("]")
        if not bracket or ":" not in host or (rest and not rest.startswith(":")):
            return registry, None  # brackets hold an IPv6 address, nothing else
        return host, rest[1:] if rest else None
    if registry.count(":") == 1:
        host, _, port = registry.partition(":")
        return host, port
    return registry, None


def is_loopback(hostname: str) -> bool:
    """True for ``localhost`` and for addresses in 127.0.0.0/8 or ``::1``: the one rule for
    "this machine only" (the config's `registry.start`, `python -m host registry` and the
    plain-HTTP choice here all use it, with :func:`split_host`)."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def parse_reference(text: str) -> Reference:
    """Parse ``text`` into a :class:`Reference`, or raise :class:`ReferenceError`."""

    def fail(why: str) -> ReferenceError:
        return ReferenceError(f"image reference {text!r}: {why}; expected {REFERENCE_FORMS}")

    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST_PATTERN.fullmatch(digest):
            raise fail(f"digest {digest!r} is not sha256: followed by 64 lowercase hex digits")
    if "/" not in rest:
        raise fail("no registry host")
    registry, path = rest.split("/", 1)
    if not _HOST.fullmatch(registry) or not (
        "." in registry or ":" in registry or registry.lower() == "localhost"
    ):
        raise fail(f"{registry!r} is not a registry host (needs a dot, a port or 'localhost')")
    tag = None
    last_slash = path.rfind("/")
    if ":" in path[last_slash + 1 :]:
        path, tag = path.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise fail(f"tag {tag!r} is not valid (letters, digits, '_', '.', '-'; max 128)")
    if not _REPOSITORY.fullmatch(path):
        raise fail(f"repository {path!r} is not valid (lowercase components separated by '/')")
    if tag is None and digest is None:
        raise fail("neither a tag nor a digest")
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)
