"""DSSE and in-toto bytes, signatures checked with ``cryptography``, and the referrers-API path
against an in-process registry that has the API (so no ``sha256-<hex>`` tag is written), also
behind a token service."""

from __future__ import annotations

import base64
import json
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from tests.hostile_registry import Handler, HostileRegistry
from tests.integration.loopbackserver import never_accepting, raised_within
from tests.integration.registrypush import Pusher
from tests.referrers_stub import ReferrersRegistry
from tests.test_verify_cli import closed_port, run
from tests.verify_bytes import (
    AARCH64,
    X86_64,
    Entry,
    descriptor,
    elf_header,
    gzip_bytes,
    json_bytes,
    tar_bytes,
)
from verify import run as verify_run
from verify.attest import dsse, oras, signing
from verify.attest.attach import StartProof, attest, subject_of
from verify.attest.attach import test_result as predicate_of
from verify.attest.check import main as check_main
from verify.attest.dsse import MAX_ENVELOPE_BYTES
from verify.attest.oras import (
    DSSE_ARTIFACT_TYPE,
    Referrer,
    Registry,
    Subject,
    artifact_manifest,
    tag_schema_tag,
)
from verify.auth import AuthError, CredentialResolver
from verify.checks import ImageResult, Options, PlatformResult, Problem
from verify.cli import attest as cli_attest
from verify.cli import main as cli_main
from verify.cli import start_proof
from verify.digests import DigestMismatch, sha256_digest
from verify.manifests import DOCKER_MANIFEST_LIST, MAX_DOCUMENT_BYTES, OCI_MANIFEST
from verify.platforms import parse_platform
from verify.probe import parse_probe
from verify.reference import Reference, parse_reference
from verify.registry import USER_AGENT, RegistryClient, RegistryError, TimedOut
from verify.run import RunOptions, RunResult
from verify.sbom.documents import TOOL
from verify.sbom.inventory import Inventory


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
    assert tag_schema_tag(subject.digest) == "sha256-" + "c" * 64
    # The exact bytes (compact, in this order) a registry stores and the descriptor names.
    envelope = "sha256:d4fb6b9de3c909bccb1ab6be5e06ebd8c69c38a0bafe2cf4b2cfcfa5e684f752"
    assert data == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"artifactType":"application/vnd.dsse.envelope.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:'
        b'44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},'
        b'"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"'
        + envelope.encode()
        + b'","size":10}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"digest":"sha256:' + b"c" * 64 + b'","size":123},'
        b'"annotations":{"in-toto.io/predicate-type":"https://spdx.dev/Document"}}'
    )
    assert envelope == sha256_digest(b"{}envelope")
    assert descriptor == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256_digest(data),
        "size": len(data),
        "artifactType": "application/vnd.dsse.envelope.v1+json",
        "annotations": {"in-toto.io/predicate-type": dsse.SPDX_PREDICATE},
    }


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
    _, options = _passed("linux/amd64", "linux/arm64")
    plain = predicate_of(options)
    assert plain["result"] == "PASSED"
    assert plain["passedTests"] == [
        "platform:linux/amd64",
        "elf:linux/amd64",
        "platform:linux/arm64",
        "elf:linux/arm64",
    ]
    assert plain["warnedTests"] == [] and plain["failedTests"] == []

    started = StartProof("grpc:8080", passed=("linux/amd64", "linux/arm64"), skipped=())
    both = predicate_of(options, started)
    assert both["result"] == "PASSED"
    assert [test for test in both["passedTests"] if test.startswith("start:")] == [
        "start:linux/amd64",
        "start:linux/arm64",
    ]
    configuration = both["configuration"][0]
    assert configuration["annotations"]["run"] == {"probe": "grpc:8080", "skipped": []}

    # cartservice under QEMU: arm64 verified, not started. Said as a warned test, never passed.
    skipped = StartProof("grpc:7070", passed=("linux/amd64",), skipped=("linux/arm64",))
    warned = predicate_of(options, skipped)
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
        predicate_of(options, failed)
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
    # Only the first reference's runs count (the one --attest attests), and only passed ones.
    runs = {
        (0, "linux/amd64"): RunResult(ok=True, probe="tcp:80", seconds=1.0),
        (0, "linux/s390x"): RunResult(ok=False, probe="tcp:80", seconds=1.0),
        (1, "linux/ppc64le"): RunResult(ok=True, probe="tcp:80", seconds=1.0),
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


# In-process: the write side, `verify attestations` and `verify attest-index` called as
# functions against the in-process registry (what the process-starting tests above prove, at a
# fraction of their cost; mutmut runs the fastest test that reaches a function first).

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MACHINES = {"amd64": X86_64, "arm64": AARCH64}


def anonymous_client(environ: dict[str, str] | None = None) -> RegistryClient:
    return RegistryClient(CredentialResolver(use_gcp=False, environ=environ or {}))


def push_platform_manifest(writer: Registry, ref: Reference, arch: str) -> dict[str, object]:
    """A linux/``arch`` image manifest (its blobs pushed); returns its index entry."""
    config = json_bytes({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}})
    layer = gzip_bytes(tar_bytes([Entry("bin/app", elf_header(MACHINES[arch]))]))
    for blob in (config, layer):
        writer.push_blob(ref, blob)
    manifest = json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        }
    )
    writer.put_manifest(ref, sha256_digest(manifest), manifest, OCI_MANIFEST)
    return descriptor(OCI_MANIFEST, manifest, f"linux/{arch}")


def push_index(
    writer: Registry, ref: Reference, entries: list[dict[str, object]], tag: str | None = None
) -> Subject:
    """An OCI index of ``entries``, by digest (and ``tag``); returns it as a subject."""
    index = json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    for reference in (sha256_digest(index), *([tag] if tag else [])):
        writer.put_manifest(ref, reference, index, OCI_INDEX)
    return Subject(OCI_INDEX, sha256_digest(index), len(index))


def buildkit_attestation_entry(subject: str) -> dict[str, object]:
    """An index entry as buildx lists its provenance manifest: unknown/unknown, annotated."""
    return {
        **descriptor(OCI_MANIFEST, json_bytes({"provenance-of": subject}), "unknown/unknown"),
        "annotations": {
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": subject,
        },
    }


def attach_statement(
    writer: Registry,
    ref: Reference,
    subject: Subject,
    predicate_type: str,
    predicate: object,
    key: ec.EllipticCurvePrivateKey,
    about: str | None = None,
) -> str:
    """Sign a statement about ``about`` (default the subject) with ``key`` and attach it to
    ``subject``, as ``--attest`` does; returns the referrer's digest."""
    name = f"{ref.registry}/{ref.repository}"
    payload = dsse.statement([(name, about or subject.digest)], predicate_type, predicate)
    envelope = dsse.envelope(payload, dsse.local_signer(key), dsse.key_id(key.public_key()))
    return writer.attach(ref, subject, envelope, predicate_type)


def header(headers: dict[str, str], name: str) -> str | None:
    """A request's header by name, in any case (RFC 9110: field names are case-insensitive)."""
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


def _requests(stub: ReferrersRegistry) -> list[str]:
    """``METHOD path`` of each request, upload sessions' ids as ``<upload>``."""
    return [
        f"{seen.method} {re.sub('/uploads/[0-9a-f-]{36}', '/uploads/<upload>', seen.path)}"
        for seen in stub.received
    ]


def test_in_process_an_artifact_is_listed_under_its_tag_where_the_registry_has_no_referrers_api(
    tmp_path: Path,
) -> None:
    """distribution 2.8's behaviour (the referrers path answers 404): each artifact is pushed
    (blobs once), then added to the ``sha256-<hex>`` index by read-modify-write and read back."""
    stub = ReferrersRegistry(referrers_api=False)
    writer = Registry(anonymous_client())
    ref = parse_reference(f"{stub.address}/shop/app:1")
    subject = Subject(OCI_MANIFEST, "sha256:" + "d" * 64, 321)
    tag = "sha256-" + "d" * 64
    first, second = b'{"payloadType":"one"}', b'{"payloadType":"two"}'
    try:
        digests = [writer.attach(ref, subject, e, dsse.SPDX_PREDICATE) for e in (first, second)]
        listed = writer.referrers(ref, subject.digest)
        has_api = writer.has_referrers_api(ref, subject.digest)
    finally:
        stub.stop()
    manifests = [artifact_manifest(subject, e, dsse.SPDX_PREDICATE) for e in (first, second)]
    assert digests == [descriptor["digest"] for _, descriptor in manifests]
    annotations = {"in-toto.io/predicate-type": dsse.SPDX_PREDICATE}
    assert listed == [Referrer(digest, DSSE_ARTIFACT_TYPE, annotations) for digest in digests]
    assert not has_api
    empty, v2 = sha256_digest(b"{}"), "/v2/shop/app"
    pushed: list[str] = []
    for envelope, digest in zip((first, second), digests, strict=True):
        pushed += [
            f"HEAD {v2}/blobs/{empty}",
            *(
                []
                if pushed
                else [
                    f"POST {v2}/blobs/uploads/",
                    f"PUT {v2}/blobs/uploads/<upload>?digest={empty}",
                ]
            ),
            f"HEAD {v2}/blobs/{sha256_digest(envelope)}",
            f"POST {v2}/blobs/uploads/",
            f"PUT {v2}/blobs/uploads/<upload>?digest={sha256_digest(envelope)}",
            f"PUT {v2}/manifests/{digest}",
            f"GET {v2}/referrers/{subject.digest}",
            f"GET {v2}/manifests/{tag}",
            f"PUT {v2}/manifests/{tag}",
            f"GET {v2}/manifests/{tag}",
        ]
    listing = [f"GET {v2}/referrers/{subject.digest}", f"GET {v2}/manifests/{tag}"]
    assert _requests(stub) == [*pushed, *listing, f"GET {v2}/referrers/{subject.digest}"]
    # What each write carried: the blob's bytes, the manifests with their media types, the tag
    # index holding both artifacts (the second added to the first).
    puts = [
        (header(seen.headers, "Content-Type"), seen.body)
        for seen in stub.received
        if seen.method == "PUT"
    ]
    tag_indexes = [
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [d for _, d in manifests[:n]],
            },
            separators=(",", ":"),
        ).encode()
        for n in (1, 2)
    ]
    assert puts == [
        ("application/octet-stream", b"{}"),
        ("application/octet-stream", first),
        (OCI_MANIFEST, manifests[0][0]),
        (OCI_INDEX, tag_indexes[0]),
        ("application/octet-stream", second),
        (OCI_MANIFEST, manifests[1][0]),
        (OCI_INDEX, tag_indexes[1]),
    ]
    for seen in stub.received:
        assert header(seen.headers, "User-Agent") == USER_AGENT, seen
        if seen.method == "GET":
            assert header(seen.headers, "Accept") == OCI_INDEX, seen


def test_in_process_an_artifact_attached_again_is_listed_once() -> None:
    """Attesting the same statement again (local signatures are deterministic) finds its entry
    in the ``sha256-<hex>`` index: the index is not written again, nor listed twice."""
    stub = ReferrersRegistry(referrers_api=False)
    writer = Registry(anonymous_client())
    ref = parse_reference(f"{stub.address}/shop/app:1")
    subject = Subject(OCI_MANIFEST, "sha256:" + "d" * 64, 321)
    tag_path = f"/v2/shop/app/manifests/{tag_schema_tag(subject.digest)}"
    try:
        first = writer.attach(ref, subject, b'{"payloadType":"one"}', dsse.SPDX_PREDICATE)
        before = len(stub.received)
        again = writer.attach(ref, subject, b'{"payloadType":"one"}', dsse.SPDX_PREDICATE)
        listed = writer.referrers(ref, subject.digest)
        rerun = stub.received[before:]
    finally:
        stub.stop()
    assert again == first
    assert [referrer.digest for referrer in listed] == [first]
    # Read, read back, then the listing's read: no write.
    assert [seen.method for seen in rerun if seen.path == tag_path] == ["GET", "GET", "GET"]


def test_in_process_an_index_that_keeps_losing_the_entry_and_an_upload_that_breaks_off() -> None:
    """A tag index that never keeps the new entry: written three times, then one error; an
    upload answer that breaks off is named with its request."""
    registry = HostileRegistry().start()
    writer = Registry(anonymous_client())
    ref = parse_reference(f"{registry.address}/shop/app:1")
    subject = Subject(OCI_MANIFEST, "sha256:" + "d" * 64, 321)
    tag, v2 = tag_schema_tag(subject.digest), "/v2/shop/app"
    envelope = b'{"payloadType":"x"}'
    _, artifact = artifact_manifest(subject, envelope, dsse.SPDX_PREDICATE)
    for blob in (b"{}", envelope):
        registry.on(f"{v2}/blobs/{sha256_digest(blob)}", lambda handler: handler.reply(200))
    registry.on(f"{v2}/manifests/{artifact['digest']}", lambda handler: handler.reply(201))
    registry.on(f"{v2}/manifests/{tag}", _tag_index_forgetting_every_write)
    try:
        lost = _refusal(lambda: writer.attach(ref, subject, envelope, dsse.SPDX_PREDICATE))
        registry.on(f"{v2}/blobs/{sha256_digest(b'[]')}", lambda handler: handler.reply(404))
        registry.on(f"{v2}/blobs/uploads/", _broken_off)
        broken_off = _refusal(lambda: writer.push_blob(ref, b"[]"))
        # An upload answered without a Location: the blob goes to the uploads path itself.
        registry.on(f"{v2}/blobs/uploads/", _uploads_without_a_location)
        pushed = writer.push_blob(ref, b"[]")
    finally:
        registry.stop()
    assert lost == f"{tag}: the referrers index kept losing the new entry"
    written = [seen.method for seen in registry.seen if seen.path == f"{v2}/manifests/{tag}"]
    assert written == ["GET", "PUT", "GET"] * 3
    assert broken_off.startswith(
        f"POST http://{registry.address}{v2}/blobs/uploads/: answer broke off: "
    ), broken_off
    assert pushed == sha256_digest(b"[]")
    assert registry.seen[-1].path == f"{v2}/blobs/uploads/?digest={pushed}"
    assert registry.seen[-1].body == b"[]"


def _uploads_without_a_location(handler: Handler) -> None:
    handler.reply(201 if handler.command == "PUT" else 202)


def _tag_index_forgetting_every_write(handler: Handler) -> None:
    if handler.command == "PUT":
        handler.reply(201)
    else:
        handler.reply(200, json_bytes({"manifests": []}), {"Content-Type": OCI_INDEX})


def _refusal(call: Callable[[], object]) -> str:
    with pytest.raises(RegistryError) as raised:
        call()
    return str(raised.value)


def test_in_process_hostile_answers_to_a_push_are_refused_and_nothing_goes_elsewhere() -> None:
    """Each write answer a registry could get wrong: one refusal naming the request; an upload
    location on another host gets nothing (credentials and bytes stay with the registry)."""
    registry, elsewhere = HostileRegistry().start(), HostileRegistry("127.0.0.2").start()
    writer = Registry(anonymous_client())
    ref = parse_reference(f"{registry.address}/shop/app:1")
    blob, v2 = b'{"payloadType":"x"}', "/v2/shop/app"
    digest = sha256_digest(blob)
    uploads, session = f"{v2}/blobs/uploads/", f"{v2}/blobs/uploads/s-1"

    def answer(status: int, body: bytes = b"", **headers: str) -> Callable[[Handler], None]:
        return lambda handler: handler.reply(status, body, headers)

    try:
        registry.on(f"{v2}/blobs/{digest}", answer(404))
        registry.on(uploads, answer(202, Location=f"{elsewhere.url}/upload"))
        other_host = _refusal(lambda: writer.push_blob(ref, blob))
        registry.on(uploads, answer(500, b"  no uploads today  " + b"x" * 400))
        refused_post = _refusal(lambda: writer.push_blob(ref, blob))
        # A relative location with a query of its own: the digest is added with "&".
        registry.on(uploads, answer(202, Location="s-1?state=abc"))
        registry.on(session, answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}'))
        refused_put = _refusal(lambda: writer.push_blob(ref, blob))
        registry.on(session, answer(201))
        pushed = writer.push_blob(ref, blob)
        registry.on(f"{v2}/blobs/{digest}", answer(200))
        present = writer.push_blob(ref, blob)
        registry.on(f"{v2}/manifests/v1", answer(500, b"full"))
        refused_manifest = _refusal(lambda: writer.put_manifest(ref, "v1", b"{}", OCI_INDEX))
        # An answer past the bound, announced as longer still: reading stops one byte past it.
        registry.on(f"{v2}/manifests/v2", _stalled_past(MAX_DOCUMENT_BYTES + 1))
        oversized = _refusal(lambda: writer.put_manifest(ref, "v2", b"{}", OCI_INDEX))
        registry.on(f"{v2}/manifests/v3", _broken_off)
        broken_off = _refusal(lambda: writer.put_manifest(ref, "v3", b"{}", OCI_INDEX))
        # A location that is the registry's origin with no path is not one of its paths.
        registry.on(f"{v2}/blobs/{digest}", answer(404))
        registry.on(uploads, answer(202, Location=registry.url))
        no_path = _refusal(lambda: writer.push_blob(ref, blob))
        # 204 for the closing PUT: some registries answer it so; the blob is there.
        registry.on(uploads, answer(202, Location="s-1?state=abc"))
        registry.on(session, answer(204))
        pushed_204 = writer.push_blob(ref, blob)
    finally:
        registry.stop()
        elsewhere.stop()
    assert pushed_204 == digest
    what = f"upload of blob {digest}"
    assert other_host == f"{what}: the registry named an upload location on another host"
    assert refused_post == f"{what}: unexpected HTTP 500 no uploads today  " + "x" * 280
    assert refused_put == f'{what}: unexpected HTTP 400 {{"errors":[{{"code":"DIGEST_INVALID"}}]}}'
    assert refused_manifest == "push of manifest v1: unexpected HTTP 500 full"
    assert oversized == (
        f"PUT http://{registry.address}{v2}/manifests/v2: answer is larger than "
        f"{MAX_DOCUMENT_BYTES} bytes"
    )
    # The rest of the message is urllib3's own.
    assert broken_off.startswith(
        f"PUT http://{registry.address}{v2}/manifests/v3: answer broke off: "
    ), broken_off
    assert "IncompleteRead(2 bytes read, 998 more expected)" in broken_off, broken_off
    assert no_path == (f"PUT {registry.url}?digest={digest}: not on the registry {registry.url}")
    assert pushed == present == digest
    assert elsewhere.seen == []
    head = ("HEAD", f"{v2}/blobs/{digest}", b"")
    post = ("POST", uploads, b"")
    put = ("PUT", f"{session}?state=abc&digest={digest}", blob)
    assert [(seen.method, seen.path, seen.body) for seen in registry.seen] == [
        *(head, post),
        *(head, post),
        *(head, post, put),
        *(head, post, put),
        head,
        ("PUT", f"{v2}/manifests/v1", b"{}"),
        ("PUT", f"{v2}/manifests/v2", b"{}"),
        ("PUT", f"{v2}/manifests/v3", b"{}"),
        *(head, post),
        *(head, post, put),
    ]
    assert [
        header(seen.headers, "Content-Type") for seen in registry.seen if seen.method == "PUT"
    ] == [
        "application/octet-stream",
        "application/octet-stream",
        OCI_INDEX,
        OCI_INDEX,
        OCI_INDEX,
        "application/octet-stream",
    ]


def _broken_off(handler: Handler) -> None:
    """An answer announcing 1,000 bytes that ends after 2."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"{}")
    handler.close_connection = True


def _stalled_past(sent: int) -> Callable[[Handler], None]:
    """An answer announcing 1,000 bytes more than the ``sent`` it sends, then held for a
    second and broken off: a reader that does not stop at its bound waits, then fails."""

    def respond(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(sent + 1000))
        handler.end_headers()
        handler.wfile.write(b" " * sent)
        handler.wfile.flush()
        time.sleep(1)
        handler.close_connection = True

    return respond


def test_in_process_hostile_answers_to_a_read_are_refused() -> None:
    """Listings, manifests and envelopes: bounded, digest-checked, odd entries skipped; blob
    storage behind a redirect gets no credentials."""
    realm = HostileRegistry().start()
    realm.on("/token", lambda handler: handler.reply(200, json.dumps({"token": TOKEN}).encode()))
    registry, storage = HostileRegistry().start(), HostileRegistry("127.0.0.2").start()
    reader = Registry(anonymous_client(PUSHER))
    ref = parse_reference(f"{registry.address}/shop/app:1")
    subject, v2 = "sha256:" + "d" * 64, "/v2/shop/app"
    envelope = b'{"payloadType":"x"}'
    digest = sha256_digest(envelope)
    challenge = {"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="hostile"'}

    def answer(
        status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Callable[[Handler], None]:
        """Answer with a token only; without one, a Bearer challenge."""

        def respond(handler: Handler) -> None:
            if handler.headers.get("Authorization") == f"Bearer {TOKEN}":
                handler.reply(status, body, headers)
            else:
                handler.reply(401, b"{}", challenge)

        return respond

    entries = [
        {
            "digest": "sha256:" + "1" * 64,
            "artifactType": DSSE_ARTIFACT_TYPE,
            "annotations": {"k": 7},
        },
        {"digest": "sha256:" + "2" * 64},
        {"digest": 3, "annotations": {}},
        {"digest": "sha256:" + "4" * 64, "annotations": ["not", "a", "map"]},
        "not an entry",
    ]
    listing = json_bytes({"manifests": entries})
    redirect = {"Location": f"{storage.url}/blob?sig=1"}
    gzipped, gzip_encoding = gzip_bytes(envelope), {"Content-Encoding": "gzip"}
    try:
        # Compressed in transit: read decoded.
        registry.on(f"{v2}/referrers/{subject}", answer(200, gzip_bytes(listing), gzip_encoding))
        listed = reader.referrers(ref, subject)
        problems = []
        for status, body in [(500, b"down"), (200, b"[1, 2"), (200, b'{"manifests": {}}')]:
            registry.on(f"{v2}/referrers/{subject}", answer(status, body))
            problems.append(_refusal(lambda: reader.referrers(ref, subject)))
        registry.on(f"{v2}/referrers/{subject}", answer(404))
        registry.on(f"{v2}/manifests/{tag_schema_tag(subject)}", answer(502, b"gateway"))
        problems.append(_refusal(lambda: reader.referrers(ref, subject)))
        registry.on(f"{v2}/manifests/{subject}", answer(404, b"unknown"))
        problems.append(_refusal(lambda: reader.get_manifest(ref, subject)))
        registry.on(f"{v2}/manifests/{digest}", answer(200, b"{}"))
        with pytest.raises(DigestMismatch) as manifest_mismatch:
            reader.get_manifest(ref, digest)
        registry.on(f"{v2}/manifests/{digest}", answer(200, b" " * (MAX_DOCUMENT_BYTES + 1)))
        problems.append(_refusal(lambda: reader.get_manifest(ref, digest)))
        registry.on(f"{v2}/blobs/{digest}", answer(307, headers=redirect))
        storage.on("/blob", lambda handler: handler.reply(200, envelope))
        fetched = reader.get_envelope(ref, digest)
        storage.on("/blob", lambda handler: handler.reply(200, b"{}"))
        with pytest.raises(DigestMismatch) as envelope_mismatch:
            reader.get_envelope(ref, digest)
        storage.on("/blob", lambda handler: handler.reply(403, b"expired"))
        problems.append(_refusal(lambda: reader.get_envelope(ref, digest)))
        # Compressed in transit: the envelope is what the digest names, decoded.
        storage.on("/blob", lambda handler: handler.reply(200, gzipped, gzip_encoding))
        decoded = reader.get_envelope(ref, digest)
        # More than the bound, announced as more still: reading stops one byte past the bound
        # (the answer holds the rest back for a second, then breaks off).
        storage.on("/blob", _stalled_past(MAX_ENVELOPE_BYTES + 1))
        problems.append(_refusal(lambda: reader.get_envelope(ref, digest)))
        registry.on(f"{v2}/blobs/{digest}", answer(200, b" " * (MAX_ENVELOPE_BYTES + 1)))
        problems.append(_refusal(lambda: reader.get_envelope(ref, digest)))
    finally:
        realm.stop()
        registry.stop()
        storage.stop()
    annotations = {"k": "7"}
    assert listed == [
        Referrer("sha256:" + "1" * 64, DSSE_ARTIFACT_TYPE, annotations),
        Referrer("sha256:" + "2" * 64, "", {}),
    ]
    url = f"http://{registry.address}{v2}"
    assert problems == [
        f"referrers of {subject}: unexpected HTTP 500",
        f"referrers of {subject} is not JSON",
        f"referrers of {subject} has no manifests list",
        f"referrers index {tag_schema_tag(subject)}: unexpected HTTP 502 gateway",
        f"manifest {subject}: unexpected HTTP 404 unknown",
        f"GET {url}/manifests/{digest}: answer is larger than {MAX_DOCUMENT_BYTES} bytes",
        f"envelope {digest}: unexpected HTTP 403 expired",
        f"envelope {digest} is larger than {MAX_ENVELOPE_BYTES} bytes",
        f"GET {url}/blobs/{digest}: answer is larger than {MAX_ENVELOPE_BYTES} bytes",
    ]
    assert str(manifest_mismatch.value) == (
        f"manifest {digest}: content digest is {sha256_digest(b'{}')}, expected {digest}"
    )
    assert str(envelope_mismatch.value) == (
        f"envelope {digest}: content digest is {sha256_digest(b'{}')}, expected {digest}"
    )
    assert fetched == decoded == envelope
    # One token for the repository's pull and push; the registry got it with every request
    # after the first, the blob storage never.
    assert [seen.path for seen in realm.seen] == [
        "/token?scope=repository%3Ashop%2Fapp%3Apull%2Cpush&service=hostile"
    ]
    assert [header(seen.headers, "Authorization") for seen in registry.seen[1:]] == [
        f"Bearer {TOKEN}"
    ] * (len(registry.seen) - 1)
    assert storage.authorizations() == []
    assert [seen.path for seen in storage.seen] == ["/blob?sig=1"] * 5
    accepted = {seen.path: header(seen.headers, "Accept") for seen in registry.seen}
    assert accepted[f"{v2}/referrers/{subject}"] == OCI_INDEX
    assert accepted[f"{v2}/manifests/{tag_schema_tag(subject)}"] == OCI_INDEX
    assert accepted[f"{v2}/manifests/{subject}"] == OCI_MANIFEST


def test_in_process_a_login_is_answered_once_a_refused_one_named_and_a_gone_registry_named() -> (
    None
):
    """Over kept-alive connections: a 401 with a body (as distribution answers) is read before
    the request is sent again with the token, so each request goes out once; a token the
    registry refuses too is named, as is a registry nothing listens for."""
    realm = HostileRegistry().start()
    realm.on("/token", lambda handler: handler.reply(200, json.dumps({"token": TOKEN}).encode()))
    registry = HostileRegistry().start()
    challenge = {"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="hostile"'}
    v2, digest = "/v2/shop/app", sha256_digest(b"{}")

    def with_token(status: int, **headers: str) -> Callable[[Handler], None]:
        def respond(handler: Handler) -> None:
            if handler.headers.get("Authorization") == f"Bearer {TOKEN}":
                handler.reply(status, b"", headers)
            else:
                handler.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', challenge)

        return respond

    registry.on(f"{v2}/blobs/{digest}", lambda handler: handler.reply(404))
    registry.on(f"{v2}/blobs/uploads/", with_token(202, Location="s-1"))
    registry.on(f"{v2}/blobs/uploads/s-1", with_token(201))
    registry.on(f"{v2}/manifests/v1", lambda handler: handler.reply(401, b"{}", challenge))
    ref = parse_reference(f"{registry.address}/shop/app:1")
    writer = Registry(anonymous_client(PUSHER))
    try:
        pushed = writer.push_blob(ref, b"{}")
        refused = _refusal(lambda: writer.put_manifest(ref, "v1", b"{}", OCI_INDEX))
        registry.on(f"{v2}/manifests/v2", lambda handler: handler.reply(401, b"{}"))
        with pytest.raises(AuthError) as unchallenged:
            writer.put_manifest(ref, "v2", b"{}", OCI_INDEX)
    finally:
        realm.stop()
        registry.stop()
    port = closed_port()
    gone = _refusal(
        lambda: writer.push_blob(parse_reference(f"127.0.0.1:{port}/shop/app:1"), b"{}")
    )
    assert pushed == digest
    url = f"http://{registry.address}{v2}/manifests/v1"
    assert refused == f"PUT {url}: credentials refused (HTTP 401)"
    assert str(unchallenged.value) == (
        f"{registry.address} answered 401 with no usable challenge ('')"
    )
    # A token is asked for at a request's first 401 (the upload's, the manifest's), and sent
    # from then on; a request's second 401 ends it.
    assert len(realm.seen) == 2
    bearer = f"Bearer {TOKEN}"
    assert [
        (seen.method, seen.path, header(seen.headers, "Authorization")) for seen in registry.seen
    ] == [
        ("HEAD", f"{v2}/blobs/{digest}", None),
        ("POST", f"{v2}/blobs/uploads/", None),
        ("POST", f"{v2}/blobs/uploads/", bearer),
        ("PUT", f"{v2}/blobs/uploads/s-1?digest={digest}", bearer),
        ("PUT", f"{v2}/manifests/v1", bearer),
        ("PUT", f"{v2}/manifests/v1", bearer),
        ("PUT", f"{v2}/manifests/v2", bearer),
    ]
    blob = f"http://127.0.0.1:{port}{v2}/blobs/{digest}"
    assert gone.startswith(f"HEAD {blob}: connection failed: "), gone


# `verify attestations` (verify.attest.check.main) in process.

SBOM = {"spdxVersion": "SPDX-2.3", "name": "app"}
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PASSED = {"result": "PASSED", "passedTests": ["platform:linux/amd64"], "failedTests": []}


@dataclass(frozen=True)
class Attested:
    """An index pushed as tag 1 with its platform manifests, and the referrers attached."""

    ref: str
    index: Subject
    manifests: dict[str, Subject]
    """platform -> its manifest."""


def _attested_image(
    writer: Registry,
    address: str,
    key: ec.EllipticCurvePrivateKey,
    attest: tuple[str, ...] = ("index", "linux/amd64", "linux/arm64"),
) -> Attested:
    """The index (with BuildKit attestation entries) and, for each name in ``attest``, the
    statement ``--attest`` signs: the Test Result on the index, an SBOM on a platform."""
    ref = parse_reference(f"{address}/shop/app:1")
    entries, manifests = [], {}
    for arch in MACHINES:
        entry = push_platform_manifest(writer, ref, arch)
        digest = str(entry["digest"])
        manifests[f"linux/{arch}"] = Subject(OCI_MANIFEST, digest, int(str(entry["size"])))
        entries += [entry, buildkit_attestation_entry(digest)]
    index = push_index(writer, ref, entries, "1")
    for name in attest:
        if name == "index":
            attach_statement(writer, ref, index, dsse.TEST_RESULT_PREDICATE, PASSED, key)
        else:
            attach_statement(writer, ref, manifests[name], dsse.SPDX_PREDICATE, SBOM, key)
    return Attested(f"{address}/shop/app:1", index, manifests)


def _public_key(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A key as ``--create-key`` writes it, and its public key file."""
    return dsse.ensure_private_key(tmp_path / "key.pem"), str(tmp_path / "key.pem.pub")


def _check(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = check_main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def stub_behind_login(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[ReferrersRegistry, HostileRegistry]]:
    """The in-process registry behind a token service (the realm), with PUSHER's login in the
    environment, as the tools read it."""
    realm = HostileRegistry().start()
    realm.on("/token", lambda handler: handler.reply(200, json.dumps({"token": TOKEN}).encode()))
    registry = ReferrersRegistry(bearer=(f"{realm.url}/token", TOKEN))
    for name, value in PUSHER.items():
        monkeypatch.setenv(name, value)
    yield registry, realm
    registry.stop()
    realm.stop()


def test_in_process_attestations_of_an_attested_image_are_valid(
    stub_behind_login: tuple[ReferrersRegistry, HostileRegistry],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub, realm = stub_behind_login
    key, public = _public_key(tmp_path)
    writer = Registry(anonymous_client(PUSHER))
    image = _attested_image(writer, stub.address, key)
    ref = parse_reference(image.ref)
    referrers = {
        name: [r.digest for r in writer.referrers(ref, subject.digest)]
        for name, subject in [("index", image.index), *image.manifests.items()]
    }
    assert _check(image.ref, "--public-key", public, capsys=capsys) == (
        0,
        f"attested {image.ref}@{image.index.digest}: valid attestations for index, "
        "linux/amd64, linux/arm64\n",
        "",
    )
    by_digest = f"{stub.address}/shop/app@{image.index.digest}"
    code, out, err = _check(
        by_digest, "--public-key", public, "--platform", "linux/arm64", "--json", capsys=capsys
    )
    assert (code, err) == (0, "")
    subjects = {
        "index": (image.index.digest, dsse.TEST_RESULT_PREDICATE),
        "linux/arm64": (image.manifests["linux/arm64"].digest, dsse.SPDX_PREDICATE),
    }
    assert (
        out
        == json.dumps(
            {
                "ref": by_digest,
                "digest": image.index.digest,
                "valid": True,
                "problems": [],
                "subjects": {
                    name: {
                        "digest": digest,
                        "predicateType": predicate_type,
                        "valid": referrers[name],
                        "problems": [],
                    }
                    for name, (digest, predicate_type) in subjects.items()
                },
            },
            indent=2,
        )
        + "\n"
    )
    # The digest given is checked against what the registry answered; a registry error is 2.
    forged, missing = "sha256:" + "0" * 64, f"{stub.address}/shop/app:2"
    index = anonymous_client(PUSHER).get_manifest(ref, "1").data
    writer.put_manifest(ref, forged, index, OCI_INDEX)
    forged_ref = f"{stub.address}/shop/app@{forged}"
    for given, problem in [
        (
            forged_ref,
            f"manifest: content digest is {image.index.digest}, expected {forged}",
        ),
        (missing, "manifest 2 not found (HTTP 404: NOT_FOUND)"),
    ]:
        assert _check(given, "--public-key", public, capsys=capsys) == (
            2,
            "",
            f"verify attestations: {given}: {problem}\n",
        )
    # Every token request carried the login from the environment.
    basic = "Basic " + base64.b64encode(b"ci:pw-5e1f90").decode()
    assert set(realm.authorizations()) == {basic}
    # --gcp logs in with Application Default Credentials instead, which fail here.
    adc = tmp_path / "no-adc.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    code, out, err = _check(image.ref, "--public-key", public, "--gcp", capsys=capsys)
    assert (code, out) == (2, "")
    failed = f"verify attestations: {image.ref}: --gcp: Application Default Credentials failed: "
    assert err.startswith(failed) and str(adc) in err and err.count("\n") == 1, err


def test_in_process_every_invalid_attestation_is_named_and_fails_closed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the tag schema (no referrers API): a failed test result next to a valid one, forged,
    misdirected and malformed SBOM referrers, an unattested platform and one not in the index:
    each is one line, and the image is not valid (exit 1)."""
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    stub = ReferrersRegistry(referrers_api=False)
    key, public = _public_key(tmp_path)
    writer, reader = Registry(anonymous_client()), anonymous_client()
    try:
        image = _attested_image(writer, stub.address, key, attest=("index", "linux/amd64"))
        ref = parse_reference(image.ref)
        amd64, arm64 = image.manifests["linux/amd64"], image.manifests["linux/arm64"]
        failed = {"result": "FAILED", "failedTests": ["elf:linux/arm64"]}
        index_failed = attach_statement(
            writer, ref, image.index, dsse.TEST_RESULT_PREDICATE, failed, key
        )
        passed_but = {**PASSED, "failedTests": ["start:linux/arm64"]}
        index_passed_but = attach_statement(
            writer, ref, image.index, dsse.TEST_RESULT_PREDICATE, passed_but, key
        )
        other_key = ec.generate_private_key(ec.SECP256R1())
        forged = attach_statement(writer, ref, amd64, dsse.SPDX_PREDICATE, SBOM, other_key)
        about_arm64 = attach_statement(
            writer, ref, amd64, dsse.SPDX_PREDICATE, SBOM, key, about=arm64.digest
        )
        payload = dsse.statement([("x", amd64.digest)], dsse.TEST_RESULT_PREDICATE, PASSED)
        retyped_envelope = dsse.envelope(payload, dsse.local_signer(key), "kid")
        retyped = writer.attach(ref, amd64, retyped_envelope, dsse.SPDX_PREDICATE)
        about_two, about_nothing = (
            writer.attach(
                ref,
                amd64,
                dsse.envelope(
                    dsse.statement(subjects, dsse.SPDX_PREDICATE, SBOM),
                    dsse.local_signer(key),
                    "kid",
                ),
                dsse.SPDX_PREDICATE,
            )
            for subjects in ([("x", image.index.digest), ("x", arm64.digest)], [])
        )
        not_a_map = attach_statement(writer, ref, image.index, dsse.TEST_RESULT_PREDICATE, [], key)
        # Referrers listed by hand in the tag index: malformed manifests, and two that are no
        # SBOM attestation at all (skipped).
        good = json.loads(artifact_manifest(amd64, retyped_envelope, dsse.SPDX_PREDICATE)[0])
        malformed = [
            b"{not json",
            json_bytes({**good, "subject": {"digest": arm64.digest}}),
            json_bytes({**good, "layers": good["layers"] * 2}),
            json_bytes({**good, "layers": [{**good["layers"][0], "mediaType": "text/plain"}]}),
            b"[]",
        ]
        annotated = {"in-toto.io/predicate-type": dsse.SPDX_PREDICATE}
        listed = [
            {
                **descriptor(OCI_MANIFEST, data),
                "artifactType": DSSE_ARTIFACT_TYPE,
                "annotations": annotated,
            }
            for data in malformed
        ]
        # A valid SBOM envelope whose manifest is annotated as another predicate type than the
        # listing says.
        sbom_envelope = dsse.envelope(
            dsse.statement([("x", amd64.digest)], dsse.SPDX_PREDICATE, SBOM),
            dsse.local_signer(key),
            "kid",
        )
        writer.push_blob(ref, sbom_envelope)
        mislabelled = json_bytes(
            {
                **good,
                "layers": [{**descriptor(DSSE_ARTIFACT_TYPE, sbom_envelope)}],
                "annotations": {"in-toto.io/predicate-type": dsse.TEST_RESULT_PREDICATE},
            }
        )
        malformed.append(mislabelled)
        listed.append({**listed[0], **descriptor(OCI_MANIFEST, mislabelled)})
        for data in malformed:
            writer.put_manifest(ref, sha256_digest(data), data, OCI_MANIFEST)
        skipped = [
            {**listed[0], "artifactType": "application/vnd.example.signature"},
            {**listed[0], "annotations": {"in-toto.io/predicate-type": dsse.TEST_RESULT_PREDICATE}},
        ]
        tag = tag_schema_tag(amd64.digest)
        tag_index = json.loads(reader.get_manifest(ref, tag).data)
        tag_index["manifests"] += [*listed, *skipped]
        writer.put_manifest(ref, tag, json_bytes(tag_index), OCI_INDEX)
        # The platform not in the index first: the platforms after it are still checked.
        platforms = (
            "--platform",
            "linux/s390x",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
        )
        code, out, err = _check(image.ref, "--public-key", public, *platforms, capsys=capsys)
        # A Docker image manifest without its mediaType field: the answer's Content-Type says
        # what it is.
        bare = json.loads(reader.get_manifest(ref, amd64.digest).data)
        del bare["mediaType"]
        single_manifest = json_bytes(bare)
        writer.put_manifest(ref, sha256_digest(single_manifest), single_manifest, DOCKER_MANIFEST)
        not_index = f"{stub.address}/shop/app@{sha256_digest(single_manifest)}"
        single = _check(not_index, "--public-key", public, capsys=capsys)
    finally:
        stub.stop()
    assert (code, out) == (1, "")
    amd64_problems = [
        f"{forged}: no signature verifies with the public key",
        f"{about_arm64}: the signed statement is about {arm64.digest}, not {amd64.digest}",
        f"{retyped}: predicate type {dsse.TEST_RESULT_PREDICATE!r} (annotated "
        f"{dsse.SPDX_PREDICATE!r}), expected {dsse.SPDX_PREDICATE!r}",
        f"{about_two}: the signed statement is about "
        f"{', '.join(sorted([image.index.digest, arm64.digest]))}, not {amd64.digest}",
        f"{about_nothing}: the signed statement is about nothing, not {amd64.digest}",
        f"{listed[0]['digest']}: manifest is not JSON",
        f"{listed[1]['digest']}: its manifest refers to {arm64.digest}, not {amd64.digest}",
        f"{listed[2]['digest']}: its manifest does not have exactly one layer",
        f"{listed[3]['digest']}: its layer is not a {DSSE_ARTIFACT_TYPE}",
        f"{listed[4]['digest']}: its manifest refers to None, not {amd64.digest}",
        f"{listed[5]['digest']}: predicate type {dsse.SPDX_PREDICATE!r} (annotated "
        f"{dsse.TEST_RESULT_PREDICATE!r}), expected {dsse.SPDX_PREDICATE!r}",
    ]
    assert err.splitlines() == [
        f"verify attestations: {image.ref}: {problem}"
        for problem in [
            "linux/s390x: listed 0 times in the index",
            f"index: attestation {index_failed}: the test result is 'FAILED' "
            "(failed tests: ['elf:linux/arm64']), not passed",
            f"index: attestation {index_passed_but}: the test result is 'PASSED' "
            "(failed tests: ['start:linux/arm64']), not passed",
            f"index: attestation {not_a_map}: the test result is None (failed tests: None), "
            "not passed",
            *(f"linux/amd64: attestation {problem}" for problem in amd64_problems),
            f"linux/arm64: no SBOM attestation refers to {arm64.digest}",
        ]
    ]
    assert single == (
        1,
        "",
        f"verify attestations: {not_index}: {sha256_digest(single_manifest)} is not an image "
        f"index ({DOCKER_MANIFEST})\n",
    )


def test_in_process_attestations_help_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one usage line, whatever the terminal
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exited:
        check_main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    usage = (
        "usage: python -m verify attestations [-h] --public-key PEM "
        "[--platform OS/ARCH[/VARIANT]] [--json] [--gcp] REF\n"
    )
    assert shown.startswith(
        usage + "\nCheck the signed SBOM and verification attestations of an image.\n"
    )
    for option, purpose in [
        ("REF", "host\\[:port\\]/repository:tag or @sha256:<hex>"),
        ("--public-key PEM", "ECDSA P-256 key"),
        (
            "--platform OS/ARCH\\[/VARIANT\\]",
            "\n +platform that must have an SBOM attestation \\(default linux/amd64 and "
            "linux/arm64\\)",
        ),
        ("--json", "print the report as JSON on stdout"),
        ("--gcp", "Application Default Credentials"),
    ]:
        assert re.search(rf"\n  {option} *{purpose}\n", shown), (option, shown)
    with pytest.raises(SystemExit) as exited:
        check_main(["127.0.0.1:1/a:1"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        usage + "python -m verify attestations: error: the following arguments are required: "
        "--public-key\n"
    )

    _, public = _public_key(tmp_path)
    missing = tmp_path / "missing.pub"
    ref = "127.0.0.1:1/a:1"
    for args, message in [
        (
            ["busybox:1", "--public-key", public],
            "image reference 'busybox:1': no registry host; expected "
            "host[:port]/repository[:tag] or host[:port]/repository[:tag]@sha256:<64 hex>",
        ),
        (
            [ref, "--public-key", public, "--platform", "linux"],
            "platform 'linux' is not valid; expected os/architecture[/variant], e.g. "
            "linux/amd64 or linux/arm64/v8",
        ),
        (
            [ref, "--public-key", str(missing)],
            f"{missing}: not a readable PEM public key ([Errno 2] No such file or directory: "
            f"'{missing}')",
        ),
    ]:
        assert _check(*args, capsys=capsys) == (2, "", f"verify attestations: {message}\n")
    monkeypatch.setenv("REGISTRY_USERNAME", "ci")
    code, out, err = _check(ref, "--public-key", public, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.startswith("verify attestations: REGISTRY_USERNAME") and err.count("\n") == 1, err


def test_a_local_signing_key_is_created_on_request_and_read_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "attest-key.pem"
    with pytest.raises(signing.SigningError) as raised:
        signing.local(str(path), create=False)
    assert str(raised.value) == (
        f"--key {path}: {path}: not a readable unencrypted PEM private key "
        f"([Errno 2] No such file or directory: '{path}')"
    )
    assert not path.parent.exists()  # nothing is created without --create-key
    created = signing.local(str(path), create=True)
    public = dsse.load_public_key(tmp_path / "keys" / "attest-key.pem.pub")
    for signer in (created, signing.local(str(path), create=False)):
        assert signer.keyid == dsse.key_id(public)
        assert signer.public_key.public_numbers() == public.public_numbers()
        public.verify(signer.sign(b"DSSEv1 ..."), b"DSSEv1 ...", ec.ECDSA(hashes.SHA256()))


def _image_layers() -> dict[str, list[bytes]]:
    return {
        arch: [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(machine))]))]
        for arch, machine in MACHINES.items()
    }


def test_in_process_a_verified_image_is_attested_per_platform_and_on_its_index(
    stub: ReferrersRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`verify REF --deep --attest --key PEM --create-key` in process: an SBOM statement per
    platform manifest and the Test Result on the index, each signed by the key it created."""
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    Pusher(stub).image("shop/app", "1", _image_layers(), "app")  # type: ignore[arg-type]
    key_path = tmp_path / "keys" / "key.pem"
    ref = f"{stub.address}/shop/app:1"
    code = cli_main([ref, "--deep", "--json", "--attest", "--key", str(key_path), "--create-key"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    referrers = report["referrers"]
    assert list(referrers) == ["linux/amd64", "linux/arm64", "index"]
    assert captured.err.splitlines() == [
        f"verify: attested {subject}: referrer {digest}" for subject, digest in referrers.items()
    ]
    public = dsse.load_public_key(tmp_path / "keys" / "key.pem.pub")
    reader, parsed = Registry(anonymous_client()), parse_reference(ref)
    subjects = {
        name: report["platforms"][name]["digest"] for name in ("linux/amd64", "linux/arm64")
    }
    subjects["index"] = report["digest"]
    client = anonymous_client()
    for name, referrer in referrers.items():
        manifest = json.loads(reader.get_manifest(parsed, referrer))
        envelope = reader.get_envelope(parsed, manifest["layers"][0]["digest"])
        statement = dsse.open_envelope(envelope, public)
        (signature,) = json.loads(envelope)["signatures"]
        assert signature["keyid"] == dsse.key_id(public)
        media_type = OCI_INDEX if name == "index" else OCI_MANIFEST
        size = len(client.get_manifest(parsed, subjects[name]).data)
        assert manifest["subject"] == {
            "mediaType": media_type,
            "digest": subjects[name],
            "size": size,
        }
        assert statement.subjects == {subjects[name]: f"{stub.address}/shop/app"}
        predicate_type = dsse.TEST_RESULT_PREDICATE if name == "index" else dsse.SPDX_PREDICATE
        assert statement.predicate_type == predicate_type
    assert statement.predicate == {
        "result": "PASSED",
        "configuration": [
            {
                "name": TOOL,
                "uri": f"urn:boutique-multiarch:{TOOL}",
                "annotations": {
                    "platforms": ["linux/amd64", "linux/arm64"],
                    "deep": True,
                    "allow": [],
                    "run": None,
                },
            }
        ],
        "passedTests": [
            "platform:linux/amd64",
            "elf:linux/amd64",
            "platform:linux/arm64",
            "elf:linux/arm64",
        ],
        "warnedTests": [],
        "failedTests": [],
    }


def test_in_process_what_the_run_proved_is_attested_on_the_index(
    stub: ReferrersRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--attest --run --skip-run linux/arm64`: the Test Result on the index names the probe,
    passes amd64's start and warns that arm64 was not started. The runs are faked (no Docker
    Engine in process); the checks, the signing and the push are real."""
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    asked: list[object] = []

    def run_verified(*arguments: object) -> dict[tuple[int, str], RunResult]:
        asked.append(arguments[2])
        return {(0, "linux/amd64"): RunResult(ok=True, probe="tcp:80", seconds=1.0)}

    monkeypatch.setattr(verify_run, "check_prerequisites", lambda _platforms: None)
    monkeypatch.setattr(verify_run, "run_verified", run_verified)
    Pusher(stub).image("shop/app", "1", _image_layers(), "app")  # type: ignore[arg-type]
    key_path = tmp_path / "key.pem"
    ref = f"{stub.address}/shop/app:1"
    argv = [ref, "--deep", "--json", "--attest", "--key", str(key_path), "--create-key"]
    code = cli_main([*argv, "--run", "--probe", "tcp:80", "--skip-run", "linux/arm64"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(asked) == 1
    index = json.loads(captured.out)["referrers"]["index"]
    reader, parsed = Registry(anonymous_client()), parse_reference(ref)
    manifest = json.loads(reader.get_manifest(parsed, index))
    envelope = reader.get_envelope(parsed, manifest["layers"][0]["digest"])
    statement = dsse.open_envelope(envelope, dsse.load_public_key(Path(f"{key_path}.pub")))
    assert statement.predicate["result"] == "WARNED"
    assert statement.predicate["configuration"][0]["annotations"]["run"] == {
        "probe": "tcp:80",
        "skipped": ["linux/arm64"],
    }
    assert "start:linux/amd64" in statement.predicate["passedTests"]
    assert statement.predicate["warnedTests"] == ["start:linux/arm64"]


def test_in_process_a_registry_that_refuses_the_attestation_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification passes (the registry serves the image), the push is refused (it takes
    no upload): exit 2, one line naming the refusal, no report."""
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    registry = HostileRegistry().start()
    try:
        registry.image("shop/app", "1", {arch: blobs for arch, blobs in _image_layers().items()})
        ref = f"{registry.address}/shop/app:1"
        key = str(tmp_path / "key.pem")
        code = cli_main([ref, "--deep", "--json", "--attest", "--key", key, "--create-key"])
    finally:
        registry.stop()
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err == (
        f"verify: {ref}: attesting failed: upload of blob {sha256_digest(b'{}')}: "
        "unexpected HTTP 404\n"
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_in_process_an_envelope_is_read_behind_every_redirect_status(status: int) -> None:
    """Each redirect status a blob GET may answer leads to the bytes, wherever the Location is
    relative to; the storage it names is asked once, without the registry's credentials."""
    registry, storage = HostileRegistry().start(), HostileRegistry("127.0.0.2").start()
    reader = Registry(anonymous_client(PUSHER))
    ref = parse_reference(f"{registry.address}/shop/app:1")
    envelope = b'{"payloadType":"redirected"}'
    digest = sha256_digest(envelope)
    try:
        # Absolute Location: another host.
        registry.on(
            f"/v2/shop/app/blobs/{digest}",
            lambda handler: handler.reply(status, b"", {"Location": f"{storage.url}/b?s=1"}),
        )
        storage.on("/b", lambda handler: handler.reply(200, envelope))
        elsewhere = reader.get_envelope(ref, digest)
        # Relative Location: resolved against the blob's URL, on the registry's own host.
        registry.on(
            f"/v2/shop/app/blobs/{digest}",
            lambda handler: handler.reply(status, b"", {"Location": "../stored/b?s=2"}),
        )
        registry.on("/v2/shop/app/stored/b", lambda handler: handler.reply(200, envelope))
        relative = reader.get_envelope(ref, digest)
        # No Location: nowhere to go, said so.
        registry.on(f"/v2/shop/app/blobs/{digest}", lambda handler: handler.reply(status))
        nowhere = _refusal(lambda: reader.get_envelope(ref, digest))
    finally:
        registry.stop()
        storage.stop()
    assert elsewhere == relative == envelope
    assert [seen.path for seen in storage.seen] == ["/b?s=1"]
    assert storage.authorizations() == []
    assert [seen.path for seen in registry.seen][-2] == "/v2/shop/app/stored/b?s=2"
    assert nowhere == f"envelope {digest}: HTTP {status} without a Location"


def _inventory(platform: str, digest: str) -> Inventory:
    return Inventory(parse_platform(platform), digest, packages=[], unowned_elf=0, notes=[])


def _verified(image: Attested, *, inventory: tuple[str, ...] | None = None) -> ImageResult:
    """A passed verification of ``image``; its platforms in ``inventory`` (default all) carry
    an SBOM inventory."""
    names = tuple(image.manifests) if inventory is None else inventory
    return ImageResult(
        image.ref,
        digest=image.index.digest,
        platforms={
            name: PlatformResult(
                subject.digest,
                name.split("/")[1],
                inventory=_inventory(name, subject.digest) if name in names else None,
            )
            for name, subject in image.manifests.items()
        },
    )


def test_attest_signs_each_platforms_sbom_and_the_index_result_behind_a_login(
    stub_behind_login: tuple[ReferrersRegistry, HostileRegistry], tmp_path: Path
) -> None:
    """What ``--attest`` pushes after ``--run``, through ``verify.cli.attest``: every request
    carries the token the login got; each platform manifest gets its SPDX document and the index
    the Test Result, with what the start proved."""
    stub, realm = stub_behind_login
    key, public = _public_key(tmp_path)
    image = _attested_image(Registry(anonymous_client(PUSHER)), stub.address, key, attest=())
    ref = parse_reference(image.ref)
    options = Options(platforms=tuple(parse_platform(name) for name in image.manifests), deep=True)
    start = StartProof("tcp:80", passed=("linux/amd64",), skipped=("linux/arm64",))
    signer = signing.local(str(tmp_path / "key.pem"), create=False)

    attested = cli_attest(anonymous_client(PUSHER), ref, _verified(image), options, signer, start)

    reader = Registry(anonymous_client(PUSHER))
    statements = {}
    for name, subject in [("index", image.index), *image.manifests.items()]:
        assert [r.digest for r in reader.referrers(ref, subject.digest)] == [
            attested.referrers[name]
        ]
        manifest = json.loads(reader.get_manifest(ref, attested.referrers[name]))
        assert manifest["subject"] == {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        }
        envelope = reader.get_envelope(ref, manifest["layers"][0]["digest"])
        statements[name] = dsse.open_envelope(envelope, dsse.load_public_key(Path(public)))
    assert statements["index"].predicate_type == dsse.TEST_RESULT_PREDICATE
    result = statements["index"].predicate
    assert (result["result"], result["warnedTests"]) == ("WARNED", ["start:linux/arm64"])
    assert result["passedTests"] == [
        "platform:linux/amd64",
        "elf:linux/amd64",
        "start:linux/amd64",
        "platform:linux/arm64",
        "elf:linux/arm64",
    ]
    assert result["configuration"][0]["annotations"]["run"] == {
        "probe": "tcp:80",
        "skipped": ["linux/arm64"],
    }
    for name, subject in image.manifests.items():
        assert statements[name].predicate_type == dsse.SPDX_PREDICATE
        assert statements[name].subjects == {subject.digest: f"{stub.address}/shop/app"}
        described = statements[name].predicate["packages"][0]
        assert (described["name"], described["versionInfo"]) == ("shop/app", subject.digest)
    basic = "Basic " + base64.b64encode(b"ci:pw-5e1f90").decode()
    assert set(realm.authorizations()) == {basic}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"problems": [Problem("linux/arm64", "no arm64 entry", 1)]},
            "only a passed verification is attested",
        ),
        ({"digest": None}, "only a passed verification is attested"),
        # amd64 could be attested, arm64 not: neither is, nor the index.
        (
            {"inventory": ("linux/amd64",)},
            "linux/arm64: no SBOM inventory (attesting needs --deep)",
        ),
    ],
)
def test_a_verification_that_cannot_be_attested_whole_pushes_nothing(
    stub: ReferrersRegistry, tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    key, _ = _public_key(tmp_path)
    image = _attested_image(Registry(anonymous_client()), stub.address, key, attest=())
    pushed = len(stub.requests)
    result = _verified(image, inventory=change.pop("inventory", None))
    for field, value in change.items():
        setattr(result, field, value)
    options = Options(platforms=tuple(parse_platform(name) for name in image.manifests), deep=True)
    with pytest.raises(ValueError) as raised:
        attest(
            anonymous_client(),
            parse_reference(image.ref),
            result,
            options,
            dsse.local_signer(key),
            "kid",
        )
    assert str(raised.value) == problem
    assert stub.requests[pushed:] == []


def test_a_subject_without_a_media_type_field_is_known_by_its_content_type() -> None:
    """OCI makes a manifest's mediaType optional: the registry's Content-Type says what it is
    (a Docker manifest list here, which its shape alone would take for an OCI index)."""
    registry = HostileRegistry().start()
    document = json_bytes({"schemaVersion": 2, "manifests": []})
    digest = sha256_digest(document)
    registry.on(
        f"/v2/shop/app/manifests/{digest}",
        lambda handler: handler.reply(200, document, {"Content-Type": DOCKER_MANIFEST_LIST}),
    )
    try:
        ref = parse_reference(f"{registry.address}/shop/app:1")
        subject = subject_of(anonymous_client(), ref, digest)
    finally:
        registry.stop()
    assert subject == Subject(DOCKER_MANIFEST_LIST, digest, len(document))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "is not JSON"),
        (b'{"manifests":5}', "has no manifests list"),
        (b"[1]", "has no manifests list"),
    ],
)
def test_a_broken_referrers_tag_index_is_named_by_its_tag(body: bytes, problem: str) -> None:
    registry = HostileRegistry().start()
    subject = "sha256:" + "c" * 64
    registry.on(f"/v2/shop/app/referrers/{subject}", lambda handler: handler.reply(404))
    registry.on(
        f"/v2/shop/app/manifests/{tag_schema_tag(subject)}",
        lambda handler: handler.reply(200, body, {"Content-Type": OCI_INDEX}),
    )
    try:
        ref = parse_reference(f"{registry.address}/shop/app:1")
        refusal = _refusal(lambda: Registry(anonymous_client()).referrers(ref, subject))
    finally:
        registry.stop()
    assert refusal == f"referrers index sha256-{'c' * 64} {problem}"


_SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
_TYPE = "application/x-test"


def _envelope(
    payload: object, signed: bytes, signature: object = None, payload_type: str = _TYPE
) -> bytes:
    """An envelope whose payload text is ``payload``, signed over ``signed`` (its signature's
    text standard base64 unless ``signature`` replaces it)."""
    if signature is None:
        der = _SIGNING_KEY.sign(dsse.pae(payload_type, signed), ec.ECDSA(hashes.SHA256()))
        signature = base64.b64encode(der).decode()
    document = {"payloadType": payload_type, "payload": payload, "signatures": [{"sig": signature}]}
    return json.dumps(document).encode()


def _signed_statement(body: bytes) -> bytes:
    """An in-toto envelope of ``body``, validly signed by _SIGNING_KEY."""
    return _envelope(base64.b64encode(body).decode(), body, None, dsse.IN_TOTO_PAYLOAD_TYPE)


def test_an_envelope_of_exactly_the_bound_is_read() -> None:
    envelope = _envelope("//8=", b"\xff\xff")
    padded = envelope + b" " * (MAX_ENVELOPE_BYTES - len(envelope))
    assert dsse.verify_envelope(padded, _SIGNING_KEY.public_key(), _TYPE) == b"\xff\xff"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"{", "envelope is not JSON"),
        ({"payloadType": _TYPE, "payload": "//8="}, "envelope has no signatures"),
        ({"payloadType": _TYPE, "payload": "//8=", "signatures": []}, "envelope has no signatures"),
        (
            {"payloadType": _TYPE, "payload": "//8=", "signatures": {"sig": "MEU="}},
            "envelope has no signatures",
        ),
        (
            {"payloadType": _TYPE, "payload": "//8=", "signatures": ["MEU="]},
            "signature is not a string",
        ),
    ],
)
def test_an_envelope_without_signatures_to_check_is_refused(
    document: bytes | dict[str, object], problem: str
) -> None:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(dsse.EnvelopeError) as raised:
        dsse.verify_envelope(data, _SIGNING_KEY.public_key(), _TYPE)
    assert str(raised.value) == problem


NOT_A_STATEMENT = f"signed payload is not an in-toto Statement v1 ({dsse.STATEMENT_TYPE})"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "signed payload is not JSON"),
        (b"[1]", NOT_A_STATEMENT),
        (b'{"_type":"https://in-toto.io/Statement/v0.1"}', NOT_A_STATEMENT),
        (
            json_bytes({"_type": dsse.STATEMENT_TYPE, "predicate": {}}),
            "statement has no predicateType",
        ),
        (
            json_bytes({"_type": dsse.STATEMENT_TYPE, "predicateType": 1}),
            "statement has no predicateType",
        ),
    ],
)
def test_a_signed_payload_that_is_no_statement_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(dsse.EnvelopeError) as raised:
        dsse.open_envelope(_signed_statement(body), _SIGNING_KEY.public_key())
    assert str(raised.value) == problem


def test_a_statements_subjects_without_a_sha256_digest_are_skipped() -> None:
    subjects = [
        "not a subject",
        {"name": "no digest"},
        {"name": "sha512 only", "digest": {"sha512": "00"}},
        {"digest": {"sha256": "ab"}},
        {"name": "shop/app", "digest": {"sha256": "cd"}},
    ]
    body = json_bytes(
        {"_type": dsse.STATEMENT_TYPE, "subject": subjects, "predicateType": "p", "predicate": 1}
    )
    verified = dsse.open_envelope(_signed_statement(body), _SIGNING_KEY.public_key())
    assert verified == dsse.Verified({"sha256:ab": "", "sha256:cd": "shop/app"}, "p", 1)


@pytest.mark.parametrize(
    ("payload", "decoded"),
    [
        ("//8=", b"\xff\xff"),
        ("__8=", b"\xff\xff"),
        ("--8=", b"\xfb\xef"),
        ("-_-_", b"\xfb\xff\xbf"),
    ],
)
def test_an_envelope_in_standard_or_url_safe_base64_is_read(payload: str, decoded: bytes) -> None:
    envelope = _envelope(payload, decoded)
    assert dsse.verify_envelope(envelope, _SIGNING_KEY.public_key(), _TYPE) == decoded


@pytest.mark.parametrize(
    ("payload", "signature", "problem"),
    [
        # A character outside the alphabet is refused, not skipped (the rest signs b"\xff\xff").
        ("/!/8=", None, "envelope payload is not valid base64"),
        (5, None, "envelope payload is not a string"),
        ("//8=", 7, "signature is not a string"),
        ("//8=", "MEU*", "signature is not valid base64"),
    ],
)
def test_envelope_base64_that_is_not_a_string_or_has_other_characters_is_refused(
    payload: object, signature: object, problem: str
) -> None:
    envelope = _envelope(payload, b"\xff\xff", signature)
    with pytest.raises(dsse.EnvelopeError) as raised:
        dsse.verify_envelope(envelope, _SIGNING_KEY.public_key(), _TYPE)
    assert str(raised.value) == problem


def test_blob_storage_gets_one_plain_get_answered_with_at_most_the_bound() -> None:
    """Behind the registry's redirect: an envelope of exactly the bound is read; the storage's
    own redirect is its answer (refused), not a way on to a third host."""
    registry, storage = HostileRegistry().start(), HostileRegistry("127.0.0.2").start()
    further = HostileRegistry("127.0.0.3").start()
    reader = Registry(anonymous_client())
    ref = parse_reference(f"{registry.address}/shop/app:1")
    exact = b" " * MAX_ENVELOPE_BYTES
    digest = sha256_digest(exact)
    registry.on(
        f"/v2/shop/app/blobs/{digest}",
        lambda handler: handler.reply(302, b"", {"Location": f"{storage.url}/b"}),
    )
    further.on("/c", lambda handler: handler.reply(200, exact))
    try:
        storage.on("/b", lambda handler: handler.reply(200, exact))
        read = reader.get_envelope(ref, digest)
        storage.on("/b", lambda handler: handler.reply(302, b"", {"Location": f"{further.url}/c"}))
        refusal = _refusal(lambda: reader.get_envelope(ref, digest))
    finally:
        registry.stop()
        storage.stop()
        further.stop()
    assert sha256_digest(read) == digest
    assert refusal == f"envelope {digest}: unexpected HTTP 302"
    assert further.seen == []


def test_a_manifest_push_answered_201_or_204_is_done_and_an_undecodable_refusal_is_quoted() -> None:
    """Registries answer a manifest PUT with 201 Created or 204 No Content; anything else is a
    refusal quoted from its body, whatever bytes it holds."""
    registry = HostileRegistry().start()
    writer = Registry(anonymous_client())
    ref = parse_reference(f"{registry.address}/shop/app:1")
    path = "/v2/shop/app/manifests/1"
    refusals = []

    def answer(status: int, body: bytes = b"") -> Callable[[Handler], None]:
        return lambda handler: handler.reply(status, body)

    try:
        for status in (201, 204):
            registry.on(path, answer(status))
            writer.put_manifest(ref, "1", b"{}", OCI_INDEX)
        for status, body in [(205, b""), (400, b" bad \xff\xfe manifest ")]:
            registry.on(path, answer(status, body))
            refusals.append(_refusal(lambda: writer.put_manifest(ref, "1", b"{}", OCI_INDEX)))
    finally:
        registry.stop()
    assert refusals == [
        "push of manifest 1: unexpected HTTP 205",
        "push of manifest 1: unexpected HTTP 400 bad \ufffd\ufffd manifest",
    ]


def test_the_attestation_client_gives_up_a_registry_at_its_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One that never accepts the connection, and one that accepts and never answers."""
    monkeypatch.setattr(oras, "CONNECT_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(oras, "READ_TIMEOUT_SECONDS", 0.2)
    subject = "sha256:" + "a" * 64
    with never_accepting() as address:
        ref = parse_reference(f"{address}/shop/app:1")
        # urllib3 tries 4 times: about 1 s with the 0.2 s timeout.
        unreachable = raised_within(
            lambda: Registry(anonymous_client()).has_referrers_api(ref, subject), 20
        )
    registry, release = HostileRegistry().start(), threading.Event()

    def hold(_handler: Handler) -> None:
        release.wait(5)  # then the connection closes: without a read timeout, a later error

    registry.on(f"/v2/shop/app/referrers/{subject}", hold)
    try:
        ref = parse_reference(f"{registry.address}/shop/app:1")
        silent = raised_within(
            lambda: Registry(anonymous_client()).has_referrers_api(ref, subject), 20
        )
        release.set()
    finally:
        registry.stop()
    assert isinstance(unreachable, RegistryError), repr(unreachable)
    assert "connect timeout=0.2" in str(unreachable)
    assert isinstance(silent, RegistryError), repr(silent)
    assert "Read timed out. (read timeout=0.2)" in str(silent)


def test_a_key_is_written_beside_its_path_under_directories_made_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not through the system's temporary directory (which may be another filesystem, where the
    key could not be linked into place): here it does not even exist."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    path = tmp_path / "a" / "b" / "attest-key.pem"
    key = dsse.ensure_private_key(path)
    public = path.with_name("attest-key.pem.pub")
    assert (path.stat().st_mode & 0o777, public.stat().st_mode & 0o777) == (0o600, 0o644)
    assert dsse.load_public_key(public).public_numbers() == key.public_key().public_numbers()
    assert sorted(p.name for p in path.parent.iterdir()) == ["attest-key.pem", "attest-key.pem.pub"]


def test_a_key_of_another_curve_is_named_by_its_path(tmp_path: Path) -> None:
    private, public = tmp_path / "p384.pem", tmp_path / "p384.pem.pub"
    p384 = ec.generate_private_key(ec.SECP384R1())
    private.write_bytes(
        p384.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        p384.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    problems = []
    for load in (dsse.load_private_key, dsse.load_public_key):
        with pytest.raises(dsse.KeyFileError) as raised:
            load(private if load is dsse.load_private_key else public)
        problems.append(str(raised.value))
    assert problems == [
        f"{private}: not an ECDSA P-256 private key (only P-256 is accepted)",
        f"{public}: not an ECDSA P-256 public key (only P-256 is accepted)",
    ]
