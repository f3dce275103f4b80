"""Signing with a Cloud KMS key version (``--kms projects/…/cryptoKeyVersions/N``).

The key never leaves KMS: ``asymmetricSign`` gets the SHA-256 digest of the PAE and returns a
DER ECDSA signature. The key version must be ``EC_SIGN_P256_SHA256``. Each signature is checked
against the version's public key before it is used, so a wrong or corrupted answer fails here
and never reaches the registry. Requests carry Application Default Credentials (google-auth);
the caller needs ``cloudkms.cryptoKeyVersions.useToSign`` and ``…viewPublicKey`` on the key
(``roles/cloudkms.signerVerifier``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from verify.attest import google_api
from verify.attest.google_api import Http
from verify.attest.names import KEY_VERSION, KEY_VERSION_FORM
from verify.registry import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS

ENDPOINT = "https://cloudkms.googleapis.com"
ALGORITHM = "EC_SIGN_P256_SHA256"
MAX_ANSWER_BYTES = 64 << 10


class KmsError(Exception):
    """KMS could not sign, or answered something that is not a valid P-256 signature."""


def check_name(name: str) -> str:
    """A full key version resource name, or :class:`ValueError` saying what is allowed."""
    if not KEY_VERSION.fullmatch(name):
        raise ValueError(f"--kms {name!r}: expected {KEY_VERSION_FORM}")
    return name


class KmsKey:
    """One KMS key version, used as a DSSE signer."""

    def __init__(self, http: Http, name: str, endpoint: str = ENDPOINT) -> None:
        self._http = http
        self.name = check_name(name)
        self._endpoint = endpoint.rstrip("/")
        self._public_key: ec.EllipticCurvePublicKey | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self._endpoint}/v1/{path}"
        try:
            return google_api.call(self._http, "KMS", method, url, body, MAX_ANSWER_BYTES)
        except google_api.ApiError as error:
            raise KmsError(f"{self.name}: {error}") from None

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The version's public key; the version must be ``EC_SIGN_P256_SHA256``."""
        if self._public_key is None:
            document = self._call("GET", f"{self.name}/publicKey")
            if document.get("algorithm") != ALGORITHM:
                raise KmsError(
                    f"{self.name}: algorithm {document.get('algorithm')}, not {ALGORITHM}"
                )
            try:
                key = serialization.load_pem_public_key(str(document.get("pem", "")).encode())
            except ValueError:
                raise KmsError(f"{self.name}: KMS returned no readable public key") from None
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
                key.curve, ec.SECP256R1
            ):
                raise KmsError(f"{self.name}: the public key is not ECDSA P-256")
            self._public_key = key
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """``asymmetricSign`` over SHA-256 of ``data``; the signature is verified before use."""
        public_key = self.public_key()
        digest = hashlib.sha256(data).digest()
        body = {"digest": {"sha256": base64.b64encode(digest).decode()}}
        document = self._call("POST", f"{self.name}:asymmetricSign", body)
        if document.get("name") not in (None, self.name):
            raise KmsError(f"{self.name}: KMS signed with {document.get('name')}")
        try:
            signature = base64.b64decode(str(document.get("signature", "")), validate=True)
            public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except (binascii.Error, ValueError, InvalidSignature):
            raise KmsError(f"{self.name}: the signature KMS returned does not verify") from None
        return signature


def adc_http() -> Http:
    """An HTTP client that adds Application Default Credentials (cloud-platform scope)."""
    import google.auth
    import google.auth.transport.urllib3
    import urllib3

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
    return google.auth.transport.urllib3.AuthorizedHttp(
        credentials, http=urllib3.PoolManager(timeout=timeout)
    )
