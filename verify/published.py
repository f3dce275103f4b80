"""``python -m verify published REF ...``: is the registry still what the stack exported?

A shallow check (manifests only, no layer is read) the program runs on every preview and up:

- ``HOST/REPO:TAG@DIGEST`` (an exported ref): DIGEST still exists; with ``--manifest
  PLATFORM=DIGEST`` its platform entries (attestation manifests aside) are exactly the verified
  manifests; and TAG still points at DIGEST.
- ``HOST/REPO@DIGEST`` (a verified candidate the Index is built from): DIGEST still exists.
- ``HOST/REPO:TAG --immutable``: TAG is about to be published in a repository whose tags are
  immutable. Without ``--manifest`` (preview: new images will be built) TAG must not exist yet;
  with them (the verified manifests) it must not exist or already hold exactly them. Otherwise
  the Index would be refused after every build.

Exit codes: 0 as exported (stdout: :class:`verify.contract.PublishedResult`); 1 the registry differs
(stderr: what was found and the command that repairs it); 2 usage, auth or registry errors.
The repair commands name the resources to replace (``--index-urn``, ``--replace``).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterable, Sequence

from verify.auth import AuthError, CredentialResolver
from verify.contract import PublishedRequest, PublishedResult, published_parser
from verify.digests import DigestMismatch, check_bytes, sha256_digest
from verify.manifests import INDEX_TYPES, ManifestError, document_media_type, parse_index
from verify.platforms import PlatformError, parse_platform
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import Document, NotFoundError, RegistryClient, RegistryError, RetryPolicy

EXIT_AS_EXPORTED, EXIT_DIFFERS, EXIT_ERROR = 0, 1, 2


class Differs(Exception):
    """The registry is not what the stack exported; the message says what and how to repair."""


def _expected(values: Sequence[str]) -> dict[str, str]:
    expected: dict[str, str] = {}
    for value in values:
        platform, separator, digest = value.partition("=")
        try:
            name = str(parse_platform(platform))
        except PlatformError as error:
            raise ValueError(f"--manifest {value!r}: {error}") from None
        if not separator or not digest.startswith("sha256:"):
            raise ValueError(f"--manifest {value!r} is not PLATFORM=sha256:<hex>")
        expected[name] = digest
    return expected


def _repair(urns: Iterable[str]) -> str:
    replaced = " ".join(f"--replace {shlex.quote(urn)}" for urn in urns)
    return f"pulumi up {replaced}" if replaced else "pulumi up --refresh"


class PublishedCheck:
    """The checks of one REF, reading through a :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient, request: PublishedRequest) -> None:
        self._client = client
        self._request = request

    def check(self, ref: Reference, expected: dict[str, str]) -> str | None:
        """The exported digest when everything is as exported; raises :class:`Differs`."""
        if self._request.immutable:
            self._tag_free_for(ref, expected)
            return None
        assert ref.digest is not None
        self._holds(ref, ref.digest, expected)
        if ref.tag is not None:
            self._tag_at(ref, ref.digest)
        return ref.digest

    def _tag_free_for(self, ref: Reference, expected: dict[str, str]) -> None:
        assert ref.tag is not None
        name = f"{ref.registry}/{ref.repository}:{ref.tag}"
        try:
            document = self._client.get_manifest(ref, ref.tag)
        except NotFoundError:
            return
        found = sha256_digest(document.data)
        if not expected:
            why = (
                "this run builds new images for it (strategy, source.commit, patches or "
                "platforms changed)"
            )
        else:
            held = _platform_entries(f"{name} ({found})", document)
            if held == expected:
                return
            why = f"it holds {_listing(held)}, not the verified {_listing(expected)}"
        raise Differs(
            f"{name} exists already (digest {found}) in a repository with immutable tags, and "
            f"{why}: the Index would be refused after every build. Bump the tag: "
            "pulumi config set tag <new tag>"
        )

    def _holds(self, ref: Reference, digest: str, expected: dict[str, str]) -> None:
        name = f"{ref.registry}/{ref.repository}@{digest}"
        try:
            document = self._client.get_manifest(ref, digest)
        except NotFoundError:
            raise Differs(
                f"{name}: the digest the stack exported no longer exists in the registry "
                f"(deleted by hand or by a cleanup). Repair: {_repair(self._request.replace)}"
            ) from None
        check_bytes(f"manifest {name}", document.data, digest)
        if not expected:
            return
        held = _platform_entries(name, document)
        if held != expected:
            raise Differs(
                f"{name} holds {_listing(held)}, not the verified {_listing(expected)}: it is "
                f"not the image this stack verified. Repair: {self._repair_tag()}"
            )

    def _tag_at(self, ref: Reference, digest: str) -> None:
        assert ref.tag is not None
        name = f"{ref.registry}/{ref.repository}:{ref.tag}"
        try:
            found = self._read(ref, ref.tag)
        except NotFoundError:
            raise Differs(
                f"{name} no longer exists (deleted by hand?); the stack exported it at {digest}, "
                "which still exists. Repair: pulumi up --refresh (the refresh finds the tag "
                "missing and the Index publishes it again)"
            ) from None
        if found != digest:
            raise Differs(
                f"{name} points at {found}, not at {digest} the stack exported and verified "
                f"(moved by another writer or by hand). Repair: {self._repair_tag()}"
            )

    def _repair_tag(self) -> str:
        index = self._request.index_urn
        again = f"pulumi up --replace {shlex.quote(index)}" if index else "pulumi up --refresh"
        return f"{again} points it at the verified image again (with immutableTags: bump tag)"

    def _read(self, ref: Reference, reference: str) -> str:
        return sha256_digest(self._client.get_manifest(ref, reference).data)


def _platform_entries(name: str, document: Document) -> dict[str, str]:
    """`{platform: digest}` of an index's entries, attestation manifests left out."""
    media_type = document_media_type(document.data, document.content_type)
    if media_type not in INDEX_TYPES:
        raise ManifestError(f"{name} is a {media_type}, not an index")
    return {
        str(entry.platform): entry.digest
        for entry in parse_index(document.data, media_type).manifests
        if not entry.is_attestation and entry.platform is not None
    }


def _listing(platforms: dict[str, str]) -> str:
    return ", ".join(f"{name}={digest}" for name, digest in sorted(platforms.items())) or "nothing"


def main(argv: Iterable[str]) -> int:
    """``python -m verify published ...``; returns the exit code."""
    arguments = PublishedRequest.from_namespace(published_parser().parse_args(list(argv)))
    try:
        ref = parse_reference(arguments.ref)
        expected = _expected(arguments.manifests)
        if arguments.immutable and (ref.tag is None or ref.digest is not None):
            raise ValueError("--immutable takes HOST/REPO:TAG (no digest: none is built yet)")
        if not arguments.immutable and ref.digest is None:
            raise ValueError(f"{arguments.ref!r} names no digest (HOST/REPO[:TAG]@DIGEST)")
        credentials = CredentialResolver(use_gcp=arguments.gcp, environ=os.environ)
        credentials.check_environment()
        client = RegistryClient(credentials, RetryPolicy())
        digest = PublishedCheck(client, arguments).check(ref, expected)
    except Differs as difference:
        print(f"verify published: {difference}", file=sys.stderr)
        return EXIT_DIFFERS
    except (ReferenceError, ValueError, AuthError, RegistryError, DigestMismatch) as error:
        print(f"verify published: {arguments.ref}: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(PublishedResult(ref=arguments.ref, digest=digest).to_json())
    return EXIT_AS_EXPORTED
