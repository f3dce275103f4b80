"""Threaded HTTP servers on free 127.0.0.1 ports: the tests' stand-in proxy and token server."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (the verifier stops reading at a blob's declared size)
    is expected here, not an error to print into the test's captured stderr."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """Start answering with `handler` on a free loopback port, in background daemon threads."""
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    # shutdown() waits for the loop to poll (0.5 s by default): every fixture paid it.
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server


def address_of(server: ThreadingHTTPServer | None) -> str:
    """ "127.0.0.1:PORT" of a started server."""
    assert server is not None, "the server was not started"
    return f"127.0.0.1:{server.server_port}"


def shut_down(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and close the socket (nothing to do for a server never started)."""
    if server is not None:
        server.shutdown()
        server.server_close()


def reply_json(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    """Answer the handler's request with `body` as JSON."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextlib.contextmanager
def never_accepting() -> Iterator[str]:
    """ "127.0.0.1:PORT" of a listening socket whose one-place accept queue is taken: the kernel
    drops further SYNs, so a connection attempt waits until the client gives up."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as full:
        host, port = full.getsockname()[:2]
        with socket.create_connection((host, port)):
            yield f"{host}:{port}"


def raised_within(call: Callable[[], object], seconds: float) -> BaseException | None:
    """What ``call``, run in a daemon thread, raised within ``seconds`` (None: still running,
    or returned)."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:
            outcome.append(error)

    attempt = threading.Thread(target=run, daemon=True)
    attempt.start()
    attempt.join(seconds)
    return outcome[0] if outcome else None
