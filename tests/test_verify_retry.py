"""Backoff of the registry client: exponential, jittered, capped, and Retry-After honoured."""

import pytest

from verify.registry import RetryPolicy


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
