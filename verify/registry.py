"""A small client for the read side of the OCI distribution API, over urllib3.

It does what the checks need and nothing more: GET a manifest or a blob, authenticate (basic or
the registry token flow), and retry transient failures (connection errors, 5xx, 429) a bounded
number of times with exponential backoff. Responses are streamed; no blob is read whole.
Authorization headers are dropped on cross-host redirects (urllib3's default), so a registry
redirecting a blob download to object storage never receives them elsewhere.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import urllib3

from verify.auth import AuthError, Challenge, CredentialResolver, Credentials, parse_challenges
from verify.manifests import ACCEPTED_TYPES, MAX_DOCUMENT_BYTES
from verify.reference import Reference, is_loopback

USER_AGENT = "boutique-verify/1"
_TRANSIENT_STATUSES = frozenset({429}) | frozenset(range(500, 600))


class RegistryError(Exception):
    """The registry could not be read: transport, protocol or server errors (exit code 2)."""


class NotFoundError(RegistryError):
    """The registry answered 404 for a manifest or blob (exit code 2)."""


class StreamError(RegistryError):
    """A response body broke off while streaming; the whole read may be tried again."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried."""

    attempts: int = 4
    """Tries per request, the first included."""
    base_delay: float = 0.25
    """Seconds before the second try; doubled for each further try."""
    max_delay: float = 4.0
    """Upper bound on any single wait, also on a server's Retry-After."""

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        backoff = min(self.base_delay * (2**attempt), self.max_delay)
        # Jitter spreads the retries of concurrent workers hitting the same failing registry.
        return backoff * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Document:
    """A small response body read whole (manifests, configs, token answers)."""

    data: bytes
    content_type: str | None
    docker_digest: str | None
    """The ``Docker-Content-Digest`` header, when the registry sent one."""


def _error_detail(response: urllib3.BaseHTTPResponse) -> str:
    """The registry's error code and message from a JSON error body, if any (no secrets)."""
    try:
        body = json.loads(response.read(65536, decode_content=True) or b"{}")
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (ValueError, urllib3.exceptions.HTTPError):
        pass
    return ""


class BlobReader:
    """A streamed response body; read errors become :class:`StreamError`."""

    def __init__(self, response: urllib3.BaseHTTPResponse, what: str) -> None:
        self._response = response
        self._what = what

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._response.read(None if size < 0 else size, decode_content=False)
        except urllib3.exceptions.HTTPError as error:
            raise StreamError(f"{self._what}: download broke off: {error}") from None


class RegistryClient:
    """Reads manifests and blobs, authenticating per registry and repository."""

    def __init__(
        self,
        credentials: CredentialResolver,
        retry: RetryPolicy | None = None,
        connections: int = 8,
    ) -> None:
        self._credentials = credentials
        self._retry = retry or RetryPolicy()
        self._http = urllib3.PoolManager(
            num_pools=16,
            maxsize=connections,
            timeout=urllib3.Timeout(connect=10.0, read=60.0),
        )
        # Follow redirects (blob downloads may be redirected); retries are handled in _send.
        self._redirects = urllib3.Retry(
            total=None, connect=0, read=0, other=0, status=0, redirect=5, raise_on_redirect=True
        )
        self._authorizations: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    # Public API

    def get_manifest(self, ref: Reference, reference: str) -> Document:
        """GET ``/v2/<repo>/manifests/<reference>`` accepting indexes and image manifests."""
        path = f"/v2/{ref.repository}/manifests/{reference}"
        with self._get(ref, path, ", ".join(ACCEPTED_TYPES), f"manifest {reference}") as response:
            return self._read_document(response, f"manifest {reference}")

    def get_blob(self, ref: Reference, digest: str, what: str) -> Document:
        """GET a small blob (an image config) whole; its digest is checked by the caller."""
        path = f"/v2/{ref.repository}/blobs/{digest}"
        with self._get(ref, path, "*/*", what) as response:
            return self._read_document(response, what)

    @contextmanager
    def open_blob(self, ref: Reference, digest: str, what: str) -> Iterator[BlobReader]:
        """Stream a blob; the connection is returned to the pool when the block ends."""
        path = f"/v2/{ref.repository}/blobs/{digest}"
        with self._get(ref, path, "*/*", what) as response:
            yield BlobReader(response, what)

    def authorization(self, ref: Reference, scope: str, challenge_header: str) -> str:
        """The Authorization value answering a 401 challenge for ``scope`` (the write side)."""
        return self._answer_challenge(ref, scope, challenge_header)

    # Requests, authentication and retries

    @contextmanager
    def _get(
        self, ref: Reference, path: str, accept: str, what: str
    ) -> Iterator[urllib3.BaseHTTPResponse]:
        response = self._authorized_get(ref, path, accept, what)
        try:
            yield response
        finally:
            response.release_conn()

    def _authorized_get(
        self, ref: Reference, path: str, accept: str, what: str
    ) -> urllib3.BaseHTTPResponse:
        url = f"{ref.scheme}://{ref.registry}{path}"
        key = (ref.registry, f"repository:{ref.repository}:pull")
        refreshed = False
        while True:
            headers = {"Accept": accept, "User-Agent": USER_AGENT}
            with self._lock:
                authorization = self._authorizations.get(key)
            if authorization:
                headers["Authorization"] = authorization
            response = self._send(url, headers, what)
            if response.status == 401 and not refreshed:
                challenge_header = response.headers.get("WWW-Authenticate", "")
                response.drain_conn()
                response.release_conn()
                new_authorization = self._answer_challenge(ref, key[1], challenge_header)
                with self._lock:
                    self._authorizations[key] = new_authorization
                refreshed = True
                continue
            if response.status in (401, 403):
                detail = _error_detail(response)
                response.release_conn()
                credentials = self._credentials.for_registry(ref.registry)
                who = f"credentials from {credentials.source}" if credentials else "anonymous"
                raise AuthError(f"{what}: {who} refused (HTTP {response.status}{detail})")
            if response.status == 404:
                detail = _error_detail(response)
                response.release_conn()
                raise NotFoundError(f"{what} not found (HTTP 404{detail})")
            if response.status != 200:
                detail = _error_detail(response)
                response.release_conn()
                raise RegistryError(f"{what}: unexpected HTTP {response.status}{detail}")
            return response

    def _send(self, url: str, headers: dict[str, str], what: str) -> urllib3.BaseHTTPResponse:
        """One GET with bounded retries on connection errors and transient statuses."""
        last_problem = ""
        for attempt in range(self._retry.attempts):
            retry_after = None
            try:
                response = self._http.request(
                    "GET",
                    url,
                    headers=headers,
                    preload_content=False,
                    retries=self._redirects,
                )
            except urllib3.exceptions.HTTPError as error:
                cause: object = error
                if isinstance(error, urllib3.exceptions.MaxRetryError):
                    cause = error.reason
                last_problem = f"connection failed: {cause}"
            else:
                if response.status not in _TRANSIENT_STATUSES:
                    return response
                retry_after = response.headers.get("Retry-After")
                last_problem = f"HTTP {response.status}{_error_detail(response)}"
                response.release_conn()
            if attempt + 1 < self._retry.attempts:
                time.sleep(self._retry.delay(attempt, retry_after))
        raise RegistryError(f"{what}: {last_problem} (gave up after {self._retry.attempts} tries)")

    def _answer_challenge(self, ref: Reference, scope: str, header: str) -> str:
        """The Authorization value that answers a 401 challenge (basic or bearer)."""
        challenges = {challenge.scheme: challenge for challenge in parse_challenges(header)}
        credentials = self._credentials.for_registry(ref.registry)
        if "bearer" in challenges:
            return self._bearer_token(ref, scope, challenges["bearer"], credentials)
        if "basic" in challenges:
            if credentials is None:
                raise AuthError(
                    f"{ref.registry} requires credentials and none were found (set "
                    "REGISTRY_USERNAME/REGISTRY_PASSWORD, log in with docker, or pass --gcp)"
                )
            return credentials.basic_header()
        raise AuthError(f"{ref.registry} answered 401 with no usable challenge ({header!r})")

    def _bearer_token(
        self, ref: Reference, scope: str, challenge: Challenge, credentials: Credentials | None
    ) -> str:
        """The registry token flow: GET realm?service=...&scope=..., with basic auth if known."""
        realm = challenge.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AuthError(f"{ref.registry}: token realm {realm!r} is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise AuthError(f"{ref.registry}: token realm {realm} is plain HTTP off this machine")
        query = {"scope": challenge.params.get("scope", scope)}
        if "service" in challenge.params:
            query["service"] = challenge.params["service"]
        separator = "&" if parts.query else "?"
        url = f"{realm}{separator}{urlencode(query)}"
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if credentials is not None:
            headers["Authorization"] = credentials.basic_header()
        what = f"token from {parts.scheme}://{parts.netloc}{parts.path}"
        response = self._send(url, headers, what)
        try:
            if response.status != 200:
                who = f"credentials from {credentials.source}" if credentials else "anonymous"
                raise AuthError(f"{what}: {who} refused (HTTP {response.status})")
            answer = self._read_document(response, what)
        finally:
            response.release_conn()
        try:
            body = json.loads(answer.data)
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError(f"{what}: the answer holds no token")
        return f"Bearer {token}"

    @staticmethod
    def _read_document(response: urllib3.BaseHTTPResponse, what: str) -> Document:
        chunks: list[bytes] = []
        total = 0
        try:
            while chunk := response.read(65536, decode_content=True):
                total += len(chunk)
                if total > MAX_DOCUMENT_BYTES:
                    raise RegistryError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError as error:
            raise RegistryError(f"{what}: download broke off: {error}") from None
        return Document(
            data=b"".join(chunks),
            content_type=response.headers.get("Content-Type"),
            docker_digest=response.headers.get("Docker-Content-Digest"),
        )
