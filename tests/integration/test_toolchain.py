"""The Docker toolchain does what the other integration tests rely on.

Real builds with the default docker driver, real QEMU emulation, a real docker-registry read
over its HTTP API: the base image has exactly the two platforms, an arm64 RUN step executes
arm64 code, buildx_build returns the digest the registry serves, and htpasswd auth holds.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import urllib.error
from pathlib import Path

import pytest

from tests.integration import dockerenv
from tests.integration.conftest import BuildxBuild, RegistryFactory
from tests.integration.dockerenv import (
    ATTESTATION_ANNOTATION,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    Registry,
    buildx_command,
    image_platforms,
    read_manifest,
    registry_get,
    split_ref,
)

# ELF e_machine values: what the kernel (or QEMU) needs to run a binary.
ELF_MACHINES = {"linux/amd64": 0x3E, "linux/arm64": 0xB7}
UNAME_MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
CONFIG_ARCHITECTURES = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


def elf_machine(binary: Path) -> int:
    header = binary.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{binary} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


def build_to_directory(context_dir: Path, dest: Path) -> None:
    """Builds both platforms and exports each root filesystem to dest/linux_<arch>/."""
    result = subprocess.run(
        buildx_command(context_dir, list(UNAME_MACHINES), "--output", f"type=local,dest={dest}"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"docker buildx build failed:\n{result.stderr}"


def test_busybox_base_index_has_exactly_amd64_and_arm64(
    busybox_base: str, registry: Registry
) -> None:
    address, repository, tag = split_ref(busybox_base)
    assert address == registry.address
    media_type, index = read_manifest(registry, repository, tag)

    assert media_type in INDEX_MEDIA_TYPES
    platforms = image_platforms(index)
    assert sorted(platforms) == ["linux/amd64", "linux/arm64"]
    # Any other entries are buildx attestations that point at one of the two images.
    attestations = [
        descriptor
        for descriptor in index["manifests"]
        if ATTESTATION_ANNOTATION in descriptor.get("annotations", {})
    ]
    assert len(attestations) == len(index["manifests"]) - 2
    for attestation in attestations:
        assert attestation["annotations"]["vnd.docker.reference.digest"] in platforms.values()

    for platform, digest in platforms.items():
        manifest_type, manifest = read_manifest(registry, repository, digest)
        assert manifest_type in MANIFEST_MEDIA_TYPES
        config_path = f"{repository}/blobs/{manifest['config']['digest']}"
        config_body, _ = registry_get(registry, config_path)
        config = json.loads(config_body)
        assert (config["os"], config["architecture"]) == ("linux", CONFIG_ARCHITECTURES[platform])


def test_busybox_base_has_native_busybox_and_both_cross_binaries(
    busybox_base: str, tmp_path: Path
) -> None:
    context_dir = tmp_path / "context"
    context_dir.mkdir()
    (context_dir / "Dockerfile").write_text(f"FROM {busybox_base}\n")
    build_to_directory(context_dir, tmp_path / "out")

    for platform, machine in ELF_MACHINES.items():
        rootfs = tmp_path / "out" / platform.replace("/", "_")
        assert elf_machine(rootfs / "bin" / "busybox") == machine, platform
        assert (rootfs / "bin" / "sh").is_symlink(), "busybox --install -s did not run"
        for cross_platform, cross_machine in ELF_MACHINES.items():
            cross_binary = rootfs / "opt" / "cross" / f"busybox-{cross_platform.split('/')[1]}"
            assert elf_machine(cross_binary) == cross_machine, f"{platform}: {cross_binary}"


def test_run_step_executes_code_of_the_target_platform(busybox_base: str, tmp_path: Path) -> None:
    context_dir = tmp_path / "context"
    context_dir.mkdir()
    (context_dir / "Dockerfile").write_text(
        f"FROM {busybox_base}\n"
        "ARG TARGETARCH\n"
        "RUN uname -m > /machine && mkdir /out && cp /opt/cross/busybox-$TARGETARCH /out/app\n"
    )
    build_to_directory(context_dir, tmp_path / "out")

    for platform, machine in UNAME_MACHINES.items():
        rootfs = tmp_path / "out" / platform.replace("/", "_")
        assert (rootfs / "machine").read_text().strip() == machine, platform
        assert elf_machine(rootfs / "out" / "app") == ELF_MACHINES[platform], platform


def test_buildx_build_returns_the_index_digest_the_registry_serves(
    busybox_base: str, registry: Registry, buildx_build: BuildxBuild, tmp_path: Path
) -> None:
    marker = secrets.token_hex(8)
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox_base}\nRUN echo {marker} > /marker\n")
    tag = f"{registry.address}/toolchain/digest-check:{marker}"

    digest = buildx_build(tmp_path, tag)

    _, headers = registry_get(
        registry, f"toolchain/digest-check/manifests/{marker}", accept=INDEX_MEDIA_TYPES
    )
    assert headers["Docker-Content-Digest"] == digest
    _, index = read_manifest(registry, "toolchain/digest-check", digest)
    assert sorted(image_platforms(index)) == ["linux/amd64", "linux/arm64"]


def test_htpasswd_registry_rejects_wrong_password_and_accepts_right_one(
    registry_factory: RegistryFactory,
) -> None:
    password = secrets.token_urlsafe(16)
    registry = registry_factory(("tester", password))

    for credentials in (None, ("tester", password + "x"), ("intruder", password)):
        with pytest.raises(urllib.error.HTTPError) as rejected:
            registry_get(registry, "", credentials=credentials)
        assert rejected.value.code == 401, credentials and credentials[0]
        assert "Basic" in rejected.value.headers.get("WWW-Authenticate", "")

    body, _ = registry_get(registry, "_catalog", credentials=("tester", password))
    assert json.loads(body) == {"repositories": []}


def test_registry_start_moves_to_another_port_when_its_port_was_taken(
    registry_factory: RegistryFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The port chosen for a registry is free when chosen and may be taken before it binds.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        ports = iter([taken])
        real_free_port = dockerenv.free_loopback_port
        monkeypatch.setattr(dockerenv, "free_loopback_port", lambda: next(ports, real_free_port()))

        registry = registry_factory()

        assert registry.address != f"127.0.0.1:{taken}"
        body, _ = registry_get(registry, "_catalog")
        assert json.loads(body) == {"repositories": []}
