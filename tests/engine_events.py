"""Engine events shaped like those `pulumi up --event-log FILE` writes, for the local stack.

Each event is one JSON object with `sequence`, `timestamp` (Unix seconds) and one payload
(pulumi/pulumi sdk/go/common/apitype/events.go);
resource events carry `metadata` with `op`, `urn`, `type` and the `new`/`old` state whose
`parent` links a resource to its component. Built from the program's own resource names
(components/*.py) so the progress lines are tested against the URNs the program produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from host.progress import (
    BUILDX_BUILDER,
    COMMAND,
    IMAGE,
    INDEX,
    LOCAL_REGISTRY,
    MANIFEST_VERIFICATION,
    SERVICE_IMAGE,
)


def urn(types: list[str], name: str) -> str:
    """A URN's type chain lists the parents' types, except the root stack's."""
    return f"urn:pulumi:local::boutique-multiarch::{'$'.join(types)}::{name}"


STACK_URN = urn(["pulumi:pulumi:Stack"], "boutique-multiarch-local")


@dataclass
class Events:
    """Appends events with increasing sequence numbers at the given times."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def _add(self, at: int, payload: str, body: dict[str, Any]) -> None:
        self.events.append({"sequence": len(self.events), "timestamp": at, payload: body})

    def step(
        self,
        types: list[str],
        name: str,
        parent: str,
        start: int,
        end: int,
        op: str = "create",
        failed: bool = False,
        planning: bool = False,
    ) -> str:
        """A resourcePreEvent at `start` and its outputs (or failure) event at `end`."""
        resource = urn(types, name)
        state = {"type": types[-1], "urn": resource, "parent": parent, "id": ""}
        side = "old" if op == "delete" else "new"
        metadata = {"op": op, "urn": resource, "type": types[-1], "provider": "", side: state}
        extra = {"planning": True} if planning else {}
        self._add(start, "resourcePreEvent", {"metadata": metadata, **extra})
        if failed:
            self._add(end, "resOpFailedEvent", {"metadata": metadata, "status": 1, "steps": 0})
        else:
            self._add(end, "resOutputsEvent", {"metadata": metadata, **extra})
        return resource

    def diagnostic(self, at: int, message: str) -> None:
        self._add(at, "diagnosticEvent", {"message": message, "color": "never", "severity": "info"})

    def service(
        self,
        name: str,
        start: int,
        built: int,
        verified: int,
        tagged: int,
        arches: tuple[str, ...] = (),
        op: str = "create",
    ) -> None:
        """The ServiceImage component of `name` and its image(s), verification(s) and index."""
        component = self.step([SERVICE_IMAGE], name, STACK_URN, start, tagged, op)
        builds = [f"{name}-{arch}" for arch in arches] or [name]
        for build in builds:
            self.step([SERVICE_IMAGE, IMAGE], f"{build}-image", component, start, built, op)
            verification = urn([SERVICE_IMAGE, MANIFEST_VERIFICATION], f"{build}-verification")
            self.step(
                [SERVICE_IMAGE, MANIFEST_VERIFICATION],
                f"{build}-verification",
                component,
                built,
                verified,
                op,
            )
            self.step(
                [SERVICE_IMAGE, MANIFEST_VERIFICATION, COMMAND],
                f"{build}-verification-verify",
                verification,
                built,
                verified,
                op,
            )
        self.step([SERVICE_IMAGE, INDEX], f"{name}-index", component, verified, tagged, op)

    def registry(self, start: int, end: int, op: str = "create") -> None:
        component = urn([LOCAL_REGISTRY], "local")
        self.step([LOCAL_REGISTRY, COMMAND], "local-registry", component, start, end, op)

    def builder(self, start: int, end: int, op: str = "create") -> None:
        component = urn([BUILDX_BUILDER], "buildx")
        self.step([BUILDX_BUILDER, COMMAND], "buildx-builder", component, start, end, op)

    def cancel(self, at: int) -> None:
        self._add(at, "cancelEvent", {})
