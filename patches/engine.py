"""Plan and apply the patch set of a checkout: recognise, check, then write all or nothing.

Planning reads every selected Dockerfile and decides, per file, whether it is the pristine
upstream file of a supported revision, already patched, or drifted. The tree must agree on one
revision. Only when no file drifted and every edit passed its precondition, its postcondition
and the recorded digest of the result does `write` touch the tree: each new file is written to
a temporary file beside the original (same owner, group and mode), every original is read
again and must still be the file that was planned (a concurrent edit is never lost), then all
are moved into place with os.replace; if a move fails, the files already moved are restored.
No file is read or written through a symlink that leads out of the source tree.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from patches.definitions import (
    Definitions,
    FileDefinition,
    Revision,
    content_digest,
    line_fingerprint,
    split_lines,
)
from patches.dockerfile import DockerfileSyntaxError, Line, parse
from patches.operations import Mismatch, Operation
from patches.platforms import automatic_arg_problems

PATCHED = "patched"
ALREADY_PATCHED = "already-patched"
UNTOUCHED = "untouched"
UNPATCHED = "unpatched"


class PatchError(Exception):
    """Drift, unknown upstream or bad arguments: nothing was changed (exit code 2)."""


@dataclass(frozen=True)
class PlannedFile:
    """What the patch set does to one Dockerfile."""

    service: str
    path: str
    state: str
    """UNPATCHED (apply will edit it), ALREADY_PATCHED or UNTOUCHED (no operations)."""
    patch_id: str | None
    before: str
    after: str

    def diff(self) -> str:
        """The unified diff `apply` makes to this file (empty when it makes none)."""
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{self.path}",
                tofile=f"b/{self.path}",
            )
        )


@dataclass(frozen=True)
class Plan:
    """The recognised revision and one entry per selected file."""

    root: Path
    revision: Revision
    files: tuple[PlannedFile, ...]


def plan(
    root: Path,
    definitions: Definitions,
    services: tuple[str, ...] = (),
    commit: str | None = None,
) -> Plan:
    """Recognise the tree and compute every patched file; raise PatchError on any problem."""
    if not root.is_dir():
        raise PatchError(f"SOURCE_DIR {str(root)!r} is not a directory; pass the checkout root")
    forced = _forced_revision(definitions, commit)
    selected = _select_services(root, definitions, services, forced)
    texts = {service: _read_service(root, definitions, service) for service in selected}
    revision = forced or _recognise_revision(definitions, texts)
    drift = [
        _drift_message(service, texts[service], revision, definitions)
        for service in selected
        if _state(revision.file(service), texts[service]) is None
    ]
    if drift:
        raise PatchError("\n".join([*drift, "Nothing was changed."]))
    planned = []
    for service in selected:
        definition = revision.file(service)
        text = texts[service]
        assert definition is not None and text is not None  # _state() accepted both
        state = _state(definition, text)
        after = _patched_text(definition, text, revision) if state == UNPATCHED else text
        planned.append(
            PlannedFile(service, definition.path, str(state), definition.patch_id, text, after)
        )
    return Plan(root, revision, tuple(planned))


def write(result: Plan) -> None:
    """Write every file the plan changes, all or nothing, keeping each file's owner, group and
    mode. A file that now resolves outside the tree, or whose bytes are no longer those that
    were planned, aborts the whole apply before any file is replaced."""
    changes = [f for f in result.files if f.after != f.before]
    staged: list[tuple[Path, Path]] = []
    try:
        for file in changes:
            target = _inside(result.root, file.path)
            staged.append((_stage_copy(target, file.path, file.after), target))
        # Checked after staging, right before the moves, to keep the window small.
        for file in changes:
            _check_unchanged(result.root, file)
    except PatchError:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    moved: list[tuple[Path, str]] = []
    try:
        for (temporary, target), file in zip(staged, changes, strict=True):
            os.replace(temporary, target)
            moved.append((target, file.before))
    except OSError as error:
        for target, before in moved:
            target.write_bytes(before.encode("utf-8"))
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise PatchError(
            f"cannot replace {error.filename}: {error.strerror}; "
            "the files already replaced were restored"
        ) from error


def apply_operations(text: str, operations: tuple[Operation, ...]) -> str:
    """Apply `operations` in order, checking every condition; raise PatchError if one fails.

    All preconditions are first checked on the file as it is, so a failure names the line a
    reader sees in the file; they are checked again before each edit, in case edits interact.
    """
    dockerfile = parse(text)
    for operation in operations:
        failed = operation.precondition(dockerfile)
        if failed:
            raise PatchError(_describe_mismatch(f"precondition of {operation.describe()}", failed))
    for operation in operations:
        failed = operation.precondition(dockerfile)
        if failed:
            context = f"precondition of {operation.describe()}, after the edits before it"
            raise PatchError(_describe_mismatch(context, failed))
        dockerfile = parse(_render(operation.edit(dockerfile)))
        failed = operation.postcondition(dockerfile)
        if failed:
            raise PatchError(_describe_mismatch(f"postcondition of {operation.describe()}", failed))
    for operation in operations:
        failed = operation.postcondition(dockerfile)
        if failed:
            raise PatchError(
                _describe_mismatch(f"{operation.describe()} undone by a later edit", failed)
            )
    problems = automatic_arg_problems(dockerfile)
    if problems:
        first = problems[0]
        mismatch = Mismatch(first.line_number, "no ARG that pins or empties it", first.text)
        raise PatchError(_describe_mismatch("platform ARG check", mismatch) + f" ({first.reason})")
    return dockerfile.render()


def _forced_revision(definitions: Definitions, commit: str | None) -> Revision | None:
    if commit is None:
        return None
    revision = definitions.revision(commit)
    if revision is None:
        supported = ", ".join(f"{r.commit} ({r.tag})" for r in definitions.revisions)
        raise PatchError(f"--revision {commit!r} is not a supported upstream; allowed: {supported}")
    return revision


def _select_services(
    root: Path, definitions: Definitions, services: tuple[str, ...], forced: Revision | None
) -> tuple[str, ...]:
    known = definitions.services()
    unknown = [s for s in services if s not in known]
    if unknown:
        raise PatchError(
            f"--service {unknown[0]!r} has no patch definitions; allowed: {', '.join(known)}"
        )
    if services:
        selected = tuple(dict.fromkeys(services))
    else:
        selected = tuple(
            s for s in known if any((root / p).is_file() for p in _paths(definitions, s))
        )
        if not selected:
            raise PatchError(
                f"SOURCE_DIR {str(root)!r} holds no Dockerfile of a known service "
                f"({', '.join(known)}); pass the checkout root"
            )
    if forced is not None:
        missing = [s for s in selected if forced.file(s) is None]
        if missing:
            raise PatchError(f"--service {missing[0]!r} is not defined at {forced.label}")
    return selected


def _paths(definitions: Definitions, service: str) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(
            f.path for r in definitions.revisions for f in r.files if f.service == service
        )
    )


def _read_service(root: Path, definitions: Definitions, service: str) -> str | None:
    """The service's Dockerfile text, or None when no defined path exists in the tree."""
    for path in _paths(definitions, service):
        candidate = _inside(root, path)
        if candidate.is_file():
            try:
                return candidate.read_bytes().decode("utf-8")
            except UnicodeDecodeError as error:
                raise PatchError(f"{path}: not UTF-8 text ({error})") from error
            except OSError as error:
                raise PatchError(f"{path}: cannot read: {error.strerror}") from error
    return None


def _state(definition: FileDefinition | None, text: str | None) -> str | None:
    """UNPATCHED / ALREADY_PATCHED / UNTOUCHED, or None when the file is not recognised."""
    if definition is None or text is None:
        return None
    digest = content_digest(text)
    if not definition.operations:
        return UNTOUCHED if digest == definition.pristine else None
    if digest == definition.pristine:
        return UNPATCHED
    if digest == definition.patched:
        return ALREADY_PATCHED
    return None


def _recognise_revision(definitions: Definitions, texts: dict[str, str | None]) -> Revision:
    recognised = {
        service: [r for r in definitions.revisions if _state(r.file(service), text)]
        for service, text in texts.items()
    }
    known = {s: revisions for s, revisions in recognised.items() if revisions}
    candidates = [
        r for r in definitions.revisions if all(r in revisions for revisions in known.values())
    ]
    if not known:
        messages = [
            _drift_message(service, text, None, definitions) for service, text in texts.items()
        ]
        raise PatchError(
            "\n".join(
                [
                    "unknown upstream: no selected Dockerfile matches a supported revision.",
                    *messages,
                    "Nothing was changed.",
                ]
            )
        )
    if not candidates:
        lines = [
            f"  {service}: {', '.join(r.label for r in revisions)}"
            for service, revisions in known.items()
        ]
        raise PatchError(
            "\n".join(
                [
                    "mixed tree: the Dockerfiles belong to different supported revisions:",
                    *lines,
                    "Nothing was changed.",
                ]
            )
        )
    # Equal definitions give every file the same state and the same result.
    definitions_per_candidate = {tuple(r.file(s) for s in texts) for r in candidates}
    if len(definitions_per_candidate) > 1:
        labels = ", ".join(r.commit for r in candidates)
        raise PatchError(
            f"the selected Dockerfiles match several supported revisions ({labels}) "
            "that patch them differently; pass --revision"
        )
    return candidates[0]


def _patched_text(definition: FileDefinition, text: str, revision: Revision) -> str:
    try:
        after = apply_operations(text, definition.operations)
    except (PatchError, DockerfileSyntaxError) as error:
        raise PatchError(f"{definition.path} at {revision.label}: {error}") from error
    if content_digest(after) != definition.patched:
        raise PatchError(
            f"{definition.path} at {revision.label}: the patched result has sha256 "
            f"{content_digest(after)}, the definitions record {definition.patched}; "
            "the definitions are inconsistent, nothing was changed"
        )
    return after


def _drift_message(
    service: str, text: str | None, revision: Revision | None, definitions: Definitions
) -> str:
    """Why `service`'s file is not recognised, against `revision` or every revision defining it."""
    revisions = [revision] if revision else [r for r in definitions.revisions if r.file(service)]
    paths = _paths(definitions, service)
    if text is None:
        return f"drift: {' or '.join(paths)} ({service}): file not found"
    blocks = []
    for candidate in revisions:
        definition = candidate.file(service)
        if definition is None:
            blocks.append(f"  against {candidate.label}: the service is not part of it")
            continue
        blocks.append(f"  against {candidate.label}: {_first_difference(text, definition)}")
    found = content_digest(text)
    return "\n".join([f"drift: {paths[0]} ({service}) has sha256 {found}", *blocks])


def _first_difference(text: str, definition: FileDefinition) -> str:
    """Name the line where `text` departs from the definition, as precisely as we can.

    The file is read as a changed upstream file or as a changed patched file, whichever its
    lines resemble more; the first failed condition of that reading is reported, else the
    first line whose fingerprint differs.
    """
    try:
        dockerfile = parse(text)
    except DockerfileSyntaxError as error:
        return str(error)
    mine = _tokens(line_fingerprint(text))
    closer_to_patched = bool(definition.operations) and _similarity(
        mine, definition.patched_lines
    ) > _similarity(mine, definition.lines)
    if closer_to_patched:
        for operation in definition.operations:
            failed = operation.postcondition(dockerfile)
            if failed:
                return _describe_mismatch("", failed)
        return _describe_mismatch("", _line_mismatch(text, definition.patched_lines, "patched"))
    done: list[tuple[Operation, Mismatch]] = []
    pending: list[Operation] = []
    for operation in definition.operations:
        failed = operation.precondition(dockerfile)
        if failed is None:
            pending.append(operation)
        elif operation.postcondition(dockerfile) is None:
            done.append((operation, failed))
        else:
            return _describe_mismatch("", failed)
    if done and pending:
        return _describe_mismatch("", done[0][1]) + (
            f' (partially patched: "{done[0][0].describe()}" looks applied, '
            f'"{pending[0].describe()}" does not)'
        )
    if done:
        return _describe_mismatch("", _line_mismatch(text, definition.patched_lines, "patched"))
    return _describe_mismatch("", _line_mismatch(text, definition.lines, "upstream"))


def _tokens(fingerprint: str) -> list[str]:
    return [fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)]


def _similarity(mine: list[str], fingerprint: str) -> float:
    return difflib.SequenceMatcher(None, mine, _tokens(fingerprint), autojunk=False).ratio()


def _line_mismatch(text: str, fingerprint: str, reference: str) -> Mismatch:
    """The first line of `text` that is not where the reference file has it."""
    lines = split_lines(text)
    theirs = _tokens(fingerprint)
    matcher = difflib.SequenceMatcher(None, _tokens(line_fingerprint(text)), theirs, autojunk=False)
    for tag, mine_start, _, their_start, _ in matcher.get_opcodes():
        if tag == "equal":
            continue
        found = repr(lines[mine_start]) if mine_start < len(lines) else "end of file"
        if their_start >= len(theirs):
            expected = "end of file"
        elif tag == "insert":
            expected = f"line {their_start + 1} of the {reference} file (missing here)"
        else:
            expected = f"line {their_start + 1} of the {reference} file"
        return Mismatch(mine_start + 1, expected, found)
    return Mismatch(len(lines), f"the {reference} file byte for byte", "other bytes")


def _describe_mismatch(context: str, mismatch: Mismatch) -> str:
    prefix = f"{context}: " if context else ""
    return (
        f"{prefix}line {mismatch.line_number}: expected {mismatch.expected}; found {mismatch.found}"
    )


def _render(lines: tuple[Line, ...]) -> str:
    return "".join(line.text + line.ending for line in lines)


def _inside(root: Path, relative: str) -> Path:
    """`root / relative`, refused when symlinks lead its resolved path out of the root (a
    service directory linked elsewhere would have the file there read and rewritten)."""
    path = root / relative
    resolved, top = path.resolve(), root.resolve()
    if not resolved.is_relative_to(top):
        raise PatchError(
            f"{relative} resolves to {resolved}, outside SOURCE_DIR {top} (a symlink leads out "
            "of the tree); nothing was changed"
        )
    return path


def _check_unchanged(root: Path, file: PlannedFile) -> None:
    """Refuse to replace a file whose bytes differ from those planned: it was edited since."""
    try:
        current = (root / file.path).read_bytes()
    except OSError as error:
        raise PatchError(
            f"cannot read {file.path}: {error.strerror}; nothing was changed"
        ) from error
    planned = hashlib.sha256(file.before.encode("utf-8")).hexdigest()
    found = hashlib.sha256(current).hexdigest()
    if found != planned:
        raise PatchError(
            f"{file.path} changed while the patches were planned (sha256 {found}, planned from "
            f"{planned}); nothing was changed, run the command again"
        )


def _stage_copy(target: Path, relative: str, text: str) -> Path:
    """Write `text` to a temporary file beside `target` with `target`'s owner, group and mode;
    return its path. `relative` names the file in errors."""
    temporary: Path | None = None
    try:
        status = target.stat()
        descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        temporary = Path(name)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
            created = os.fstat(handle.fileno())
        if (created.st_uid, created.st_gid) != (status.st_uid, status.st_gid):
            # Before chmod: chown clears the set-user-ID and set-group-ID bits.
            os.chown(temporary, status.st_uid, status.st_gid)
        os.chmod(temporary, stat.S_IMODE(status.st_mode))
    except OSError as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise PatchError(
            f"cannot write {relative} with its owner, group and mode kept: {error.strerror}; "
            "nothing was changed"
        ) from error
    return temporary
