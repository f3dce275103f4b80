"""An in-process OCI registry with the referrers API, on 127.0.0.1 (distribution 2.8 has none).

Blobs and manifests live in memory; ``GET /v2/<name>/referrers/<digest>`` lists the stored
manifests whose ``subject`` is that digest, as the OCI distribution spec 1.1 describes. Every
request is recorded so a test can assert that no ``sha256-<hex>`` tag was written, and what
each request carried (``received``: method, path, headers, body). With ``bearer``, every request
without that token gets a Bearer challenge naming the realm, as a registry behind a token
service answers. With ``referrers_api=False`` the referrers path answers 404, as distribution
2.8 does, so a client falls back to the ``sha256-<hex>`` tag schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from tests.integration.loopbackserver import address_of, serve

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ROUTE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>blobs|manifests|referrers)/(?P<rest>[^?]*)")


@dataclass(frozen=True)
class Received:
    """One request as the stub read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Store:
    blobs: ClassVar[dict[str, bytes]] = {}
    manifests: ClassVar[dict[str, tuple[bytes, str]]] = {}
    requests: ClassVar[list[tuple[str, str]]] = []
    received: ClassVar[list[Received]] = []
    bearer: ClassVar[tuple[str, str] | None] = None
    """``(realm, token)`` the registry demands, or None for anonymous access."""
    referrers_api: ClassVar[bool] = True


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, body: bytes = b"") -> tuple[str, str, str] | None:
        _Store.requests.append((self.command, self.path))
        _Store.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
        match = ROUTE.match(self.path)
        return (match["name"], match["kind"], match["rest"]) if match else None

    def _refused(self) -> bool:
        """Answer 401 with a Bearer challenge (no scope: the client names it) if the token lacks."""
        if _Store.bearer is None:
            return False
        realm, token = _Store.bearer
        if self.headers.get("Authorization") == f"Bearer {token}":
            return False
        challenge = f'Bearer realm="{realm}",service="referrers-stub"'
        self._answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        return True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        route = self._route()
        if self._refused():
            return
        if route is None:
            self._answer(200 if self.path == "/v2/" else 404)
            return
        _, kind, rest = route
        if kind == "blobs" and rest in _Store.blobs:
            self._answer(200, _Store.blobs[rest], {"Content-Type": "application/octet-stream"})
        elif kind == "manifests" and rest in _Store.manifests:
            data, media_type = _Store.manifests[rest]
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            self._answer(200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest})
        elif kind == "referrers" and _Store.referrers_api:
            self._answer(200, self._referrers(rest), {"Content-Type": OCI_INDEX})
        else:
            self._answer(404, b'{"errors":[{"code":"NOT_FOUND"}]}')

    def _referrers(self, subject: str) -> bytes:
        entries = []
        for key, (data, media_type) in _Store.manifests.items():
            document = json.loads(data)
            if (
                key.startswith("sha256:")
                and (document.get("subject") or {}).get("digest") == subject
            ):
                entries.append(
                    {
                        "mediaType": media_type,
                        "digest": key,
                        "size": len(data),
                        "artifactType": document.get("artifactType", ""),
                        "annotations": document.get("annotations", {}),
                    }
                )
        return json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()

    def do_POST(self) -> None:
        route = self._route()
        if self._refused():
            return
        if route and route[1] == "blobs" and route[2] == "uploads/":
            self._answer(202, b"", {"Location": f"/v2/{route[0]}/blobs/uploads/{uuid.uuid4()}"})
        else:
            self._answer(404)

    def do_PUT(self) -> None:
        body = self._body()
        route = self._route(body)
        if self._refused():
            return
        if route is None:
            self._answer(404)
            return
        _, kind, rest = route
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if kind == "blobs":
            if self.path.split("digest=")[-1] != digest:
                self._answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
                return
            _Store.blobs[digest] = body
            self._answer(201, b"", {"Docker-Content-Digest": digest})
        elif kind == "manifests":
            media_type = self.headers.get("Content-Type", "")
            _Store.manifests[digest] = (body, media_type)
            _Store.manifests[rest] = (body, media_type)
            self._answer(201, b"", {"Docker-Content-Digest": digest})
        else:
            self._answer(404)


class ReferrersRegistry:
    """The stub, shaped like ``tests.integration.dockerenv.Registry`` where pushes need it."""

    def __init__(
        self, bearer: tuple[str, str] | None = None, *, referrers_api: bool = True
    ) -> None:
        _Store.blobs.clear()
        _Store.manifests.clear()
        _Store.requests.clear()
        _Store.received.clear()
        _Store.bearer = bearer
        _Store.referrers_api = referrers_api
        self._server: ThreadingHTTPServer = serve(_Handler)
        self.address = address_of(self._server)
        self.credentials = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        return list(_Store.requests)

    @property
    def received(self) -> list[Received]:
        return list(_Store.received)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
