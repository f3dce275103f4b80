"""Cloud KMS signing against a loopback fake of ``asymmetricSign`` and ``publicKey``, through
google-auth's own authorized HTTP client (the bearer token is checked by the fake)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gcp_fakes import NAME, TOKEN, authorized_http, start_fake_kms
from tests.gcp_fakes import FakeKms as _FakeKms
from tests.integration.loopbackserver import address_of, shut_down
from tests.test_verify_cli import run
from verify.attest import dsse
from verify.attest.kms import KmsError, KmsKey


@pytest.fixture
def kms() -> Iterator[KmsKey]:
    server = start_fake_kms()
    yield KmsKey(authorized_http(), NAME, endpoint=f"http://{address_of(server)}")
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
