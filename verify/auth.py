"""Registry credentials and ``WWW-Authenticate`` challenges.

Sources, first match wins (per registry host, resolved only when the registry asks for them):

1. ``--gcp``: Application Default Credentials through google-auth; Artifact Registry accepts
   the user ``oauth2accesstoken`` with a short-lived access token as password.
2. ``REGISTRY_USERNAME`` / ``REGISTRY_PASSWORD`` from the environment (both or neither).
3. Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``),
   in Docker's own order: ``credHelpers[host]``, then ``credsStore``, then ``auths[host]``.
   Helpers run as ``docker-credential-<name> get`` with the host on stdin.

Secrets live only in :class:`Credentials` (whose repr hides them) and in request headers; no
message or exception built here contains one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import os
import re
import shutil
import subprocess
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from publicsuffixlist import PublicSuffixList

GCP_USERNAME = "oauth2accesstoken"
GCP_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
HELPER_TIMEOUT_SECONDS = 30
# What docker-credential-* helpers print when they hold nothing for a host.
_HELPER_NOT_FOUND = "credentials not found"
# Docker's marker for an OAuth identity (refresh) token instead of a password.
_IDENTITY_TOKEN_USERNAME = "<token>"

_SCHEME = re.compile(r"[\s,]*([A-Za-z][A-Za-z0-9_-]*)(?=\s|$)")
_PARAM = re.compile(r'[\s,]*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)')


class AuthError(Exception):
    """Credentials that cannot be obtained or are refused (exit code 2)."""


@dataclass(frozen=True)
class Credentials:
    """A username and secret for one registry, with where they came from (for messages)."""

    username: str
    password: str = field(repr=False)
    source: str

    def __post_init__(self) -> None:
        # Checked here, whatever the source, so a bad value is a clear message and never a
        # traceback that could show it.
        for name, value in (("username", self.username), ("password", self.password)):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise AuthError(f"{self.source}: the {name} is not valid UTF-8") from None
        if ":" in self.username:
            raise AuthError(f"{self.source}: the username contains ':', which basic auth forbids")

    def basic_header(self) -> str:
        """The ``Authorization`` value for HTTP basic authentication."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge from a ``WWW-Authenticate`` header."""

    scheme: str
    """Lowercased scheme, e.g. ``bearer`` or ``basic``."""
    params: dict[str, str]
    """Parameters with lowercased names (``realm``, ``service``, ``scope``, ...)."""


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (several challenges may share one header, comma-separated)."""
    challenges: list[Challenge] = []
    position = 0
    while scheme := _SCHEME.match(header, position):
        position = scheme.end()
        params: dict[str, str] = {}
        while param := _PARAM.match(header, position):
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            position = param.end()
        challenges.append(Challenge(scheme=scheme.group(1).lower(), params=params))
    return challenges


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List shipped with ``publicsuffixlist`` (no network; read once)."""
    return PublicSuffixList()


def registrable_domain(host: str) -> str | None:
    """The registrable domain of a host name (``auth.docker.io`` -> ``docker.io``).

    None for IP addresses, single labels (``localhost``) and public suffixes themselves. The
    list's private section counts: ``appspot.com`` is a suffix, so ``a.appspot.com`` and
    ``b.appspot.com`` are different domains (different owners).
    """
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    domain = _public_suffixes().privatesuffix(host)
    return domain if isinstance(domain, str) else None


def realm_may_receive_credentials(
    realm_host: str, registry_host: str, trusted: frozenset[str]
) -> bool:
    """Whether a token realm on ``realm_host`` may be sent the registry's credentials.

    Yes on the registry's own host, on a host of the same registrable domain (the Docker Hub
    case: ``registry-1.docker.io`` -> ``auth.docker.io``), or on a host the user trusts
    explicitly (``--trust-realm``). Ports do not matter; hosts are compared case-insensitively.
    """
    realm_host, registry_host = realm_host.lower().rstrip("."), registry_host.lower().rstrip(".")
    if realm_host == registry_host or realm_host in trusted:
        return True
    domain = registrable_domain(registry_host)
    return domain is not None and domain == registrable_domain(realm_host)


def gcp_credentials() -> Credentials:
    """An Artifact Registry login from Application Default Credentials."""
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.urllib3
    import urllib3

    try:
        with warnings.catch_warnings():
            # google-auth warns about end-user credentials without a quota project; on stderr
            # that would read like one of this tool's failure lines.
            warnings.simplefilter("ignore")
            adc, _project = google.auth.default(scopes=list(GCP_SCOPES))
            adc.refresh(google.auth.transport.urllib3.Request(urllib3.PoolManager()))
    except google.auth.exceptions.GoogleAuthError as error:
        raise AuthError(f"--gcp: Application Default Credentials failed: {error}") from None
    token = adc.token
    if not isinstance(token, str) or not token:
        raise AuthError("--gcp: Application Default Credentials returned no access token")
    return Credentials(GCP_USERNAME, token, "Application Default Credentials (--gcp)")


def environment_credentials(environ: Mapping[str, str]) -> Credentials | None:
    """Credentials from ``REGISTRY_USERNAME`` / ``REGISTRY_PASSWORD``; both or neither."""
    username = environ.get("REGISTRY_USERNAME", "")
    password = environ.get("REGISTRY_PASSWORD", "")
    if not username and not password:
        return None
    if not username or not password:
        present, missing = (
            ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
            if username
            else ("REGISTRY_PASSWORD", "REGISTRY_USERNAME")
        )
        raise AuthError(f"{present} is set but {missing} is not; set both or neither")
    return Credentials(username, password, "REGISTRY_USERNAME/REGISTRY_PASSWORD")


def docker_config_path(environ: Mapping[str, str]) -> Path:
    """Where Docker keeps ``config.json``: ``$DOCKER_CONFIG`` or ``~/.docker``."""
    directory = environ.get("DOCKER_CONFIG")
    base = Path(directory) if directory else Path(environ.get("HOME", "~")).expanduser() / ".docker"
    return base / "config.json"


def _host_of(key: str) -> str:
    """``https://host:port/v1/`` -> ``host:port`` (config.json keys come in several forms)."""
    key = re.sub(r"^[a-z]+://", "", key.strip())
    return key.split("/", 1)[0]


def docker_config_credentials(registry: str, environ: Mapping[str, str]) -> Credentials | None:
    """Credentials for ``registry`` from Docker's config.json, or None when it has none."""
    path = docker_config_path(environ)
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AuthError(f"Docker config {path} cannot be read as JSON: {error}") from None
    if not isinstance(config, dict):
        raise AuthError(f"Docker config {path} is not a JSON object")
    helpers = config.get("credHelpers") or {}
    helper = helpers.get(registry) if isinstance(helpers, dict) else None
    if isinstance(helper, str) and helper:
        return helper_credentials(helper, registry, environ)
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return helper_credentials(store, registry, environ)
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise AuthError(f"Docker config {path}: 'auths' is not a JSON object")
    for key, entry in auths.items():
        if _host_of(key) == registry and isinstance(entry, dict):
            return _auth_entry_credentials(entry, f"{path} auths[{key!r}]")
    return None


def _auth_entry_credentials(entry: dict[str, object], source: str) -> Credentials | None:
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(f"{source}: 'auth' is not base64 of 'user:password'") from None
        return Credentials(username, password, source)
    plain_user, plain_password = entry.get("username"), entry.get("password")
    if isinstance(plain_user, str) and isinstance(plain_password, str) and plain_user:
        return Credentials(plain_user, plain_password, source)
    if entry.get("identitytoken"):
        raise AuthError(f"{source}: identity tokens are not supported; log in with a password")
    return None


def helper_credentials(
    helper: str, registry: str, environ: Mapping[str, str]
) -> Credentials | None:
    """Ask ``docker-credential-<helper> get`` for ``registry``'s credentials."""
    program = f"docker-credential-{helper}"
    executable = shutil.which(program, path=environ.get("PATH", os.defpath))
    if executable is None:
        raise AuthError(f"credential helper {program} (Docker config) is not on PATH")
    try:
        result = subprocess.run(
            [executable, "get"],
            input=registry,
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT_SECONDS,
            env=dict(environ),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AuthError(f"credential helper {program} failed to run: {error}") from None
    if result.returncode != 0:
        if _HELPER_NOT_FOUND in (result.stdout + result.stderr).lower():
            return None
        # The helper's output is not echoed: a misbehaving helper might print a secret.
        raise AuthError(f"credential helper {program} get exited with {result.returncode}")
    try:
        answer = json.loads(result.stdout)
        username, secret = answer["Username"], answer["Secret"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise AuthError(f"credential helper {program} printed no Username/Secret JSON") from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise AuthError(f"credential helper {program} printed no Username/Secret strings")
    if username == _IDENTITY_TOKEN_USERNAME:
        raise AuthError(f"credential helper {program} returned an identity token (unsupported)")
    return Credentials(username, secret, f"credential helper {program}")


class CredentialResolver:
    """Finds credentials per registry host on first need and remembers them for the run."""

    def __init__(self, use_gcp: bool, environ: Mapping[str, str]) -> None:
        self._use_gcp = use_gcp
        self._environ = environ
        self._cache: dict[str, Credentials | None] = {}
        # Held while resolving, so concurrent requests run a credential helper only once.
        self._lock = threading.Lock()

    def check_environment(self) -> None:
        """Fail early (before any request) on a half-set REGISTRY_USERNAME/PASSWORD pair."""
        environment_credentials(self._environ)

    def for_registry(self, registry: str) -> Credentials | None:
        """The credentials for ``registry`` (``host[:port]``), or None for anonymous access."""
        with self._lock:
            if registry not in self._cache:
                self._cache[registry] = self._resolve(registry)
            return self._cache[registry]

    def _resolve(self, registry: str) -> Credentials | None:
        if self._use_gcp:
            return gcp_credentials()
        from_environment = environment_credentials(self._environ)
        if from_environment is not None:
            return from_environment
        return docker_config_credentials(registry, self._environ)
