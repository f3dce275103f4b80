"""A registry on a loopback address that serves crafted images and misbehaves on request.

The verifier's hostile-input tests point ``python -m verify`` at it. It speaks just enough of
the distribution API (``GET /v2/<repo>/manifests/<ref>`` and ``/blobs/<digest>``) to serve
what a test pushed with :meth:`HostileRegistry.image`, and:

- records every request with its headers (``seen``), so a test can prove that a host never
  received an ``Authorization`` header;
- lets a test replace the answer to any path with its own responder (:meth:`on`): a redirect,
  a 401 challenge, a body that drips, goes on past its size, or lies in its headers; HEAD,
  POST and PUT (its body recorded) are answered by responders only, for the write side;
- optionally demands HTTP basic credentials (``basic``) like an htpasswd-protected registry.

It listens on any 127.0.0.0/8 address, so two instances on 127.0.0.1 and 127.0.0.2 are two
different hosts to the verifier. With ``tls`` it speaks HTTPS (the blob storage a registry
redirects to, say; see :mod:`tests.throwaway_ca`).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.verify_bytes import descriptor, json_bytes
from verify.digests import sha256_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

Responder = Callable[["Handler"], None]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    method: str = "GET"
    body: bytes = b""
    """What a PUT carried (other methods' bodies are left to their responders)."""


@dataclass
class Image:
    """What :meth:`HostileRegistry.image` pushed: digests and sizes a test may tamper with."""

    index: bytes
    manifests: dict[str, bytes]
    """Per architecture, the image manifest's bytes."""
    configs: dict[str, bytes]
    layers: dict[str, list[bytes]]


class Handler(BaseHTTPRequestHandler):
    """Answers one request; responders write through :meth:`reply` or the raw ``wfile``."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux) on every kept-alive connection.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``seen``."""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        registry = self.server.registry
        registry.record(Seen(self.path, dict(self.headers.items())))
        responder = registry.responder(self.path)
        if responder is not None:
            responder(self)
            return
        if registry.basic is not None and not self._basic_ok(registry.basic):
            self.reply(401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"'})
            return
        if registry.bearer is not None:
            realm, token = registry.bearer
            if self.headers.get("Authorization") != f"Bearer {token}":
                challenge = f'Bearer realm="{realm}",service="hostile"'
                self.reply(401, b"{}", {"WWW-Authenticate": challenge})
                return
        found = registry.content(self.path)
        if found is None:
            body = b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}'
            self.reply(404, body, {"Content-Type": "application/json"})
            return
        data, media_type = found
        self.reply(
            200, data, {"Content-Type": media_type, "Docker-Content-Digest": sha256_digest(data)}
        )

    def do_POST(self) -> None:
        """Only for responders (e.g. an OAuth2 token endpoint); the body is left unread."""
        self._respond(b"")

    def do_HEAD(self) -> None:
        """Only for responders (which answer with no body)."""
        self._respond(b"")

    def do_PUT(self) -> None:
        """Only for responders; the body is read and recorded first."""
        self._respond(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _respond(self, body: bytes) -> None:
        registry = self.server.registry
        registry.record(Seen(self.path, dict(self.headers.items()), self.command, body))
        responder = registry.responder(self.path)
        if responder is None:
            self.reply(404)
        else:
            responder(self)

    def _basic_ok(self, pair: tuple[str, str]) -> bool:
        expected = base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: HostileRegistry

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients hanging up mid-answer (cut by a deadline) is what the tests provoke."""


@dataclass
class HostileRegistry:
    """A running registry; ``address`` is ``host:port``."""

    host: str = "127.0.0.1"
    basic: tuple[str, str] | None = None
    """When set, every request without these basic credentials gets a 401 challenge."""
    bearer: tuple[str, str] | None = None
    """``(realm, token)``: every request without ``Bearer <token>`` gets a Bearer challenge."""
    tls: ssl.SSLContext | None = None
    """When set, the server context it speaks HTTPS with."""
    seen: list[Seen] = field(default_factory=list)
    _content: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    _responders: dict[str, Responder] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None

    @property
    def address(self) -> str:
        assert self._server is not None, "the registry was not started"
        return f"{self.host}:{self._server.server_port}"

    @property
    def url(self) -> str:
        return f"{'http' if self.tls is None else 'https'}://{self.address}"

    def start(self) -> HostileRegistry:
        self._server = _Server((self.host, 0), Handler)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._server.registry = self
        # Polls for shutdown every 20 ms (0.5 s by default, paid by every test that stops it).
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def authorizations(self) -> list[str]:
        """Every ``Authorization`` header this host received."""
        with self._lock:
            return [s.headers["Authorization"] for s in self.seen if "Authorization" in s.headers]

    def on(self, path: str, responder: Responder) -> None:
        """Answer ``path`` (whatever its query) with ``responder`` from now on."""
        with self._lock:
            self._responders[path] = responder

    def responder(self, path: str) -> Responder | None:
        with self._lock:
            return self._responders.get(path.split("?", 1)[0])

    def content(self, path: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._content.get(path)

    def put(self, path: str, data: bytes, media_type: str) -> None:
        with self._lock:
            self._content[path] = (data, media_type)

    def blob_path(self, repository: str, data: bytes) -> str:
        return f"/v2/{repository}/blobs/{sha256_digest(data)}"

    def image(
        self,
        repository: str,
        tag: str,
        layers: dict[str, Iterable[bytes]],
        *,
        sizes: dict[str, int] | None = None,
    ) -> Image:
        """Serve a two-or-more-platform OCI index of gzip (or any) layer blobs under ``tag``.

        ``sizes`` overrides the ``size`` a descriptor declares, by the digest it describes.
        """
        sizes = sizes or {}

        def described(media_type: str, data: bytes, platform: str | None = None) -> dict:
            entry = descriptor(media_type, data, platform)
            entry["size"] = sizes.get(str(entry["digest"]), len(data))
            return entry

        manifests, configs, blobs = {}, {}, {}
        entries = []
        for arch, arch_layers in layers.items():
            blobs[arch] = list(arch_layers)
            config = json_bytes({"architecture": arch, "os": "linux", "rootfs": {}})
            manifest = json_bytes(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": described(OCI_CONFIG, config),
                    "layers": [described(OCI_LAYER, blob) for blob in blobs[arch]],
                }
            )
            for blob in [config, *blobs[arch]]:
                self.put(self.blob_path(repository, blob), blob, "application/octet-stream")
            self.put(
                f"/v2/{repository}/manifests/{sha256_digest(manifest)}", manifest, OCI_MANIFEST
            )
            manifests[arch], configs[arch] = manifest, config
            entries.append(described(OCI_MANIFEST, manifest, f"linux/{arch}"))
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()
        self.put(f"/v2/{repository}/manifests/{tag}", index, OCI_INDEX)
        return Image(index, manifests, configs, blobs)
