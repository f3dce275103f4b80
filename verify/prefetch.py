"""Reading a blob a few chunks ahead of its consumer, in a thread of its own.

A layer is one stream through network -> sha256 -> inflate -> tar reader. Run in one thread, a
large layer costs the sum of hashing and inflating it; with the download and the hash in a
producer thread and inflation in the consumer, it costs about the larger of the two (both
release the GIL). Memory stays bounded: at most :data:`DEPTH` chunks wait in the queue.
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol

DEPTH = 4
"""Chunks read ahead at most (each at most ``chunk_size`` bytes)."""
_POLL_SECONDS = 0.1
_END = object()


class CheckedSource(Protocol):
    """A stream whose ``finish`` reads what is left and raises if the whole is not as expected."""

    def read(self, size: int = -1, /) -> bytes: ...

    def finish(self) -> None: ...


class PrefetchingReader:
    """Reads ``source`` to its end (then calls its ``finish``) ahead of :meth:`read`.

    An error of the producer (a broken download, a size or digest mismatch) is raised by the
    consumer's next :meth:`read` or by :meth:`finish`. Always :meth:`close` it.
    """

    def __init__(self, source: CheckedSource, chunk_size: int) -> None:
        self._source = source
        self._chunk_size = chunk_size
        self._queue: queue.Queue[object] = queue.Queue(DEPTH)
        self._stop = threading.Event()
        self._chunk = b""
        self._at = 0
        self._done = False
        self._thread = threading.Thread(target=self._produce, name="prefetch", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            while chunk := self._source.read(self._chunk_size):
                if not self._put(chunk):
                    return
            self._source.finish()
            self._put(_END)
        except Exception as error:
            self._put(error)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read(self, size: int = -1, /) -> bytes:
        if self._at == len(self._chunk):
            if self._done:
                return b""
            item = self._queue.get()
            if item is _END or isinstance(item, Exception):
                self._done = True
                if isinstance(item, Exception):
                    raise item
                return b""
            assert isinstance(item, bytes)
            self._chunk, self._at = item, 0
        if size < 0 or size >= len(self._chunk) - self._at:
            data = self._chunk[self._at :] if self._at else self._chunk
            self._at = len(self._chunk)
        else:
            data = self._chunk[self._at : self._at + size]
            self._at += size
        return data

    def finish(self) -> None:
        """Read what is left; raises what the producer found wrong with the whole blob."""
        while self.read(self._chunk_size):
            pass

    def close(self) -> None:
        """Stop the producer (it ends at its next chunk, or when its read fails or ends)."""
        self._stop.set()
        self._thread.join()
