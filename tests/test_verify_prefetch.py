"""The read-ahead thread between the download (with its sha256) and inflation."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from verify.digests import DigestingReader, DigestMismatch, sha256_digest
from verify.prefetch import DEPTH, PrefetchingReader

REPO = Path(__file__).resolve().parent.parent
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


def test_a_read_of_no_bytes_gives_none_and_takes_none() -> None:
    # As of any file: no bytes asked, none given, and the next read goes on where it was.
    data = os.urandom(3 * CHUNK)
    reader = PrefetchingReader(CountingSource(data), CHUNK)
    first = reader.read(10)
    assert reader.read(0) == b""
    rest = b"".join(iter(lambda: reader.read(CHUNK), b""))
    reader.close()
    assert first + rest == data


def test_a_consumer_slower_than_the_producer_still_gets_every_byte() -> None:
    data = os.urandom((DEPTH + 4) * CHUNK)
    source = CountingSource(data)
    reader = PrefetchingReader(source, CHUNK)
    first = reader.read(CHUNK)
    deadline = time.monotonic() + 5
    while source.reads < DEPTH + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the producer waits on the full queue meanwhile (it polls every 0.1 s)
    rest: list[bytes] = []
    # In a thread of its own: a producer that gave up would leave this read waiting forever.
    consumer = threading.Thread(
        target=lambda: rest.append(b"".join(iter(lambda: reader.read(CHUNK), b""))), daemon=True
    )
    consumer.start()
    consumer.join(2)
    reader.close()
    assert first + b"".join(rest) == data


def test_a_stalled_download_does_not_keep_the_process_alive() -> None:
    # The producer must not hold up a process whose main thread is done (a run interrupted
    # while a layer's server sends nothing): a read blocked until its deadline is abandoned.
    program = (
        "import threading\n"
        "from verify.prefetch import PrefetchingReader\n"
        "class Stalled:\n"
        "    def read(self, size=-1, /):\n"
        "        threading.Event().wait()\n"
        "    def finish(self):\n"
        "        pass\n"
        "PrefetchingReader(Stalled(), 4096)\n"
    )
    with subprocess.Popen([sys.executable, "-c", program], cwd=REPO) as child:
        try:
            code = child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            code = None
    assert code == 0
