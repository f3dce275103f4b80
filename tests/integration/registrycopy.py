"""Copies an image (index, manifests, blobs) between loopback registries over the HTTP API.

Used to put a buildx-built image into an htpasswd-protected registry without ``docker login``
(which would write credentials into the user's Docker config). Test images are small, so each
blob is held in memory while it is copied.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from base64 import b64encode

from tests.integration.dockerenv import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, Registry


def _request(
    registry: Registry,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if registry.credentials is not None:
        pair = f"{registry.credentials[0]}:{registry.credentials[1]}".encode()
        request.add_header("Authorization", "Basic " + b64encode(pair).decode())
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read(), dict(response.headers.items())


def _get_manifest(registry: Registry, repository: str, reference: str) -> tuple[bytes, str]:
    accept = ", ".join((*INDEX_MEDIA_TYPES, *MANIFEST_MEDIA_TYPES))
    url = f"{registry.url}/v2/{repository}/manifests/{reference}"
    _, body, headers = _request(registry, "GET", url, headers={"Accept": accept})
    return body, headers["Content-Type"]


def _copy_blob(source: Registry, target: Registry, repository: str, digest: str) -> None:
    _, data, _ = _request(source, "GET", f"{source.url}/v2/{repository}/blobs/{digest}")
    push_blob(target, repository, data)


def push_blob(target: Registry, repository: str, data: bytes) -> str:
    """Upload ``data`` as a blob of ``repository`` (POST, then PUT with its digest)."""
    digest = manifest_digest(data)
    _, _, headers = _request(target, "POST", f"{target.url}/v2/{repository}/blobs/uploads/", b"")
    location = headers["Location"]
    if location.startswith("/"):
        location = target.url + location
    separator = "&" if "?" in location else "?"
    _request(
        target,
        "PUT",
        f"{location}{separator}digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    return digest


def put_manifest(
    target: Registry, repository: str, reference: str, body: bytes, media_type: str
) -> None:
    url = f"{target.url}/v2/{repository}/manifests/{reference}"
    _request(target, "PUT", url, body, {"Content-Type": media_type})


def copy_image(source: Registry, target: Registry, repository: str, tag: str) -> None:
    """Copy ``repository:tag`` (an index or a single manifest) from ``source`` to ``target``."""
    top, top_type = _get_manifest(source, repository, tag)
    document = json.loads(top)
    children = document.get("manifests", []) if top_type in INDEX_MEDIA_TYPES else []
    manifests = [(top, top_type, document)] if not children else []
    for child in children:
        body, media_type = _get_manifest(source, repository, child["digest"])
        manifests.append((body, media_type, json.loads(body)))
    for body, media_type, manifest in manifests:
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            _copy_blob(source, target, repository, blob["digest"])
        if children:
            digest = manifest_digest(body)
            put_manifest(target, repository, digest, body, media_type)
    put_manifest(target, repository, tag, top, top_type)


def manifest_digest(body: bytes) -> str:
    """The digest a registry gives a manifest: sha256 of its exact bytes."""
    return "sha256:" + hashlib.sha256(body).hexdigest()
