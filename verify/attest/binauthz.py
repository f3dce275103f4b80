"""``python -m verify binauthz REF@DIGEST --note projects/P/notes/N --kms KEY_VERSION
[--platform-digest PLATFORM=DIGEST]... [--json] [--gcp]``: the Binary Authorization attestation.

Binary Authorization admits an image when an attestor's note has an ATTESTATION occurrence for
the image's resource URI (``https://<registry>/<repository>@sha256:…``) whose signature, by
the attestor's key, covers a "simple signing" payload naming that digest:
``{"critical": {"identity": {"docker-reference": …}, "image": {"docker-manifest-digest": …},
"type": "Google cloud binauthz container signature"}}``.

Before anything is signed, the index is read and its image entries must be exactly the given
``--platform-digest`` pairs (the manifests the verification proved). The occurrence is created
once: an existing one for the same resource URI and note is reused (idempotent re-runs).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from verify.attest import google_api
from verify.attest.google_api import Http
from verify.attest.kms import KmsError, KmsKey, check_name
from verify.auth import AuthError, CredentialResolver
from verify.contract import BinauthzRequest, BinauthzResult, binauthz_parser
from verify.digests import DigestMismatch, check_bytes
from verify.manifests import INDEX_TYPES, ManifestError, document_media_type, parse_index
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import RegistryClient, RegistryError

ENDPOINT = "https://containeranalysis.googleapis.com"
SIMPLE_SIGNING_TYPE = "Google cloud binauthz container signature"
NOTE = re.compile(r"projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])/notes/[A-Za-z0-9_-]{1,100}")
MAX_ANSWER_BYTES = 1 << 20
MAX_PAGES = 20
EXIT_DONE, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


class OccurrenceError(Exception):
    """Container Analysis refused or answered something unusable (exit 2)."""


def simple_signing_payload(repository: str, digest: str) -> bytes:
    """The payload the attestor's signature covers."""
    document = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLE_SIGNING_TYPE,
        }
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def resource_uri(repository: str, digest: str) -> str:
    return f"https://{repository}@{digest}"


class ContainerAnalysis:
    """Occurrences of one project, over an authorized HTTP client."""

    def __init__(self, http: Http, project: str, endpoint: str = ENDPOINT) -> None:
        self._http = http
        self._base = f"{endpoint.rstrip('/')}/v1/projects/{project}/occurrences"

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return google_api.call(
                self._http, "Container Analysis", method, url, body, MAX_ANSWER_BYTES
            )
        except google_api.ApiError as error:
            raise OccurrenceError(str(error)) from None

    def find(self, note: str, uri: str) -> str | None:
        """The name of an ATTESTATION occurrence of ``note`` on ``uri``, if one exists."""
        query = {"filter": f'resourceUrl="{uri}" AND kind="ATTESTATION"', "pageSize": "100"}
        for _ in range(MAX_PAGES):
            page = self._call("GET", f"{self._base}?{urlencode(query)}")
            for occurrence in page.get("occurrences") or []:
                if (
                    isinstance(occurrence, dict)
                    and occurrence.get("noteName") == note
                    and occurrence.get("resourceUri") == uri
                ):
                    return str(occurrence.get("name"))
            token = page.get("nextPageToken")
            if not token:
                return None
            query["pageToken"] = str(token)
        raise OccurrenceError(f"more than {MAX_PAGES} pages of occurrences for {uri}")

    def create(self, note: str, uri: str, payload: bytes, signature: bytes, key: str) -> str:
        body = {
            "resourceUri": uri,
            "noteName": note,
            "attestation": {
                "serializedPayload": base64.b64encode(payload).decode(),
                "signatures": [
                    {
                        "signature": base64.b64encode(signature).decode(),
                        "publicKeyId": f"//cloudkms.googleapis.com/v1/{key}",
                    }
                ],
            },
        }
        created = self._call("POST", self._base, body)
        name = created.get("name")
        if not isinstance(name, str) or not name:
            raise OccurrenceError("Container Analysis created an occurrence without a name")
        return name


def check_children(client: RegistryClient, ref: Reference, expected: dict[str, str]) -> list[str]:
    """Problems (none when fine) comparing the index's image entries with ``expected``."""
    assert ref.digest is not None
    document = client.get_manifest(ref, ref.digest)
    check_bytes("index", document.data, ref.digest)
    media_type = document_media_type(document.data, document.content_type)
    if media_type not in INDEX_TYPES:
        return [f"{ref.digest} is not an image index ({media_type})"]
    entries = [e for e in parse_index(document.data, media_type).manifests if not e.is_attestation]
    found = {str(entry.platform): entry.digest for entry in entries}
    if len(found) != len(entries) or found != expected:
        return [f"the index lists {found}, the verification proved {expected}"]
    return []


def attest_digest(
    analysis: ContainerAnalysis, key: KmsKey, note: str, repository: str, digest: str
) -> tuple[str, bool]:
    """The occurrence for ``repository@digest`` (name, whether it was created now)."""
    uri = resource_uri(repository, digest)
    existing = analysis.find(note, uri)
    if existing is not None:
        return existing, False
    payload = simple_signing_payload(repository, digest)
    return analysis.create(note, uri, payload, key.sign(payload), key.name), True


def main(argv: Sequence[str]) -> int:
    arguments = BinauthzRequest.from_namespace(binauthz_parser().parse_args(argv))
    try:
        ref = parse_reference(arguments.ref)
        if ref.digest is None:
            raise ValueError(f"{arguments.ref}: give the verified digest (REF@sha256:…)")
        note = NOTE.fullmatch(arguments.note)
        if note is None:
            raise ValueError(f"--note {arguments.note!r}: expected projects/P/notes/N")
        check_name(arguments.kms)
        expected = verified_manifests(arguments.platform_digests)
        credentials = CredentialResolver(use_gcp=arguments.gcp, environ=os.environ)
        credentials.check_environment()
    except (ReferenceError, ValueError, AuthError) as error:
        print(f"verify binauthz: {error}", file=sys.stderr)
        return EXIT_ERROR
    import google.auth.exceptions

    from verify.attest.kms import adc_http

    try:
        problems = check_children(RegistryClient(credentials), ref, expected)
        if problems:
            for problem in problems:
                print(f"verify binauthz: {arguments.ref}: {problem}", file=sys.stderr)
            return EXIT_REFUSED
        http = adc_http()
        analysis = ContainerAnalysis(http, note["project"])
        repository = f"{ref.registry}/{ref.repository}"
        name, created = attest_digest(
            analysis, KmsKey(http, arguments.kms), arguments.note, repository, ref.digest
        )
    except (
        RegistryError,
        AuthError,
        DigestMismatch,
        ManifestError,
        KmsError,
        OccurrenceError,
        google.auth.exceptions.GoogleAuthError,
    ) as error:
        print(f"verify binauthz: {arguments.ref}: {error}", file=sys.stderr)
        return EXIT_ERROR
    if arguments.json:
        print(BinauthzResult(occurrence=name, created=created).to_json())
    else:
        print(f"{'created' if created else 'reused'} {name}")
    return EXIT_DONE


def verified_manifests(values: Sequence[str]) -> dict[str, str]:
    """``{platform: digest}`` of the ``--platform-digest`` values, or ValueError."""
    expected = dict(platform_digest(value) for value in values)
    if not expected:
        raise ValueError("--platform-digest: give every verified PLATFORM=DIGEST")
    return expected


def platform_digest(value: str) -> tuple[str, str]:
    """``--platform-digest PLATFORM=sha256:<hex>`` as a pair, or ValueError."""
    platform, separator, digest = value.partition("=")
    if not separator or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"--platform-digest {value!r}: expected PLATFORM=sha256:<hex>")
    return platform, digest
