"""Cloud KMS signing against a loopback fake of ``asymmetricSign`` and ``publicKey``, through
google-auth's own authorized HTTP client (the bearer token is checked by the fake)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import google.auth.transport.urllib3
import google.oauth2.credentials
import pytest
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tests.integration.loopbackserver import address_of, serve, shut_down
from tests.test_verify_cli import run
from verify.attest import dsse
from verify.attest.kms import KmsError, KmsKey

NAME = (
    "projects/shop-123/locations/europe-west1/keyRings/boutique/cryptoKeys/attest/"
    "cryptoKeyVersions/1"
)
TOKEN = "fake-access-token"


class _FakeKms(BaseHTTPRequestHandler):
    key: ClassVar[ec.EllipticCurvePrivateKey] = ec.generate_private_key(ec.SECP256R1())
    algorithm: ClassVar[str] = "EC_SIGN_P256_SHA256"
    corrupt: ClassVar[bool] = False
    status: ClassVar[int] = 200
    seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, document: dict[str, object]) -> None:
        body = json.dumps(document).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path} {self.headers.get('Authorization')}")
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._answer({"pem": pem.decode(), "algorithm": self.algorithm, "name": NAME})

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path} {self.headers.get('Authorization')}")
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        digest = base64.b64decode(request["digest"]["sha256"])
        signature = self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        if self.corrupt:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        self._answer({"signature": base64.b64encode(signature).decode(), "name": NAME})


@pytest.fixture
def kms() -> Iterator[KmsKey]:
    _FakeKms.algorithm, _FakeKms.corrupt, _FakeKms.status = "EC_SIGN_P256_SHA256", False, 200
    _FakeKms.seen.clear()
    server = serve(_FakeKms)
    credentials = google.oauth2.credentials.Credentials(token=TOKEN)
    http = google.auth.transport.urllib3.AuthorizedHttp(credentials, http=urllib3.PoolManager())
    yield KmsKey(http, NAME, endpoint=f"http://{address_of(server)}")
    shut_down(server)


def test_kms_signed_envelope_verifies_with_the_kms_public_key(kms: KmsKey) -> None:
    payload = dsse.statement([("r/app", "sha256:" + "d" * 64)], dsse.SPDX_PREDICATE, {})
    envelope = dsse.envelope(payload, kms.sign, dsse.key_id(kms.public_key()))
    verified = dsse.open_envelope(envelope, _FakeKms.key.public_key())
    assert verified.subjects == {"sha256:" + "d" * 64: "r/app"}
    assert _FakeKms.seen == [
        f"GET /v1/{NAME}/publicKey Bearer {TOKEN}",
        f"POST /v1/{NAME}:asymmetricSign Bearer {TOKEN}",
    ]


def test_a_signature_that_does_not_verify_is_refused(kms: KmsKey) -> None:
    _FakeKms.corrupt = True
    with pytest.raises(KmsError, match="does not verify"):
        kms.sign(b"DSSEv1 ...")


def test_only_p256_sha256_versions_sign(kms: KmsKey) -> None:
    _FakeKms.algorithm = "RSA_SIGN_PKCS1_2048_SHA256"
    with pytest.raises(KmsError, match="RSA_SIGN_PKCS1_2048_SHA256, not EC_SIGN_P256_SHA256"):
        kms.public_key()


def test_a_refusal_names_the_status(kms: KmsKey) -> None:
    _FakeKms.status = 403
    with pytest.raises(KmsError, match="HTTP 403"):
        kms.public_key()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kms", "projects/x/keys/1"], "--kms 'projects/x/keys/1': expected projects/P/"),
        (["--kms", NAME, "--key", "k.pem"], "exactly one of --key PEM and --kms KEY_VERSION"),
        (["--kms", NAME, "--create-key"], "--create-key creates the --key file"),
    ],
)
def test_kms_usage_errors(args: list[str], message: str) -> None:
    result = run("127.0.0.1:1/a:1", "--deep", "--attest", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_kms_needs_attest() -> None:
    result = run("127.0.0.1:1/a:1", "--deep", "--kms", NAME)
    assert result.returncode == 2
    assert "they need --attest" in result.stderr
