"""DSSE and in-toto bytes, signatures checked with ``cryptography``, and the referrers-API path
against an in-process registry that has the API (so no ``sha256-<hex>`` tag is written), also
behind a token service."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from tests.hostile_registry import Handler, HostileRegistry
from tests.integration.registrypush import Pusher
from tests.referrers_stub import ReferrersRegistry
from tests.test_verify_cli import run
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify.attest import dsse
from verify.attest.attach import StartProof, attest
from verify.attest.attach import test_result as predicate_of
from verify.attest.oras import Registry, Subject, artifact_manifest, tag_schema_tag
from verify.auth import CredentialResolver
from verify.checks import ImageResult, Options, PlatformResult
from verify.cli import start_proof
from verify.digests import sha256_digest
from verify.manifests import OCI_MANIFEST
from verify.platforms import parse_platform
from verify.probe import parse_probe
from verify.reference import parse_reference
from verify.registry import RegistryClient, TimedOut
from verify.run import RunOptions, RunResult


def test_pae_is_the_dsse_specification_example_byte_for_byte() -> None:
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("t\u00e9", "\u00f8\n".encode()) == b"DSSEv1 3 t\xc3\xa9 3 \xc3\xb8\n"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


def test_pae_of_an_in_toto_payload_byte_for_byte() -> None:
    body = b'{"_type":"https://in-toto.io/Statement/v1"}'
    assert dsse.pae(dsse.IN_TOTO_PAYLOAD_TYPE, body) == (
        b'DSSEv1 28 application/vnd.in-toto+json 43 {"_type":"https://in-toto.io/Statement/v1"}'
    )
    # An empty body still ends with the space after its length.
    assert dsse.pae(dsse.IN_TOTO_PAYLOAD_TYPE, b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "


# The DSSE protocol's published test vector (protocol.md, "Test Vectors"): ECDSA over P-256 and
# SHA-256 with deterministic RFC 6979 nonces, the signature as raw r || s.
SPEC_D = 97358161215184420915383655311931858321456579547487070936769975997791359926199
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_TYPE = "http://example.com/HelloWorld"
SPEC_SIGNATURE = (
    "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
)
SPEC_ENVELOPE = {
    "payload": "aGVsbG8gd29ybGQ=",
    "payloadType": SPEC_TYPE,
    "signatures": [{"sig": SPEC_SIGNATURE}],
}


def _spec_key() -> ec.EllipticCurvePrivateKey:
    key = ec.derive_private_key(SPEC_D, ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    assert (numbers.x, numbers.y) == (SPEC_X, SPEC_Y)
    return key


def test_the_local_signer_reproduces_the_specification_signature() -> None:
    signed = dsse.pae(SPEC_TYPE, b"hello world")
    der = dsse.local_signer(_spec_key())(signed)
    r, s = decode_dss_signature(der)
    assert base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode() == (
        SPEC_SIGNATURE
    )


def test_the_specification_envelope_verifies_and_a_changed_one_does_not() -> None:
    public_key = _spec_key().public_key()
    envelope = json.dumps(SPEC_ENVELOPE).encode()
    assert dsse.verify_envelope(envelope, public_key, SPEC_TYPE) == b"hello world"
    # The protocol: verifiers accept URL-safe base64 as well.
    url_safe = {
        **SPEC_ENVELOPE,
        "signatures": [{"sig": SPEC_SIGNATURE.replace("+", "-").replace("/", "_")}],
    }
    assert "-" in url_safe["signatures"][0]["sig"]  # type: ignore[index]
    assert dsse.verify_envelope(json.dumps(url_safe).encode(), public_key, SPEC_TYPE) == (
        b"hello world"
    )
    # The same signature as DER (this project's form) verifies too.
    raw = base64.b64decode(SPEC_SIGNATURE)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    as_der = {**SPEC_ENVELOPE, "signatures": [{"sig": base64.b64encode(der).decode()}]}
    assert dsse.verify_envelope(json.dumps(as_der).encode(), public_key, SPEC_TYPE)

    changed = {**SPEC_ENVELOPE, "payload": base64.b64encode(b"hello World").decode()}
    with pytest.raises(dsse.EnvelopeError, match="no signature verifies"):
        dsse.verify_envelope(json.dumps(changed).encode(), public_key, SPEC_TYPE)
    # The signature covers the type: the same bytes claimed as another type are refused.
    retyped = {**SPEC_ENVELOPE, "payloadType": "http://example.com/HelloWorld2"}
    with pytest.raises(dsse.EnvelopeError, match="no signature verifies"):
        dsse.verify_envelope(
            json.dumps(retyped).encode(), public_key, "http://example.com/HelloWorld2"
        )
    with pytest.raises(dsse.EnvelopeError, match="payloadType is not"):
        dsse.open_envelope(envelope, public_key)
    truncated = {**SPEC_ENVELOPE, "signatures": [{"sig": base64.b64encode(raw[:63]).decode()}]}
    with pytest.raises(dsse.EnvelopeError, match="no signature verifies"):
        dsse.verify_envelope(json.dumps(truncated).encode(), public_key, SPEC_TYPE)
    with pytest.raises(dsse.EnvelopeError, match="not valid base64"):
        dsse.verify_envelope(
            json.dumps({**SPEC_ENVELOPE, "payload": "aGVsbG8*"}).encode(), public_key, SPEC_TYPE
        )


# An attestation envelope as `--attest` writes it, signed with the specification's key (local
# signatures are deterministic, so these bytes are what the code must produce, and open).
KNOWN_SUBJECT = "sha256:" + "ab" * 32
KNOWN_ENVELOPE = (
    b'{"payloadType":"application/vnd.in-toto+json","payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90'
    b"by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnsicmVzdWx0IjoiUEFTU0VEIn0sInByZWRpY2F0ZVR5cGUiOiJ"
    b"odHRwczovL2luLXRvdG8uaW8vYXR0ZXN0YXRpb24vdGVzdC1yZXN1bHQvdjAuMSIsInN1YmplY3QiOlt7ImRpZ2Vzd"
    b"CI6eyJzaGEyNTYiOiJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJ"
    b'hYmFiYWJhYmFiIn0sIm5hbWUiOiIxMjcuMC4wLjE6NTAwMC9zaG9wL2FwcCJ9XX0=","signatures":[{"keyid":'
    b'"f793580060562d6ff075d814ea698c282fcc779b0cde64d79ffc6301df00d14b","sig":"MEQCIHS/w1I8TLxv2n'
    b'je0cOM4Pz5gVUF24CjR1aWVcT+QKsGAiBcDldWX5i53aW1nGePMK8RBmKtHZRb0ijDIhVkgOsjlg=="}]}'
)


def test_a_known_attestation_envelope_is_produced_and_opened_byte_for_byte() -> None:
    key = _spec_key()
    payload = dsse.statement(
        [("127.0.0.1:5000/shop/app", KNOWN_SUBJECT)],
        dsse.TEST_RESULT_PREDICATE,
        {"result": "PASSED"},
    )
    produced = dsse.envelope(payload, dsse.local_signer(key), dsse.key_id(key.public_key()))
    assert produced == KNOWN_ENVELOPE
    verified = dsse.open_envelope(KNOWN_ENVELOPE, key.public_key())
    assert verified.subjects == {KNOWN_SUBJECT: "127.0.0.1:5000/shop/app"}
    assert verified.predicate_type == dsse.TEST_RESULT_PREDICATE
    assert verified.predicate == {"result": "PASSED"}
    # One base64 character of the payload changed: refused before the payload is read.
    flipped = KNOWN_ENVELOPE.replace(b"UEFTU0VE", b"UEFTU0VF")
    assert flipped != KNOWN_ENVELOPE
    with pytest.raises(dsse.EnvelopeError, match="no signature verifies"):
        dsse.open_envelope(flipped, key.public_key())


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


def _passed(*platforms: str) -> tuple[ImageResult, Options]:
    parsed = tuple(parse_platform(platform) for platform in platforms)
    result = ImageResult(
        "r/app:1",
        digest="sha256:" + "1" * 64,
        platforms={p: PlatformResult("sha256:" + "2" * 64, p.split("/")[1]) for p in platforms},
    )
    return result, Options(platforms=parsed, deep=True)


def test_test_result_lists_each_started_platform_and_warns_of_a_skipped_start() -> None:
    result, options = _passed("linux/amd64", "linux/arm64")
    plain = predicate_of(result, options)
    assert plain["result"] == "PASSED"
    assert plain["passedTests"] == [
        "platform:linux/amd64",
        "elf:linux/amd64",
        "platform:linux/arm64",
        "elf:linux/arm64",
    ]
    assert plain["warnedTests"] == [] and plain["failedTests"] == []

    started = StartProof("grpc:8080", passed=("linux/amd64", "linux/arm64"), skipped=())
    both = predicate_of(result, options, started)
    assert both["result"] == "PASSED"
    assert [test for test in both["passedTests"] if test.startswith("start:")] == [
        "start:linux/amd64",
        "start:linux/arm64",
    ]
    configuration = both["configuration"][0]
    assert configuration["annotations"]["run"] == {"probe": "grpc:8080", "skipped": []}

    # cartservice under QEMU: arm64 verified, not started. Said as a warned test, never passed.
    skipped = StartProof("grpc:7070", passed=("linux/amd64",), skipped=("linux/arm64",))
    warned = predicate_of(result, options, skipped)
    assert warned["result"] == "WARNED"
    assert "start:linux/amd64" in warned["passedTests"]
    assert "start:linux/arm64" not in warned["passedTests"]
    assert "elf:linux/arm64" in warned["passedTests"]
    assert warned["warnedTests"] == ["start:linux/arm64"]
    assert warned["failedTests"] == []
    assert warned["configuration"][0]["annotations"]["run"]["skipped"] == ["linux/arm64"]


def test_a_start_that_did_not_pass_is_never_attested(stub: ReferrersRegistry) -> None:
    result, options = _passed("linux/amd64", "linux/arm64")
    failed = StartProof("tcp:80", passed=("linux/amd64",), skipped=())
    with pytest.raises(ValueError, match="linux/arm64: its start did not pass"):
        predicate_of(result, options, failed)
    # Refused before anything is pushed: not even the platforms' SBOM statements.
    client = RegistryClient(CredentialResolver(use_gcp=False, environ={}))
    key = _key()
    with pytest.raises(ValueError, match="its start did not pass"):
        attest(
            client,
            parse_reference(f"{stub.address}/shop/app:1"),
            result,
            options,
            dsse.local_signer(key),
            "kid",
            failed,
        )
    assert stub.requests == []


def test_start_proof_of_the_command_line() -> None:
    runs = {
        (0, "linux/amd64"): RunResult(ok=True, probe="tcp:80", seconds=1.0),
        (1, "linux/amd64"): RunResult(ok=True, probe="tcp:80", seconds=1.0),
    }
    options = RunOptions(
        probe=parse_probe("tcp:80"),
        env=(),
        timeout=60,
        jobs=1,
        skip=(parse_platform("linux/arm64"),),
    )
    assert start_proof(options, runs) == StartProof(
        "tcp:80", passed=("linux/amd64",), skipped=("linux/arm64",)
    )
    assert start_proof(None, {}) is None


TOKEN = "tok-7d2e41"
PUSHER = {"REGISTRY_USERNAME": "ci", "REGISTRY_PASSWORD": "pw-5e1f90"}


@pytest.mark.parametrize(
    ("realm_host", "sent"),
    [
        # The realm on the registry's own host gets the registry's credentials...
        ("127.0.0.1", "Basic " + base64.b64encode(b"ci:pw-5e1f90").decode()),
        # ...one on another host is asked anonymously.
        ("127.0.0.2", None),
    ],
)
def test_an_attestation_is_pushed_with_the_token_its_registry_demands(
    realm_host: str, sent: str | None
) -> None:
    realm = HostileRegistry(realm_host).start()
    realm.on("/token", lambda handler: handler.reply(200, json.dumps({"token": TOKEN}).encode()))
    stub = ReferrersRegistry(bearer=(f"{realm.url}/token", TOKEN))
    try:
        writer = Registry(RegistryClient(CredentialResolver(use_gcp=False, environ=PUSHER)))
        ref = parse_reference(f"{stub.address}/shop/app:1")
        subject = Subject(OCI_MANIFEST, "sha256:" + "d" * 64, 321)
        digest = writer.attach(ref, subject, b'{"payloadType":"x"}', dsse.SPDX_PREDICATE)
        listed = writer.referrers(ref, subject.digest)
    finally:
        stub.stop()
        realm.stop()
    # Every request carried the token (the stub refuses any other); the artifact is listed.
    assert [referrer.digest for referrer in listed] == [digest]
    # One token request, for the client's push scope (the challenge names none), answered once
    # for the whole repository.
    assert [(seen.path, seen.headers.get("Authorization")) for seen in realm.seen] == [
        ("/token?scope=repository%3Ashop%2Fapp%3Apull%2Cpush&service=referrers-stub", sent)
    ]


def test_a_token_service_that_never_answers_ends_the_push_at_the_run_deadline() -> None:
    realm = HostileRegistry().start()
    release = threading.Event()

    def hold(_handler: Handler) -> None:
        release.wait(30)  # holds the request and answers nothing

    realm.on("/token", hold)
    stub = ReferrersRegistry(bearer=(f"{realm.url}/token", TOKEN))
    client = RegistryClient(
        CredentialResolver(use_gcp=False, environ=PUSHER),
        run_deadline=time.monotonic() + 0.5,
        run_limit="the test's 0.5 s",
    )
    try:
        with pytest.raises(TimedOut) as raised:
            Registry(client).push_blob(parse_reference(f"{stub.address}/shop/app:1"), b"{}")
    finally:
        release.set()
        stub.stop()
        realm.stop()
    expected = re.escape(
        f"a token for repository:shop/app:pull,push: no complete answer from {stub.address} "
        "within the test's 0.5 s (0 bytes in "
    )
    assert re.fullmatch(expected + r"[0-9]+ s\)", str(raised.value)), raised.value
    # Nothing was written: the first request (is the blob there?) got no further than a 401.
    assert stub.requests == [("HEAD", f"/v2/shop/app/blobs/{sha256_digest(b'{}')}")]
