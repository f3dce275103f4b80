"""Manifest documents on crafted JSON: index variants, attestations, media type fallbacks."""

from __future__ import annotations

from collections.abc import Callable

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

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
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


A_ENTRY = descriptor(OCI_MANIFEST, b"a")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (
            b"{not json",
            "index is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (
            b"\xff",
            "index is not valid JSON: 'utf-8' codec can't decode byte 0xff in position 0: "
            "invalid start byte",
        ),
        (b"[]", "index is not a JSON object"),
        (json_bytes({"manifests": "x"}), "index: field 'manifests' is missing or not a list"),
        (json_bytes({}), "index: field 'manifests' is missing or not a list"),
        (json_bytes({"manifests": ["x"]}), "index entry 0 is not a JSON object"),
        (
            json_bytes({"manifests": [{"mediaType": OCI_MANIFEST, "size": 1}]}),
            "index entry 0: field 'digest' is missing or not a str",
        ),
        (
            json_bytes(
                {"manifests": [{"mediaType": OCI_MANIFEST, "size": 1, "digest": "sha256:12"}]}
            ),
            "index entry 0: digest 'sha256:12' is not a sha256 digest",
        ),
        (
            json_bytes({"manifests": [A_ENTRY, {**A_ENTRY, "size": True}]}),
            "index entry 1: field 'size' is missing or not a int",
        ),
        (
            json_bytes({"manifests": [{**A_ENTRY, "mediaType": 3}]}),
            "index entry 0: field 'mediaType' is missing or not a str",
        ),
        (
            json_bytes({"manifests": [{**A_ENTRY, "platform": {"os": 1}}]}),
            "index entry 0 platform: field 'os' is missing or not a str",
        ),
        (
            json_bytes({"manifests": [{**A_ENTRY, "platform": {"os": "linux"}}]}),
            "index entry 0 platform: field 'architecture' is missing or not a str",
        ),
        (
            json_bytes({"manifests": [{**A_ENTRY, "platform": "linux/amd64"}]}),
            "index entry 0: field 'platform' is not a JSON object",
        ),
        (
            json_bytes({"manifests": [{**A_ENTRY, "annotations": ["x"]}]}),
            "index entry 0: field 'annotations' is not a JSON object",
        ),
    ],
)
def test_malformed_indexes_are_rejected_with_the_field(data: bytes, complaint: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_index(data, OCI_INDEX)
    assert str(raised.value) == complaint


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"layers": []}, "image manifest config is not a JSON object"),
        (
            {"config": descriptor(CONFIG_TYPE, b"{}"), "layers": {}},
            "image manifest: field 'layers' is missing or not a list",
        ),
        (
            {"config": descriptor(CONFIG_TYPE, b"{}"), "layers": [1]},
            "image manifest layer 0 is not a JSON object",
        ),
        (
            {"config": {**descriptor(CONFIG_TYPE, b"{}"), "digest": "md5:0"}},
            "image manifest config: digest 'md5:0' is not a sha256 digest",
        ),
    ],
)
def test_malformed_image_manifests_are_rejected_with_the_field(
    document: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_image_manifest(json_bytes(document), OCI_MANIFEST)
    assert str(raised.value) == complaint


def test_a_variant_that_is_not_a_string_or_is_empty_is_no_variant() -> None:
    entry = {**A_ENTRY, "platform": {"os": "linux", "architecture": "arm", "variant": 7}}
    [parsed] = parse_index(json_bytes({"manifests": [entry]}), OCI_INDEX).manifests
    assert parsed.platform == Platform("linux", "arm")
    for variant in ("", 7):
        document = {"os": "linux", "architecture": "arm", "variant": variant}
        assert parse_config(json_bytes(document)).variant is None
    assert parse_config(json_bytes({**document, "variant": "v7"})).platform == Platform(
        "linux", "arm", "v7"
    )


def test_annotations_are_kept_as_strings() -> None:
    entry = {**A_ENTRY, "annotations": {"org.example.count": 3}}
    [parsed] = parse_index(json_bytes({"manifests": [entry]}), OCI_INDEX).manifests
    assert parsed.annotations == {"org.example.count": "3"}
    assert parsed.size == 1 and parsed.media_type == OCI_MANIFEST


def test_manifest_with_a_foreign_config_type_is_rejected() -> None:
    document = {
        "config": descriptor("application/vnd.cncf.helm.config.v1+json", b"{}"),
        "layers": [],
    }
    with pytest.raises(ManifestError) as raised:
        parse_image_manifest(json_bytes(document), OCI_MANIFEST)
    assert str(raised.value) == (
        "image manifest config has media type 'application/vnd.cncf.helm.config.v1+json'"
    )


def test_config_without_architecture_is_rejected() -> None:
    with pytest.raises(ManifestError) as raised:
        parse_config(json_bytes({"os": "linux"}))
    assert str(raised.value) == "image config: field 'architecture' is missing or not a str"
    with pytest.raises(ManifestError) as raised:
        parse_config(json_bytes({"architecture": "arm64"}))
    assert str(raised.value) == "image config: field 'os' is missing or not a str"


def test_check_bytes_reports_both_digests() -> None:
    expected = sha256_digest(b"right")
    check_bytes("manifest", b"right", expected)
    with pytest.raises(DigestMismatch) as raised:
        check_bytes("manifest", b"wrong", expected)
    assert str(raised.value) == (
        f"manifest: content digest is {sha256_digest(b'wrong')}, expected {expected}"
    )


@pytest.mark.parametrize(
    ("document", "content_type", "expected"),
    [
        ({"mediaType": "", "manifests": []}, None, OCI_INDEX),
        ({"schemaVersion": 2}, f"{OCI_INDEX}; charset=utf-8; q=1", OCI_INDEX),
        ({"layers": []}, OCI_INDEX, OCI_INDEX),
        ({"manifests": []}, OCI_MANIFEST, OCI_MANIFEST),
        ({"schemaVersion": 2}, None, "unknown"),
        ({"schemaVersion": 2}, "", "unknown"),
        ({"schemaVersion": 2}, "text/plain; charset=utf-8", "text/plain"),
    ],
)
def test_a_known_header_wins_over_the_shape_and_parameters_are_dropped(
    document: dict[str, object], content_type: str | None, expected: str
) -> None:
    assert document_media_type(json_bytes(document), content_type) == expected


@pytest.mark.parametrize(
    ("parse", "complaint"),
    [
        (lambda data: document_media_type(data, None), "manifest is not a JSON object"),
        (
            lambda data: parse_image_manifest(data, OCI_MANIFEST),
            "image manifest is not a JSON object",
        ),
        (parse_config, "image config is not a JSON object"),
    ],
    ids=["media-type", "image-manifest", "config"],
)
def test_each_document_names_itself_when_it_is_no_object(
    parse: Callable[[bytes], object], complaint: str
) -> None:
    with pytest.raises(ManifestError) as raised:
        parse(b"[]")
    assert str(raised.value) == complaint


def test_parsed_documents_keep_their_media_type_and_platform_variants() -> None:
    arm = {**A_ENTRY, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}
    bare = descriptor(OCI_MANIFEST, b"b")
    index = parse_index(json_bytes({"manifests": [arm, bare]}), DOCKER_MANIFEST_LIST)
    assert index.media_type == DOCKER_MANIFEST_LIST
    assert [entry.platform for entry in index.manifests] == [Platform("linux", "arm", "v7"), None]
    document = {"config": descriptor(CONFIG_TYPE, b"{}"), "layers": []}
    assert parse_image_manifest(json_bytes(document), DOCKER_MANIFEST).media_type == DOCKER_MANIFEST
