"""Manifest documents: OCI image indexes, Docker manifest lists and single image manifests.

Only the fields the checks need are parsed; anything malformed raises :class:`ManifestError`
naming the field, so a broken document is reported rather than half-read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from verify.digests import DIGEST_PATTERN
from verify.platforms import Platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPTED_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

CONFIG_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)

REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_REFERENCE_TYPE = "attestation-manifest"

# A manifest or config larger than this is not an image document; refusing it bounds memory.
MAX_DOCUMENT_BYTES = 4 << 20


class ManifestError(ValueError):
    """A document that is not valid JSON or lacks a field the checks need."""


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a document points at."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None
    annotations: dict[str, str]

    @property
    def is_attestation(self) -> bool:
        """True for BuildKit's attestation manifests (``unknown/unknown`` + annotation)."""
        if self.annotations.get(REFERENCE_TYPE_ANNOTATION) == ATTESTATION_REFERENCE_TYPE:
            return True
        return self.platform == Platform.of("unknown", "unknown")


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageManifest:
    """A single-platform image manifest."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageConfig:
    """The platform fields of an image configuration."""

    os: str
    architecture: str
    variant: str | None

    @property
    def platform(self) -> Platform:
        return Platform.of(self.os, self.architecture, self.variant)


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{what} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return document


def _field(document: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ManifestError(f"{what}: field {key!r} is missing or not a {kind.__name__}")
    return value


def _descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestError(f"{what} is not a JSON object")
    digest = _field(raw, "digest", str, what)
    if not DIGEST_PATTERN.fullmatch(digest):
        raise ManifestError(f"{what}: digest {digest!r} is not a sha256 digest")
    platform = None
    if "platform" in raw:
        fields = raw["platform"]
        if not isinstance(fields, dict):
            raise ManifestError(f"{what}: field 'platform' is not a JSON object")
        platform = Platform.of(
            _field(fields, "os", str, f"{what} platform"),
            _field(fields, "architecture", str, f"{what} platform"),
            fields.get("variant") if isinstance(fields.get("variant"), str) else None,
        )
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestError(f"{what}: field 'annotations' is not a JSON object")
    return Descriptor(
        media_type=_field(raw, "mediaType", str, what),
        digest=digest,
        size=_field(raw, "size", int, what),
        platform=platform,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


def document_media_type(data: bytes, content_type: str | None) -> str:
    """The media type of a manifest: its own ``mediaType`` field, else the response header.

    OCI makes the field optional, so a registry's ``Content-Type`` is the fallback; a document
    with neither is classified by shape (``manifests`` = index, ``layers`` = image manifest).
    """
    document = _load_object(data, "manifest")
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = (content_type or "").split(";", 1)[0].strip()
    if header in INDEX_TYPES or header in IMAGE_MANIFEST_TYPES:
        return header
    if "manifests" in document:
        return OCI_INDEX
    if "layers" in document:
        return OCI_MANIFEST
    return header or "unknown"


def parse_index(data: bytes, media_type: str) -> Index:
    """Parse an OCI image index or a Docker manifest list."""
    document = _load_object(data, "index")
    entries = _field(document, "manifests", list, "index")
    return Index(
        media_type=media_type,
        manifests=tuple(
            _descriptor(entry, f"index entry {position}") for position, entry in enumerate(entries)
        ),
    )


def parse_image_manifest(data: bytes, media_type: str) -> ImageManifest:
    """Parse an OCI or Docker schema 2 image manifest."""
    document = _load_object(data, "image manifest")
    config = _descriptor(document.get("config"), "image manifest config")
    if config.media_type not in CONFIG_TYPES:
        raise ManifestError(f"image manifest config has media type {config.media_type!r}")
    layers = _field(document, "layers", list, "image manifest")
    return ImageManifest(
        media_type=media_type,
        config=config,
        layers=tuple(
            _descriptor(layer, f"image manifest layer {position}")
            for position, layer in enumerate(layers)
        ),
    )


def parse_config(data: bytes) -> ImageConfig:
    """Parse the os/architecture/variant fields of an image configuration."""
    document = _load_object(data, "image config")
    variant = document.get("variant")
    return ImageConfig(
        os=_field(document, "os", str, "image config"),
        architecture=_field(document, "architecture", str, "image config"),
        variant=variant if isinstance(variant, str) and variant else None,
    )
