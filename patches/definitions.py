"""Patch definitions: which upstream revisions we know, their Dockerfiles, and the edits for each.

Definitions are data in a TOML file (patches/upstream.toml for the real upstream; tests pass
their own). Per revision and service they record the sha256 of the pristine Dockerfile and of
the patched result, a per-line fingerprint of both (to name the first line that differs when a
file drifted), and the list of operations. A service with no operations is recorded too: its
file must still be the reviewed upstream file, and it stays byte-identical.

Digests are taken over the text with CRLF normalised to LF, so a checkout made with
core.autocrlf=true is recognised; edits keep each line's own ending.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

from patches.operations import OPERATIONS, Operation

DEFAULT_DEFINITIONS = Path(__file__).with_name("upstream.toml")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_FINGERPRINT = re.compile(r"^([0-9a-f]{2})*$")


class DefinitionsError(ValueError):
    """The definitions file is malformed; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class FileDefinition:
    """One service's Dockerfile at one upstream revision."""

    service: str
    path: str
    """Path of the Dockerfile relative to the checkout root, with forward slashes."""
    pristine: str
    """sha256 of the upstream file (CRLF normalised to LF)."""
    patched: str
    """sha256 of the file after the operations; equals `pristine` when there are none."""
    lines: str
    """Fingerprint of the upstream file: two hex digits of each line's sha256."""
    patched_lines: str
    """Fingerprint of the patched file; equals `lines` when there are no operations."""
    operations: tuple[Operation, ...]

    @property
    def patch_id(self) -> str | None:
        """sha256 of this definition (file identity and operations); None without operations."""
        if not self.operations:
            return None
        data = {
            "path": self.path,
            "pristine": self.pristine,
            "patched": self.patched,
            "operations": [op.as_data() for op in self.operations],
        }
        encoded = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class Revision:
    """A supported upstream commit and its files."""

    commit: str
    tag: str
    files: tuple[FileDefinition, ...]

    @property
    def label(self) -> str:
        """Short name for messages: "5f4ccc7d (v0)"."""
        return f"{self.commit[:8]} ({self.tag})" if self.tag else self.commit[:8]

    def file(self, service: str) -> FileDefinition | None:
        """The definition of `service` at this revision, or None."""
        return next((f for f in self.files if f.service == service), None)


@dataclass(frozen=True)
class Definitions:
    """Every supported revision, in the order the file lists them."""

    revisions: tuple[Revision, ...]

    def revision(self, commit: str) -> Revision | None:
        """The revision with this full commit sha, or None."""
        return next((r for r in self.revisions if r.commit == commit), None)

    def services(self) -> tuple[str, ...]:
        """Every service any revision defines, first-seen order."""
        seen: dict[str, None] = {}
        for revision in self.revisions:
            for file in revision.files:
                seen.setdefault(file.service)
        return tuple(seen)


def normalised(text: str) -> str:
    """The text with CRLF line endings turned into LF (what digests are taken over)."""
    return text.replace("\r\n", "\n")


def content_digest(text: str) -> str:
    """sha256 hex of the LF-normalised text."""
    return hashlib.sha256(normalised(text).encode("utf-8")).hexdigest()


def split_lines(text: str) -> list[str]:
    """The LF-normalised lines of `text`, without endings (no empty entry after a final LF)."""
    lines = normalised(text).split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def line_fingerprint(text: str) -> str:
    """Two hex digits of the sha256 of each line (enough to name the line that changed)."""
    digests = (hashlib.sha256(line.encode("utf-8")).hexdigest() for line in split_lines(text))
    return "".join(digest[:2] for digest in digests)


def load(path: Path = DEFAULT_DEFINITIONS) -> Definitions:
    """Read and validate a definitions file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise DefinitionsError(f"{path}: cannot read patch definitions: {error}") from error
    _only_keys(data, {"revision"}, f"{path}")
    revisions = tuple(
        _revision(entry, f"{path}: revision #{number}")
        for number, entry in enumerate(_list(data, "revision", f"{path}"), start=1)
    )
    commits = [r.commit for r in revisions]
    if len(set(commits)) != len(commits):
        raise DefinitionsError(f"{path}: a commit is listed twice; each revision appears once")
    return Definitions(revisions)


def _revision(entry: object, where: str) -> Revision:
    table = _table(entry, where)
    _only_keys(table, {"commit", "tag", "file"}, where)
    commit = _string(table, "commit", where, _COMMIT, "a full 40-hex-digit commit sha")
    tag = str(table.get("tag", ""))
    files = tuple(
        _file(item, f"{where} ({commit[:8]}) file #{number}")
        for number, item in enumerate(_list(table, "file", where), start=1)
    )
    services = [f.service for f in files]
    if len(set(services)) != len(services):
        raise DefinitionsError(f"{where}: a service is listed twice")
    return Revision(commit, tag, files)


def _file(entry: object, where: str) -> FileDefinition:
    table = _table(entry, where)
    allowed = {"service", "path", "pristine", "patched", "lines", "patched_lines", "patches"}
    _only_keys(table, allowed, where)
    service = _string(table, "service", where, re.compile(r"^[a-z][a-z0-9-]*$"), "a service name")
    path = _string(table, "path", where, re.compile(r"^[^/].*$"), "a relative path")
    if ".." in PurePosixPath(path).parts:
        raise DefinitionsError(f"{where}: key 'path' = {path!r} must stay inside the checkout")
    pristine = _string(table, "pristine", where, _SHA256, "a sha256 hex digest")
    lines = _string(table, "lines", where, _FINGERPRINT, "a line fingerprint (hex pairs)")
    operations = tuple(
        _operation(item, f"{where} patch #{number}")
        for number, item in enumerate(_list(table, "patches", where), start=1)
    )
    if operations:
        patched = _string(table, "patched", where, _SHA256, "a sha256 hex digest")
        patched_lines = _string(table, "patched_lines", where, _FINGERPRINT, "a line fingerprint")
    elif "patched" in table or "patched_lines" in table:
        raise DefinitionsError(f"{where}: 'patched' and 'patched_lines' need 'patches'")
    else:
        patched, patched_lines = pristine, lines
    return FileDefinition(service, path, pristine, patched, lines, patched_lines, operations)


def _operation(entry: object, where: str) -> Operation:
    table = dict(_table(entry, where))
    name = table.pop("op", None)
    kind = OPERATIONS.get(str(name))
    if kind is None:
        raise DefinitionsError(
            f"{where}: key 'op' = {name!r} is not an operation; allowed: {', '.join(OPERATIONS)}"
        )
    allowed = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    _only_keys(table, allowed, where)
    for key, value in table.items():
        if not isinstance(value, str):
            raise DefinitionsError(f"{where}: key {key!r} = {value!r} must be a string")
    try:
        return kind(**table)
    except TypeError as error:
        raise DefinitionsError(
            f"{where}: {name} needs keys {', '.join(sorted(allowed))}: {error}"
        ) from error


def _table(entry: object, where: str) -> dict[str, object]:
    if not isinstance(entry, dict):
        raise DefinitionsError(f"{where}: expected a table, found {entry!r}")
    return entry


def _list(table: dict[str, object], key: str, where: str) -> list[object]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise DefinitionsError(f"{where}: key {key!r} must be an array of tables")
    return value


def _string(
    table: dict[str, object], key: str, where: str, shape: re.Pattern[str], allowed: str
) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not shape.match(value):
        raise DefinitionsError(f"{where}: key {key!r} = {value!r} is not {allowed}")
    return value


def _only_keys(table: dict[str, object], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise DefinitionsError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
