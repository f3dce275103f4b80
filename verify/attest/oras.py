"""OCI 1.1 artifacts attached to a digest as referrers: pushing them and listing them.

An artifact is an image manifest with ``artifactType``, the empty config descriptor, one layer
(the DSSE envelope) and a ``subject`` naming the digest it is about. Registries with the
referrers API (``GET /v2/<name>/referrers/<digest>`` answers 200) index it on push; for the
others the OCI distribution spec's fallback is an image index tagged ``sha256-<hex>`` listing
the referrers, which this module maintains by read-modify-write: one writer at a time in this
process (a lock), and each write is read back so a concurrent writer's overwrite is noticed
and the entry added again.

Every request goes to the reference's own registry; redirects are not followed for writes and
an upload location on another host is refused, so credentials never leave that host. Every
answer read is bounded.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3

from verify.attest.dsse import MAX_ENVELOPE_BYTES
from verify.digests import check_bytes, sha256_digest
from verify.manifests import MAX_DOCUMENT_BYTES, OCI_INDEX, OCI_MANIFEST
from verify.reference import Reference
from verify.registry import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    USER_AGENT,
    RegistryClient,
    RegistryError,
)

DSSE_ARTIFACT_TYPE = "application/vnd.dsse.envelope.v1+json"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
WRITE_ATTEMPTS = 3

_tag_index_lock = threading.Lock()


@dataclass(frozen=True)
class Subject:
    """What an artifact is about: a manifest or index, as a descriptor."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Referrer:
    """One entry of a referrers listing."""

    digest: str
    artifact_type: str
    annotations: dict[str, str]


def tag_schema_tag(digest: str) -> str:
    """The fallback tag of ``sha256:<hex>``: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def artifact_manifest(
    subject: Subject, envelope: bytes, predicate_type: str
) -> tuple[bytes, dict[str, Any]]:
    """The artifact manifest bytes and the descriptor an index lists it with."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": DSSE_ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_CONFIG_TYPE,
            "digest": sha256_digest(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [
            {
                "mediaType": DSSE_ARTIFACT_TYPE,
                "digest": sha256_digest(envelope),
                "size": len(envelope),
            }
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": {PREDICATE_ANNOTATION: predicate_type},
    }
    data = json.dumps(document, separators=(",", ":")).encode()
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(data),
        "size": len(data),
        "artifactType": DSSE_ARTIFACT_TYPE,
        "annotations": {PREDICATE_ANNOTATION: predicate_type},
    }
    return data, descriptor


class Registry:
    """The write side, and the referrers listing, over one reader's credentials."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client
        timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
        self._http = urllib3.PoolManager(timeout=timeout)
        self._authorizations: dict[str, str] = {}

    # Requests

    def _request(
        self,
        ref: Reference,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        limit: int = MAX_DOCUMENT_BYTES,
    ) -> tuple[int, bytes, urllib3.HTTPHeaderDict]:
        """One request to ``ref``'s registry, answering one 401; the body read is bounded."""
        origin = f"{ref.scheme}://{ref.registry}"
        if not url.startswith(origin + "/"):
            raise RegistryError(f"{method} {url}: not on the registry {origin}")
        scope = f"repository:{ref.repository}:pull,push"
        for attempt in range(2):
            sent = {"User-Agent": USER_AGENT, **(headers or {})}
            if ref.repository in self._authorizations:
                sent["Authorization"] = self._authorizations[ref.repository]
            try:
                response = self._http.request(
                    method, url, body=body, headers=sent, redirect=False, preload_content=False
                )
            except urllib3.exceptions.HTTPError as error:
                raise RegistryError(f"{method} {url}: connection failed: {error}") from None
            try:
                # Read before a 401 is answered too: a kept-alive connection with an unread
                # answer fails the next request sent on it.
                data = response.read(limit + 1, decode_content=True)
                if response.status == 401:
                    # The first asks for a token; a second means the token was refused.
                    if attempt == 0:
                        challenge = response.headers.get("WWW-Authenticate", "")
                        self._authorizations[ref.repository] = self._client.authorization(
                            ref, scope, challenge
                        )
                    continue
                if len(data) > limit:
                    raise RegistryError(f"{method} {url}: answer is larger than {limit} bytes")
                return response.status, data, response.headers
            except urllib3.exceptions.HTTPError as error:
                raise RegistryError(f"{method} {url}: answer broke off: {error}") from None
            finally:
                response.release_conn()
        raise RegistryError(f"{method} {url}: credentials refused (HTTP 401)")

    def _url(self, ref: Reference, path: str) -> str:
        return f"{ref.scheme}://{ref.registry}/v2/{ref.repository}/{path}"

    @staticmethod
    def _expect(status: int, expected: tuple[int, ...], what: str, data: bytes) -> None:
        if status not in expected:
            detail = data[:300].decode("utf-8", "replace").strip()
            raise RegistryError(f"{what}: unexpected HTTP {status} {detail}".rstrip())

    # Writing

    def push_blob(self, ref: Reference, data: bytes) -> str:
        """Upload a blob (monolithic POST + PUT) unless the registry has it."""
        digest = sha256_digest(data)
        status, _, _ = self._request(ref, "HEAD", self._url(ref, f"blobs/{digest}"), limit=0)
        if status == 200:
            return digest
        what = f"upload of blob {digest}"
        status, answer, headers = self._request(ref, "POST", self._url(ref, "blobs/uploads/"))
        self._expect(status, (202,), what, answer)
        location = urljoin(self._url(ref, "blobs/uploads/"), headers.get("Location", ""))
        parts = urlsplit(location)
        if f"{parts.scheme}://{parts.netloc}" != f"{ref.scheme}://{ref.registry}":
            raise RegistryError(f"{what}: the registry named an upload location on another host")
        separator = "&" if parts.query else "?"
        status, answer, _ = self._request(
            ref,
            "PUT",
            f"{location}{separator}digest={digest}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self._expect(status, (201, 204), what, answer)
        return digest

    def put_manifest(self, ref: Reference, reference: str, data: bytes, media_type: str) -> None:
        status, answer, _ = self._request(
            ref,
            "PUT",
            self._url(ref, f"manifests/{reference}"),
            body=data,
            headers={"Content-Type": media_type},
        )
        self._expect(status, (201, 204), f"push of manifest {reference}", answer)

    def attach(self, ref: Reference, subject: Subject, envelope: bytes, predicate_type: str) -> str:
        """Push ``envelope`` as an artifact referring to ``subject``; returns its digest."""
        self.push_blob(ref, EMPTY_CONFIG)
        self.push_blob(ref, envelope)
        data, descriptor = artifact_manifest(subject, envelope, predicate_type)
        self.put_manifest(ref, descriptor["digest"], data, OCI_MANIFEST)
        if not self.has_referrers_api(ref, subject.digest):
            self._add_to_tag_index(ref, subject.digest, descriptor)
        return str(descriptor["digest"])

    def _add_to_tag_index(self, ref: Reference, subject: str, descriptor: dict[str, Any]) -> None:
        tag = tag_schema_tag(subject)
        with _tag_index_lock:
            for _ in range(WRITE_ATTEMPTS):
                index = self._tag_index(ref, subject)
                if not any(entry.get("digest") == descriptor["digest"] for entry in index):
                    document = {
                        "schemaVersion": 2,
                        "mediaType": OCI_INDEX,
                        "manifests": [*index, descriptor],
                    }
                    data = json.dumps(document, separators=(",", ":")).encode()
                    self.put_manifest(ref, tag, data, OCI_INDEX)
                # Read back: another writer may have replaced the index in between.
                listed = self._tag_index(ref, subject)
                if any(entry.get("digest") == descriptor["digest"] for entry in listed):
                    return
        raise RegistryError(f"{tag}: the referrers index kept losing the new entry")

    # Reading

    def has_referrers_api(self, ref: Reference, digest: str) -> bool:
        status, _, _ = self._request(
            ref, "GET", self._url(ref, f"referrers/{digest}"), headers={"Accept": OCI_INDEX}
        )
        return status == 200

    def _tag_index(self, ref: Reference, subject: str) -> list[dict[str, Any]]:
        tag = tag_schema_tag(subject)
        status, data, _ = self._request(
            ref, "GET", self._url(ref, f"manifests/{tag}"), headers={"Accept": OCI_INDEX}
        )
        if status == 404:
            return []
        self._expect(status, (200,), f"referrers index {tag}", data)
        return _manifests(data, f"referrers index {tag}")

    def referrers(self, ref: Reference, subject: str) -> list[Referrer]:
        """The artifacts referring to ``subject`` (referrers API, else the tag schema)."""
        status, data, _ = self._request(
            ref, "GET", self._url(ref, f"referrers/{subject}"), headers={"Accept": OCI_INDEX}
        )
        if status == 200:
            entries = _manifests(data, f"referrers of {subject}")
        elif status == 404:
            entries = self._tag_index(ref, subject)
        else:
            raise RegistryError(f"referrers of {subject}: unexpected HTTP {status}")
        found = []
        for entry in entries:
            digest, annotations = entry.get("digest"), entry.get("annotations") or {}
            if isinstance(digest, str) and isinstance(annotations, dict):
                kind = str(entry.get("artifactType", ""))
                labels = {str(key): str(value) for key, value in annotations.items()}
                found.append(Referrer(digest, kind, labels))
        return found

    def get_manifest(self, ref: Reference, digest: str) -> bytes:
        """A manifest by digest, checked against it."""
        status, data, _ = self._request(
            ref, "GET", self._url(ref, f"manifests/{digest}"), headers={"Accept": OCI_MANIFEST}
        )
        self._expect(status, (200,), f"manifest {digest}", data)
        check_bytes(f"manifest {digest}", data, digest)
        return data

    def get_envelope(self, ref: Reference, digest: str) -> bytes:
        """An envelope blob by digest (bounded), checked against it."""
        url = self._url(ref, f"blobs/{digest}")
        status, data, headers = self._request(ref, "GET", url, limit=MAX_ENVELOPE_BYTES)
        if status in (301, 302, 303, 307, 308):
            # Blob storage behind a redirect gets no credentials: a plain bounded GET.
            if not headers.get("Location"):
                raise RegistryError(f"envelope {digest}: HTTP {status} without a Location")
            location = urljoin(url, headers["Location"])
            response = self._http.request("GET", location, preload_content=False, redirect=False)
            try:
                status = response.status
                data = response.read(MAX_ENVELOPE_BYTES + 1, decode_content=True)
            finally:
                response.release_conn()
            if len(data) > MAX_ENVELOPE_BYTES:
                raise RegistryError(f"envelope {digest} is larger than {MAX_ENVELOPE_BYTES} bytes")
        self._expect(status, (200,), f"envelope {digest}", data)
        check_bytes(f"envelope {digest}", data, digest)
        return data


def _manifests(data: bytes, what: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise RegistryError(f"{what} is not JSON") from None
    manifests = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(manifests, list):
        raise RegistryError(f"{what} has no manifests list")
    return [entry for entry in manifests if isinstance(entry, dict)]
