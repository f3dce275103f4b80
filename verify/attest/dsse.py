"""DSSE envelopes (Dead Simple Signing Envelope v1) carrying in-toto Statements v1.

The signature covers the pre-authentication encoding (PAE) of the payload type and the payload
bytes, never the JSON of the envelope: ``DSSEv1 <len(type)> <type> <len(body)> <body>``, with
lengths in bytes as ASCII decimals. Signatures are ECDSA over NIST P-256 with SHA-256, DER
encoded (as Cloud KMS ``EC_SIGN_P256_SHA256`` returns them), base64 in the envelope. A local key
signs deterministically (RFC 6979), so the DSSE specification's published P-256 test vector is
reproduced byte for byte. Reading, the protocol's rules apply: standard or URL-safe base64, and
a signature as DER or as the raw ``r || s`` of the specification's reference implementation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SPDX_PREDICATE = "https://spdx.dev/Document"
TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
P256_RAW_SIGNATURE_BYTES = 64
"""``r || s``, 32 bytes each: the form of the DSSE reference implementation's signatures."""
MAX_ENVELOPE_BYTES = 16 << 20
"""An envelope larger than this is refused unread (an SBOM of a large image is ~1 MB)."""

Signer = Callable[[bytes], bytes]
"""Signs PAE bytes, returning a DER-encoded ECDSA P-256 SHA-256 signature."""


class KeyFileError(ValueError):
    """A key file that is not a usable ECDSA P-256 key."""


class EnvelopeError(ValueError):
    """An envelope or statement that is malformed, unsigned by the key, or about something else."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The hex SHA-256 of the key's DER SubjectPublicKeyInfo (a hint in the envelope only)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _p256(key: Any, path: Path, kind: str) -> None:
    if not isinstance(key.curve if hasattr(key, "curve") else None, ec.SECP256R1):
        raise KeyFileError(f"{path}: not an ECDSA P-256 {kind} key (only P-256 is accepted)")


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted PEM ECDSA P-256 private key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        reason = f"{path}: not a readable unencrypted PEM private key ({error})"
        raise KeyFileError(reason) from None
    _p256(key, path, "private")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def ensure_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load ``path``, or create it first: a new P-256 key (mode 0600) and ``<path>.pub``.

    Several verifications may start at once with the same path: each writes a complete key to
    a temporary file and links it into place, which succeeds for exactly one of them; the
    others then load the winner's key. The public key is derived from the key in place.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _link_new(path, pem, 0o600)
    key = load_private_key(path)
    public = path.with_name(path.name + ".pub")
    if not public.exists():
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _link_new(public, pem, 0o644)
    return key


def _link_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` unless it exists, never leaving a partial file there."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        temporary.chmod(mode)
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process created it first; its key is the one used
    finally:
        temporary.unlink(missing_ok=True)


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """A PEM ECDSA P-256 public key (SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise KeyFileError(f"{path}: not a readable PEM public key ({error})") from None
    _p256(key, path, "public")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def local_signer(key: ec.EllipticCurvePrivateKey) -> Signer:
    """Deterministic ECDSA (RFC 6979): the same statement always gets the same signature, so
    re-attesting an unchanged result pushes the same artifact, and no signature depends on the
    quality of the machine's random numbers."""

    def sign(data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))

    return sign


def statement(subjects: list[tuple[str, str]], predicate_type: str, predicate: Any) -> bytes:
    """An in-toto Statement v1; ``subjects`` are (name, ``sha256:<hex>``) pairs."""
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}
            for name, digest in subjects
        ],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def envelope(payload: bytes, sign: Signer, keyid: str) -> bytes:
    """A signed DSSE envelope (JSON bytes) of an in-toto payload."""
    signature = sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))
    document = {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Verified:
    """A statement whose envelope signature checked out."""

    subjects: dict[str, str]
    """``sha256:<hex>`` -> subject name."""
    predicate_type: str
    predicate: Any


def _b64(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64 (the DSSE protocol: verifiers must accept either)."""
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} is not a string")
    if "-" in value or "_" in value:
        value = value.translate(_URL_SAFE)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not valid base64") from None


_URL_SAFE = str.maketrans("-_", "+/")


def _verifies(public_key: ec.EllipticCurvePublicKey, signature: bytes, signed: bytes) -> bool:
    """A DER signature, or a raw ``r || s`` one, that verifies over ``signed``."""
    forms = [signature]
    if len(signature) == P256_RAW_SIGNATURE_BYTES:
        half = P256_RAW_SIGNATURE_BYTES // 2
        r, s = int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
        forms.append(utils.encode_dss_signature(r, s))
    for form in forms:
        try:
            public_key.verify(form, signed, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            continue
    return False


def verify_envelope(data: bytes, public_key: ec.EllipticCurvePublicKey, payload_type: str) -> bytes:
    """The payload of a DSSE envelope of ``payload_type`` that ``public_key`` signed.

    The envelope is bounded, its type must be the one expected, and one of its signatures must
    verify over the PAE; only then is the payload returned.
    """
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise EnvelopeError("envelope is not JSON") from None
    if not isinstance(document, dict) or document.get("payloadType") != payload_type:
        raise EnvelopeError(f"envelope payloadType is not {payload_type}")
    payload = _b64(document.get("payload"), "envelope payload")
    signatures = document.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise EnvelopeError("envelope has no signatures")
    signed = pae(payload_type, payload)
    for entry in signatures:
        signature = _b64(entry.get("sig") if isinstance(entry, dict) else None, "signature")
        if _verifies(public_key, signature, signed):
            return payload
    raise EnvelopeError("no signature verifies with the public key")


def open_envelope(data: bytes, public_key: ec.EllipticCurvePublicKey) -> Verified:
    """Check an in-toto envelope's signature with ``public_key``, then read its statement.

    Nothing in the payload is trusted before a signature over its PAE verifies.
    """
    payload = verify_envelope(data, public_key, IN_TOTO_PAYLOAD_TYPE)
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        raise EnvelopeError("signed payload is not JSON") from None
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        raise EnvelopeError(f"signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    subjects: dict[str, str] = {}
    for subject in body.get("subject") or []:
        digest = subject.get("digest", {}).get("sha256") if isinstance(subject, dict) else None
        if isinstance(digest, str):
            subjects[f"sha256:{digest}"] = str(subject.get("name", ""))
    predicate_type = body.get("predicateType")
    if not isinstance(predicate_type, str):
        raise EnvelopeError("statement has no predicateType")
    return Verified(subjects, predicate_type, body.get("predicate"))
