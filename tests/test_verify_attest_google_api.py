"""The one HTTP call to Google APIs (``verify.attest.google_api.call``) and the KMS key built on
it, against a loopback server that records what it received and answers what a test sets:
google-auth's own authorized HTTP client, no mock of the transport."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.gcp_fakes import NAME, TOKEN, authorized_http
from tests.integration.loopbackserver import address_of, serve, shut_down
from verify.attest import google_api
from verify.attest.kms import MAX_ANSWER_BYTES, KmsError, KmsKey


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
