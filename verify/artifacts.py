"""The part of Artifact Registry's REST API that `python -m verify gc` needs.

Lists a repository's packages, each package's versions (with their creation time) and tags, and
deletes one version, waiting for the long-running operation the delete returns. Every answer is
treated as hostile: bodies are bounded (:data:`MAX_ANSWER_BYTES`), pages are bounded
(:data:`MAX_PAGES`), every wait is bounded, and a field that is missing or of the wrong type is
an :class:`ApiError`. Google credentials (Application Default Credentials) are sent only to the
official API host; an overridden API URL (a test's loopback fake) gets no Authorization header.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import urllib3

from verify.auth import gcp_credentials
from verify.digests import DIGEST_PATTERN
from verify.reference import is_loopback
from verify.registry import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, RetryPolicy

API_URL = "https://artifactregistry.googleapis.com"
"""Artifact Registry's API; the only host that receives Google credentials."""

MAX_ANSWER_BYTES = 8 << 20
"""An API answer larger than this is refused (a page of 1000 versions is far smaller)."""
MAX_PAGES = 1000
"""Pages read from one listing before giving up (1000 pages of 1000 items)."""
PAGE_SIZE = 1000
OPERATION_TIMEOUT_SECONDS = 120.0
"""How long a delete's operation may take before the run stops."""
OPERATION_POLL_SECONDS = 1.0

_TRANSIENT = frozenset({429}) | frozenset(range(500, 600))
_FRACTION = re.compile(r"\.(\d{1,9})")


class ApiError(Exception):
    """The API could not be read, refused a request, or answered something unexpected."""


@dataclass(frozen=True)
class RepositoryPath:
    """`projects/P/locations/L/repositories/R` and the Docker path it serves."""

    project: str
    location: str
    repository: str

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.repository}"


@dataclass(frozen=True)
class Version:
    """One version (manifest) of a package, as the API lists it."""

    package: str
    """The image path below the repository (`frontend`, `team/frontend`)."""
    digest: str
    created: datetime


def _timestamp(value: object, what: str) -> datetime:
    """An RFC 3339 time as the API writes it (nanoseconds and `Z` included)."""
    if not isinstance(value, str):
        raise ApiError(f"{what}: createTime is missing or not a string")
    text = _FRACTION.sub(lambda match: "." + match.group(1)[:6].ljust(6, "0"), value, count=1)
    try:
        # RFC 3339 allows "t" and "z" in lower case; fromisoformat reads them upper case only.
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ApiError(f"{what}: createTime {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ApiError(f"{what}: createTime {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _last_segment(name: object, collection: str, what: str) -> str:
    """The id after `/<collection>/` in a resource name."""
    if not isinstance(name, str) or f"/{collection}/" not in name:
        raise ApiError(f"{what}: name {name!r} is not a .../{collection}/ID resource name")
    return name.rsplit(f"/{collection}/", 1)[1]


def _digest(version_id: str, what: str) -> str:
    if not DIGEST_PATTERN.fullmatch(version_id):
        raise ApiError(f"{what}: version {version_id!r} is not a sha256 digest")
    return version_id


class ArtifactRegistryApi:
    """A client for one repository's packages, versions and tags."""

    def __init__(
        self,
        repository: RepositoryPath,
        api_url: str = API_URL,
        token: Callable[[], str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(f"API URL {api_url!r} is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ApiError(f"API URL {api_url} is plain HTTP off this machine")
        self._repository = repository
        self._base = api_url.rstrip("/")
        # Google credentials go to Google's API only, never to an overridden URL.
        self._token = token if self._base == API_URL else None
        self._retry = retry or RetryPolicy()
        timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
        self._http = urllib3.PoolManager(timeout=timeout)

    @staticmethod
    def default_token() -> str:
        """An access token from Application Default Credentials."""
        return gcp_credentials().password

    # Listing

    def packages(self) -> list[str]:
        """Image paths of every package in the repository."""
        return [
            unquote(_last_segment(item.get("name"), "packages", "package"))
            for item in self._list(f"{self._repository.name}/packages", "packages", {})
        ]

    def versions(self, package: str) -> list[Version]:
        """Every version of `package` with its creation time."""
        versions = []
        for item in self._list(f"{self._package(package)}/versions", "versions", {}):
            what = f"version of {package}"
            digest = _digest(_last_segment(item.get("name"), "versions", what), what)
            versions.append(Version(package, digest, _timestamp(item.get("createTime"), what)))
        return versions

    def tags(self, package: str) -> dict[str, str]:
        """`{tag: digest}` of `package`."""
        tags = {}
        for item in self._list(f"{self._package(package)}/tags", "tags", {}):
            what = f"tag of {package}"
            tag = unquote(_last_segment(item.get("name"), "tags", what))
            tags[tag] = _digest(_last_segment(item.get("version"), "versions", what), what)
        return tags

    # Deleting

    def delete_version(self, version: Version) -> None:
        """Delete one untagged version (never `force`: a tagged version is refused by the API)
        and return once its operation is done; anything else raises :class:`ApiError`."""
        path = f"{self._package(version.package)}/versions/{version.digest}"
        what = f"delete {version.package}@{version.digest}"
        operation = self._request("DELETE", path, {}, what, retry=False)
        deadline = time.monotonic() + OPERATION_TIMEOUT_SECONDS
        while not operation.get("done"):
            name = operation.get("name")
            if not isinstance(name, str) or not name.startswith("projects/"):
                raise ApiError(f"{what}: the answer is no operation ({str(operation)[:200]})")
            if time.monotonic() > deadline:
                raise ApiError(f"{what}: not done after {OPERATION_TIMEOUT_SECONDS:.0f} s")
            time.sleep(OPERATION_POLL_SECONDS)
            operation = self._request("GET", name, {}, what)
        error = operation.get("error")
        if error:
            detail = error.get("message", error) if isinstance(error, dict) else error
            raise ApiError(f"{what}: the operation failed: {str(detail)[:500]}")

    # HTTP

    def _package(self, package: str) -> str:
        return f"{self._repository.name}/packages/{quote(package, safe='')}"

    def _list(self, path: str, field: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        token = ""
        for _page in range(MAX_PAGES):
            page_query = {**query, "pageSize": str(PAGE_SIZE)}
            if token:
                page_query["pageToken"] = token
            answer = self._request("GET", path, page_query, f"list {path}")
            items = answer.get(field, [])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ApiError(f"list {path}: field {field!r} is not a list of objects")
            yield from items
            token = answer.get("nextPageToken", "")
            if not isinstance(token, str):
                raise ApiError(f"list {path}: nextPageToken is not a string")
            if not token:
                return
        raise ApiError(f"list {path}: more than {MAX_PAGES} pages")

    def _request(
        self, method: str, path: str, query: dict[str, str], what: str, retry: bool = True
    ) -> dict[str, Any]:
        url = f"{self._base}/v1/{path}" + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": "boutique-verify-gc/1"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token()}"
        attempts = self._retry.attempts if retry else 1
        problem = ""
        for attempt in range(attempts):
            try:
                response = self._http.request(
                    method, url, headers=headers, preload_content=False, redirect=False
                )
            except urllib3.exceptions.HTTPError as error:
                problem = f"connection failed: {error}"
            else:
                try:
                    body = response.read(MAX_ANSWER_BYTES + 1, decode_content=True)
                finally:
                    response.release_conn()
                if len(body) > MAX_ANSWER_BYTES:
                    raise ApiError(f"{what}: the answer is larger than {MAX_ANSWER_BYTES} bytes")
                if response.status == 200:
                    return _json_object(body, what)
                problem = f"HTTP {response.status}{_error_message(body)}"
                if response.status not in _TRANSIENT:
                    break
            if attempt + 1 < attempts:
                time.sleep(self._retry.delay(attempt, None))
        raise ApiError(f"{what}: {problem}")


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        answer = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(f"{what}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ApiError(f"{what}: the answer is not a JSON object")
    return answer


def _error_message(body: bytes) -> str:
    """Google's `{"error": {"status", "message"}}`, shortened; nothing else is echoed."""
    try:
        error = json.loads(body)["error"]
        parts = (str(error.get("status", "")), str(error.get("message", ""))[:300])
    except (ValueError, LookupError, TypeError, AttributeError):
        return ""
    text = " ".join(part for part in parts if part)
    return f": {text}" if text else ""
