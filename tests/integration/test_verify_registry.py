"""``python -m verify`` against a real registry and real buildx + QEMU images.

Every check runs the CLI as a subprocess (process start, argument parsing, exit codes, stdout
and stderr as a pipeline sees them) against Debian's docker-registry on 127.0.0.1, directly or
through loopback helpers: a fault-injecting, request-counting proxy, and a token server for the
registry token flow and for google-auth's refresh endpoint.

The images, all built FROM the busybox base fixture (real amd64 and arm64 busybox binaries):

- ``good``: a builder stage on the build platform "cross-compiles" the app (copies
  /opt/cross/busybox-$TARGETARCH), the runtime stage is FROM scratch with the target's busybox.
- ``defect``: upstream's Python defect: ``FROM --platform=$BUILDPLATFORM <base> AS base`` and
  the runtime stage ``FROM base``; the arm64 image is labelled arm64 but holds x86-64 binaries.
- ``single``: one platform, no provenance: a plain image manifest, not an index.
- ``dockertypes``: a Docker manifest list with Docker media types and no attestations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import BuildxBuild, RegistryFactory
from tests.integration.dockerenv import (
    REPO_ROOT,
    Registry,
    image_platforms,
    read_manifest,
    split_ref,
)
from tests.integration.faultproxy import CORRUPT, CUT, FaultProxy
from tests.integration.registrycopy import copy_image
from tests.integration.tokenserver import TokenServer
from verify.manifests import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

CROSS_TOOLCHAIN = "/opt/cross/*"
PASSWORD = "correct horse battery staple"

GOOD_DOCKERFILE = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS builder
ARG TARGETARCH
RUN mkdir -p /out && cp /opt/cross/busybox-${TARGETARCH} /out/app
FROM scratch
ARG BASE
COPY --from=builder /out/app /usr/local/bin/app
COPY --from=base-image /bin/busybox /bin/busybox
"""

DEFECT_DOCKERFILE = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS base
FROM base AS builder
RUN mkdir -p /out && cp /bin/busybox /out/app
FROM base
COPY --from=builder /out/app /usr/local/bin/app
"""


@dataclass(frozen=True)
class Images:
    """References (tag form) of the images built for this module, and their registry."""

    registry: Registry
    base: str
    good: str
    defect: str
    single: str
    dockertypes: str


def _build(
    buildx_build: BuildxBuild,
    directory: Path,
    dockerfile: str,
    tag: str,
    base: str,
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
    extra_args: tuple[str, ...] = (),
) -> str:
    directory.mkdir()
    (directory / "Dockerfile").write_text(dockerfile)
    args = ("--build-arg", f"BASE={base}", "--build-context", f"base-image=docker-image://{base}")
    buildx_build(directory, tag, platforms, (*args, *extra_args))
    return tag


@pytest.fixture(scope="module")
def images(
    busybox_base: str,
    registry: Registry,
    buildx_build: BuildxBuild,
    tmp_path_factory: pytest.TempPathFactory,
) -> Images:
    root = tmp_path_factory.mktemp("verify-images")
    prefix = f"{registry.address}/verify-tests"
    return Images(
        registry=registry,
        base=busybox_base,
        good=_build(buildx_build, root / "good", GOOD_DOCKERFILE, f"{prefix}/good:1", busybox_base),
        defect=_build(
            buildx_build, root / "defect", DEFECT_DOCKERFILE, f"{prefix}/defect:1", busybox_base
        ),
        single=_build(
            buildx_build,
            root / "single",
            GOOD_DOCKERFILE,
            f"{prefix}/single:1",
            busybox_base,
            platforms=("linux/amd64",),
            extra_args=("--provenance=false",),
        ),
        dockertypes=_build(
            buildx_build,
            root / "dockertypes",
            GOOD_DOCKERFILE,
            f"{prefix}/dockertypes:1",
            busybox_base,
            extra_args=(
                "--provenance=false",
                "--output",
                f"type=image,name={prefix}/dockertypes:1,oci-mediatypes=false,push=true",
            ),
        ),
    )


@dataclass(frozen=True)
class Run:
    """A finished ``python -m verify`` process."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def document(self) -> dict[str, object]:
        parsed = json.loads(self.stdout)
        assert isinstance(parsed, dict), self.stdout
        return parsed

    def platform(self, name: str) -> dict[str, object]:
        platforms = self.document["platforms"]
        assert isinstance(platforms, dict)
        entry = platforms[name]
        assert isinstance(entry, dict)
        return entry


@pytest.fixture
def clean_environment(tmp_path: Path) -> dict[str, str]:
    """The environment without registry credentials and with an empty Docker config."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS")
    }
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    environ["DOCKER_CONFIG"] = str(docker_config)
    return environ


def run_verify(environ: dict[str, str], *args: str) -> Run:
    result = subprocess.run(
        [sys.executable, "-m", "verify", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def _via(proxy: FaultProxy, ref: str) -> str:
    """The same reference, addressed through the proxy."""
    return proxy.address + ref[ref.index("/") :]


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    running = FaultProxy(upstream=registry.address).start()
    yield running
    running.stop()


# A correct image, attestations, media types


def test_correct_image_passes_shallow_and_deep(
    images: Images, clean_environment: dict[str, str]
) -> None:
    _, repository, tag = split_ref(images.good)
    _, index = read_manifest(images.registry, repository, tag)
    expected_digests = image_platforms(index)

    shallow = run_verify(clean_environment, images.good, "--json")
    assert shallow.exit_code == 0, shallow.stderr
    assert shallow.document["mediaType"] == OCI_INDEX
    # buildx adds one provenance manifest per platform: listed in the index, skipped, counted.
    assert len(index["manifests"]) == 4
    assert shallow.document["attestations"] == 2
    for name, architecture in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        platform = shallow.platform(name)
        assert platform["digest"] == expected_digests[name]
        assert platform["configArchitecture"] == architecture
        assert platform["elf"] is None

    deep = run_verify(clean_environment, images.good, "--deep", "--json")
    assert deep.exit_code == 0, deep.stderr
    assert deep.document["digest"] == shallow.document["digest"]
    for name in ("linux/amd64", "linux/arm64"):
        # /bin/busybox and /usr/local/bin/app, each built for this platform.
        assert deep.platform(name)["elf"] == {"checked": 2, "mismatched": 0, "mismatchedPaths": []}


def test_human_output_on_success(images: Images, clean_environment: dict[str, str]) -> None:
    run = run_verify(clean_environment, images.good, "--deep")
    assert run.exit_code == 0, run.stderr
    assert run.stdout.startswith(f"verified {images.good}@sha256:")
    assert "linux/arm64 sha256:" in run.stdout
    assert "2 attestation manifest(s) skipped" in run.stdout


def test_docker_media_types_index_passes(images: Images, clean_environment: dict[str, str]) -> None:
    run = run_verify(clean_environment, images.dockertypes, "--deep", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.document["mediaType"] == DOCKER_MANIFEST_LIST
    assert run.document["attestations"] == 0
    _, repository, _ = split_ref(images.dockertypes)
    child = run.platform("linux/arm64")["digest"]
    media_type, _ = read_manifest(images.registry, repository, str(child))
    assert media_type == DOCKER_MANIFEST
    assert run.platform("linux/arm64")["elf"] == {
        "checked": 2,
        "mismatched": 0,
        "mismatchedPaths": [],
    }


@pytest.mark.parametrize(
    ("compression", "layer_type"),
    [
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("uncompressed", "application/vnd.oci.image.layer.v1.tar"),
    ],
)
def test_zstd_and_uncompressed_layers_are_scanned(
    compression: str,
    layer_type: str,
    images: Images,
    buildx_build: BuildxBuild,
    clean_environment: dict[str, str],
    tmp_path: Path,
) -> None:
    tag = f"{images.registry.address}/verify-tests/{compression}:1"
    output = f"type=image,name={tag},push=true,compression={compression},force-compression=true"
    _build(
        buildx_build,
        tmp_path / compression,
        DEFECT_DOCKERFILE,
        tag,
        images.base,
        extra_args=("--output", output),
    )
    _, repository, _ = split_ref(tag)
    _, index = read_manifest(images.registry, repository, "1")
    _, manifest = read_manifest(images.registry, repository, image_platforms(index)["linux/arm64"])
    assert {layer["mediaType"] for layer in manifest["layers"]} == {layer_type}

    run = run_verify(clean_environment, tag, "--deep", "--json", "--allow", CROSS_TOOLCHAIN)
    assert run.exit_code == 1, run.stderr
    arm64_elf = run.platform("linux/arm64")["elf"]
    assert isinstance(arm64_elf, dict)
    assert sorted(arm64_elf["mismatchedPaths"]) == ["/bin/busybox", "/usr/local/bin/app"]


def test_pinned_digest_reference(images: Images, clean_environment: dict[str, str]) -> None:
    digest = run_verify(clean_environment, images.good, "--json").document["digest"]
    address, repository, _ = split_ref(images.good)
    run = run_verify(clean_environment, f"{address}/{repository}@{digest}", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.document["digest"] == digest


# The upstream defect: labelled arm64, x86-64 inside


def test_build_platform_defect_passes_shallow_but_fails_deep(
    images: Images, clean_environment: dict[str, str]
) -> None:
    shallow = run_verify(clean_environment, images.defect, "--json")
    assert shallow.exit_code == 0, shallow.stderr
    assert shallow.platform("linux/arm64")["configArchitecture"] == "arm64"

    deep = run_verify(
        clean_environment, images.defect, "--deep", "--json", "--allow", CROSS_TOOLCHAIN
    )
    assert deep.exit_code == 1, deep.stderr
    arm64_elf = deep.platform("linux/arm64")["elf"]
    assert isinstance(arm64_elf, dict)
    assert sorted(arm64_elf["mismatchedPaths"]) == ["/bin/busybox", "/usr/local/bin/app"]
    assert arm64_elf["mismatched"] == 2
    assert deep.platform("linux/amd64")["elf"] == {
        "checked": 4,
        "mismatched": 0,
        "mismatchedPaths": [],
    }
    assert (
        f"verify: {images.defect}: linux/arm64: /bin/busybox is an ELF binary for x86-64, "
        "expected AArch64"
    ) in deep.stderr.splitlines()


def test_foreign_toolchain_files_fail_deep_unless_allowed(
    images: Images, clean_environment: dict[str, str]
) -> None:
    # The base carries both architectures' busybox under /opt/cross/ in both platforms.
    run = run_verify(clean_environment, images.base, "--deep", "--json")
    assert run.exit_code == 1
    assert run.platform("linux/amd64")["elf"] == {
        "checked": 3,
        "mismatched": 1,
        "mismatchedPaths": ["/opt/cross/busybox-arm64"],
    }
    assert (
        f"verify: {images.base}: linux/amd64: /opt/cross/busybox-arm64 is an ELF binary for "
        "AArch64, expected x86-64"
    ) in run.stderr.splitlines()
    allowed = run_verify(clean_environment, images.base, "--deep", "--allow", CROSS_TOOLCHAIN)
    assert allowed.exit_code == 0, allowed.stderr


def test_allowed_paths_make_the_defect_pass(
    images: Images, clean_environment: dict[str, str]
) -> None:
    globs = (CROSS_TOOLCHAIN, "/bin/busybox", "usr/local/bin/*")
    args = [arg for glob in globs for arg in ("--allow", glob)]
    run = run_verify(clean_environment, images.defect, "--deep", "--json", *args)
    assert run.exit_code == 0, run.stderr
    assert run.platform("linux/arm64")["elf"] == {
        "checked": 4,
        "mismatched": 0,
        "mismatchedPaths": [],
    }


# Shapes that are not a two-platform image


def test_single_platform_image_fails_where_two_are_required(
    images: Images, clean_environment: dict[str, str]
) -> None:
    run = run_verify(clean_environment, images.single, "--json")
    assert run.exit_code == 1
    assert run.document["mediaType"] in (OCI_MANIFEST, DOCKER_MANIFEST)
    assert run.document["platforms"] == {}
    assert (
        f"verify: {images.single}: linux/arm64: the reference is a single-platform image "
        "manifest (linux/amd64), not an index of linux/amd64, linux/arm64"
    ) in run.stderr.splitlines()

    only_amd64 = run_verify(
        clean_environment, images.single, "--platform", "linux/amd64", "--deep", "--json"
    )
    assert only_amd64.exit_code == 0, only_amd64.stderr
    assert only_amd64.platform("linux/amd64")["configArchitecture"] == "amd64"

    only_arm64 = run_verify(clean_environment, images.single, "--platform", "linux/arm64")
    assert only_arm64.exit_code == 1
    assert only_arm64.stderr.splitlines() == [
        f"verify: {images.single}: linux/arm64: the reference is a single-platform image "
        "manifest for linux/amd64"
    ]


def test_missing_platform_in_an_index_fails(
    images: Images, clean_environment: dict[str, str]
) -> None:
    run = run_verify(
        clean_environment, images.good, "--platform", "linux/arm64/v8", "--platform", "linux/s390x"
    )
    assert run.exit_code == 1
    assert run.stderr.splitlines() == [
        f"verify: {images.good}: linux/s390x: missing from the index "
        "(it lists: linux/amd64, linux/arm64)"
    ]


def _push_index(registry: Registry, repository: str, tag: str, entries: list[dict]) -> str:
    """PUT a hand-made OCI index whose entries point at manifests already in ``repository``."""
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        data=body.encode(),
        method="PUT",
        headers={"Content-Type": OCI_INDEX},
    )
    with urllib.request.urlopen(request, timeout=30):
        pass
    return f"{registry.address}/{repository}:{tag}"


def _entry(index: dict, platform: str, claimed: str) -> dict:
    """The index entry of ``platform``, relabelled as ``claimed``."""
    os_name, architecture = claimed.split("/")
    for entry in index["manifests"]:
        found = entry.get("platform", {})
        if f"{found.get('os')}/{found.get('architecture')}" == platform:
            return {**entry, "platform": {"os": os_name, "architecture": architecture}}
    raise AssertionError(f"{platform} not in the index")


def test_index_entry_that_its_config_contradicts_fails(
    images: Images, clean_environment: dict[str, str]
) -> None:
    _, repository, tag = split_ref(images.good)
    _, index = read_manifest(images.registry, repository, tag)
    entries = [
        _entry(index, "linux/amd64", "linux/amd64"),
        _entry(index, "linux/amd64", "linux/arm64"),  # the amd64 image, labelled arm64
    ]
    ref = _push_index(images.registry, repository, "mislabelled", entries)
    run = run_verify(clean_environment, ref, "--json")
    assert run.exit_code == 1
    assert run.stderr.splitlines() == [
        f"verify: {ref}: linux/arm64: the index entry says linux/arm64 but its image config "
        "says linux/amd64"
    ]
    assert run.platform("linux/arm64")["configArchitecture"] == "amd64"
    assert run.platform("linux/amd64")["configArchitecture"] == "amd64"


def test_platform_listed_twice_fails(images: Images, clean_environment: dict[str, str]) -> None:
    _, repository, tag = split_ref(images.good)
    _, index = read_manifest(images.registry, repository, tag)
    entries = [
        _entry(index, "linux/amd64", "linux/amd64"),
        _entry(index, "linux/arm64", "linux/arm64"),
        _entry(index, "linux/arm64", "linux/arm64"),
    ]
    ref = _push_index(images.registry, repository, "twice", entries)
    run = run_verify(clean_environment, ref)
    assert run.exit_code == 1
    assert run.stderr.splitlines() == [
        f"verify: {ref}: linux/arm64: listed 2 times in the index; expected exactly once"
    ]


def test_missing_tag_exits_2_and_prints_no_json(
    images: Images, clean_environment: dict[str, str]
) -> None:
    missing = images.good.rsplit(":", 1)[0] + ":no-such-tag"
    run = run_verify(clean_environment, missing, "--json")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert run.stderr.startswith(f"verify: {missing}: linux/amd64, linux/arm64: manifest ")
    assert "not found (HTTP 404: MANIFEST_UNKNOWN" in run.stderr


# Credentials


@pytest.fixture(scope="module")
def protected_registry(images: Images, registry_factory: RegistryFactory) -> Registry:
    protected = registry_factory(htpasswd=("alice", PASSWORD))
    _, repository, tag = split_ref(images.good)
    copy_image(images.registry, protected, repository, tag)
    return protected


def _protected_ref(protected: Registry, images: Images) -> str:
    return protected.address + images.good[images.good.index("/") :]


def test_htpasswd_registry_with_good_and_wrong_credentials(
    images: Images, protected_registry: Registry, clean_environment: dict[str, str]
) -> None:
    ref = _protected_ref(protected_registry, images)
    anonymous = run_verify(clean_environment, ref)
    assert anonymous.exit_code == 2
    assert "requires credentials and none were found" in anonymous.stderr

    good = {**clean_environment, "REGISTRY_USERNAME": "alice", "REGISTRY_PASSWORD": PASSWORD}
    passed = run_verify(good, ref, "--deep", "--json")
    assert passed.exit_code == 0, passed.stderr
    assert PASSWORD not in passed.stdout + passed.stderr

    wrong = {**good, "REGISTRY_PASSWORD": PASSWORD + "!"}
    refused = run_verify(wrong, ref, "--json")
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert (
        "credentials from REGISTRY_USERNAME/REGISTRY_PASSWORD refused (HTTP 401" in refused.stderr
    )
    assert PASSWORD not in refused.stderr


def test_docker_config_auths_are_used(
    images: Images, protected_registry: Registry, clean_environment: dict[str, str]
) -> None:
    import base64

    auth = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    config = {"auths": {f"http://{protected_registry.address}": {"auth": auth}}}
    Path(clean_environment["DOCKER_CONFIG"], "config.json").write_text(json.dumps(config))
    run = run_verify(clean_environment, _protected_ref(protected_registry, images))
    assert run.exit_code == 0, run.stderr


def _service_account_key(path: Path, email: str, token_uri: str) -> None:
    """Write a service-account key file (fresh RSA key) whose token URI is on loopback."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    document = {
        "type": "service_account",
        "project_id": "boutique-test",
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": email,
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(document))


def test_gcp_flag_uses_application_default_credentials(
    images: Images,
    registry_factory: RegistryFactory,
    clean_environment: dict[str, str],
    tmp_path: Path,
) -> None:
    # Artifact Registry's scheme: user oauth2accesstoken, password = an OAuth2 access token.
    # google-auth exchanges a service-account key for that token at this loopback token URI.
    email = "verifier@boutique-test.iam.gserviceaccount.com"
    tokens = TokenServer(
        username="unused", password="unused", service_account=email, access_token="ya29.test"
    ).start()
    try:
        gcp_like = registry_factory(htpasswd=("oauth2accesstoken", "ya29.test"))
        _, repository, tag = split_ref(images.good)
        copy_image(images.registry, gcp_like, repository, tag)
        adc = tmp_path / "adc.json"
        _service_account_key(adc, email, tokens.oauth_uri)
        environ = {**clean_environment, "GOOGLE_APPLICATION_CREDENTIALS": str(adc)}
        ref = f"{gcp_like.address}/{repository}:{tag}"
        run = run_verify(environ, ref, "--gcp", "--json")
        assert run.exit_code == 0, run.stderr
        assert "POST /oauth2" in tokens.requests
        assert "ya29.test" not in run.stdout + run.stderr
        without = run_verify(environ, ref)
        assert without.exit_code == 2
    finally:
        tokens.stop()


def test_bearer_token_flow(
    images: Images, registry: Registry, clean_environment: dict[str, str]
) -> None:
    tokens = TokenServer(username="bob", password=PASSWORD).start()
    proxy = FaultProxy(upstream=registry.address, bearer=tokens).start()
    try:
        ref = _via(proxy, images.good)
        environ = {**clean_environment, "REGISTRY_USERNAME": "bob", "REGISTRY_PASSWORD": PASSWORD}
        run = run_verify(environ, ref, "--deep", "--json")
        assert run.exit_code == 0, run.stderr
        _, repository, _ = split_ref(images.good)
        assert set(tokens.issued.values()) == {f"repository:{repository}:pull"}
        assert proxy.requests_to("/manifests/", status=401)
        assert all(entry.status == 200 for entry in proxy.requests_to("/blobs/")), (
            proxy.requests_to("/blobs/")
        )

        wrong = {**environ, "REGISTRY_PASSWORD": "nope"}
        refused = run_verify(wrong, ref)
        assert refused.exit_code == 2
        assert f"token from {tokens.realm}: credentials from REGISTRY_USERNAME" in refused.stderr
    finally:
        proxy.stop()
        tokens.stop()


# Transient failures and request counts


def test_503_twice_then_success_is_retried(
    images: Images, proxy: FaultProxy, clean_environment: dict[str, str]
) -> None:
    _, repository, tag = split_ref(images.good)
    top = f"/v2/{repository}/manifests/{tag}$"
    proxy.fail_next(top, 503, 2)
    run = run_verify(clean_environment, _via(proxy, images.good), "--json")
    assert run.exit_code == 0, run.stderr
    assert [entry.status for entry in proxy.requests_to(top)] == [503, 503, 200]


def test_persistent_503_gives_up_with_exit_2(
    images: Images, proxy: FaultProxy, clean_environment: dict[str, str]
) -> None:
    proxy.fail_next("/blobs/", 503, 100)
    ref = _via(proxy, images.good)
    run = run_verify(clean_environment, ref, "--json")
    assert run.exit_code == 2
    assert f"verify: {ref}: linux/amd64: config sha256:" in run.stderr
    assert "HTTP 503: UNAVAILABLE injected fault (gave up after 4 tries)" in run.stderr


def test_layer_download_cut_off_midway_is_restarted(
    images: Images, proxy: FaultProxy, clean_environment: dict[str, str]
) -> None:
    _, repository, tag = split_ref(images.good)
    _, index = read_manifest(images.registry, repository, tag)
    arm64 = image_platforms(index)["linux/arm64"]
    _, manifest = read_manifest(images.registry, repository, arm64)
    layer = max(manifest["layers"], key=lambda entry: entry["size"])["digest"]
    proxy.cut_next(f"/blobs/{layer}$", 1)
    run = run_verify(clean_environment, _via(proxy, images.good), "--deep", "--json")
    assert run.exit_code == 0, run.stderr
    assert [entry.status for entry in proxy.requests_to(f"/blobs/{layer}$")] == [CUT, 200]
    assert run.platform("linux/arm64")["elf"] == {
        "checked": 2,
        "mismatched": 0,
        "mismatchedPaths": [],
    }


@pytest.mark.parametrize("blob", ["config", "layer"])
def test_content_that_does_not_match_its_digest_is_refused(
    blob: str, images: Images, proxy: FaultProxy, clean_environment: dict[str, str]
) -> None:
    _, repository, tag = split_ref(images.good)
    _, index = read_manifest(images.registry, repository, tag)
    _, manifest = read_manifest(images.registry, repository, image_platforms(index)["linux/arm64"])
    digest = manifest["config"]["digest"] if blob == "config" else manifest["layers"][-1]["digest"]
    proxy.corrupt_next(f"/blobs/{digest}$", 1)
    ref = _via(proxy, images.good)
    run = run_verify(clean_environment, ref, "--deep", "--json")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert f"verify: {ref}: linux/arm64: {blob} {digest}: content digest is sha256:" in run.stderr
    assert f", expected {digest}" in run.stderr
    # Refused, not retried: the registry served those bytes, a second try would too.
    assert [entry.status for entry in proxy.requests_to(f"/blobs/{digest}$")] == [CORRUPT]


def test_shared_layers_are_downloaded_once_per_run(
    images: Images, proxy: FaultProxy, clean_environment: dict[str, str]
) -> None:
    refs = [images.base, images.defect, images.good]
    references: dict[str, int] = {}
    for ref in refs:
        _, repository, tag = split_ref(ref)
        _, index = read_manifest(images.registry, repository, tag)
        for digest in image_platforms(index).values():
            _, manifest = read_manifest(images.registry, repository, digest)
            for layer in manifest["layers"]:
                references[layer["digest"]] = references.get(layer["digest"], 0) + 1
    shared = [digest for digest, count in references.items() if count > 1]
    # The defect's platforms both build on the amd64 base: its layers appear several times.
    assert len(shared) >= 2

    globs = (CROSS_TOOLCHAIN, "/bin/busybox", "/usr/local/bin/app")
    args = [arg for glob in globs for arg in ("--allow", glob)]
    run = run_verify(clean_environment, *[_via(proxy, ref) for ref in refs], "--deep", *args)
    assert run.exit_code == 0, run.stderr
    for digest in references:
        downloads = proxy.requests_to(f"/blobs/{digest}$")
        assert len(downloads) == 1, (digest, references[digest], downloads)
