"""Fixtures for tests that need a real Docker Engine, buildx with QEMU, and a registry.

Outside CI a missing prerequisite skips the test with the reason; under CI=true it fails the
test, because CI is expected to provide the toolchain (scripts/test installs it).

- `docker_engine`: dockerd with the containerd image store, and buildx able to build
  linux/amd64 and linux/arm64 with the default docker driver.
- `registry_factory(htpasswd=None)`: starts Debian's docker-registry on 127.0.0.1.
- `registry`: one anonymous registry for the session.
- `busybox_base`: "<registry.address>/base/busybox:1", a two-platform FROM-scratch busybox
  image with both architectures' busybox under /opt/cross/ (a stand-in cross toolchain).
- `buildx_build(context_dir, tag, platforms=..., extra_args=())`: build, push, return digest.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest

from tests.integration import dockerenv
from tests.integration.dockerenv import (
    BUSYBOX_CACHE,
    Registry,
    ToolchainError,
    check_docker_engine,
    start_registry,
)

INSTALL_HINT = "scripts/install-docker (run as root, or via scripts/test) sets it up"
BUILD_PLATFORMS = ("linux/amd64", "linux/arm64")
BUSYBOX_ARCHES = ("amd64", "arm64")

RegistryFactory = Callable[..., Registry]
BuildxBuild = Callable[..., str]

BUSYBOX_DOCKERFILE = """\
FROM scratch
ARG TARGETARCH
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY busybox-${TARGETARCH} /bin/busybox
# Both architectures' binaries stand in for a cross-compiling toolchain: a "cross-compile"
# for a target is `cp /opt/cross/busybox-$TARGETARCH /out/app`.
COPY busybox-amd64 busybox-arm64 /opt/cross/
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -m 1777 /tmp"]
"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


def missing_prerequisite(reason: str, hint: str = INSTALL_HINT) -> NoReturn:
    """Fails under CI=true (CI must provide the toolchain), skips with `reason` otherwise."""
    if _in_ci():
        pytest.fail(f"CI=true but a test prerequisite is missing: {reason}; {hint}", pytrace=False)
    pytest.skip(f"{reason}; {hint}")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    try:
        check_docker_engine(BUILD_PLATFORMS)
    except ToolchainError as error:
        missing_prerequisite(str(error))


@pytest.fixture(scope="session")
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    if shutil.which("docker-registry") is None:
        missing_prerequisite("docker-registry is not on PATH")
    parent_dir = tmp_path_factory.mktemp("registries")
    started: list[Registry] = []

    def factory(htpasswd: tuple[str, str] | None = None) -> Registry:
        try:
            registry = start_registry(parent_dir, htpasswd)
        except ToolchainError as error:
            missing_prerequisite(str(error))
        started.append(registry)
        return registry

    yield factory
    for registry in started:
        registry.stop()
        dockerenv.remove_local_images(registry.address)


@pytest.fixture(scope="session")
def registry(registry_factory: RegistryFactory) -> Registry:
    return registry_factory()


@pytest.fixture(scope="session")
def buildx_build(docker_engine: None) -> BuildxBuild:
    return dockerenv.buildx_build


@pytest.fixture(scope="session")
def busybox_base(
    buildx_build: BuildxBuild, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> str:
    context_dir = tmp_path_factory.mktemp("busybox-base")
    for arch in BUSYBOX_ARCHES:
        binary = BUSYBOX_CACHE / arch / "bin" / "busybox"
        if not binary.is_file():
            missing_prerequisite(f"{binary} is missing")
        shutil.copyfile(binary, context_dir / f"busybox-{arch}")
        # Fixed modes keep the build context identical whatever the umask.
        (context_dir / f"busybox-{arch}").chmod(0o755)
    (context_dir / "Dockerfile").write_text(BUSYBOX_DOCKERFILE)
    ref = f"{registry.address}/base/busybox:1"
    buildx_build(context_dir, ref, BUILD_PLATFORMS)
    return ref
