"""One JSON request to a Google API over an authorized HTTP client, bounded and fail-closed."""

from __future__ import annotations

import json
from typing import Any, Protocol


class Http(Protocol):
    """``google.auth.transport.urllib3.AuthorizedHttp`` (adds the ADC bearer token)."""

    def urlopen(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> Any: ...


class ApiError(Exception):
    """The API could not be reached, refused, or answered something that is not a JSON object."""


def call(
    http: Http,
    service: str,
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    limit: int = 1 << 20,
) -> dict[str, Any]:
    """The JSON object answered with HTTP 200; anything else raises :class:`ApiError` naming
    ``service``. Redirects are not followed; at most ``limit`` bytes are read."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        response = http.urlopen(
            method, url, body=data, headers=headers, preload_content=False, redirect=False
        )
        answer = response.read(limit + 1)
        status = response.status
        response.release_conn()
    except Exception as error:  # transport errors of any HTTP stack
        raise ApiError(f"{method} {url}: {error}") from None
    if status != 200:
        detail = answer[:300].decode("utf-8", "replace").strip()
        raise ApiError(f"{service} answered HTTP {status} {detail}".rstrip())
    if len(answer) > limit:
        raise ApiError(f"{service} answer is larger than {limit} bytes")
    try:
        document = json.loads(answer)
    except (ValueError, RecursionError):
        raise ApiError(f"{service} answer is not JSON") from None
    if not isinstance(document, dict):
        raise ApiError(f"{service} answer is not an object")
    return document
