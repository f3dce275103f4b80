"""A small client for the read side of the OCI distribution API, over urllib3.

It does what the checks need and nothing more: GET a manifest or a blob, authenticate (basic or
the registry token flow), and retry transient failures (connection errors, 5xx, 429) a bounded
number of times with exponential backoff. Responses are streamed; no blob is read whole.

Everything a registry sends is treated as hostile:

- Redirects are followed here (at most :data:`MAX_REDIRECTS`), not by urllib3, so the client
  knows who answered: ``Authorization`` never goes to another origin than the one it was made
  for, a redirect to plain HTTP off this machine is refused, and a 401 is answered only when it
  comes from the registry itself (a host a blob was redirected to gets no credentials).
- A token realm gets the registry's credentials only when it is on the registry's host, on a
  host of the same registrable domain (``registry-1.docker.io`` -> ``auth.docker.io``), or on a
  host the user trusts (``--trust-realm``); otherwise the token is asked for anonymously.
- Every request runs under an overall deadline (:mod:`verify.deadline`): a manifest, config or
  token request under :data:`REQUEST_SECONDS`, a blob under the run's ``--timeout``.
- Blobs are read only up to the size their descriptor declares (:class:`~verify.digests.
  DigestingReader`); documents up to :data:`~verify.manifests.MAX_DOCUMENT_BYTES`.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from verify.auth import (
    AuthError,
    Challenge,
    CredentialResolver,
    Credentials,
    parse_challenges,
    realm_may_receive_credentials,
)
from verify.deadline import Watch, Watchdog, watched_pool_classes
from verify.digests import SizeMismatch
from verify.manifests import ACCEPTED_TYPES, MAX_DOCUMENT_BYTES
from verify.reference import Reference, is_loopback

USER_AGENT = "boutique-verify/1"
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
"""Longest wait for any single read (the overall deadlines below bound the whole request)."""
REQUEST_SECONDS = 120.0
"""Overall deadline of one manifest, config or token request, retries and redirects included."""
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({429}) | frozenset(range(500, 600))
# RFC 6750 b64token: what a bearer token may hold and still be sent as a header.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,65536}")
_SECONDS = re.compile(r"[0-9]{1,9}", re.ASCII)


class RegistryError(Exception):
    """The registry could not be read: transport, protocol or server errors (exit code 2)."""


class NotFoundError(RegistryError):
    """The registry answered 404 for a manifest or blob (exit code 2)."""


class StreamError(RegistryError):
    """A response body broke off while streaming; the whole read may be tried again."""


class TimedOut(RegistryError):
    """A request passed its overall deadline (exit code 2)."""


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
        if retry_after and _SECONDS.fullmatch(retry_after.strip()):
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


def origin_of(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL: what must be equal for a header to be sent on."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _host_text(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _release(response: urllib3.BaseHTTPResponse) -> None:
    """Hand a response's connection back; one whose body was not read to its end is closed."""
    if not response.closed:
        response.close()
    response.release_conn()


def _error_detail(response: urllib3.BaseHTTPResponse) -> str:
    """The registry's error code and message from a JSON error body, if any (no secrets)."""
    try:
        body = json.loads(response.read(65536, decode_content=True) or b"{}")
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
    except (ValueError, urllib3.exceptions.HTTPError, OSError):
        pass
    return ""


class BlobReader:
    """A streamed response body; read errors become :class:`StreamError` (or :class:`TimedOut`)."""

    def __init__(self, response: urllib3.BaseHTTPResponse, what: str, watch: Watch) -> None:
        self._response = response
        self._what = what
        self._watch = watch

    def read(self, size: int = -1, /) -> bytes:
        try:
            # read1: what one socket read brings (at most ``size``), copied once; read(size)
            # would wait for the whole size and copy it twice.
            chunk = self._response.read1(None if size < 0 else size, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if self._watch.expired:
                raise _timed_out(self._watch) from None
            raise StreamError(f"{self._what}: download broke off: {error}") from None
        if not chunk and self._watch.expired:
            raise _timed_out(self._watch)
        self._watch.bytes_read += len(chunk)
        return chunk

    def check_deadline(self) -> None:
        """Raise :class:`TimedOut` once the request is past its deadline.

        For work on bytes already received (inflating them), which no socket read interrupts.
        """
        if self._watch.expired:
            raise _timed_out(self._watch)


def _timed_out(watch: Watch) -> TimedOut:
    return TimedOut(
        f"{watch.what}: no complete answer from {watch.host} within {watch.limit} "
        f"({watch.bytes_read} bytes in {time.monotonic() - watch.started:.0f} s)"
    )


class RegistryClient:
    """Reads manifests and blobs, authenticating per registry and repository."""

    def __init__(
        self,
        credentials: CredentialResolver,
        retry: RetryPolicy | None = None,
        connections: int = 8,
        trusted_realms: frozenset[str] = frozenset(),
        run_deadline: float = float("inf"),
        run_limit: str = "no run deadline",
    ) -> None:
        self._credentials = credentials
        self._retry = retry or RetryPolicy()
        self._trusted_realms = trusted_realms
        self._run_deadline = run_deadline
        self._run_limit = run_limit
        self.watchdog = Watchdog()
        self._http = urllib3.PoolManager(num_pools=16, maxsize=connections)
        self._http.pool_classes_by_scheme = watched_pool_classes()
        self._authorizations: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    # Public API

    def get_manifest(self, ref: Reference, reference: str, size: int | None = None) -> Document:
        """GET ``/v2/<repo>/manifests/<reference>`` accepting indexes and image manifests.

        With ``size`` (the descriptor's), at most that many bytes are read and the document
        must be exactly that long (:class:`SizeMismatch` otherwise).
        """
        path = f"/v2/{ref.repository}/manifests/{reference}"
        what = f"manifest {reference}"
        accept = ", ".join(ACCEPTED_TYPES)
        with (
            self._document_watch(ref, what, size) as watch,
            self._get(ref, path, accept, what, watch) as response,
        ):
            return self._read_document(response, what, watch, size)

    def get_blob(self, ref: Reference, digest: str, what: str, size: int) -> Document:
        """GET a small blob (an image config) whole; its digest is checked by the caller."""
        path = f"/v2/{ref.repository}/blobs/{digest}"
        with (
            self._document_watch(ref, what, size) as watch,
            self._get(ref, path, "*/*", what, watch) as response,
        ):
            return self._read_document(response, what, watch, size)

    @contextmanager
    def open_blob(self, ref: Reference, digest: str, what: str, size: int) -> Iterator[BlobReader]:
        """Stream a blob; the connection is returned to the pool when the block ends.

        A ``Content-Length`` other than ``size`` is refused before any byte is read.
        """
        path = f"/v2/{ref.repository}/blobs/{digest}"
        with (
            self.watchdog.watch(what, ref.registry, self._run_deadline, self._run_limit) as watch,
            self._get(ref, path, "*/*", what, watch) as response,
        ):
            length = response.headers.get("Content-Length")
            if length is not None and length.strip() != str(size):
                raise SizeMismatch(
                    f"{what}: the registry announces {length.strip()[:40]!r} bytes; its "
                    f"descriptor declares {size}"
                )
            yield BlobReader(response, what, watch)

    def authorization(self, ref: Reference, scope: str, challenge_header: str) -> str:
        """The Authorization value answering a 401 challenge for ``scope`` (the write side)."""
        with self._document_watch(ref, f"a token for {scope}", None) as watch:
            return self._answer_challenge(ref, scope, challenge_header, watch)

    # Requests, authentication and retries

    def _document_watch(
        self, ref: Reference, what: str, size: int | None
    ) -> AbstractContextManager[Watch]:
        if size is not None and size > MAX_DOCUMENT_BYTES:
            raise SizeMismatch(
                f"{what}: its descriptor declares {size} bytes; a manifest or config has at "
                f"most {MAX_DOCUMENT_BYTES}"
            )
        own = time.monotonic() + REQUEST_SECONDS
        if own < self._run_deadline:
            limit = f"the {REQUEST_SECONDS:.0f} s limit of one request"
            return self.watchdog.watch(what, ref.registry, own, limit)
        return self.watchdog.watch(what, ref.registry, self._run_deadline, self._run_limit)

    @contextmanager
    def _get(
        self, ref: Reference, path: str, accept: str, what: str, watch: Watch
    ) -> Iterator[urllib3.BaseHTTPResponse]:
        response = self._authorized_get(ref, path, accept, what, watch)
        try:
            yield response
        finally:
            _release(response)

    def _authorized_get(
        self, ref: Reference, path: str, accept: str, what: str, watch: Watch
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
            response, answered_by = self._send(url, headers, what, watch)
            if response.status == 401 and origin_of(answered_by) != origin_of(url):
                _release(response)
                raise AuthError(
                    f"{what}: {_host_text(answered_by)}, where {ref.registry} redirected the "
                    f"request, asks for credentials; they are only ever sent to {ref.registry}"
                )
            if response.status == 401 and not refreshed:
                challenge_header = response.headers.get("WWW-Authenticate", "")
                _release(response)
                new_authorization = self._answer_challenge(ref, key[1], challenge_header, watch)
                with self._lock:
                    self._authorizations[key] = new_authorization
                refreshed = True
                continue
            if response.status in (401, 403):
                detail = _error_detail(response)
                _release(response)
                credentials = self._credentials.for_registry(ref.registry)
                who = f"credentials from {credentials.source}" if credentials else "anonymous"
                raise AuthError(f"{what}: {who} refused (HTTP {response.status}{detail})")
            if response.status == 404:
                detail = _error_detail(response)
                _release(response)
                raise NotFoundError(f"{what} not found (HTTP 404{detail})")
            if response.status != 200:
                detail = _error_detail(response)
                _release(response)
                raise RegistryError(f"{what}: unexpected HTTP {response.status}{detail}")
            return response

    def _send(
        self, url: str, headers: dict[str, str], what: str, watch: Watch
    ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """One GET (redirects followed) with bounded retries on transient failures.

        Returns the final response and the URL that answered it.
        """
        last_problem = ""
        for attempt in range(self._retry.attempts):
            retry_after = None
            try:
                response, answered_by = self._follow(url, headers, what, watch)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if watch.expired:
                    raise _timed_out(watch) from None
                cause: object = error
                if isinstance(error, urllib3.exceptions.MaxRetryError):
                    cause = error.reason
                last_problem = f"connection failed: {cause}"
            else:
                if response.status not in _TRANSIENT_STATUSES:
                    return response, answered_by
                retry_after = response.headers.get("Retry-After")
                last_problem = f"HTTP {response.status}{_error_detail(response)}"
                _release(response)
            if attempt + 1 < self._retry.attempts:
                pause = self._retry.delay(attempt, retry_after)
                if pause >= watch.remaining():
                    raise _timed_out(watch)
                time.sleep(pause)
        raise RegistryError(f"{what}: {last_problem} (gave up after {self._retry.attempts} tries)")

    def _follow(
        self, url: str, headers: dict[str, str], what: str, watch: Watch
    ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """GET ``url``, following redirects; ``Authorization`` stays with its origin."""
        origin = origin_of(url)
        headers = dict(headers)
        for _ in range(MAX_REDIRECTS + 1):
            remaining = watch.remaining()
            if remaining <= 0:
                raise _timed_out(watch)
            timeout = urllib3.Timeout(
                connect=min(CONNECT_TIMEOUT_SECONDS, remaining),
                read=min(READ_TIMEOUT_SECONDS, remaining),
            )
            response = self._http.request(
                "GET",
                url,
                headers=headers,
                preload_content=False,
                redirect=False,
                retries=False,
                timeout=timeout,
            )
            if response.status not in _REDIRECT_STATUSES:
                return response, url
            location = response.headers.get("Location", "")
            _release(response)
            try:
                url = urljoin(url, location)
                parts = urlsplit(url)
                next_origin = origin_of(url)  # a port out of range is a ValueError here
            except ValueError:
                raise RegistryError(
                    f"{what}: redirected to {location!r}, not a valid URL"
                ) from None
            if not location or parts.scheme not in ("http", "https") or not parts.hostname:
                raise RegistryError(f"{what}: redirected to {location!r}, not an http(s) URL")
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise RegistryError(f"{what}: redirected to plain HTTP off this machine ({url})")
            if next_origin != origin:
                headers.pop("Authorization", None)
        raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _answer_challenge(self, ref: Reference, scope: str, header: str, watch: Watch) -> str:
        """The Authorization value that answers a 401 challenge (basic or bearer)."""
        challenges = {challenge.scheme: challenge for challenge in parse_challenges(header)}
        credentials = self._credentials.for_registry(ref.registry)
        if "bearer" in challenges:
            return self._bearer_token(ref, scope, challenges["bearer"], credentials, watch)
        if "basic" in challenges:
            if credentials is None:
                raise AuthError(
                    f"{ref.registry} requires credentials and none were found (set "
                    "REGISTRY_USERNAME/REGISTRY_PASSWORD, log in with docker, or pass --gcp)"
                )
            return credentials.basic_header()
        raise AuthError(f"{ref.registry} answered 401 with no usable challenge ({header[:200]!r})")

    def _bearer_token(
        self,
        ref: Reference,
        scope: str,
        challenge: Challenge,
        credentials: Credentials | None,
        watch: Watch,
    ) -> str:
        """The registry token flow: GET realm?service=...&scope=..., with basic auth if allowed."""
        realm = challenge.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AuthError(f"{ref.registry}: token realm {realm[:200]!r} is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise AuthError(
                f"{ref.registry}: token realm {realm[:200]!r} is plain HTTP off this machine"
            )
        query = {"scope": challenge.params.get("scope", scope)}
        if "service" in challenge.params:
            query["service"] = challenge.params["service"]
        separator = "&" if parts.query else "?"
        url = f"{realm}{separator}{urlencode(query)}"
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        trusted = realm_may_receive_credentials(parts.hostname, ref.hostname, self._trusted_realms)
        if credentials is not None and trusted:
            headers["Authorization"] = credentials.basic_header()
        what = f"token from {parts.scheme}://{_host_text(realm)}{parts.path}"
        response, _answered_by = self._send(url, headers, what, watch)
        try:
            if response.status != 200:
                who = f"credentials from {credentials.source}" if credentials else "anonymous"
                if credentials is not None and not trusted:
                    who = (
                        f"anonymous (credentials are not sent to {parts.hostname}, which is "
                        f"neither {ref.hostname} nor in its domain; pass --trust-realm "
                        f"{parts.hostname} if it is the registry's token service)"
                    )
                raise AuthError(f"{what}: {who} refused (HTTP {response.status})")
            answer = self._read_document(response, what, watch)
        finally:
            _release(response)
        try:
            body = json.loads(answer.data)
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError(f"{what}: the answer holds no token")
        if not _TOKEN.fullmatch(token):
            raise AuthError(
                f"{what}: the token holds characters an Authorization header cannot carry "
                "(or is longer than 64 KiB); not used"
            )
        return f"Bearer {token}"

    @staticmethod
    def _read_document(
        response: urllib3.BaseHTTPResponse, what: str, watch: Watch, size: int | None = None
    ) -> Document:
        """Read a small body whole: at most ``size`` bytes (+1 to see a longer one), else 4 MiB."""
        limit = MAX_DOCUMENT_BYTES if size is None else min(size, MAX_DOCUMENT_BYTES)
        chunks: list[bytes] = []
        total = 0
        try:
            while chunk := response.read(min(65536, limit + 1 - total), decode_content=True):
                total += len(chunk)
                watch.bytes_read = total
                chunks.append(chunk)
                if total > limit:
                    break
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if watch.expired:
                raise _timed_out(watch) from None
            raise RegistryError(f"{what}: download broke off: {error}") from None
        if watch.expired:
            raise _timed_out(watch)
        if size is not None and total > size:
            raise SizeMismatch(f"{what} goes on after the {size} bytes its descriptor declares")
        if size is not None and total < size:
            raise SizeMismatch(f"{what} is {total} bytes; its descriptor declares {size}")
        if total > MAX_DOCUMENT_BYTES:
            raise RegistryError(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
        return Document(
            data=b"".join(chunks),
            content_type=response.headers.get("Content-Type"),
            docker_digest=response.headers.get("Docker-Content-Digest"),
        )
