"""Pushes crafted blobs, manifests and two-platform OCI indexes to a loopback registry over the
HTTP API (no Docker Engine): the benchmark's data set and the SBOM integration tests' images."""

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


@dataclass
class Pusher:
    """Pushes blobs and manifests to a loopback registry over the HTTP API."""

    registry: Registry

    def _send(self, method: str, url: str, data: bytes, content_type: str) -> dict[str, str]:
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
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
