"""Cloud KMS signing against a loopback fake of ``asymmetricSign`` and ``publicKey``, through
google-auth's own authorized HTTP client (the bearer token is checked by the fake); then the one
HTTP call to Google APIs (``verify.attest.google_api.call``) and the KMS key built on it,
against a loopback server that records what it received and answers what a test sets."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from plan.binary_authorization import referrer_kms
from plan.settings import parse_settings
from plan.tools import tool_command
from plan.verification import VerifyOptions, verify_request
from tests.gcp_fakes import (
    CLOUD_PLATFORM,
    NAME,
    TOKEN,
    application_default_credentials,
    authorized_http,
    start_fake_kms,
)
from tests.gcp_fakes import FakeKms as _FakeKms
from tests.integration.loopbackserver import (
    address_of,
    never_accepting,
    raised_within,
    serve,
    shut_down,
)
from tests.integration.registrypush import Pusher
from tests.referrers_stub import ReferrersRegistry
from tests.test_verify_cli import run
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify.attest import dsse, google_api, signing
from verify.attest import kms as kms_module
from verify.attest.kms import MAX_ANSWER_BYTES, KmsError, KmsKey
from verify.cli import main


def _signed_once(token: str) -> list[str]:
    """What the fake sees when a key signs once: the public key read, then one signature."""
    return [
        f"GET /v1/{NAME}/publicKey Bearer {token}",
        f"POST /v1/{NAME}:asymmetricSign Bearer {token}",
    ]


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
    assert _FakeKms.seen == _signed_once(TOKEN)


def test_a_signature_that_does_not_verify_is_refused(kms: KmsKey) -> None:
    _FakeKms.corrupt = True
    with pytest.raises(KmsError, match="does not verify"):
        kms.sign(b"DSSEv1 ...")


def test_a_signature_by_another_key_version_is_refused(kms: KmsKey) -> None:
    other = NAME.replace("cryptoKeyVersions/1", "cryptoKeyVersions/2")
    _FakeKms.signed_by = other
    with pytest.raises(KmsError) as raised:
        kms.sign(b"DSSEv1 ...")
    assert str(raised.value) == f"{NAME}: KMS signed with {other}"


def test_a_signature_with_text_outside_base64_is_refused(kms: KmsKey) -> None:
    # Lenient base64 would skip the stray character and accept the valid signature around it.
    _FakeKms.garbled = True
    with pytest.raises(KmsError) as raised:
        kms.sign(b"DSSEv1 ...")
    assert str(raised.value) == f"{NAME}: the signature KMS returned does not verify"


def test_an_endpoint_given_with_a_trailing_slash_is_called_at_its_api_paths() -> None:
    server = start_fake_kms()
    try:
        key = KmsKey(authorized_http(), NAME, endpoint=f"http://{address_of(server)}/")
        key.sign(b"DSSEv1 ...")
    finally:
        shut_down(server)
    assert _FakeKms.seen == _signed_once(TOKEN)


def test_kms_requests_carry_application_default_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real ``adc_http``: google-auth reads a service-account key, gets a cloud-platform
    token from the loopback token URI and sends it with each KMS request."""
    server = start_fake_kms()
    try:
        with application_default_credentials(tmp_path, "ya29.kms-8c02", monkeypatch) as tokens:
            key = KmsKey(kms_module.adc_http(), NAME, endpoint=f"http://{address_of(server)}")
            signature = key.sign(b"DSSEv1 ...")
    finally:
        shut_down(server)
    _FakeKms.key.public_key().verify(signature, b"DSSEv1 ...", ec.ECDSA(hashes.SHA256()))
    assert tokens.scopes == [CLOUD_PLATFORM]
    assert _FakeKms.seen == _signed_once("ya29.kms-8c02")


def test_a_kms_answer_slower_than_the_read_timeout_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kms_module, "READ_TIMEOUT_SECONDS", 0.2)
    server = start_fake_kms()
    _FakeKms.delay = 3.0  # an answer does come, long after the read timeout
    try:
        with application_default_credentials(tmp_path, "ya29.kms-8c02", monkeypatch):
            key = KmsKey(kms_module.adc_http(), NAME, endpoint=f"http://{address_of(server)}")
            with pytest.raises(KmsError) as raised:
                key.public_key()
    finally:
        shut_down(server)
    url = f"http://{address_of(server)}/v1/{NAME}/publicKey"
    assert str(raised.value).startswith(f"{NAME}: GET {url}: "), raised.value
    assert "Read timed out. (read timeout=0.2)" in str(raised.value)


def test_a_kms_endpoint_that_never_accepts_is_given_up_at_the_connect_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kms_module, "CONNECT_TIMEOUT_SECONDS", 0.2)
    with (
        never_accepting() as address,
        application_default_credentials(tmp_path, "ya29.kms-8c02", monkeypatch),
    ):
        endpoint = f"http://{address}"
        key = KmsKey(kms_module.adc_http(), NAME, endpoint=endpoint)
        # urllib3 tries 4 times: about 1 s with the 0.2 s timeout.
        error = raised_within(key.public_key, 20)
    assert isinstance(error, KmsError), f"{error!r} (None: still connecting after 20 s)"
    assert str(error).startswith(f"{NAME}: GET {endpoint}/v1/{NAME}/publicKey: ")
    assert "connect timeout=0.2" in str(error)


def test_only_p256_sha256_versions_sign(kms: KmsKey) -> None:
    _FakeKms.algorithm = "RSA_SIGN_PKCS1_2048_SHA256"
    with pytest.raises(KmsError, match="RSA_SIGN_PKCS1_2048_SHA256, not EC_SIGN_P256_SHA256"):
        kms.public_key()


def test_a_refusal_names_the_status(kms: KmsKey) -> None:
    _FakeKms.status = 403
    with pytest.raises(KmsError, match="HTTP 403"):
        kms.public_key()


MISSING_KEY = "/nonexistent/k.pem"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kms", "projects/x/keys/1"],
            "--kms 'projects/x/keys/1': expected projects/P/locations/L/keyRings/R/cryptoKeys/K/"
            "cryptoKeyVersions/N",
        ),
        (
            ["--kms", NAME, "--key", "k.pem"],
            "--attest needs exactly one of --key PEM and --kms KEY_VERSION",
        ),
        (
            ["--kms", NAME, "--create-key"],
            "--create-key creates the --key file; KMS keys are made in KMS",
        ),
        (
            ["--key", MISSING_KEY],
            f"--key {MISSING_KEY}: {MISSING_KEY}: not a readable unencrypted PEM private key "
            f"([Errno 2] No such file or directory: '{MISSING_KEY}')",
        ),
    ],
)
def test_key_usage_errors_exit_2_with_one_message(
    args: list[str], message: str, verify_refusal: Callable[[list[str]], str]
) -> None:
    refused = verify_refusal(["127.0.0.1:1/a:1", "--deep", "--attest", *args])
    assert refused == f"verify: {message}\n"


def test_the_programs_command_line_signs_referrers_with_the_attestors_kms_key(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The verification Command of a Binary Authorization stack (`--attest --kms V`, V the
    attestor's key version), run against a registry with the referrers API and the KMS fake:
    the referrers it pushes check out with the key version's public key."""
    settings = parse_settings(
        {"attest": json.dumps({"binaryAuthorization": True})},
        {"project": "shop-123", "region": "europe-west1"},
        False,
    )
    version = referrer_kms(settings.destination, settings.attest)
    assert version is not None and version != NAME
    stub, server = ReferrersRegistry(), start_fake_kms()
    try:
        layers = {
            arch: [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(machine))]))]
            for arch, machine in (("amd64", X86_64), ("arm64", AARCH64))
        }
        Pusher(stub).image("shop/app", "1", layers, "app")  # type: ignore[arg-type]  # duck-typed
        ref = f"{stub.address}/shop/app:1"
        # The registry here is not Artifact Registry: no `--gcp`; the KMS part is the program's.
        options = VerifyOptions(deep=True, allow=(), gcp=False, attest_kms=version)
        argv = shlex.split(
            tool_command(verify_request(ref, ["linux/amd64"], options), sys.executable)
        )
        assert argv[argv.index("--kms") + 1] == version
        # Application Default Credentials and the KMS endpoint, pointed at the loopback fake.
        monkeypatch.setattr(kms_module, "adc_http", authorized_http)
        monkeypatch.setattr(
            kms_module, "KmsKey", partial(KmsKey, endpoint=f"http://{address_of(server)}")
        )
        assert main(argv[3:]) == 0, capsys.readouterr().err
        referrers = json.loads(capsys.readouterr().out)["referrers"]
        assert set(referrers) == {"index", "linux/amd64"}
        assert f"GET /v1/{version}/publicKey Bearer {TOKEN}" in _FakeKms.seen
        assert (
            sum(line.startswith(f"POST /v1/{version}:asymmetricSign") for line in _FakeKms.seen)
            == 2
        )
    finally:
        shut_down(server)
    try:
        public = tmp_path / "kms.pub.pem"
        public.write_bytes(
            _FakeKms.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        checked = run("attestations", ref, "--platform", "linux/amd64", "--public-key", str(public))
        assert checked.returncode == 0, checked.stderr
    finally:
        stub.stop()


# google_api.call, the one HTTP call to Google APIs, and the KMS key over it: a loopback server
# that records each request and answers what the test sets (it can also stall mid-answer).


@dataclass(frozen=True)
class Received:
    """One request as the server read it."""

    method: str
    path: str
    authorization: str | None
    content_type: str | None
    body: bytes


@dataclass
class Answer:
    """What the server answers every request with. ``stall_after``: send only that many bytes
    of a body announced whole, then hold the connection until the test releases it."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    stall_after: int | None = None


class _Canned(BaseHTTPRequestHandler):
    answer: ClassVar[Answer] = Answer()
    received: ClassVar[list[Received]] = []
    release: ClassVar[threading.Event] = threading.Event()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _record_and_answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(
            Received(
                self.command,
                self.path,
                self.headers.get("Authorization"),
                self.headers.get("Content-Type"),
                self.rfile.read(length),
            )
        )
        answer = self.answer
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if answer.stall_after is None:
            self.wfile.write(answer.body)
            return
        self.wfile.write(answer.body[: answer.stall_after])
        self.wfile.flush()
        # A client that reads past the bound waits here, then gets a truncated body.
        self.release.wait(timeout=3)
        self.close_connection = True

    do_GET = do_POST = _record_and_answer


@pytest.fixture
def api() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a fresh _Canned server answering ``{}``."""
    _Canned.answer, _Canned.release = Answer(), threading.Event()
    _Canned.received.clear()
    server = serve(_Canned)
    yield f"http://{address_of(server)}"
    _Canned.release.set()
    shut_down(server)


def _call(url: str, body: dict[str, object] | None = None, limit: int = 1 << 20) -> object:
    method = "GET" if body is None else "POST"
    return google_api.call(authorized_http(), "Test API", method, url, body, limit)


def _refusal(url: str, limit: int = 1 << 20) -> str:
    with pytest.raises(google_api.ApiError) as error:
        _call(url, limit=limit)
    return str(error.value)


def test_a_post_sends_its_body_as_json_and_a_get_sends_none(api: str) -> None:
    _Canned.answer = Answer(body=b'{"name": "x"}')
    assert _call(f"{api}/v1/things", {"digest": {"sha256": "AA=="}}) == {"name": "x"}
    assert _call(f"{api}/v1/things/1") == {"name": "x"}
    bearer = f"Bearer {TOKEN}"
    assert _Canned.received == [
        Received(
            "POST", "/v1/things", bearer, "application/json", b'{"digest": {"sha256": "AA=="}}'
        ),
        Received("GET", "/v1/things/1", bearer, None, b""),
    ]


def test_a_redirect_is_refused_not_followed(api: str) -> None:
    """A redirect could send the bearer token's request elsewhere: it is an answer like any
    other that is not 200, and nothing is asked of the Location."""
    _Canned.answer = Answer(status=302, body=b"", headers={"Location": f"{api}/elsewhere"})
    assert _refusal(f"{api}/v1/key") == "Test API answered HTTP 302"
    assert [received.path for received in _Canned.received] == ["/v1/key"]


def test_a_refusal_quotes_300_bytes_of_the_answer_with_bad_bytes_replaced(api: str) -> None:
    detail = b"\xff" + b"d" * 400
    _Canned.answer = Answer(status=503, body=b"  " + detail + b"  ")
    assert _refusal(f"{api}/v1/key") == "Test API answered HTTP 503 \ufffd" + "d" * 297


def test_a_refusal_without_a_body_ends_at_the_status(api: str) -> None:
    _Canned.answer = Answer(status=403, body=b"")
    assert _refusal(f"{api}/v1/key") == "Test API answered HTTP 403"


def test_an_answer_of_exactly_the_limit_is_read(api: str) -> None:
    _Canned.answer = Answer(body=b'{"pad": "' + b"p" * 53 + b'"}')
    assert len(_Canned.answer.body) == 64
    assert _call(f"{api}/v1/key", limit=64) == {"pad": "p" * 53}


def test_an_answer_over_the_limit_is_refused_after_reading_one_byte_more(api: str) -> None:
    """The server announces 1,000 bytes more than it sends at first and then holds the
    connection: a client reading past limit + 1 bytes would wait for them."""
    _Canned.answer = Answer(body=b"{" + b" " * 2000 + b"}", stall_after=65)
    assert _refusal(f"{api}/v1/key", limit=64) == "Test API answer is larger than 64 bytes"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"truncated": ', "Test API answer is not JSON"),
        (b"[" * 100_000, "Test API answer is not JSON"),
        (b'["a", "list"]', "Test API answer is not an object"),
    ],
)
def test_an_answer_that_is_not_a_json_object_is_refused(
    api: str, body: bytes, message: str
) -> None:
    _Canned.answer = Answer(body=body)
    assert _refusal(f"{api}/v1/key") == message


def test_a_transport_error_names_the_request() -> None:
    server = serve(_Canned)
    url = f"http://{address_of(server)}/v1/key"
    shut_down(server)  # nothing listens on that port any more
    message = _refusal(url)
    assert message.startswith(f"GET {url}: ")
    assert "Connection refused" in message


# The KMS key over the same call: its errors name the key version and the service.


@pytest.fixture
def key(api: str) -> KmsKey:
    return KmsKey(authorized_http(), NAME, endpoint=api)


def _public_key_answer(public: ec.EllipticCurvePublicKey | None) -> Answer:
    """A ``publicKey`` answer for an EC_SIGN_P256_SHA256 version holding ``public`` (None: no
    PEM at all)."""
    document = {"algorithm": "EC_SIGN_P256_SHA256"}
    if public is not None:
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        document["pem"] = pem.decode()
    return Answer(body=json.dumps(document).encode())


def test_a_kms_refusal_names_the_key_version_and_kms(key: KmsKey) -> None:
    _Canned.answer = Answer(status=403, body=b'{"error": "denied"}')
    with pytest.raises(KmsError) as error:
        key.public_key()
    assert str(error.value) == f'{NAME}: KMS answered HTTP 403 {{"error": "denied"}}'


def test_kms_answers_are_bounded_at_64_kib(key: KmsKey) -> None:
    padding = b" " * (MAX_ANSWER_BYTES - 1)
    _Canned.answer = Answer(body=b"{" + padding + b"}")
    with pytest.raises(KmsError) as error:
        key.public_key()
    assert str(error.value) == f"{NAME}: KMS answer is larger than {MAX_ANSWER_BYTES} bytes"


def test_a_public_key_answer_without_a_pem_is_refused(key: KmsKey) -> None:
    _Canned.answer = _public_key_answer(None)
    with pytest.raises(KmsError) as error:
        key.public_key()
    assert str(error.value) == f"{NAME}: KMS returned no readable public key"


def test_a_public_key_on_another_curve_is_refused(key: KmsKey) -> None:
    """The algorithm field says P-256 but the PEM holds a P-384 key: the key decides."""
    _Canned.answer = _public_key_answer(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(KmsError) as error:
        key.public_key()
    assert str(error.value) == f"{NAME}: the public key is not ECDSA P-256"


def test_a_p256_public_key_is_read_once(key: KmsKey) -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    _Canned.answer = _public_key_answer(public)
    assert key.public_key().public_numbers() == public.public_numbers()
    assert key.public_key().public_numbers() == public.public_numbers()
    assert [received.path for received in _Canned.received] == [f"/v1/{NAME}/publicKey"]


def test_an_endpoint_with_a_path_is_called_under_that_path(api: str) -> None:
    _Canned.answer = _public_key_answer(ec.generate_private_key(ec.SECP256R1()).public_key())
    KmsKey(authorized_http(), NAME, endpoint=f"{api}/proxyX/").public_key()
    assert [received.path for received in _Canned.received] == [f"/proxyX/v1/{NAME}/publicKey"]


# --kms KEY_VERSION as verify's signing choice: the key version's own public key and key id, or
# one error that says which part failed.


def test_cloud_kms_signs_with_the_key_versions_public_key_and_key_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_fake_kms()
    endpoint = f"http://{address_of(server)}"
    monkeypatch.setattr(kms_module, "KmsKey", partial(KmsKey, endpoint=endpoint))
    try:
        with application_default_credentials(tmp_path, "ya29.kms-8c02", monkeypatch):
            signer = signing.cloud_kms(NAME)
            signature = signer.sign(b"DSSEv1 ...")
    finally:
        shut_down(server)
    public = _FakeKms.key.public_key()
    assert signer.keyid == dsse.key_id(public)
    assert signer.public_key.public_numbers() == public.public_numbers()
    signer.public_key.verify(signature, b"DSSEv1 ...", ec.ECDSA(hashes.SHA256()))


def test_cloud_kms_without_application_default_credentials_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "adc.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    with pytest.raises(signing.SigningError) as raised:
        signing.cloud_kms(NAME)
    message = str(raised.value)
    assert message.startswith("--kms: Application Default Credentials failed: "), message
    assert str(missing) in message


def test_cloud_kms_refused_by_kms_names_the_key_version(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _Canned.answer = Answer(status=403, body=b'{"error": "denied"}')
    monkeypatch.setattr(kms_module, "adc_http", authorized_http)
    monkeypatch.setattr(kms_module, "KmsKey", partial(KmsKey, endpoint=api))
    with pytest.raises(signing.SigningError) as raised:
        signing.cloud_kms(NAME)
    assert str(raised.value) == f'--kms: {NAME}: KMS answered HTTP 403 {{"error": "denied"}}'
