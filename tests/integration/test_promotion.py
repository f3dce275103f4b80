"""The promotion flow the program declares, run through the real tools.

What each resource of a ServiceImage does, step by step, against Debian's docker-registry on
127.0.0.1 with real buildx + QEMU builds on the busybox base fixture:

1. the Image export: a build pushed to `<reg>/<svc>` without moving any release tag, and its
   digest;
2. ManifestVerification: the exact command line the component builds
   (`plan.verification.verify_request`), run as the Command runs it (`sh -c` from the project
   directory), its stdout read with the component's parser (`verified_platforms`);
3. the Index: `docker buildx imagetools create -t <reg>/<svc>:<tag> <reg>/<svc>@<digest>...`,
   only when every verification exited 0.

Both strategies: one two-platform push, or one single-platform push per platform joined by the
Index.

The program's Image exports with `push-by-digest=true` through its `docker-container` builder.
Here the build uses the engine's `docker` driver, which refuses that option ("push-by-digest is
currently not implemented for docker driver"), and a docker-container builder needs the
`moby/buildkit` image, which these machines cannot pull. So the build pushes the same content to
the same repository under a throwaway `candidate-<random>` tag: the release tag does not move,
and everything after the push (verification by digest, the Index) is exactly what the program
does. A defective image (upstream's `FROM --platform=$BUILDPLATFORM` base stage) fails the
deep verification with exit 1, and its tag is never created or moved.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.error
import uuid
from pathlib import Path

import pytest

from plan.tools import interpreter, tool_command
from plan.verification import (
    RunPlan,
    VerifyOptions,
    candidate_ref,
    merged_platforms,
    verified_platforms,
    verify_request,
)
from tests.integration.dockerenv import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    REPO_ROOT,
    Registry,
    image_platforms,
    registry_get,
)

PLATFORMS = ("linux/amd64", "linux/arm64")
# The base image carries both architectures' busybox under /opt/cross/ (a stand-in cross
# toolchain); in config this is `verify.allow.<service>: [{path: /opt/cross/*, reason: …}]`.
OPTIONS = VerifyOptions(deep=True, allow=("/opt/cross/*",), gcp=False)
BUILD_TIMEOUT_S = 1800

# Shaped like upstream's Go services: a builder on the build platform cross-"compiles" for the
# target (copies the target's busybox), the runtime stage follows the target platform.
CORRECT = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS builder
ARG TARGETARCH
RUN mkdir -p /out && cp /opt/cross/busybox-${TARGETARCH} /out/server
FROM ${BASE}
COPY --from=builder /out/server /usr/local/bin/server
"""

# Shaped like upstream's Python services at v0: every stage inherits the build platform.
DEFECTIVE = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS base
FROM base AS builder
RUN mkdir -p /out && cp /bin/busybox /out/server
FROM base
COPY --from=builder /out/server /usr/local/bin/server
"""


def push_by_digest(
    registry: Registry, service: str, dockerfile: str, base: str, platforms: tuple[str, ...]
) -> str:
    """What the Image resource does: push `<reg>/boutique/<service>` without moving a release
    tag (see the module docstring for the candidate tag), and return the pushed digest."""
    with tempfile.TemporaryDirectory(prefix="promotion-") as directory:
        context = Path(directory)
        (context / "Dockerfile").write_text(dockerfile)
        metadata = context / "metadata.json"
        repository = f"{registry.address}/boutique/{service}"
        command = [
            "docker",
            "buildx",
            "build",
            "--builder",
            "default",
            "--progress",
            "plain",
            "--platform",
            ",".join(platforms),
            "--build-arg",
            f"BASE={base}",
            "--output",
            f"type=image,name={repository}:candidate-{uuid.uuid4().hex[:12]},push=true,"
            "oci-mediatypes=true",
            "--metadata-file",
            str(metadata),
            str(context),
        ]
        built = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
        assert built.returncode == 0, f"{' '.join(command)}:\n{built.stderr}"
        digest = json.loads(metadata.read_text())["containerimage.digest"]
    assert isinstance(digest, str) and digest.startswith("sha256:"), digest
    return digest


def verify(
    repository: str, digest: str, platforms: tuple[str, ...], options: VerifyOptions = OPTIONS
) -> subprocess.CompletedProcess[str]:
    """What the ManifestVerification Command does: its exact command line, via `sh -c`, from the
    project directory, with the project's interpreter written as the program writes it."""
    python = interpreter(sys.executable, str(REPO_ROOT))
    line = tool_command(
        verify_request(candidate_ref(repository, digest), platforms, options), python
    )
    return subprocess.run(
        ["/bin/sh", "-c", line], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )


def create_index(tag_ref: str, sources: list[str]) -> None:
    """What the Index resource does."""
    command = ["docker", "buildx", "imagetools", "create", "-t", tag_ref, *sources]
    created = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert created.returncode == 0, f"{' '.join(command)}:\n{created.stderr}"


def promote(
    registry: Registry,
    service: str,
    tag: str,
    dockerfile: str,
    base: str,
    per_platform: bool,
    options: VerifyOptions = OPTIONS,
) -> tuple[dict[str, str], list[subprocess.CompletedProcess[str]], list[str]]:
    """The ServiceImage flow; returns the verified platforms, the verifications and the pushed
    digests. The tag moves only when every verification exited 0."""
    repository = f"{registry.address}/boutique/{service}"
    builds = [(platform,) for platform in PLATFORMS] if per_platform else [PLATFORMS]
    results, digests, sources = [], [], []
    for platforms in builds:
        digest = push_by_digest(registry, service, dockerfile, base, platforms)
        verification = verify(repository, digest, platforms, options)
        results.append(verification)
        digests.append(digest)
        sources.append(candidate_ref(repository, digest))
    if any(result.returncode != 0 for result in results):
        return {}, results, digests
    platforms_by_name = merged_platforms([verified_platforms(r.stdout) for r in results])
    create_index(f"{repository}:{tag}", sources)
    return platforms_by_name, results, digests


def tag_manifest(registry: Registry, service: str, tag: str) -> tuple[str, dict[str, object]]:
    """The digest and the manifest the tag resolves to."""
    body, headers = registry_get(
        registry,
        f"boutique/{service}/manifests/{tag}",
        accept=(*INDEX_MEDIA_TYPES, *MANIFEST_MEDIA_TYPES),
    )
    return headers["Docker-Content-Digest"], json.loads(body)


def tag_exists(registry: Registry, service: str, tag: str) -> bool:
    try:
        tag_manifest(registry, service, tag)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise
    return True


@pytest.mark.docker
@pytest.mark.registry
def test_multi_platform_image_is_verified_then_tagged(
    docker_engine: None, registry: Registry, busybox_base: str
) -> None:
    platforms, results, (digest,) = promote(
        registry, "checkoutservice", "v1", CORRECT, busybox_base, per_platform=False
    )
    (result,) = results
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["digest"] == digest
    assert all(p["elf"]["checked"] > 0 for p in document["platforms"].values()), document
    assert set(platforms) == set(PLATFORMS)
    tagged_digest, index = tag_manifest(registry, "checkoutservice", "v1")
    assert index["mediaType"] in INDEX_MEDIA_TYPES
    # One verified source index is copied as it is: the tag is the verified digest.
    assert tagged_digest == digest
    assert image_platforms(index) == platforms


@pytest.mark.docker
@pytest.mark.registry
def test_per_platform_images_are_verified_each_then_joined(
    docker_engine: None, registry: Registry, busybox_base: str
) -> None:
    platforms, results, digests = promote(
        registry, "frontend", "v1", CORRECT, busybox_base, per_platform=True
    )
    assert [result.returncode for result in results] == [0, 0], [r.stderr for r in results]
    for platform, result in zip(PLATFORMS, results, strict=True):
        assert list(json.loads(result.stdout)["platforms"]) == [platform]
    assert len(set(digests)) == 2
    tagged_digest, index = tag_manifest(registry, "frontend", "v1")
    assert index["mediaType"] in INDEX_MEDIA_TYPES
    assert tagged_digest not in digests
    assert image_platforms(index) == platforms
    assert set(platforms) == set(PLATFORMS)


@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.parametrize("per_platform", [False, True], ids=["multiPlatform", "perPlatform"])
def test_defective_image_fails_verification_and_no_tag_moves(
    docker_engine: None, registry: Registry, busybox_base: str, per_platform: bool
) -> None:
    service = f"emailservice-{'per' if per_platform else 'multi'}"
    good, _, _ = promote(registry, service, "v1", CORRECT, busybox_base, per_platform)
    assert good, "the correct image must be published first"
    published_digest, _ = tag_manifest(registry, service, "v1")

    for tag in ("v1", "v2"):
        platforms, results, _ = promote(
            registry, service, tag, DEFECTIVE, busybox_base, per_platform
        )
        assert platforms == {}
        failed = [result for result in results if result.returncode != 0]
        assert failed, "the defective arm64 image must fail"
        for result in failed:
            assert result.returncode == 1, result.stderr
            assert "linux/arm64: /usr/local/bin/server is an ELF binary for x86-64" in (
                result.stderr
            ), result.stderr
            document = json.loads(result.stdout)
            assert document["platforms"]["linux/arm64"]["elf"]["mismatched"] > 0
    assert tag_manifest(registry, service, "v1")[0] == published_digest
    assert not tag_exists(registry, service, "v2")


# Cross-"compiled" correctly for both platforms, so --deep passes; but the arm64 image's
# entrypoint dies at start (as a service does when a native module is missing for arm64).
STARTS_ON_AMD64_ONLY = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS builder
ARG TARGETARCH
RUN mkdir -p /out && cp /opt/cross/busybox-${TARGETARCH} /out/server
FROM ${BASE}
ARG TARGETARCH
COPY --from=builder /out/server /usr/local/bin/busybox
RUN mkdir -p /www && echo ok > /www/index.html && \\
    if [ "$TARGETARCH" = arm64 ]; then \\
      printf '#!/bin/sh\\necho "cannot load native module"\\nexit 3\\n' > /start; \\
    else \\
      printf '#!/bin/sh\\nexec /usr/local/bin/busybox httpd -f -p 8080 -h /www\\n' > /start; \\
    fi && \\
    chmod 755 /start
ENTRYPOINT ["/start"]
"""


@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.parametrize("per_platform", [False, True], ids=["multiPlatform", "perPlatform"])
def test_an_image_whose_arm64_entrypoint_exits_3_never_gets_its_tag(
    docker_engine: None, registry: Registry, busybox_base: str, per_platform: bool
) -> None:
    service = f"paymentservice-{'per' if per_platform else 'multi'}"
    run = RunPlan(probe="http:8080/", env=(("PORT", "8080"),), skipped={})
    options = VerifyOptions(deep=True, allow=OPTIONS.allow, gcp=False, run=run)
    platforms, results, _ = promote(
        registry, service, "v1", STARTS_ON_AMD64_ONLY, busybox_base, per_platform, options
    )
    assert platforms == {}
    failed = [result for result in results if result.returncode != 0]
    assert len(failed) == 1, [result.stderr for result in results]
    (result,) = failed
    assert result.returncode == 1, result.stderr
    assert "linux/arm64: run failed (http:8080/): the container exited with status 3" in (
        result.stderr
    ), result.stderr
    assert "linux/arm64: log: cannot load native module" in result.stderr
    arm64 = json.loads(result.stdout)["platforms"]["linux/arm64"]
    assert arm64["elf"]["mismatched"] == 0 and arm64["run"]["exitCode"] == 3
    # The amd64 image started and served: only arm64 holds the tag back.
    amd64 = [json.loads(r.stdout)["platforms"].get("linux/amd64") for r in results]
    assert [p["run"]["ok"] for p in amd64 if p is not None] == [True], result.stdout
    assert not tag_exists(registry, service, "v1")
