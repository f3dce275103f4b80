"""The read-ahead thread between the download (with its sha256) and inflation."""

from __future__ import annotations

import io
import os
import time

import pytest

from verify.digests import DigestingReader, DigestMismatch, sha256_digest
from verify.prefetch import DEPTH, PrefetchingReader

CHUNK = 4096


class CountingSource:
    """A DigestingReader over bytes that counts the chunks the producer pulled."""

    def __init__(self, data: bytes, digest: str | None = None) -> None:
        self._reader = DigestingReader(
            io.BytesIO(data), digest or sha256_digest(data), len(data), "layer sha256:x"
        )
        self.reads = 0

    def read(self, size: int = -1, /) -> bytes:
        self.reads += 1
        return self._reader.read(size)

    def finish(self) -> None:
        self._reader.finish()


def test_bytes_pass_through_in_order_whatever_the_read_sizes() -> None:
    data = os.urandom(50 * CHUNK + 123)
    reader = PrefetchingReader(CountingSource(data), CHUNK)
    parts: list[bytes] = []
    sizes = [1, 7, CHUNK, 3 * CHUNK, -1, 100]
    while part := reader.read(sizes[len(parts) % len(sizes)]):
        parts.append(part)
    reader.finish()
    reader.close()
    assert b"".join(parts) == data


def test_a_digest_mismatch_found_by_the_producer_reaches_the_consumer() -> None:
    data = os.urandom(10 * CHUNK)
    reader = PrefetchingReader(CountingSource(data, sha256_digest(b"other")), CHUNK)
    with pytest.raises(DigestMismatch, match="layer sha256:x: content digest is"):
        reader.finish()
    reader.close()


def test_the_producer_reads_a_bounded_number_of_chunks_ahead() -> None:
    source = CountingSource(os.urandom(100 * CHUNK))
    reader = PrefetchingReader(source, CHUNK)
    assert len(reader.read(10)) == 10
    deadline = time.monotonic() + 5
    while source.reads < DEPTH + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room to read further, were it unbounded
    # One chunk handed to the consumer, DEPTH in the queue, one waiting to be queued.
    assert source.reads <= DEPTH + 2
    reader.close()  # returns: the blocked producer sees the stop flag
    assert source.reads <= DEPTH + 2
