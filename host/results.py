"""The JSON each host script prints: the contract between `host` and the Pulumi components.

The program reads only the deterministic fields (`path`, `commit`, `name`); `action` says what the
run did and differs between runs, so it must never reach a resource input.
"""

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CheckoutResult:
    """An upstream checkout that is ready to build from."""

    path: str
    """Checkout directory as given (relative paths stay relative to the project directory)."""
    commit: str | None
    """HEAD commit of the checkout; None for a given path that is not a git work tree."""
    url: str | None
    """Where it was fetched from; None for a given path."""
    action: str
    """`cloned` (fetched now) or `reused` (already present at the commit)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "CheckoutResult":
        return CheckoutResult(**json.loads(text))


@dataclass(frozen=True)
class BuilderResult:
    """A buildx builder in the state its spec asks for, or removed."""

    name: str
    """Builder name."""
    action: str
    """`created`, `reused`, `reconciled` (re-created with the new spec), `removed`, `absent`, or
    `kept` (a remove without an owner left a builder that a stack owns)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "BuilderResult":
        return BuilderResult(**json.loads(text))


@dataclass(frozen=True)
class RegistryResult:
    """A registry serving at a loopback address."""

    address: str
    """`host:port` it serves on; the only field the program reads."""
    pid: int | None
    """The `docker-registry` process this data directory's ensure started, if it still runs."""
    container: str | None
    """The container this data directory's ensure started (fallback without the binary)."""
    started: bool
    """True when this run started it, False when a registry already answered there."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "RegistryResult":
        return RegistryResult(**json.loads(text))


@dataclass(frozen=True)
class RegistryRemoval:
    """What `registry remove` stopped; stored images stay in the data directory."""

    address: str
    pid: int | None
    """The process stopped, or None."""
    container: str | None
    """The container removed, or None."""
    stopped: bool
    """False when nothing this data directory's ensure started was running (a no-op)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)
