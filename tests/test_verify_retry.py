"""Backoff of the registry client: exponential, jittered, capped, and Retry-After honoured; a
request given up names the registry's error from the last answer's (bounded) body."""

import contextlib
import gzip
import time

import pytest

from tests.hostile_registry import Handler, HostileRegistry
from tests.test_verify_cli import closed_port
from verify.auth import CredentialResolver
from verify.digests import sha256_digest
from verify.reference import parse_reference
from verify.registry import RegistryClient, RegistryError, RetryPolicy, TimedOut

DENIED = b'{"errors": [{"code": "UNAVAILABLE", "message": "busy, try later"}]}'


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.25), (1, 0.5), (2, 1.0), (6, 4.0)])
def test_backoff_doubles_with_jitter_and_a_cap(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy()
    delays = [policy.delay(attempt, None) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1  # jittered, so concurrent workers do not retry in step


@pytest.mark.parametrize(
    ("header", "expected"), [("2", 2.0), ("0", 0.0), ("120", 4.0), (" 3 ", 3.0)]
)
def test_numeric_retry_after_is_honoured_up_to_the_cap(header: str, expected: float) -> None:
    assert RetryPolicy().delay(0, header) == expected


@pytest.mark.parametrize(
    "header", ["Wed, 21 Oct 2015 07:28:00 GMT", "²", "١٢", "1e3", "-1", "9" * 400]
)
def test_other_retry_after_values_fall_back_to_backoff(header: str) -> None:
    # "²" and Arabic-Indic digits pass str.isdigit() but not float(): once a traceback.
    delay = RetryPolicy().delay(0, header)
    assert 0.125 <= delay <= 0.25


@pytest.mark.parametrize(
    ("body", "headers", "detail"),
    [
        (
            gzip.compress(DENIED, mtime=0),
            {"Content-Encoding": "gzip"},
            ": UNAVAILABLE busy, try later",
        ),
        # An error body is read up to 64 KiB: one a byte longer is not parsed (no detail).
        (DENIED[:-1] + b" " * (65536 - len(DENIED)) + b"}", {}, ": UNAVAILABLE busy, try later"),
        (DENIED[:-1] + b" " * (65537 - len(DENIED)) + b"}", {}, ""),
    ],
    # Ids a test can be selected by: mutmut runs each test by its node id.
    ids=["gzip", "64 KiB", "past 64 KiB"],
)
def test_each_tries_answer_is_named_with_the_registrys_error_detail(
    body: bytes, headers: dict[str, str], detail: str
) -> None:
    registry = HostileRegistry().start()
    registry.on(
        "/v2/shop/app/manifests/v1",
        lambda handler: handler.reply(503, body, {"Retry-After": "0", **headers}),
    )
    client = RegistryClient(CredentialResolver(use_gcp=False, environ={}), RetryPolicy(attempts=2))
    try:
        with pytest.raises(RegistryError) as failed:
            client.get_manifest(parse_reference(f"{registry.address}/shop/app:v1"), "v1")
    finally:
        registry.stop()
    assert str(failed.value) == f"manifest v1: HTTP 503{detail} (gave up after 2 tries)"
    assert len(registry.seen) == 2


def test_a_connection_that_fails_is_given_up_naming_the_error() -> None:
    address = f"127.0.0.1:{closed_port()}"
    client = RegistryClient(CredentialResolver(use_gcp=False, environ={}), RetryPolicy(attempts=1))
    with pytest.raises(RegistryError) as failed:
        client.get_manifest(parse_reference(f"{address}/shop/app:v1"), "v1")
    message = str(failed.value)
    assert message.startswith("manifest v1: connection failed: ")
    assert message.endswith("Connection refused (gave up after 1 tries)")


@pytest.mark.parametrize(
    ("attempts", "given_up"),
    [(1, "HTTP 503 (gave up after 1 tries)"), (2, "no complete answer from {} within 3 s")],
    ids=["last-try", "before-a-retry"],
)
def test_a_retry_after_longer_than_the_time_left_ends_the_request_unless_none_is_left(
    attempts: int, given_up: str
) -> None:
    """The server's Retry-After is the wait before the next try, not the (tiny) backoff: one
    that would pass the deadline times the request out at once. After the last try nothing
    is awaited: the request is given up with the last answer."""
    registry = HostileRegistry().start()
    registry.on(
        "/v2/shop/app/manifests/v1",
        lambda handler: handler.reply(503, b"", {"Retry-After": "4"}),
    )
    client = RegistryClient(
        CredentialResolver(use_gcp=False, environ={}),
        RetryPolicy(attempts=attempts, base_delay=0.001),
        run_deadline=time.monotonic() + 3,
        run_limit="3 s",
    )
    try:
        with pytest.raises(RegistryError) as failed:
            client.get_manifest(parse_reference(f"{registry.address}/shop/app:v1"), "v1")
    finally:
        registry.stop()
    assert str(failed.value).startswith(f"manifest v1: {given_up.format(registry.address)}")
    assert isinstance(failed.value, TimedOut) == (attempts == 2)
    assert len(registry.seen) == 1


def test_a_redirect_that_cannot_be_followed_is_refused_at_once_naming_the_request() -> None:
    registry = HostileRegistry().start()
    registry.on(
        "/v2/shop/app/manifests/v1",
        lambda handler: handler.reply(307, headers={"Location": "ftp://127.0.0.1/m"}),
    )
    client = RegistryClient(CredentialResolver(use_gcp=False, environ={}))
    try:
        with pytest.raises(RegistryError) as refused:
            client.get_manifest(parse_reference(f"{registry.address}/shop/app:v1"), "v1")
    finally:
        registry.stop()
    assert (
        str(refused.value) == "manifest v1: redirected to 'ftp://127.0.0.1/m', not an http(s) URL"
    )
    assert len(registry.seen) == 1  # not a transient failure: not tried again


BLOB = b"layer bytes"


def _blob_server(ports: list[int]) -> HostileRegistry:
    """A registry answering every blob with BLOB, noting the client port of each request."""

    def answer(handler: Handler) -> None:
        ports.append(handler.client_address[1])
        handler.reply(200, BLOB, {"Content-Type": "application/octet-stream"})

    registry = HostileRegistry().start()
    registry.on(f"/v2/shop/app/blobs/{sha256_digest(BLOB)}", answer)
    return registry


def test_downloads_at_once_keep_their_connections_for_the_next_ones() -> None:
    """Each of `connections` downloads in flight at once returns its connection to the pool:
    the next three downloads reuse them instead of opening new ones."""
    ports: list[int] = []
    registry = _blob_server(ports)
    ref = parse_reference(f"{registry.address}/shop/app:v1")
    client = RegistryClient(CredentialResolver(use_gcp=False, environ={}), connections=3)
    try:
        for _ in range(2):
            with contextlib.ExitStack() as stack:
                readers = [
                    stack.enter_context(client.open_blob(ref, sha256_digest(BLOB), "layer", 11))
                    for _ in range(3)
                ]
                assert [reader.read(64) for reader in readers] == [BLOB] * 3
    finally:
        registry.stop()
    assert len(ports) == 6
    assert len(set(ports)) == 3


@pytest.mark.parametrize(("registries", "reconnects"), [(16, 0), (17, 17)])
def test_idle_connections_are_kept_to_at_most_16_registries(
    registries: int, reconnects: int
) -> None:
    """A connection to each of 16 registries is kept for the next request; a 17th registry
    closes the least recently used one's (so asking each in turn reconnects to every one)."""
    ports: list[list[int]] = [[] for _ in range(registries)]
    servers = [_blob_server(mine) for mine in ports]
    client = RegistryClient(CredentialResolver(use_gcp=False, environ={}))
    try:
        for _ in range(2):
            for server in servers:
                ref = parse_reference(f"{server.address}/shop/app:v1")
                assert client.get_blob(ref, sha256_digest(BLOB), "config", 11).data == BLOB
    finally:
        for server in servers:
            server.stop()
    assert sum(len(set(mine)) - 1 for mine in ports) == reconnects
