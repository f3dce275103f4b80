"""A small token server on loopback for the verifier's auth tests.

Two endpoints, both checked for real:

- ``GET /token?service=...&scope=...``: the Docker registry token flow. It demands HTTP basic
  credentials equal to the ones it was started with and answers ``{"token": ..., "access_token":
  ...}`` with a fresh random token, which it remembers as issued for that scope.
- ``POST /oauth2``: an OAuth2 token endpoint standing in for Google's token URI, so that
  google-auth's Application Default Credentials (a service-account key file whose ``token_uri``
  points here) are exercised end to end. It accepts the JWT-bearer grant, checks that the signed
  assertion's issuer and audience are the expected ones, records the scope it asks for, and
  answers with a fixed access token.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.integration.loopbackserver import address_of, reply_json, serve, shut_down

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth always addresses service-account assertions to Google's token endpoint.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


@dataclass
class TokenServer:
    """A running token server; ``issued`` maps each token to the scope it was issued for."""

    username: str
    password: str = field(repr=False)
    service_account: str = ""
    """The ``client_email`` whose JWT assertions ``/oauth2`` accepts."""
    access_token: str = field(repr=False, default="")
    issued: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    """``METHOD path?query`` of every request, in order."""
    scopes: list[str] = field(default_factory=list)
    """The ``scope`` claim of each assertion ``/oauth2`` accepted, in order."""
    _server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        return address_of(self._server)

    @property
    def realm(self) -> str:
        return f"http://{self.address}/token"

    @property
    def oauth_uri(self) -> str:
        return f"http://{self.address}/oauth2"

    def start(self) -> TokenServer:
        self._server = serve(_handler_for(self))
        return self

    def stop(self) -> None:
        shut_down(self._server)


def _claims_for(assertion: str, issuer: str, audience: str) -> dict[str, object] | None:
    """A JWT's claims when they name ``issuer`` and ``audience``, else None (the signature is not
    checked: the test is about the client's flow, not about Google's key management)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    claims = json.loads(base64.urlsafe_b64decode(payload))
    if not isinstance(claims, dict) or claims.get("iss") != issuer or claims.get("aud") != audience:
        return None
    return claims


def _handler_for(state: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads ``state.requests`` instead of a log."""

        def _reply(self, status: int, body: dict[str, object]) -> None:
            reply_json(self, status, body)

        def do_GET(self) -> None:
            state.requests.append(f"GET {self.path}")
            url = urlsplit(self.path)
            if url.path != "/token":
                self._reply(404, {"error": "not found"})
                return
            expected = base64.b64encode(f"{state.username}:{state.password}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._reply(401, {"details": "wrong or missing credentials"})
                return
            scope = parse_qs(url.query).get("scope", [""])[0]
            token = secrets.token_urlsafe(24)
            state.issued[token] = scope
            self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

        def do_POST(self) -> None:
            state.requests.append(f"POST {self.path}")
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            claims = _claims_for(
                form.get("assertion", [""])[0], state.service_account, GOOGLE_TOKEN_AUDIENCE
            )
            if self.path != "/oauth2":
                self._reply(404, {"error": "not found"})
            elif form.get("grant_type") != [JWT_BEARER_GRANT] or claims is None:
                self._reply(400, {"error": "invalid_grant"})
            else:
                state.scopes.append(str(claims.get("scope")))
                body = {"access_token": state.access_token, "expires_in": 3600}
                self._reply(200, {**body, "token_type": "Bearer"})

    return Handler
