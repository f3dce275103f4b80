"""Where the Kubernetes manifests come from, and reading them within bounds (pure Python).

By default the consumer renders upstream's `release/kubernetes-manifests.yaml` at exactly the
commit the images stack was built from (its `source` output); config `manifests` names a local
file or an http(s) URL instead (a fork, an air-gapped cluster). Nothing upstream is stored in
this repository: the file is read at run time, within a size limit and a time limit, and parsed
with PyYAML's safe loader. Every failure is one ManifestError naming the location and the cause.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST_PATH = "release/kubernetes-manifests.yaml"
"""Upstream's rendered manifests, relative to the repository root."""
_GITHUB = re.compile(
    r"(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
    r"(?P<owner>[A-Za-z0-9-]+)/(?P<repo>[A-Za-z0-9._-]+?)(?:\.git)?/?"
)
_COMMIT = re.compile(r"[0-9a-f]{40}")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CHUNK = 64 * 1024


class ManifestError(ValueError):
    """The manifests cannot be located, read or parsed."""


@dataclass(frozen=True)
class Limits:
    """Bounds on reading the manifests (upstream's file is about 22 KB)."""

    max_bytes: int = 4 * 1024 * 1024
    """Larger files are refused, before or while reading."""
    timeout: float = 30.0
    """Seconds for a URL: each network wait and the whole transfer."""
    max_redirects: int = 3
    """Redirects followed (each to https, or to http on loopback only)."""


def location(configured: str | None, source: Any, stack: str) -> str:
    """The file or URL to read: config `manifests`, else upstream's at the stack's commit."""
    if configured is not None:
        if "://" in configured:
            _check_url(configured, f"config manifests={configured!r}")
        return configured
    if not isinstance(source, Mapping):
        raise ManifestError(
            f"stack {stack} has no `source` output (images stacks export it since the consumer "
            "renders upstream's manifests); run `pulumi up` on it, or set config manifests to "
            f"a local copy or URL of {MANIFEST_PATH} at the commit its images were built from"
        )
    url, commit = source.get("url"), source.get("commit")
    github = _GITHUB.fullmatch(url) if isinstance(url, str) else None
    if github is None or not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise ManifestError(
            f"stack {stack} was built from source url={url!r} commit={commit!r}, whose "
            f"{MANIFEST_PATH} has no address this consumer can derive (a GitHub repository and "
            "a full commit SHA); set config manifests to a local file or an https URL of it"
        )
    owner, repo = github.group("owner"), github.group("repo")
    return f"https://raw.githubusercontent.com/{owner}/{repo}/{commit}/{MANIFEST_PATH}"


def read(where: str, limits: Limits = Limits()) -> str:
    """The text at a local path or URL, refused when larger than the limit or not UTF-8."""
    data = _download(where, limits) if "://" in where else _read_file(where, limits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(f"manifests {where} is not UTF-8 text: {error}") from error


def parse(text: str, where: str) -> list[Any]:
    """The YAML documents of the text, refusing invalid YAML and aliases."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise ManifestError(f"manifests {where} is not valid YAML: {error}") from error
    seen: set[int] = set()
    for document in documents:
        if _shares_nodes(document, seen):
            # An alias makes one node appear many times; serialized for the cluster it would
            # multiply (a few KB of aliases can expand to gigabytes).
            raise ManifestError(
                f"manifests {where} uses YAML aliases (*name); Kubernetes manifests need none"
            )
    return documents


def _shares_nodes(node: Any, seen: set[int]) -> bool:
    if not isinstance(node, dict | list):
        return False
    if id(node) in seen:
        return True
    seen.add(id(node))
    children = node.values() if isinstance(node, dict) else node
    return any(_shares_nodes(child, seen) for child in children)


def _check_url(url: str, what: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and parsed.hostname in _LOOPBACK:
        return
    raise ManifestError(
        f"{what} is not an allowed URL; allowed: https://…, or http:// on 127.0.0.1, "
        "localhost or ::1 only (plain HTTP elsewhere could be tampered with on the way)"
    )


def _read_file(path: str, limits: Limits) -> bytes:
    file = Path(path)
    try:
        with file.open("rb") as stream:
            data = stream.read(limits.max_bytes + 1)
    except OSError as error:
        raise ManifestError(f"manifests {path} cannot be read: {error.strerror}") from error
    if len(data) > limits.max_bytes:
        raise ManifestError(f"manifests {path} is larger than {limits.max_bytes} bytes")
    return data


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows a bounded number of redirects, each to an allowed URL."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.max_redirections = limits.max_redirects  # type: ignore[misc]

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        _check_url(newurl, f"the redirect from {req.full_url} to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, limits: Limits) -> bytes:
    """The body at `url`, within `limits.timeout` in all: socket timeouts bound each network
    wait, not a server trickling headers or body a byte at a time, so the transfer runs in a
    daemon thread that is abandoned at the deadline (it stops at its next deadline check)."""
    _check_url(url, f"manifests {url}")
    timed_out = ManifestError(f"manifests {url} did not arrive within {limits.timeout:g} s")
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcome["data"] = _transfer(url, limits, time.monotonic() + limits.timeout)
        except TimeoutError:
            outcome["error"] = timed_out
        except Exception as error:  # handed to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=attempt, name="manifest download", daemon=True)
    worker.start()
    worker.join(limits.timeout)
    if worker.is_alive():
        raise timed_out
    if "error" in outcome:
        raise outcome["error"]
    data: bytes = outcome["data"]
    return data


def _transfer(url: str, limits: Limits, deadline: float) -> bytes:
    opener = urllib.request.build_opener(_Redirects(limits))
    chunks: list[bytes] = []
    received = 0
    try:
        with opener.open(url, timeout=limits.timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > limits.max_bytes:
                raise ManifestError(
                    f"manifests {url} is {length} bytes, larger than {limits.max_bytes}"
                )
            # read1: one network read per chunk, so the deadline is checked between every two.
            while chunk := response.read1(_CHUNK):
                received += len(chunk)
                if received > limits.max_bytes:
                    raise ManifestError(f"manifests {url} is larger than {limits.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunks.append(chunk)
    except urllib.error.HTTPError as error:
        raise ManifestError(
            f"manifests {url} answered HTTP {error.code} {error.reason}"
            + (" (is the commit pushed to that repository?)" if error.code == 404 else "")
        ) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise TimeoutError from error
        raise ManifestError(f"manifests {url} cannot be fetched: {error.reason}") from error
    return b"".join(chunks)
