"""Backoff of the registry client: exponential, jittered, capped, and Retry-After honoured; a
request given up names the registry's error from the last answer's (bounded) body."""

import gzip

import pytest

from tests.hostile_registry import HostileRegistry
from verify.auth import CredentialResolver
from verify.reference import parse_reference
from verify.registry import RegistryClient, RegistryError, RetryPolicy

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
