"""A fault-injecting, request-counting HTTP proxy in front of a loopback registry.

The verifier is pointed at the proxy's address instead of the registry's. The proxy:

- forwards GET and HEAD requests to the upstream registry and streams the answer back in chunks
  (blobs of any size pass through without being held in memory);
- records every request (method, path, status) so tests can count, e.g., how often a blob was
  downloaded;
- answers the next N requests whose path matches a pattern with a chosen status (e.g. 503);
- or cuts the next N matching answers off after half of their body (a dropped connection);
- or flips the last byte of the next N matching answers (content that is not what it claims);
- or answers the next N matching requests with a crafted status, body and headers of the test's
  own (a registry that lies in its headers, sends a document larger than any image needs, or
  challenges in a way no client should follow);
- optionally demands ``Authorization: Bearer <token>`` for tokens a :class:`TokenServer` issued
  for the repository being read, answering 401 with a ``WWW-Authenticate: Bearer`` challenge
  otherwise (the registry token flow, with the upstream registry itself left anonymous).
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.integration.loopbackserver import address_of, serve, shut_down
from tests.integration.tokenserver import TokenServer

CHUNK_BYTES = 1 << 20
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<repository>.+)/(?:manifests|blobs)/[^/]+$")


@dataclass(frozen=True)
class Logged:
    """One request the proxy answered."""

    method: str
    path: str
    status: int


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    status: int
    """The status to answer with, or :data:`CUT` / :data:`CORRUPT` to alter the real answer."""
    remaining: int
    body: bytes = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


CUT = 0
CORRUPT = -1


@dataclass
class FaultProxy:
    """A running proxy in front of ``upstream`` (``host:port``)."""

    upstream: str
    bearer: TokenServer | None = None
    service: str = "boutique-test-registry"
    log: list[Logged] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        return address_of(self._server)

    def fail_next(self, path_pattern: str, status: int, count: int) -> None:
        """Answer the next ``count`` requests whose path matches with ``status``."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_pattern), status, count))

    def cut_next(self, path_pattern: str, count: int) -> None:
        """Send only the first half of the next ``count`` matching answers, then hang up."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_pattern), CUT, count))

    def corrupt_next(self, path_pattern: str, count: int) -> None:
        """Flip the last byte of the next ``count`` matching answers."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_pattern), CORRUPT, count))

    def answer_next(
        self,
        path_pattern: str,
        body: bytes,
        headers: dict[str, str],
        count: int,
        status: int = 200,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``, ``headers``, ``body``."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_pattern), status, count, body, headers))

    def requests_to(self, path_pattern: str, status: int | None = None) -> list[Logged]:
        """Logged requests whose path matches (and whose status equals ``status`` if given)."""
        pattern = re.compile(path_pattern)
        with self._lock:
            return [
                entry
                for entry in self.log
                if pattern.search(entry.path) and (status is None or entry.status == status)
            ]

    def start(self) -> FaultProxy:
        self._server = serve(_handler_for(self))
        return self

    def stop(self) -> None:
        shut_down(self._server)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining and fault.pattern.search(path):
                    fault.remaining -= 1
                    return fault
        return None

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append(Logged(method, path, status))

    def _challenge(self, path: str) -> str | None:
        """The WWW-Authenticate value when a bearer token is required and missing, else None."""
        if self.bearer is None or not path.startswith("/v2/"):
            return None
        match = _REPOSITORY_PATH.match(path)
        scope = f"repository:{match.group('repository')}:pull" if match else ""
        header = f'Bearer realm="{self.bearer.realm}",service="{self.service}"'
        if scope:
            header += f',scope="{scope}"'
        return header


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests read ``proxy.log`` instead."""

        def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            # Logged before the client can read the answer: a test may look at the log as soon
            # as its client is done.
            proxy._record(self.command, self.path, status)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _authorized(self) -> bool:
            challenge = proxy._challenge(self.path)
            if challenge is None:
                return True
            assert proxy.bearer is not None
            header = self.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
            match = _REPOSITORY_PATH.match(self.path)
            wanted = f"repository:{match.group('repository')}:pull" if match else None
            granted = proxy.bearer.issued.get(token)
            if granted is not None and (wanted is None or granted == wanted):
                return True
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            headers = {"WWW-Authenticate": challenge, "Content-Type": "application/json"}
            self._answer(401, headers, body)
            return False

        def _forward(self) -> None:
            taken = proxy._take_fault(self.path)
            fault = taken.status if taken is not None else None
            if taken is not None and fault not in (CUT, CORRUPT):
                self._answer(taken.status, taken.headers, taken.body)
                return
            if not self._authorized():
                return
            upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
            try:
                forwarded = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() in ("accept", "user-agent", "range")
                }
                upstream.request(self.command, self.path, headers=forwarded)
                response = upstream.getresponse()
                # Logged before the client can read the answer (see _answer).
                logged = fault if fault in (CUT, CORRUPT) else response.status
                proxy._record(self.command, self.path, logged)
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                        self.send_header(name, value)
                if response.getheader("Content-Length") is None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if fault == CUT:
                    half = int(response.getheader("Content-Length") or 0) // 2
                    self.wfile.write(response.read(half))
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    previous = b""
                    while chunk := response.read(CHUNK_BYTES):
                        self.wfile.write(previous)
                        previous = chunk
                    if fault == CORRUPT and previous:
                        previous = previous[:-1] + bytes([previous[-1] ^ 0xFF])
                    self.wfile.write(previous)
            finally:
                upstream.close()

        def do_GET(self) -> None:
            self._forward()

        def do_HEAD(self) -> None:
            self._forward()

    return Handler
