"""Manifest documents on crafted JSON: index variants, attestations, media type fallbacks."""

from __future__ import annotations

import pytest

from tests.verify_bytes import descriptor, json_bytes
from verify.digests import DigestMismatch, check_bytes, sha256_digest
from verify.manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ManifestError,
    document_media_type,
    parse_config,
    parse_image_manifest,
    parse_index,
)
from verify.platforms import Platform

CONFIG = json_bytes({"os": "linux", "architecture": "arm64", "variant": "v8", "rootfs": {}})


def _attestation(subject: str) -> dict[str, object]:
    entry = descriptor(OCI_MANIFEST, b"attestation", "unknown/unknown")
    entry["annotations"] = {
        "vnd.docker.reference.digest": subject,
        "vnd.docker.reference.type": "attestation-manifest",
    }
    return entry


def test_oci_index_with_attestations() -> None:
    amd, arm = (
        descriptor(OCI_MANIFEST, b"a", "linux/amd64"),
        descriptor(OCI_MANIFEST, b"b", "linux/arm64/v8"),
    )
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [amd, arm, _attestation(str(amd["digest"])), _attestation(str(arm["digest"]))],
    }
    index = parse_index(json_bytes(document), OCI_INDEX)
    assert [entry.platform for entry in index.manifests[:2]] == [
        Platform("linux", "amd64"),
        Platform("linux", "arm64"),
    ]
    assert [entry.is_attestation for entry in index.manifests] == [False, False, True, True]


def test_unknown_platform_without_annotation_is_still_an_attestation() -> None:
    entry = parse_index(
        json_bytes({"manifests": [descriptor(OCI_MANIFEST, b"x", "unknown/unknown")]}), OCI_INDEX
    ).manifests[0]
    assert entry.is_attestation


def test_docker_manifest_list() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [descriptor(DOCKER_MANIFEST, b"a", "linux/amd64")],
    }
    data = json_bytes(document)
    assert document_media_type(data, "application/json") == DOCKER_MANIFEST_LIST
    index = parse_index(data, DOCKER_MANIFEST_LIST)
    assert index.manifests[0].media_type == DOCKER_MANIFEST
    assert not index.manifests[0].is_attestation


@pytest.mark.parametrize(
    ("document", "content_type", "expected"),
    [
        ({"manifests": []}, f"{OCI_INDEX}; charset=utf-8", OCI_INDEX),
        ({"manifests": []}, None, OCI_INDEX),
        ({"layers": [], "config": {}}, None, OCI_MANIFEST),
        ({"mediaType": DOCKER_MANIFEST, "layers": []}, OCI_MANIFEST, DOCKER_MANIFEST),
        ({"schemaVersion": 1, "fsLayers": []}, "application/json", "application/json"),
    ],
)
def test_media_type_field_then_header_then_shape(
    document: dict[str, object], content_type: str | None, expected: str
) -> None:
    assert document_media_type(json_bytes(document), content_type) == expected


def test_image_manifest_and_config() -> None:
    layer = descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b"layer")
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
        "layers": [layer],
    }
    manifest = parse_image_manifest(json_bytes(document), OCI_MANIFEST)
    assert manifest.config.digest == sha256_digest(CONFIG)
    assert [entry.digest for entry in manifest.layers] == [layer["digest"]]
    config = parse_config(CONFIG)
    assert (config.os, config.architecture, config.variant) == ("linux", "arm64", "v8")
    assert config.platform == Platform("linux", "arm64")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json_bytes({"manifests": "x"}), "'manifests' is missing"),
        (json_bytes({"manifests": [{"mediaType": OCI_MANIFEST, "size": 1}]}), "'digest'"),
        (
            json_bytes(
                {"manifests": [{"mediaType": OCI_MANIFEST, "size": 1, "digest": "sha256:12"}]}
            ),
            "not a sha256 digest",
        ),
        (
            json_bytes({"manifests": [{**descriptor(OCI_MANIFEST, b"a"), "size": True}]}),
            "'size'",
        ),
        (
            json_bytes({"manifests": [{**descriptor(OCI_MANIFEST, b"a"), "platform": {"os": 1}}]}),
            "'os'",
        ),
    ],
)
def test_malformed_indexes_are_rejected_with_the_field(data: bytes, complaint: str) -> None:
    with pytest.raises(ManifestError, match=complaint):
        parse_index(data, OCI_INDEX)


def test_manifest_with_a_foreign_config_type_is_rejected() -> None:
    document = {
        "config": descriptor("application/vnd.cncf.helm.config.v1+json", b"{}"),
        "layers": [],
    }
    with pytest.raises(ManifestError, match="helm"):
        parse_image_manifest(json_bytes(document), OCI_MANIFEST)


def test_config_without_architecture_is_rejected() -> None:
    with pytest.raises(ManifestError, match="'architecture'"):
        parse_config(json_bytes({"os": "linux"}))


def test_check_bytes_reports_both_digests() -> None:
    expected = sha256_digest(b"right")
    check_bytes("manifest", b"right", expected)
    with pytest.raises(DigestMismatch) as raised:
        check_bytes("manifest", b"wrong", expected)
    assert str(raised.value) == (
        f"manifest: content digest is {sha256_digest(b'wrong')}, expected {expected}"
    )
