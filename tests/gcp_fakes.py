"""Loopback fakes of the Google APIs the attestations use: Cloud KMS (``publicKey``,
``asymmetricSign``) and Container Analysis occurrences. Each checks the bearer token that
google-auth's own authorized HTTP client sends. :func:`application_default_credentials` points
google-auth's Application Default Credentials at a loopback token endpoint."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import google.auth.transport.urllib3
import google.oauth2.credentials
import pytest
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tests.integration.loopbackserver import serve
from tests.integration.test_verify_registry import _service_account_key
from tests.integration.tokenserver import TokenServer

NAME = (
    "projects/shop-123/locations/europe-west1/keyRings/boutique/cryptoKeys/attest/"
    "cryptoKeyVersions/1"
)
TOKEN = "fake-access-token"
ADC_ACCOUNT = "verifier@boutique-test.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def authorized_http() -> google.auth.transport.urllib3.AuthorizedHttp:
    """google-auth's client with a fixed token (what ADC yields, without a metadata server)."""
    credentials = google.oauth2.credentials.Credentials(token=TOKEN)
    return google.auth.transport.urllib3.AuthorizedHttp(credentials, http=urllib3.PoolManager())


@contextmanager
def application_default_credentials(
    directory: Path, access_token: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TokenServer]:
    """ADC from a service-account key file (``GOOGLE_APPLICATION_CREDENTIALS``) whose token URI
    is a loopback :class:`TokenServer` answering ``access_token``: no metadata server, no
    network."""
    tokens = TokenServer(
        username="unused", password="unused", service_account=ADC_ACCOUNT, access_token=access_token
    ).start()
    try:
        key = directory / "adc.json"
        _service_account_key(key, ADC_ACCOUNT, tokens.oauth_uri)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        yield tokens
    finally:
        tokens.stop()


class _Json(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, document: dict[str, object], status: int | None = None) -> None:
        body = json.dumps(document).encode()
        self.send_response(status or self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _request(self) -> dict[str, object]:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer({"error": {"code": 401}}, 401)
            return False
        return True


class FakeKms(_Json):
    """``cryptoKeyVersions``: ``publicKey`` and ``asymmetricSign`` with one P-256 key, whatever
    version name the request has."""

    key: ClassVar[ec.EllipticCurvePrivateKey] = ec.generate_private_key(ec.SECP256R1())
    algorithm: ClassVar[str] = "EC_SIGN_P256_SHA256"
    corrupt: ClassVar[bool] = False
    garbled: ClassVar[bool] = False
    """Put a character outside base64 into the (valid) signature's text."""
    signed_by: ClassVar[str | None] = None
    """The key version ``asymmetricSign`` says it signed with (default: the one asked for)."""
    delay: ClassVar[float] = 0.0
    """Seconds ``publicKey`` waits before it answers."""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(f"GET {self._target()} {self.headers.get('Authorization')}")
        time.sleep(self.delay)
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._answer({"pem": pem.decode(), "algorithm": self.algorithm, "name": self._version()})

    def do_POST(self) -> None:
        self.seen.append(f"POST {self._target()} {self.headers.get('Authorization')}")
        request = self._request()
        digest = base64.b64decode(request["digest"]["sha256"])  # type: ignore[index]
        signature = self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        if self.corrupt:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        text = base64.b64encode(signature).decode()
        if self.garbled:
            text = f"{text[:8]}!{text[8:]}"
        self._answer({"signature": text, "name": self.signed_by or self._version()})

    def _target(self) -> str:
        """The path as the client sent it (``self.path`` has a leading ``//`` collapsed)."""
        return self.requestline.split(" ")[1]

    def _version(self) -> str:
        """The key version the request names, as KMS echoes it (one key serves every name)."""
        return self.path.removeprefix("/v1/").partition(":")[0].removesuffix("/publicKey")


def start_fake_kms() -> ThreadingHTTPServer:
    FakeKms.algorithm, FakeKms.corrupt, FakeKms.status = "EC_SIGN_P256_SHA256", False, 200
    FakeKms.garbled, FakeKms.signed_by, FakeKms.delay = False, None, 0.0
    FakeKms.seen.clear()
    return serve(FakeKms)


class FakeContainerAnalysis(_Json):
    """``projects/P/occurrences``: list (filtered by resource URL, two per page) and create."""

    occurrences: ClassVar[list[dict[str, object]]] = []

    def do_GET(self) -> None:
        if not self._authorized():
            return
        query = parse_qs(urlsplit(self.path).query)
        wanted = query["filter"][0].split('"')[1]
        matching = [o for o in self.occurrences if o["resourceUri"] == wanted]
        start = int(query.get("pageToken", ["0"])[0])
        page: dict[str, object] = {"occurrences": matching[start : start + 2]}
        if start + 2 < len(matching):
            page["nextPageToken"] = str(start + 2)
        self._answer(page)

    def do_POST(self) -> None:
        if not self._authorized():
            return
        occurrence = self._request()
        project = urlsplit(self.path).path.split("/")[3]
        occurrence["name"] = f"projects/{project}/occurrences/{len(self.occurrences) + 1}"
        occurrence["kind"] = "ATTESTATION"
        self.occurrences.append(occurrence)
        self._answer(occurrence)


def start_fake_container_analysis() -> ThreadingHTTPServer:
    FakeContainerAnalysis.occurrences.clear()
    FakeContainerAnalysis.status = 200
    return serve(FakeContainerAnalysis)
