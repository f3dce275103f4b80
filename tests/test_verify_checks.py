"""The checks: allow-glob semantics of the deep check (absolute paths, ``*`` crossing
directories), the verification of crafted images in process against a loopback registry, how
the registry client reads a manifest or config whole, and the ``--json`` document a result
makes."""

from __future__ import annotations

import contextlib
import re
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.hostile_registry import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Handler,
    HostileRegistry,
)
from tests.verify_bytes import (
    AARCH64,
    X86_64,
    Entry,
    descriptor,
    elf_header,
    gzip_bytes,
    json_bytes,
    tar_bytes,
)
from verify.auth import CredentialResolver
from verify.checks import (
    EXIT_ERROR,
    EXIT_FAILED,
    ElfReport,
    ImageResult,
    LayerScanner,
    Options,
    PlatformResult,
    Problem,
    Verifier,
    is_allowed,
    normalize_allow_glob,
)
from verify.contract import RunSummary
from verify.digests import SizeMismatch, sha256_digest
from verify.manifests import Descriptor
from verify.platforms import Platform, parse_platform
from verify.reference import Reference, parse_reference
from verify.registry import (
    MAX_DOCUMENT_BYTES,
    RegistryClient,
    RegistryError,
    RetryPolicy,
    TimedOut,
)
from verify.report import image_report, printable
from verify.tarscan import ElfFile


@pytest.mark.parametrize(
    ("glob", "normalized"),
    [
        ("/opt/cross/*", "/opt/cross/*"),
        ("usr/lib/*.node", "/usr/lib/*.node"),
        ("./bin/app", "/bin/app"),
        ("*/pprof.node", "*/pprof.node"),
    ],
)
def test_globs_are_made_absolute(glob: str, normalized: str) -> None:
    assert normalize_allow_glob(glob) == normalized


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/opt/cross/busybox-amd64", True),
        ("/opt/cross/deep/tree/tool", True),  # fnmatch's * also matches "/"
        ("/opt/crossing/tool", False),
        ("/usr/src/app/node_modules/pprof/build/pprof.node", True),
        ("/usr/src/app/node_modules/pprof/build/pprof.so", False),
        ("/bin/busybox", False),
    ],
)
def test_allowed_paths(path: str, allowed: bool) -> None:
    globs = [normalize_allow_glob(glob) for glob in ("/opt/cross/*", "*/pprof/build/*.node")]
    assert is_allowed(path, globs) is allowed


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text: ünïcode is fine", "plain text: ünïcode is fine"),
        ("ünï\tcode", "ünï\\tcode"),
        ("line\nverified x", "line\\nverified x"),
        ("\x1b[2Kred\x07", "\\x1b[2Kred\\x07"),
        ("bidi \u202eevil", "bidi \\u202eevil"),
        ("bad utf-8 \udcff", "bad utf-8 \\udcff"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown


# The verification in process, against a loopback registry.

REPOSITORY = "shop/app"
ARM64, AMD64 = Platform.of("linux", "arm64"), Platform.of("linux", "amd64")
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.fixture
def registry() -> Iterator[HostileRegistry]:
    server = HostileRegistry().start()
    yield server
    server.stop()


def _client(seconds: float = float("inf")) -> RegistryClient:
    """A client that tries once, with the run's deadline ``seconds`` away."""
    return RegistryClient(
        CredentialResolver(use_gcp=False, environ={}),
        RetryPolicy(attempts=1),
        run_deadline=time.monotonic() + seconds,
        run_limit=f"the test's {seconds:g} s",
    )


def _verify(registry: HostileRegistry, *platforms: Platform, **options: Any) -> ImageResult:
    """Verify ``REPOSITORY:v1`` of ``registry`` for ``platforms``."""
    text = f"{registry.address}/{REPOSITORY}:v1"
    verifier = Verifier(_client(), Options(platforms=platforms, **options), layer_workers=2)
    return verifier.verify_all([(text, parse_reference(text))])[0]


def _push_index(registry: HostileRegistry, *entries: tuple[str, bytes]) -> None:
    """Serve an OCI index at ``v1`` of ``(platform, image manifest)`` entries."""
    manifests = [descriptor(OCI_MANIFEST, manifest, platform) for platform, manifest in entries]
    index = json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    registry.put(f"/v2/{REPOSITORY}/manifests/v1", index, OCI_INDEX)


def _arm64_manifest(registry: HostileRegistry, *layers: bytes) -> bytes:
    """Serve an arm64 image of ``layers`` (its config, blobs and manifest); its manifest."""
    return registry.image(REPOSITORY, "arm64-only", {"arm64": layers}).manifests["arm64"]


ARM64_LAYER = gzip_bytes(tar_bytes([Entry("bin/app", elf_header(AARCH64))]))


def test_a_hard_link_to_an_elf_file_of_a_lower_layer_is_checked_with_its_machine(
    registry: HostileRegistry,
) -> None:
    lower = gzip_bytes(
        tar_bytes(
            [
                Entry("bin/app", elf_header(AARCH64)),
                Entry("opt/cross/tool", elf_header(X86_64)),
                Entry("etc/motd", b"hello"),
            ]
        )
    )
    upper = gzip_bytes(
        tar_bytes(
            [
                Entry("usr/bin/app", kind=tarfile.LNKTYPE, target="bin/app"),
                Entry("usr/bin/tool", kind=tarfile.LNKTYPE, target="opt/cross/tool"),
                Entry("etc/issue", kind=tarfile.LNKTYPE, target="etc/motd"),  # no ELF file
            ]
        )
    )
    registry.image(REPOSITORY, "v1", {"arm64": [lower, upper]})

    result = _verify(registry, ARM64, deep=True, allow=("/opt/cross/*",))

    # /opt/cross/tool is allowed; the other name of its bytes is not.
    tool = ElfFile("/usr/bin/tool", X86_64, link_target="/opt/cross/tool")
    elf = result.platforms["linux/arm64"].elf
    assert elf == ElfReport(checked=4, mismatched=1, first_mismatches=[tool])
    assert result.problems == [
        Problem(
            "linux/arm64",
            "/usr/bin/tool (a hard link to /opt/cross/tool) is an ELF binary for x86-64, "
            "expected AArch64",
            EXIT_FAILED,
        )
    ]


def test_a_platform_entry_the_registry_serves_as_a_manifest_list_fails_naming_that_type(
    registry: HostileRegistry,
) -> None:
    # No mediaType field and a shape of an image manifest: the Content-Type decides.
    document = json_bytes({"schemaVersion": 2, "layers": []})
    digest = sha256_digest(document)
    registry.put(f"/v2/{REPOSITORY}/manifests/{digest}", document, DOCKER_MANIFEST_LIST)
    _push_index(registry, ("linux/arm64", document))

    result = _verify(registry, ARM64, deep=False)

    assert result.platforms == {}
    assert result.problems == [
        Problem(
            "linux/arm64",
            f"{digest} has media type {DOCKER_MANIFEST_LIST!r}, not an image manifest",
            EXIT_FAILED,
        )
    ]
    assert result.exit_code == EXIT_FAILED


def test_a_malformed_platform_manifest_is_an_error_and_the_next_platform_is_still_verified(
    registry: HostileRegistry,
) -> None:
    arm64 = _arm64_manifest(registry, ARM64_LAYER)
    malformed = json_bytes({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})
    registry.put(f"/v2/{REPOSITORY}/manifests/{sha256_digest(malformed)}", malformed, OCI_MANIFEST)
    _push_index(registry, ("linux/amd64", malformed), ("linux/arm64", arm64))

    result = _verify(registry, AMD64, ARM64, deep=False)

    assert result.problems == [
        Problem(
            "linux/amd64",
            f"manifest {sha256_digest(malformed)}: image manifest config is not a JSON object",
            EXIT_ERROR,
        )
    ]
    assert result.platforms == {
        "linux/arm64": PlatformResult(digest=sha256_digest(arm64), config_architecture="arm64")
    }
    assert result.exit_code == EXIT_ERROR


def test_a_platform_manifest_whose_bytes_differ_from_its_digest_is_an_error(
    registry: HostileRegistry,
) -> None:
    manifest = _arm64_manifest(registry, ARM64_LAYER)
    digest = sha256_digest(manifest)
    # Still a valid manifest of the same image, and as long: only its digest tells.
    other = manifest.replace(b", ", b" ,", 1)
    registry.put(f"/v2/{REPOSITORY}/manifests/{digest}", other, OCI_MANIFEST)
    _push_index(registry, ("linux/arm64", manifest))

    result = _verify(registry, ARM64, deep=False)

    assert result.platforms == {}
    assert result.problems == [
        Problem(
            "linux/arm64",
            f"manifest: content digest is {sha256_digest(other)}, expected {digest}",
            EXIT_ERROR,
        )
    ]


def test_a_layer_download_that_breaks_off_twice_is_read_again_from_byte_0(
    registry: HostileRegistry,
) -> None:
    manifest = _arm64_manifest(registry, ARM64_LAYER)
    _push_index(registry, ("linux/arm64", manifest))
    answers: list[str] = []

    def break_off_twice(handler: Handler) -> None:
        whole = len(answers) == 2
        answers.append("whole" if whole else "broken off")
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(ARM64_LAYER)))
        handler.end_headers()
        handler.wfile.write(ARM64_LAYER if whole else ARM64_LAYER[: len(ARM64_LAYER) // 2])
        handler.close_connection = True

    registry.on(registry.blob_path(REPOSITORY, ARM64_LAYER), break_off_twice)

    result = _verify(registry, ARM64, deep=True)

    assert result.problems == []
    assert result.platforms["linux/arm64"].elf == ElfReport(checked=1)
    assert answers == ["broken off", "broken off", "whole"]


def _config_manifest(registry: HostileRegistry, config: bytes, declared: int = 0) -> bytes:
    """Serve an image manifest (no layers) whose config is ``config``, described as ``declared``
    bytes long (its length if 0); its bytes."""
    registry.put(registry.blob_path(REPOSITORY, config), config, OCI_CONFIG)
    described = descriptor(OCI_CONFIG, config)
    described["size"] = declared or len(config)
    manifest = json_bytes(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": described, "layers": []}
    )
    registry.put(f"/v2/{REPOSITORY}/manifests/{sha256_digest(manifest)}", manifest, OCI_MANIFEST)
    return manifest


def test_the_index_entrys_variant_stands_in_for_a_config_that_declares_none(
    registry: HostileRegistry,
) -> None:
    manifest = _config_manifest(registry, json_bytes({"architecture": "arm", "os": "linux"}))
    _push_index(registry, ("linux/arm/v7", manifest))

    result = _verify(registry, Platform.of("linux", "arm", "v7"), deep=False)

    assert result.problems == []
    assert result.platforms == {
        "linux/arm/v7": PlatformResult(digest=sha256_digest(manifest), config_architecture="arm")
    }


def test_a_config_variant_other_than_the_index_entrys_fails_naming_both(
    registry: HostileRegistry,
) -> None:
    config = json_bytes({"architecture": "arm", "os": "linux", "variant": "v7"})
    manifest = _config_manifest(registry, config)
    _push_index(registry, ("linux/arm/v6", manifest))

    result = _verify(registry, Platform.of("linux", "arm", "v6"), deep=False)

    assert result.problems == [
        Problem(
            "linux/arm/v6",
            "the index entry says linux/arm/v6 but its image config says linux/arm/v7",
            EXIT_FAILED,
        )
    ]
    assert result.platforms == {
        "linux/arm/v6": PlatformResult(digest=sha256_digest(manifest), config_architecture="arm")
    }


def test_a_config_longer_than_its_descriptor_fails(registry: HostileRegistry) -> None:
    config = json_bytes({"architecture": "arm64", "os": "linux"})
    manifest = _config_manifest(registry, config, declared=len(config) - 1)
    _push_index(registry, ("linux/arm64", manifest))

    result = _verify(registry, ARM64, deep=False)

    assert result.platforms == {}
    assert result.problems == [
        Problem(
            "linux/arm64",
            f"config {sha256_digest(config)} goes on after the {len(config) - 1} bytes its "
            "descriptor declares",
            EXIT_FAILED,
        )
    ]


def test_a_config_whose_bytes_differ_from_its_digest_is_an_error(
    registry: HostileRegistry,
) -> None:
    config = json_bytes({"architecture": "arm64", "os": "linux"})
    manifest = _config_manifest(registry, config)
    other = config.replace(b", ", b" ,", 1)  # as long, still a valid arm64 config
    registry.put(registry.blob_path(REPOSITORY, config), other, OCI_CONFIG)
    _push_index(registry, ("linux/arm64", manifest))

    result = _verify(registry, ARM64, deep=False)

    digest = sha256_digest(config)
    assert result.platforms == {}
    assert result.problems == [
        Problem(
            "linux/arm64",
            f"config {digest}: content digest is {sha256_digest(other)}, expected {digest}",
            EXIT_ERROR,
        )
    ]


# What the reference itself names: an index, a single-platform manifest, or neither.

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _verify_at(registry: HostileRegistry, at: str, *platforms: Platform) -> ImageResult:
    """Verify ``REPOSITORY`` at ``at`` (``:tag`` or ``@digest``), not deep."""
    text = f"{registry.address}/{REPOSITORY}{at}"
    verifier = Verifier(_client(), Options(platforms=platforms, deep=False), layer_workers=2)
    return verifier.verify_all([(text, parse_reference(text))])[0]


def test_a_reference_to_neither_an_index_nor_a_manifest_fails_for_every_platform(
    registry: HostileRegistry,
) -> None:
    document = json_bytes({"schemaVersion": 2, "mediaType": "application/vnd.example+json"})
    registry.put(f"/v2/{REPOSITORY}/manifests/v1", document, OCI_INDEX)

    result = _verify_at(registry, ":v1", ARM64, AMD64)

    assert result.media_type == "application/vnd.example+json"
    assert result.digest == sha256_digest(document)
    assert result.problems == [
        Problem(
            "linux/arm64, linux/amd64",
            "media type 'application/vnd.example+json' is neither an image index nor an image "
            "manifest",
            EXIT_FAILED,
        )
    ]
    assert result.exit_code == EXIT_FAILED


def test_a_malformed_index_is_an_error_for_every_platform(registry: HostileRegistry) -> None:
    document = json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": 5})
    registry.put(f"/v2/{REPOSITORY}/manifests/v1", document, OCI_INDEX)

    result = _verify_at(registry, ":v1", ARM64, AMD64)

    assert result.problems == [
        Problem(
            "linux/arm64, linux/amd64",
            "the manifest is malformed: index: field 'manifests' is missing or not a list",
            EXIT_ERROR,
        )
    ]


def test_a_reference_by_digest_to_other_bytes_is_an_error(registry: HostileRegistry) -> None:
    manifest = _arm64_manifest(registry, ARM64_LAYER)
    digest = sha256_digest(manifest)
    other = manifest.replace(b", ", b" ,", 1)  # as long, still the same image
    registry.put(f"/v2/{REPOSITORY}/manifests/{digest}", other, OCI_MANIFEST)

    result = _verify_at(registry, f"@{digest}", ARM64)

    assert result.platforms == {}
    assert result.problems == [
        Problem(
            "linux/arm64",
            f"manifest: content digest is {sha256_digest(other)}, expected {digest}",
            EXIT_ERROR,
        )
    ]


def test_a_single_manifest_is_read_again_by_digest_bounded_by_its_first_length(
    registry: HostileRegistry,
) -> None:
    manifest = _arm64_manifest(registry, ARM64_LAYER)
    registry.put(f"/v2/{REPOSITORY}/manifests/v1", manifest, OCI_MANIFEST)
    # By digest the registry sends one byte more: refused as too long, not read to the end.
    longer = manifest + b"\n"
    registry.put(f"/v2/{REPOSITORY}/manifests/{sha256_digest(manifest)}", longer, OCI_MANIFEST)

    result = _verify_at(registry, ":v1", ARM64)

    assert result.problems == [
        Problem(
            "linux/arm64",
            f"manifest {sha256_digest(manifest)} goes on after the {len(manifest)} bytes its "
            "descriptor declares",
            EXIT_FAILED,
        )
    ]


def test_a_single_manifest_without_a_media_type_field_takes_its_content_type(
    registry: HostileRegistry,
) -> None:
    config = json_bytes({"architecture": "arm64", "os": "linux"})
    registry.put(registry.blob_path(REPOSITORY, config), config, OCI_CONFIG)
    manifest = json_bytes(
        {"schemaVersion": 2, "config": descriptor(OCI_CONFIG, config), "layers": []}
    )
    registry.put(f"/v2/{REPOSITORY}/manifests/v1", manifest, DOCKER_MANIFEST)
    registry.put(f"/v2/{REPOSITORY}/manifests/{sha256_digest(manifest)}", manifest, DOCKER_MANIFEST)

    result = _verify_at(registry, ":v1", ARM64)

    assert result.problems == []
    assert result.media_type == DOCKER_MANIFEST
    assert result.platforms == {
        "linux/arm64": PlatformResult(digest=sha256_digest(manifest), config_architecture="arm64")
    }


def test_a_single_manifests_config_longer_than_its_descriptor_fails_for_every_platform(
    registry: HostileRegistry,
) -> None:
    config = json_bytes({"architecture": "arm64", "os": "linux"})
    manifest = _config_manifest(registry, config, declared=len(config) - 1)
    registry.put(f"/v2/{REPOSITORY}/manifests/v1", manifest, OCI_MANIFEST)

    result = _verify_at(registry, ":v1", ARM64, AMD64)

    assert result.platforms == {}
    assert result.problems == [
        Problem(
            "linux/arm64, linux/amd64",
            f"config {sha256_digest(config)} goes on after the {len(config) - 1} bytes its "
            "descriptor declares",
            EXIT_FAILED,
        )
    ]
    assert result.exit_code == EXIT_FAILED


# How many images, platforms and layers are read at once.


class _Held:
    """A responder holding requests, then answering 404 to all: once ``limit + 1`` are held at
    once, or ``limit`` are and no other comes for ``quiet`` seconds, or ``patience`` seconds
    after the first came; ``most`` is the most it held at once."""

    def __init__(self, limit: int, quiet: float = 0.3, patience: float = 3.0) -> None:
        self._limit, self._quiet, self._patience = limit, quiet, patience
        self._condition = threading.Condition()
        self._open = False
        self._first = self._last = 0.0
        self.held = self.most = 0

    def __call__(self, handler: Handler) -> None:
        with self._condition:
            self.held += 1
            self.most = max(self.most, self.held)
            self._last = time.monotonic()
            self._first = self._first or self._last
            self._open = self._open or self.held > self._limit
            self._condition.notify_all()
            while not self._open:
                until = self._first + self._patience
                if self.held >= self._limit:
                    until = min(until, self._last + self._quiet)
                left = until - time.monotonic()
                if left <= 0:
                    self._open = True
                    self._condition.notify_all()
                    break
                self._condition.wait(left)
            self.held -= 1
        handler.reply(404, b"{}", {"Content-Type": "application/json"})


def test_at_most_eight_images_are_read_at_once(registry: HostileRegistry) -> None:
    held = _Held(limit=8)
    texts = [f"{registry.address}/{REPOSITORY}:v{number}" for number in range(9)]
    for number in range(9):
        registry.on(f"/v2/{REPOSITORY}/manifests/v{number}", held)
    verifier = Verifier(_client(), Options(platforms=(ARM64,), deep=False), layer_workers=2)

    results = verifier.verify_all([(text, parse_reference(text)) for text in texts])

    assert held.most == 8
    assert [result.ref for result in results] == texts
    assert all(result.exit_code == EXIT_ERROR for result in results)


NINE_PLATFORMS = tuple(
    parse_platform(text)
    for text in (
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
        "linux/mips64le",
    )
)


def test_at_most_eight_platforms_are_read_at_once(registry: HostileRegistry) -> None:
    held = _Held(limit=8)
    entries = [(str(platform), str(platform).encode()) for platform in NINE_PLATFORMS]
    for _, manifest in entries:
        registry.on(f"/v2/{REPOSITORY}/manifests/{sha256_digest(manifest)}", held)
    _push_index(registry, *entries)

    result = _verify(registry, *NINE_PLATFORMS, deep=False)

    assert held.most == 8
    assert [problem.platforms for problem in result.problems] == [
        str(platform) for platform in NINE_PLATFORMS
    ]


def test_layers_are_read_by_as_many_workers_as_asked(registry: HostileRegistry) -> None:
    held = _Held(limit=1)
    layers = [gzip_bytes(tar_bytes([Entry(f"bin/app{number}", b"")])) for number in range(2)]
    _push_index(registry, ("linux/arm64", _arm64_manifest(registry, *layers)))
    for layer in layers:
        registry.on(registry.blob_path(REPOSITORY, layer), held)
    text = f"{registry.address}/{REPOSITORY}:v1"
    verifier = Verifier(_client(), Options(platforms=(ARM64,), deep=True), layer_workers=1)

    result = verifier.verify_all([(text, parse_reference(text))])[0]

    assert held.most == 1
    assert result.exit_code == EXIT_ERROR


@pytest.mark.parametrize("sbom", [False, True])
def test_a_layer_scan_keeps_an_inventory_only_for_an_sbom(
    registry: HostileRegistry, sbom: bool
) -> None:
    """Without --sbom nothing of the content is kept (package files, jars read whole)."""
    os_release = b"ID=alpine\n"
    layer = gzip_bytes(tar_bytes([Entry("etc/os-release", os_release)]))
    registry.put(registry.blob_path(REPOSITORY, layer), layer, OCI_LAYER)
    reference = parse_reference(f"{registry.address}/{REPOSITORY}:v1")
    blob = Descriptor(OCI_LAYER, sha256_digest(layer), len(layer), None, {})
    with ThreadPoolExecutor(1) as pool:
        scanner = LayerScanner(_client(), pool, attempts=1, max_bytes=1 << 20, sbom=sbom)
        scan = scanner.scan(reference, blob).result()

    assert scan.regular_files == 1
    if sbom:
        assert scan.inventory is not None
        assert scan.inventory.files == {"/etc/os-release": os_release}
    else:
        assert scan.inventory is None


# Manifests and configs are read whole, bounded by their size and their deadline.

CONFIG_DIGEST = sha256_digest(b"config")


def _reference(registry: HostileRegistry) -> Reference:
    return parse_reference(f"{registry.address}/{REPOSITORY}:v1")


def test_a_document_that_goes_on_after_its_size_is_refused_without_reading_on(
    registry: HostileRegistry,
) -> None:
    """Past 64 KiB, the second read asks for the rest and one byte: with that byte the size is
    known exceeded, so a registry announcing more and sending nothing further cannot hold the
    request up until its deadline."""
    size = 70000

    def one_byte_more_then_nothing(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(1 << 20))
        handler.end_headers()
        handler.wfile.write(bytes(size + 1))
        handler.wfile.flush()
        handler.connection.settimeout(5)
        with contextlib.suppress(OSError):
            handler.rfile.read(1)  # until the client hangs up

    registry.on(registry.blob_path(REPOSITORY, b"config"), one_byte_more_then_nothing)

    with pytest.raises(SizeMismatch) as raised:
        _client(seconds=2).get_blob(_reference(registry), CONFIG_DIGEST, "config c", size)

    assert str(raised.value) == "config c goes on after the 70000 bytes its descriptor declares"


def test_a_document_shorter_than_its_descriptor_fails_with_both_sizes(
    registry: HostileRegistry,
) -> None:
    registry.on(registry.blob_path(REPOSITORY, b"config"), lambda h: h.reply(200, b"12345"))

    with pytest.raises(SizeMismatch) as raised:
        _client().get_blob(_reference(registry), CONFIG_DIGEST, "config c", 8)

    assert str(raised.value) == "config c is 5 bytes; its descriptor declares 8"


def test_a_document_whose_connection_breaks_off_is_an_error_naming_it(
    registry: HostileRegistry,
) -> None:
    def half_then_close(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "8")
        handler.end_headers()
        handler.wfile.write(b"1234")
        handler.close_connection = True

    registry.on(registry.blob_path(REPOSITORY, b"config"), half_then_close)

    with pytest.raises(RegistryError) as raised:
        _client().get_blob(_reference(registry), CONFIG_DIGEST, "config c", 8)

    assert str(raised.value).startswith("config c: download broke off: "), raised.value
    assert "IncompleteRead(4 bytes read, 4 more expected)" in str(raised.value)


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-bound", "one-byte-over"])
def test_a_document_of_the_bound_is_read_and_one_byte_more_refused(
    registry: HostileRegistry, extra: int
) -> None:
    body = bytes(MAX_DOCUMENT_BYTES + extra)
    registry.on(f"/v2/{REPOSITORY}/manifests/v1", lambda h: h.reply(200, body))

    if extra:
        with pytest.raises(RegistryError) as raised:
            _client().get_manifest(_reference(registry), "v1")
        assert str(raised.value) == f"manifest v1 is larger than {MAX_DOCUMENT_BYTES} bytes"
    else:
        assert _client().get_manifest(_reference(registry), "v1").data == body


def test_a_document_sent_with_a_content_encoding_is_read_decoded(
    registry: HostileRegistry,
) -> None:
    index = json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    headers = {"Content-Encoding": "gzip", "Content-Type": OCI_INDEX}
    registry.on(
        f"/v2/{REPOSITORY}/manifests/v1", lambda h: h.reply(200, gzip_bytes(index), headers)
    )

    document = _client().get_manifest(_reference(registry), "v1")

    assert (document.data, document.content_type) == (index, OCI_INDEX)


def test_a_document_cut_at_its_deadline_is_reported_with_the_bytes_read(
    registry: HostileRegistry,
) -> None:
    """One chunk of 64 KiB, then the next chunk's size line one character at a time: every
    socket read gets a byte in time, so only the deadline ends the request, 65536 bytes in."""

    def chunk_then_drip(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"10000\r\n" + bytes(65536) + b"\r\n1;")
        with contextlib.suppress(OSError):
            for _ in range(100):
                handler.wfile.write(b"x")  # a chunk extension that never ends
                handler.wfile.flush()
                time.sleep(0.05)

    registry.on(f"/v2/{REPOSITORY}/manifests/v1", chunk_then_drip)

    with pytest.raises(TimedOut) as raised:
        _client(seconds=0.4).get_manifest(_reference(registry), "v1")

    message = re.escape(
        f"manifest v1: no complete answer from {registry.address} within the test's 0.4 s "
        "(65536 bytes in "
    )
    assert re.fullmatch(message + r"[0-9]+ s\)", str(raised.value)), raised.value


def test_a_document_ending_with_its_connection_after_its_deadline_is_no_answer(
    registry: HostileRegistry,
) -> None:
    """A body without a length trickles on past the deadline, then its connection closes: that
    end is no complete answer in time."""

    def trickle_then_close(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(34):  # for 0.85 s, each byte in time for a read
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.025)
        handler.close_connection = True

    registry.on(f"/v2/{REPOSITORY}/manifests/v1", trickle_then_close)

    with pytest.raises(TimedOut) as raised:
        _client(seconds=0.4).get_manifest(_reference(registry), "v1")

    message = re.escape(
        f"manifest v1: no complete answer from {registry.address} within the test's 0.4 s ("
    )
    assert re.fullmatch(message + r"[0-9]+ bytes in [0-9]+ s\)", str(raised.value)), raised.value


# The --json document of a result.

STARTED = RunSummary(ok=True, probe="tcp:8080", seconds=1.5, exit_code=None, log_tail=("up",))


def _two_platform_result() -> ImageResult:
    return ImageResult(
        ref="r.example/shop/app:v1",
        digest="sha256:" + "0" * 64,
        media_type=OCI_INDEX,
        platforms={
            "linux/amd64": PlatformResult("sha256:" + "1" * 64, "amd64"),
            "linux/arm64": PlatformResult("sha256:" + "2" * 64, "arm64"),
        },
    )


def test_the_report_carries_the_run_of_each_started_platform() -> None:
    report = image_report(_two_platform_result(), {"linux/arm64": STARTED})
    assert {name: platform.run for name, platform in report.platforms.items()} == {
        "linux/amd64": None,
        "linux/arm64": STARTED,
    }


def test_a_report_without_runs_has_no_run_anywhere() -> None:
    report = image_report(_two_platform_result())
    assert [platform.run for platform in report.platforms.values()] == [None, None]


def test_the_json_document_is_indented_by_two_spaces() -> None:
    result = _two_platform_result()
    result.platforms["linux/arm64"].elf = ElfReport(checked=3)
    report = image_report(result, {"linux/arm64": STARTED})
    assert report.to_json() == (
        "{\n"
        '  "ref": "r.example/shop/app:v1",\n'
        f'  "digest": "sha256:{"0" * 64}",\n'
        f'  "mediaType": "{OCI_INDEX}",\n'
        '  "platforms": {\n'
        '    "linux/amd64": {\n'
        f'      "digest": "sha256:{"1" * 64}",\n'
        '      "configArchitecture": "amd64",\n'
        '      "elf": null\n'
        "    },\n"
        '    "linux/arm64": {\n'
        f'      "digest": "sha256:{"2" * 64}",\n'
        '      "configArchitecture": "arm64",\n'
        '      "elf": {\n'
        '        "checked": 3,\n'
        '        "mismatched": 0,\n'
        '        "mismatchedPaths": []\n'
        "      },\n"
        '      "run": {\n'
        '        "ok": true,\n'
        '        "probe": "tcp:8080",\n'
        '        "seconds": 1.5,\n'
        '        "exitCode": null,\n'
        '        "logTail": [\n'
        '          "up"\n'
        "        ]\n"
        "      }\n"
        "    }\n"
        "  },\n"
        '  "attestations": 0\n'
        "}"
    )
