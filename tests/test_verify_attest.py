"""DSSE and in-toto bytes, signatures checked with ``cryptography``, and the referrers-API path
against an in-process registry that has the API (so no ``sha256-<hex>`` tag is written)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.integration.registrypush import Pusher
from tests.referrers_stub import ReferrersRegistry
from tests.test_verify_cli import run
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify.attest import dsse
from verify.attest.oras import Subject, artifact_manifest, tag_schema_tag


def test_pae_is_the_dsse_specification_example_byte_for_byte() -> None:
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("t\u00e9", "\u00f8\n".encode()) == b"DSSEv1 3 t\xc3\xa9 3 \xc3\xb8\n"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_envelope_signature_is_over_the_pae_and_verifies_with_cryptography() -> None:
    key = _key()
    payload = dsse.statement([("r/app", "sha256:" + "a" * 64)], dsse.SPDX_PREDICATE, {"x": 1})
    document = json.loads(dsse.envelope(payload, dsse.local_signer(key), "kid"))
    assert document["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(document["payload"]) == payload
    signature = base64.b64decode(document["signatures"][0]["sig"])
    key.public_key().verify(
        signature, dsse.pae(dsse.IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256())
    )
    # The statement's exact bytes: compact, sorted keys, the digest's hex under sha256.
    assert payload == (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"x":1},'
        b'"predicateType":"https://spdx.dev/Document",'
        b'"subject":[{"digest":{"sha256":"' + b"a" * 64 + b'"},"name":"r/app"}]}'
    )


def test_open_envelope_reads_only_what_the_key_signed() -> None:
    key = _key()
    digest = "sha256:" + "b" * 64
    payload = dsse.statement([("r/app", digest)], dsse.TEST_RESULT_PREDICATE, {"result": "PASSED"})
    envelope = dsse.envelope(payload, dsse.local_signer(key), dsse.key_id(key.public_key()))
    verified = dsse.open_envelope(envelope, key.public_key())
    assert verified.subjects == {digest: "r/app"}
    assert verified.predicate == {"result": "PASSED"}

    with pytest.raises(dsse.EnvelopeError, match="no signature verifies"):
        dsse.open_envelope(envelope, _key().public_key())
    tampered = json.loads(envelope)
    tampered["payload"] = base64.b64encode(payload.replace(b"PASSED", b"FAILED")).decode()
    with pytest.raises(dsse.EnvelopeError, match="no signature verifies"):
        dsse.open_envelope(json.dumps(tampered).encode(), key.public_key())
    retyped = json.loads(envelope)
    retyped["payloadType"] = "text/plain"
    with pytest.raises(dsse.EnvelopeError, match="payloadType"):
        dsse.open_envelope(json.dumps(retyped).encode(), key.public_key())
    with pytest.raises(dsse.EnvelopeError, match="larger than"):
        dsse.open_envelope(b" " * (dsse.MAX_ENVELOPE_BYTES + 1), key.public_key())


def test_keys_must_be_p256(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(dsse.KeyFileError, match="not an ECDSA P-256 private key"):
        dsse.load_private_key(path)
    with pytest.raises(dsse.KeyFileError, match="not a readable PEM public key"):
        dsse.load_public_key(path)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    path.write_bytes(
        p384.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(dsse.KeyFileError, match="not an ECDSA P-256 public key"):
        dsse.load_public_key(path)


def test_artifact_manifest_shape() -> None:
    subject = Subject("application/vnd.oci.image.manifest.v1+json", "sha256:" + "c" * 64, 123)
    data, descriptor = artifact_manifest(subject, b"{}envelope", dsse.SPDX_PREDICATE)
    document = json.loads(data)
    assert document["artifactType"] == "application/vnd.dsse.envelope.v1+json"
    assert document["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    assert document["subject"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": subject.digest,
        "size": 123,
    }
    assert document["annotations"] == {"in-toto.io/predicate-type": dsse.SPDX_PREDICATE}
    assert descriptor["artifactType"] == document["artifactType"]
    assert tag_schema_tag(subject.digest) == "sha256-" + "c" * 64


@pytest.fixture
def stub() -> Iterator[ReferrersRegistry]:
    registry = ReferrersRegistry()
    yield registry
    registry.stop()


_verify = run


def test_referrers_api_path(stub: ReferrersRegistry, tmp_path: Path) -> None:
    layers = {
        arch: [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(machine))]))]
        for arch, machine in (("amd64", X86_64), ("arm64", AARCH64))
    }
    Pusher(stub).image("shop/app", "1", layers, "app")  # type: ignore[arg-type]  # duck-typed
    private, public = tmp_path / "key.pem", tmp_path / "key.pem.pub"
    dsse.ensure_private_key(private)
    ref = f"{stub.address}/shop/app:1"
    result = _verify(ref, "--deep", "--json", "--attest", "--key", str(private))
    assert result.returncode == 0, result.stderr
    checked = _verify("attestations", ref, "--public-key", str(public))
    assert checked.returncode == 0, checked.stderr
    # The registry indexes referrers itself: no fallback tag was read or written.
    assert not [path for _, path in stub.requests if "/manifests/sha256-" in path]
    assert any(path.startswith("/v2/shop/app/referrers/") for _, path in stub.requests)


def test_a_key_is_created_once_and_then_reused(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "keys" / "attest-key.pem"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: dsse.ensure_private_key(path), range(8)))
    public_numbers = {key.public_key().public_numbers() for key in keys}
    assert len(public_numbers) == 1  # every concurrent caller got the one key in place
    assert path.stat().st_mode & 0o777 == 0o600
    public = dsse.load_public_key(tmp_path / "keys" / "attest-key.pem.pub")
    assert public.public_numbers() in public_numbers
    assert dsse.ensure_private_key(path).public_key().public_numbers() in public_numbers
    assert sorted(p.name for p in path.parent.iterdir()) == ["attest-key.pem", "attest-key.pem.pub"]


def test_a_deeply_nested_envelope_is_refused_not_a_crash() -> None:
    with pytest.raises(dsse.EnvelopeError, match="not JSON"):
        dsse.open_envelope(b"[" * 100_000, _key().public_key())
