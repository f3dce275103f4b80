"""Writes small, hand-made OCI documents into a loopback registry over its HTTP API (no Docker
Engine).

The gc and every-run tests need shapes a build produces (an index with per-platform manifests
and BuildKit attestation manifests), plus shapes no build here produces (a referrer with a
`subject`, an orphaned candidate), each with known digests (the functions below). The
benchmark's data set and the SBOM tests' images are pushed by `Pusher`.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from dataclasses import dataclass

from tests.integration.dockerenv import Registry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _send(method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(response.headers.items())


def push_blob(registry: Registry, repository: str, data: bytes) -> dict[str, object]:
    """Upload `data` (POST then PUT); returns its descriptor without media type."""
    digest = digest_of(data)
    location = _send("POST", f"{registry.url}/v2/{repository}/blobs/uploads/", b"", {})["Location"]
    if location.startswith("/"):
        location = registry.url + location
    separator = "&" if "?" in location else "?"
    _send(
        "PUT",
        f"{location}{separator}digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    return {"digest": digest, "size": len(data)}


def push_manifest(
    registry: Registry, repository: str, document: dict[str, object], tag: str | None = None
) -> dict[str, object]:
    """PUT `document` by digest (and under `tag`); returns its descriptor."""
    body = json.dumps(document, sort_keys=True).encode()
    media_type = str(document["mediaType"])
    digest = digest_of(body)
    for reference in (digest, *([tag] if tag else [])):
        url = f"{registry.url}/v2/{repository}/manifests/{reference}"
        _send("PUT", url, body, {"Content-Type": media_type})
    return {"mediaType": media_type, "digest": digest, "size": len(body)}


def push_image(
    registry: Registry, repository: str, architecture: str, marker: str
) -> dict[str, object]:
    """A single-platform image manifest (made-up layer); `marker` makes its digest unique."""
    config = {"architecture": architecture, "os": "linux", "marker": marker}
    return _push_single(
        registry,
        repository,
        (OCI_CONFIG, json.dumps(config).encode()),
        (OCI_LAYER, f"layer {marker} {architecture}".encode()),
        {},
    )


def _push_single(
    registry: Registry,
    repository: str,
    config: tuple[str, bytes],
    layer: tuple[str, bytes],
    fields: dict[str, object],
) -> dict[str, object]:
    """An OCI manifest of one config and one layer blob, with more `fields`."""
    config_type, config_data = config
    layer_type, layer_data = layer
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, **push_blob(registry, repository, config_data)},
        "layers": [{"mediaType": layer_type, **push_blob(registry, repository, layer_data)}],
        **fields,
    }
    return push_manifest(registry, repository, document)


def push_multiarch(
    registry: Registry, repository: str, marker: str, tag: str | None = None
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """An index of amd64 and arm64 manifests plus an attestation manifest for each, as buildx
    pushes it; returns the index descriptor and its entries."""
    entries: list[dict[str, object]] = []
    for architecture in ("amd64", "arm64"):
        image = push_image(registry, repository, architecture, marker)
        attestation = push_image(registry, repository, "unknown", f"{marker}-{architecture}-att")
        entries.append({**image, "platform": {"os": "linux", "architecture": architecture}})
        entries.append(
            {
                **attestation,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": str(image["digest"]),
                },
            }
        )
    index = push_manifest(
        registry,
        repository,
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
        tag,
    )
    return index, entries


def push_referrer(
    registry: Registry, repository: str, subject: dict[str, object], marker: str
) -> dict[str, object]:
    """An artifact manifest (e.g. a signature) whose `subject` is `subject`; untagged."""
    signature = "application/vnd.example.signature"
    return _push_single(
        registry,
        repository,
        ("application/vnd.oci.empty.v1+json", b"{}"),
        (signature, f"signature {marker}".encode()),
        {"artifactType": signature, "subject": subject},
    )


def manifest_exists(registry: Registry, repository: str, reference: str) -> bool:
    accept = ", ".join((OCI_INDEX, OCI_MANIFEST))
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        method="HEAD",
        headers={"Accept": accept},
    )
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise
    return True


def delete_manifest(registry: Registry, repository: str, digest: str) -> None:
    """DELETE a manifest by digest, as someone cleaning up by hand would."""
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{digest}", method="DELETE"
    )
    urllib.request.urlopen(request, timeout=30).close()


@dataclass
class Pusher:
    """Pushes blobs and manifests to a loopback registry over the HTTP API."""

    registry: Registry
    timeout: float = 120.0
    """Seconds one request may take (the benchmarks push layers of hundreds of MB)."""

    def _send(self, method: str, url: str, data: bytes, content_type: str) -> dict[str, str]:
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return dict(response.headers.items())

    def blob(self, repository: str, data: bytes) -> dict[str, object]:
        digest = digest_of(data)
        base = self.registry.url
        location = self._send("POST", f"{base}/v2/{repository}/blobs/uploads/", b"", "")["Location"]
        if location.startswith("/"):
            location = base + location
        separator = "&" if "?" in location else "?"
        self._send("PUT", f"{location}{separator}digest={digest}", data, "application/octet-stream")
        return {"digest": digest, "size": len(data)}

    def manifest(self, repository: str, reference: str, document: dict[str, object]) -> str:
        data = json.dumps(document).encode()
        media_type = str(document["mediaType"])
        url = f"{self.registry.url}/v2/{repository}/manifests/{reference}"
        self._send("PUT", url, data, media_type)
        return digest_of(data)

    def image(self, repository: str, tag: str, layers: dict[str, list[bytes]], label: str) -> None:
        """Push a two-platform OCI index; ``layers`` maps each architecture to its blobs."""
        entries = []
        for arch, blobs in layers.items():
            config = json.dumps(
                {
                    "architecture": arch,
                    "os": "linux",
                    "config": {"Labels": {"bench": label}},
                    "rootfs": {"type": "layers", "diff_ids": []},
                }
            ).encode()
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **self.blob(repository, config)},
                "layers": [{"mediaType": OCI_LAYER, **self.blob(repository, b)} for b in blobs],
            }
            size = len(json.dumps(manifest).encode())
            digest = self.manifest(repository, digest_of(json.dumps(manifest).encode()), manifest)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        self.manifest(repository, tag, index)
