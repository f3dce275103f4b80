"""One line per step of `pulumi up` (registry, builder, each image built, verified, tagged).

Reads the engine events the CLI writes with `pulumi up --event-log FILE` (one JSON object per
line, see Pulumi's `EngineEvent`): a `resourcePreEvent` when a step starts and a
`resOutputsEvent` (or `resOpFailedEvent`) when it ends, each with the resource's URN, the
operation and a Unix `timestamp` in seconds. A step's duration is the difference of the two
timestamps, so it is the engine's own measure whatever the poll interval. Events of the
preview part of `up` (`planning: true`) are left out.

Steps are recognised by the resource's type and its parent's type, the last two of the URN's
type chain (`urn:pulumi:STACK::PROJECT::...$PARENT-TYPE$TYPE::NAME`), i.e. by the component
type tokens, which never change without aliases; the service of an image step is the name of
its `ServiceImage` ancestor, found through the `parent` of each resource the events announce.
"""

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

SERVICE_IMAGE = "boutique:service_image:ServiceImage"
LOCAL_REGISTRY = "boutique:local_registry:LocalRegistry"
BUILDX_BUILDER = "boutique:buildx_builder:BuildxBuilder"
MANIFEST_VERIFICATION = "boutique:manifest_verification:ManifestVerification"
COMMAND = "command:local:Command"
IMAGE = "docker-build:index:Image"
INDEX = "docker-build:index:Index"

POLL_INTERVAL_S = 0.1

_ARCH_PREFIX = re.compile(r"-([a-z0-9]+)-(?:image|verification)")

DONE = {"same": "unchanged", "create": "", "update": "updated", "create-replacement": "replaced"}
"""The note after a finished step, per operation (`create` needs none). Other operations
(`replace` is a logical marker, `delete-replaced` and `discard*` tidy up) print nothing."""
DONE_VERBS = {
    "registry": "registry ready",
    "builder": "builder ready",
    "image": "built {subject}",
    "verification": "verified {subject}",
    "index": "tagged {subject}",
}
REMOVED_NOTES = {
    "image": "state only: the pushed image stays in the registry",
    "index": "state only: the tag stays in the registry",
}


@dataclass(frozen=True)
class Urn:
    """The parts of a Pulumi URN this module reads."""

    types: tuple[str, ...]
    """The parent types and the resource's own type, outermost first."""
    name: str

    @staticmethod
    def parse(urn: str) -> "Urn | None":
        parts = urn.split("::", 3)
        if len(parts) != 4 or not parts[0].startswith("urn:pulumi:"):
            return None
        return Urn(types=tuple(parts[2].split("$")), name=parts[3])

    @property
    def type(self) -> str:
        return self.types[-1]


STEPS = {
    (COMMAND, LOCAL_REGISTRY): "registry",
    (COMMAND, BUILDX_BUILDER): "builder",
    (IMAGE, SERVICE_IMAGE): "image",
    (COMMAND, MANIFEST_VERIFICATION): "verification",
    (INDEX, SERVICE_IMAGE): "index",
}
"""(resource type, its parent's type) -> the step it is."""


def step_kind(urn: Urn) -> str | None:
    """`registry`, `builder`, `image`, `verification`, `index`, or None for other resources."""
    parent = urn.types[-2] if len(urn.types) > 1 else ""
    return STEPS.get((urn.type, parent))


def format_duration(seconds: float) -> str:
    """`7s`, `1m03s`, `1h02m`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def step_line(what: str, seconds: float, note: str = "") -> str:
    """One progress line: what, its duration right-aligned, then an optional note."""
    suffix = f"  ({note})" if note else ""
    return f"{what:<46} {format_duration(seconds):>6}{suffix}"


class Progress:
    """Turns engine events, in order, into progress lines."""

    def __init__(self) -> None:
        self._parents: dict[str, str] = {}
        self._started: dict[tuple[str, str], int] = {}

    def feed(self, event: dict[str, Any]) -> list[str]:
        """The lines `event` completes (none for most events)."""
        for key in ("resourcePreEvent", "resOutputsEvent", "resOpFailedEvent"):
            body = event.get(key)
            if isinstance(body, dict):
                break
        else:
            return []
        if body.get("planning"):
            return []
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            return []
        urn_text, op = str(metadata.get("urn", "")), str(metadata.get("op", ""))
        self._remember_parent(urn_text, metadata)
        urn = Urn.parse(urn_text)
        kind = None if urn is None else step_kind(urn)
        if urn is None or kind is None:
            return []
        timestamp = event.get("timestamp")
        when = timestamp if isinstance(timestamp, int) else int(time.time())
        if key == "resourcePreEvent":
            self._started[(urn_text, op)] = when
            return []
        seconds = when - self._started.pop((urn_text, op), when)
        subject = self._subject(kind, urn, urn_text)
        if key == "resOpFailedEvent":
            return [step_line(f"FAILED: {subject}", seconds, "the Pulumi output above says why")]
        if op == "delete":
            return [step_line(f"removed {subject}", seconds, REMOVED_NOTES.get(kind, ""))]
        if op not in DONE:
            return []
        return [step_line(DONE_VERBS[kind].format(subject=subject), seconds, DONE[op])]

    def _remember_parent(self, urn: str, metadata: dict[str, Any]) -> None:
        for state in (metadata.get("new"), metadata.get("old")):
            if isinstance(state, dict) and isinstance(state.get("parent"), str):
                self._parents[urn] = state["parent"]
                return

    def _subject(self, kind: str, urn: Urn, urn_text: str) -> str:
        """`registry`, `builder`, or the service (and platform, per-platform builds)."""
        if kind in ("registry", "builder"):
            return kind
        service = self._service_of(urn_text) or urn.name
        arch = (
            _ARCH_PREFIX.match(urn.name[len(service) :]) if urn.name.startswith(service) else None
        )
        return service if arch is None else f"{service} linux/{arch.group(1)}"

    def _service_of(self, urn: str) -> str | None:
        seen = set()
        current: str | None = urn
        while current is not None and current not in seen:
            seen.add(current)
            parsed = Urn.parse(current)
            if parsed is not None and parsed.type == SERVICE_IMAGE:
                return parsed.name
            current = self._parents.get(current)
        return None


def events(path: Path, stopping: Callable[[], bool]) -> Iterator[dict[str, Any]]:
    """The JSON objects appended to `path`, as they arrive, until `stopping()` and end of file.

    The file may not exist yet (the CLI creates it); a line is read only once complete.
    `stopping()` is asked before each read, so once it says yes, everything written before
    that moment is still read.
    """
    while True:
        finished = stopping()
        if path.exists():
            break
        if finished:
            return
        time.sleep(POLL_INTERVAL_S)
    partial = ""
    with path.open(encoding="utf-8", errors="replace") as stream:
        while True:
            finished = stopping()
            chunk = stream.readline()
            if not chunk:
                if finished:
                    return
                time.sleep(POLL_INTERVAL_S)
                continue
            partial += chunk
            if not partial.endswith("\n"):
                continue
            line, partial = partial, ""
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield event


def follow(path: Path, done: Path, out: TextIO, prefix: str) -> None:
    """Print progress lines for the events in `path` until the file `done` exists and every
    event before it was read, or the process that started this one is gone."""
    parent = os.getppid()
    progress = Progress()
    for event in events(path, lambda: done.exists() or os.getppid() != parent):
        for line in progress.feed(event):
            print(f"{prefix}{line}", file=out, flush=True)
