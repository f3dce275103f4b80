"""Deadlines on registry requests that hold however slowly a server answers.

A socket timeout bounds each read, not a request: a server that sends one byte every 20 s never
trips a 60 s read timeout. So every request runs inside a :class:`Watch` with an absolute
deadline, and one watchdog thread shuts the watched connection's socket down when the deadline
passes; the blocked read then fails at once and the client reports the request as too slow.

Connections find the watch of the request they serve through a thread-local: the registry
client opens a watch around a request in the thread that makes it, and the connection classes
of :func:`watched_pool_classes` attach themselves to that watch when they send.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

TICK_SECONDS = 0.1
"""How often the watchdog looks for requests past their deadline."""

_current = threading.local()


@dataclass
class Watch:
    """One request under a deadline (``time.monotonic()`` seconds)."""

    what: str
    host: str
    deadline: float
    limit: str
    """What set the deadline, for messages: ``--timeout 900 s`` or ``the 120 s request limit``."""
    started: float = field(default_factory=time.monotonic)
    bytes_read: int = 0
    expired: bool = False
    connection: HTTPConnection | None = None
    sock: socket.socket | None = None
    """The socket the answer is read from. An answer that ends with its connection
    (``Connection: close``, or no length) takes the socket over: the connection's is then None."""

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def describe(self) -> str:
        """``layer sha256:… from host (N bytes in S s)`` for the message of a run that was slow."""
        elapsed = time.monotonic() - self.started
        return f"{self.what} from {self.host} ({self.bytes_read} bytes in {elapsed:.0f} s)"


class Watchdog:
    """Keeps the watches in flight and cuts the connection of each one that passes its deadline."""

    def __init__(self) -> None:
        self._by_id: dict[int, Watch] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, what: str, host: str, deadline: float, limit: str) -> Iterator[Watch]:
        """Run the block under ``deadline`` (``limit`` says where it comes from)."""
        outer: Watch | None = getattr(_current, "watch", None)
        current = Watch(what, host, deadline, limit)
        with self._lock:
            self._by_id[id(current)] = current
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
        _current.watch = current
        try:
            yield current
        finally:
            _current.watch = outer
            with self._lock:
                del self._by_id[id(current)]

    def in_flight(self) -> list[Watch]:
        """The watches open now, oldest first."""
        with self._lock:
            return sorted(self._by_id.values(), key=lambda watch: watch.started)

    def _run(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            with self._lock:
                due = [w for w in self._by_id.values() if not w.expired and w.deadline <= now]
                for watch in due:
                    watch.expired = True
            for watch in due:
                _cut(watch)


def _cut(watch: Watch) -> None:
    sock = watch.sock or getattr(watch.connection, "sock", None)
    if sock is not None:
        # OSError: already closed, so the read it would have interrupted is over.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _attach(connection: HTTPConnection) -> None:
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.connection = connection


def _hold_socket(connection: HTTPConnection) -> None:
    """Keep the socket the answer will be read from, before the connection may hand it over."""
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.sock = connection.sock


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _hold_socket(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _hold_socket(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def watched_pool_classes() -> dict[str, type[HTTPConnectionPool]]:
    """``PoolManager.pool_classes_by_scheme`` whose connections attach to the current watch."""
    return {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}
