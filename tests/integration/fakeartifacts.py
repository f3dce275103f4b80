"""A loopback stand-in for Artifact Registry's versions/tags API, backed by a real registry.

It answers what `verify.artifacts` asks (packages, versions with createTime, tags, DELETE of a
version returning an operation, GET of that operation) from what a test declares, two items per
page so paging is exercised. A DELETE really deletes the manifest from the local registry, so
the registry and the API agree afterwards. `fail_deletes` answers 500 for those digests, as an
API outage would; `requests` records every request for the test to inspect.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.integration.dockerenv import Registry
from tests.integration.loopbackserver import address_of, reply_json, serve, shut_down

PAGE = 2


@dataclass
class FakeArtifactRegistry:
    """The API's view of one repository `projects/P/locations/L/repositories/R`."""

    registry: Registry
    root: str
    """`P/R`: where the packages' manifests live in the registry."""
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    """`{package: {digest: createTime}}`."""
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    """`{package: {tag: digest}}`."""
    fail_deletes: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path with query, Authorization header)."""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{address_of(self._server)}"

    def deletes(self) -> list[str]:
        return [path for method, path, _ in self.requests if method == "DELETE"]

    def start(self) -> FakeArtifactRegistry:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake._record(self)
                reply_json(self, *fake._get(self.path))

            def do_DELETE(self) -> None:
                fake._record(self)
                reply_json(self, *fake._delete(self.path))

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut_down(self._server)

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(
                (handler.command, handler.path, handler.headers.get("Authorization"))
            )

    def _get(self, raw_path: str) -> tuple[int, object]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        path = parts.path.removeprefix("/v1/")
        if match := re.fullmatch(r"projects/[^/]+/locations/[^/]+/operations/(.+)", path):
            return 200, {"name": path, "done": True}
        repository, _, rest = path.partition("/packages")
        if rest == "":
            names = [f"{repository}/packages/{quote(p, safe='')}" for p in sorted(self.versions)]
            return 200, self._page("packages", [{"name": n} for n in names], query)
        match = re.fullmatch(r"/([^/]+)/(versions|tags)", rest)
        if match is None:
            return 404, {"error": {"status": "NOT_FOUND", "message": path}}
        package = unquote(match.group(1))
        base = f"{path.rsplit('/', 1)[0]}"
        if match.group(2) == "versions":
            items = [
                {"name": f"{base}/versions/{digest}", "createTime": created}
                for digest, created in sorted(self.versions.get(package, {}).items())
            ]
            return 200, self._page("versions", items, query)
        items = [
            {"name": f"{base}/tags/{tag}", "version": f"{base}/versions/{digest}"}
            for tag, digest in sorted(self.tags.get(package, {}).items())
        ]
        return 200, self._page("tags", items, query)

    @staticmethod
    def _page(field_name: str, items: list[dict[str, str]], query: dict[str, list[str]]) -> object:
        start = int(query.get("pageToken", ["0"])[0])
        page: dict[str, object] = {field_name: items[start : start + PAGE]}
        if start + PAGE < len(items):
            page["nextPageToken"] = str(start + PAGE)
        return page

    def _delete(self, raw_path: str) -> tuple[int, object]:
        path = urlsplit(raw_path).path.removeprefix("/v1/")
        match = re.fullmatch(
            r"(projects/[^/]+/locations/[^/]+)/.*/packages/([^/]+)/versions/(.+)", path
        )
        if match is None:
            return 404, {"error": {"status": "NOT_FOUND", "message": path}}
        location, package, digest = match.group(1), unquote(match.group(2)), match.group(3)
        if digest in self.fail_deletes:
            return 500, {"error": {"status": "INTERNAL", "message": "backend unavailable"}}
        if digest in self.tags.get(package, {}).values():
            return 400, {"error": {"status": "FAILED_PRECONDITION", "message": "tagged"}}
        request = urllib.request.Request(
            f"{self.registry.url}/v2/{self.root}/{package}/manifests/{digest}", method="DELETE"
        )
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as error:
            return 400, {"error": {"status": "FAILED_PRECONDITION", "message": str(error)}}
        self.versions[package].pop(digest)
        # Not done at once: the client must wait for the operation.
        return 200, {"name": f"{location}/operations/delete-{digest[7:19]}", "done": False}
