"""``python -m verify gc REPOSITORY --older-than DAYS [--dry-run | --delete]``: delete the versions
of an Artifact Registry repository that no tag reaches.

Artifact Registry's cleanup policies cannot express "untagged *and* not referenced by a tagged
index" (docs/cleanup.md), so this pass proves it. Every version reachable from any tag is kept:
an index's entries (per-platform manifests and BuildKit's attestation manifests), recursively,
and referrers (manifests whose ``subject`` is a reachable manifest, e.g. signatures). Of the
rest, only versions older than ``--older-than`` days are deleted: a build pushes by digest and
tags minutes later, and a newer version may be a build still in flight.

Listing uses Artifact Registry's REST API (:mod:`verify.artifacts`), manifests are read through
:class:`verify.registry.RegistryClient`, and every manifest's bytes are checked against the
digest it was fetched by. Any error before the first delete stops the run with nothing deleted.
Deletes go parents first (an index before its entries, a referrer before its subject); an error
during them stops the run at once, and only the versions whose delete operation finished are
reported as deleted. ``--dry-run`` (the default) deletes nothing and prints what it would delete.
Exit codes: 0 done, 2 usage, API, auth or registry error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from verify.artifacts import (
    API_URL,
    ApiError,
    ArtifactRegistryApi,
    RepositoryPath,
    Version,
)
from verify.auth import AuthError, CredentialResolver
from verify.digests import DIGEST_PATTERN, DigestMismatch, check_bytes
from verify.manifests import INDEX_TYPES, ManifestError, document_media_type
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import RegistryClient, RegistryError, RetryPolicy

EXIT_DONE, EXIT_ERROR = 0, 2
_AR_HOST = re.compile(r"^(?P<location>[a-z0-9]+(-[a-z0-9]+)*)-docker\.pkg\.dev$")


class GcError(Exception):
    """A usage, API or registry problem that stops the run."""


@dataclass(frozen=True)
class Node:
    """What a manifest points at: index entries and its `subject`."""

    children: tuple[str, ...]
    subject: str | None


@dataclass(frozen=True)
class Plan:
    """The outcome of the reachability pass."""

    versions: int
    reachable: int
    young: tuple[Version, ...]
    """Unreachable, but newer than the limit: kept."""
    delete: tuple[Version, ...]
    """Unreachable and older than the limit, in an order that deletes parents first."""


class Graph:
    """Reads manifests of one repository on demand and remembers what they point at."""

    def __init__(self, client: RegistryClient, registry: str, root: str) -> None:
        self._client = client
        self._registry = registry
        self._root = root
        self._nodes: dict[tuple[str, str], Node] = {}

    def node(self, package: str, digest: str) -> Node:
        key = (package, digest)
        if key not in self._nodes:
            self._nodes[key] = self._read(package, digest)
        return self._nodes[key]

    def _read(self, package: str, digest: str) -> Node:
        ref = Reference(self._registry, f"{self._root}/{package}", None, digest)
        what = f"manifest {package}@{digest}"
        try:
            document = self._client.get_manifest(ref, digest)
            check_bytes(what, document.data, digest)
            manifest = json.loads(document.data)
            media_type = document_media_type(document.data, document.content_type)
        except (RegistryError, AuthError, DigestMismatch, ManifestError) as error:
            raise GcError(str(error)) from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise GcError(f"{what} is not JSON") from None
        children: list[str] = []
        if media_type in INDEX_TYPES:
            entries = manifest.get("manifests")
            if not isinstance(entries, list):
                raise GcError(f"{what}: an index without a 'manifests' list")
            children = [_descriptor_digest(entry, what) for entry in entries]
        subject = manifest.get("subject")
        return Node(tuple(children), None if subject is None else _descriptor_digest(subject, what))


def _descriptor_digest(descriptor: object, what: str) -> str:
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest):
        raise GcError(f"{what}: a descriptor without a sha256 digest ({str(descriptor)[:200]})")
    return digest


def plan(
    versions: Sequence[Version],
    tags: dict[str, dict[str, str]],
    graph: Graph,
    now: datetime,
    older_than: timedelta,
) -> Plan:
    """Mark what any tag reaches; the rest older than `older_than` is to be deleted."""
    reachable: set[tuple[str, str]] = set()

    def mark(package: str, digest: str) -> None:
        pending = [digest]
        while pending:
            current = pending.pop()
            if (package, current) in reachable:
                continue
            reachable.add((package, current))
            pending.extend(graph.node(package, current).children)

    for package, package_tags in sorted(tags.items()):
        for digest in sorted(set(package_tags.values())):
            mark(package, digest)
    old = [v for v in versions if now - v.created > older_than]
    # Referrers point at their subject, not the other way round: a candidate whose subject is
    # reachable is reachable too, and may in turn make others reachable.
    changed = True
    while changed:
        changed = False
        for version in old:
            key = (version.package, version.digest)
            if key in reachable:
                continue
            subject = graph.node(*key).subject
            if subject is not None and (version.package, subject) in reachable:
                mark(*key)
                changed = True
    unreachable = [v for v in versions if (v.package, v.digest) not in reachable]
    delete = [v for v in unreachable if now - v.created > older_than]
    return Plan(
        versions=len(versions),
        reachable=len(versions) - len(unreachable),
        young=tuple(v for v in unreachable if now - v.created <= older_than),
        delete=tuple(_parents_first(delete, graph)),
    )


def _parents_first(candidates: Sequence[Version], graph: Graph) -> list[Version]:
    """Candidates ordered so that none comes after a candidate it points at (Artifact Registry
    refuses deleting a manifest an existing index still references)."""
    keys = {(v.package, v.digest): v for v in candidates}
    pointed_at: dict[tuple[str, str], int] = dict.fromkeys(keys, 0)
    for package, digest in keys:
        node = graph.node(package, digest)
        for target in {*node.children, *([node.subject] if node.subject else [])}:
            if (package, target) in pointed_at:
                pointed_at[(package, target)] += 1
    ordered: list[Version] = []
    ready = sorted(key for key, count in pointed_at.items() if count == 0)
    while ready:
        key = ready.pop(0)
        ordered.append(keys[key])
        node = graph.node(*key)
        for target in {*node.children, *([node.subject] if node.subject else [])}:
            if (key[0], target) in pointed_at:
                pointed_at[(key[0], target)] -= 1
                if pointed_at[(key[0], target)] == 0:
                    ready.append((key[0], target))
    # A cycle (impossible for content-addressed manifests) would leave some out: delete none.
    if len(ordered) != len(keys):
        raise GcError("manifests point at each other in a cycle; nothing was deleted")
    return ordered


def parse_repository(text: str, location: str | None) -> tuple[str, str, RepositoryPath]:
    """`HOST/PROJECT/REPOSITORY` -> (registry host, path below it, API repository). The API
    location comes from an Artifact Registry host, else from `location` (`--location`)."""
    parts = text.split("/")
    try:
        parse_reference(f"{text}:gc")
    except ReferenceError:
        parts = []
    if len(parts) != 3:
        raise GcError(
            f"REPOSITORY {text!r} is not HOST/PROJECT/REPOSITORY, e.g. "
            "europe-west1-docker.pkg.dev/my-project/online-boutique"
        )
    host, project, repository = parts
    found = _AR_HOST.fullmatch(host)
    if location is None:
        if found is None:
            raise GcError(
                f"REPOSITORY host {host!r} is not LOCATION-docker.pkg.dev; pass --location"
            )
        location = found["location"]
    return host, f"{project}/{repository}", RepositoryPath(project, location, repository)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify gc",
        description="Delete the versions of an Artifact Registry repository that no tag reaches "
        "(index entries, attestation manifests and referrers of tagged versions are kept).",
    )
    parser.add_argument(
        "repository", metavar="REPOSITORY", help="HOST/PROJECT/REPOSITORY of the Docker repository"
    )
    parser.add_argument(
        "--older-than",
        metavar="DAYS",
        required=True,
        type=int,
        help="delete only unreachable versions created more than DAYS days ago (at least 1)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted (the default)"
    )
    mode.add_argument("--delete", action="store_true", help="really delete")
    parser.add_argument(
        "--gcp",
        action="store_true",
        help="read manifests with Application Default Credentials (Artifact Registry)",
    )
    parser.add_argument(
        "--location", help="API location of a host that is not <location>-docker.pkg.dev"
    )
    parser.add_argument(
        "--api-url",
        default=API_URL,
        help="Artifact Registry API base URL (tests; Google credentials go only to the default)",
    )
    return parser


def _describe(version: Version) -> str:
    created = version.created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{version.package}@{version.digest} (created {created}, no tag reaches it)"


def run(
    arguments: argparse.Namespace, api: ArtifactRegistryApi, client: RegistryClient, now: datetime
) -> int:
    """List, mark, then print or delete; returns the exit code."""
    host, root, _ = parse_repository(arguments.repository, arguments.location)
    packages = api.packages()
    versions = [version for package in packages for version in api.versions(package)]
    tags = {package: api.tags(package) for package in packages}
    graph = Graph(client, host, root)
    outcome = plan(versions, tags, graph, now, timedelta(days=arguments.older_than))
    verb = "deleted" if arguments.delete else "would delete"
    print(
        f"gc {arguments.repository}: {outcome.versions} versions in {len(packages)} packages; "
        f"{outcome.reachable} reachable from a tag, {len(outcome.young)} unreachable but newer "
        f"than {arguments.older_than} days (kept), {len(outcome.delete)} unreachable and older"
    )
    done: list[Version] = []
    for version in outcome.delete:
        if arguments.delete:
            try:
                api.delete_version(version)
            except (ApiError, AuthError) as error:
                left = len(outcome.delete) - len(done) - 1
                print(
                    f"verify gc: stopped: {error}; deleted {len(done)}, not deleted "
                    f"{left + 1} (this one and {left} after it)",
                    file=sys.stderr,
                )
                return EXIT_ERROR
        done.append(version)
        print(f"{verb} {_describe(version)}")
    if not arguments.delete:
        print(f"dry run: nothing deleted; pass --delete to delete these {len(done)} versions")
    return EXIT_DONE


def main(argv: Iterable[str]) -> int:
    """``python -m verify gc ...``; returns the exit code."""
    arguments = _parser().parse_args(list(argv))
    try:
        if arguments.older_than < 1:
            raise GcError(f"--older-than {arguments.older_than}: at least 1 day")
        _, _, repository = parse_repository(arguments.repository, arguments.location)
        credentials = CredentialResolver(use_gcp=arguments.gcp, environ=os.environ)
        credentials.check_environment()
        api = ArtifactRegistryApi(repository, arguments.api_url, ArtifactRegistryApi.default_token)
        client = RegistryClient(credentials, RetryPolicy())
        return run(arguments, api, client, datetime.now(UTC))
    except (GcError, ApiError, AuthError) as error:
        print(f"verify gc: {error}; nothing was deleted", file=sys.stderr)
        return EXIT_ERROR
