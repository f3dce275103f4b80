"""The local stack's pieces, run for real without the Pulumi CLI (which cannot be installed here).

- `scripts/local-up` refuses to start on a machine without the Pulumi CLI or a Docker daemon,
  naming each missing prerequisite, and changes nothing.
- The flow `pulumi up --stack local` drives: the LocalRegistry's exact command lines (ensure as
  `run_output` and the Command's create both run it, then delete), a two-platform
  `docker buildx build --push` into that registry, the verification Command's line with
  `--attest` (key created on first use), and `python -m verify attestations` on the tag.

The build uses the engine's default `docker` driver: the stack's `docker-container` builder
(`network: host`) needs the moby/buildkit image, which cannot be pulled on these machines.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.local_registry import registry_ensure_command, registry_remove_command
from plan.settings import PLATFORMS
from plan.verification import VerifyOptions, verify_command
from tests.integration.conftest import BuildxBuild, missing_prerequisite
from tests.integration.dockerenv import free_loopback_port, remove_local_images
from tests.program_mocks import ROOT

LOCAL_UP = ROOT / "scripts" / "local-up"


def path_without_pulumi() -> str:
    """PATH with every directory that holds a `pulumi` executable left out."""
    return os.pathsep.join(
        directory
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if directory and not os.access(os.path.join(directory, "pulumi"), os.X_OK)
    )


def run_local_up(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a copy of scripts/local-up in `project` (it works on the directory above itself)."""
    script = project / "scripts" / "local-up"
    script.parent.mkdir(parents=True)
    shutil.copy2(LOCAL_UP, script)
    (project / "requirements.txt").write_text("pulumi>=3.200,<4\n")
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, check=False, timeout=120
    )


def test_local_up_without_pulumi_names_it_and_changes_nothing(tmp_path: Path) -> None:
    result = run_local_up(tmp_path, {**os.environ, "PATH": path_without_pulumi()})
    assert result.returncode == 1
    assert (
        "scripts/local-up: missing prerequisite: pulumi (the Pulumi CLI) is not on PATH; "
        "install it: https://www.pulumi.com/docs/install/"
    ) in result.stderr.splitlines()
    assert result.stdout == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["requirements.txt", "scripts"]


def test_local_up_names_every_missing_prerequisite_at_once(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        missing_prerequisite("the docker CLI is not on PATH")
    env = {
        **os.environ,
        "PATH": path_without_pulumi(),
        "DOCKER_HOST": f"unix://{tmp_path / 'no-daemon.sock'}",
    }
    result = run_local_up(tmp_path / "project", env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "scripts/local-up: missing prerequisite: pulumi (the Pulumi CLI) is not on PATH; "
        "install it: https://www.pulumi.com/docs/install/",
        "scripts/local-up: missing prerequisite: the Docker daemon is not reachable "
        "(docker version shows no server); start Docker",
    ]
    assert not (tmp_path / "project" / ".venv").exists()
    assert not (tmp_path / "project" / ".pulumi-local").exists()


def run_line(command_line: str) -> dict[str, object]:
    """Run a Command's text as pulumi-command does (`/bin/sh -c` in the project directory)."""
    result = subprocess.run(
        ["/bin/sh", "-c", command_line],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=5):
            return True
    except urllib.error.URLError:
        return False


@pytest.mark.docker
@pytest.mark.registry
def test_local_flow_registry_build_verify_remove(
    busybox_base: str, buildx_build: BuildxBuild, tmp_path: Path
) -> None:
    if shutil.which("docker-registry") is None:
        missing_prerequisite("docker-registry is not on PATH")
    address = f"127.0.0.1:{free_loopback_port()}"
    data_dir = str(tmp_path / "local-registry")
    ensure = registry_ensure_command(sys.executable, address, data_dir)
    remove = registry_remove_command(sys.executable, address, data_dir)
    try:
        # One `pulumi up` runs the ensure twice: as run_output, then as the Command's create.
        first, second = run_line(ensure), run_line(ensure)
        assert first["started"] is True and second["started"] is False
        assert first["pid"] == second["pid"] and first["address"] == address

        context = tmp_path / "app"
        context.mkdir()
        (context / "Dockerfile").write_text(
            f"FROM {busybox_base}\n"
            "ARG TARGETARCH\n"
            "RUN mkdir -p /usr/local/bin && cp /opt/cross/busybox-$TARGETARCH /usr/local/bin/app\n"
        )
        repository = f"{address}/boutique/app"
        digest = buildx_build(context, f"{repository}:v1")

        # The verification Command's line as the local stack builds it: deep, attested with a
        # key created on first use. The fixture base carries both architectures' busybox as its
        # "cross toolchain".
        key = tmp_path / "state" / "attest-key.pem"
        options = VerifyOptions(deep=True, allow=("/opt/cross/*",), gcp=False, attest_key=str(key))
        line = verify_command(sys.executable, f"{repository}@{digest}", PLATFORMS, options)
        verified = subprocess.run(
            ["/bin/sh", "-c", line],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert verified.returncode == 0, verified.stderr
        document = json.loads(verified.stdout)
        assert document["digest"] == digest
        assert sorted(document["platforms"]) == ["linux/amd64", "linux/arm64"]
        for platform, result in document["platforms"].items():
            assert result["configArchitecture"] == platform.split("/")[1]
            assert result["elf"]["checked"] >= 2 and result["elf"]["mismatched"] == 0, result
        assert sorted(document["referrers"]) == ["index", "linux/amd64", "linux/arm64"]
        # What `pulumi up` leaves behind passes `verify attestations` (buildx's own provenance
        # manifests in the index are skipped like in the verification).
        checked = subprocess.run(
            [
                *(sys.executable, "-m", "verify", "attestations", f"{repository}:v1"),
                *("--public-key", f"{key}.pub"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stderr

        removed = run_line(remove)
        assert removed["stopped"] is True and removed["pid"] == first["pid"]
        assert not answers(address)
        assert run_line(remove)["stopped"] is False
    finally:
        subprocess.run(["/bin/sh", "-c", remove], cwd=ROOT, capture_output=True, check=False)
        remove_local_images(address)


REGISTRY_IMAGE_DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]
"""
"""Shaped like registry:2 (which cannot be pulled here): serves on :5000 in the container and
stores under /var/lib/registry. The host's own docker-registry binary and the libraries it
links, so the image runs on the engine's own architecture."""

REGISTRY_IMAGE_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
"""


def shared_libraries(binary: str) -> list[Path]:
    """The files `ldd` says `binary` loads (the dynamic loader included)."""
    listing = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = [word for line in listing.splitlines() for word in line.split() if word.startswith("/")]
    return [Path(path) for path in paths]


def registry_like_image(context: Path) -> str:
    """Build and load (no push) a registry:2 stand-in; returns its unique local tag."""
    binary = shutil.which("docker-registry")
    assert binary is not None
    rootfs = context / "rootfs"
    for library in shared_libraries(binary):
        target = rootfs / library.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library.resolve(), target)
        target.chmod(0o755)
    (rootfs / "bin").mkdir(parents=True)
    shutil.copyfile(binary, rootfs / "bin" / "registry")
    (rootfs / "bin" / "registry").chmod(0o755)
    (rootfs / "etc" / "docker" / "registry").mkdir(parents=True)
    (rootfs / "etc" / "docker" / "registry" / "config.yml").write_text(REGISTRY_IMAGE_CONFIG)
    (context / "Dockerfile").write_text(REGISTRY_IMAGE_DOCKERFILE)
    tag = f"boutique-tests/registry:{os.urandom(6).hex()}"
    built = subprocess.run(
        ["docker", "buildx", "build", "--builder", "default", "--load", "-t", tag, str(context)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return tag


def container_exists(name: str) -> bool:
    inspected = subprocess.run(["docker", "inspect", name], capture_output=True, check=False)
    return inspected.returncode == 0


@pytest.mark.docker
@pytest.mark.registry
def test_without_the_binary_the_registry_runs_as_a_container(
    docker_engine: None, tmp_path: Path
) -> None:
    if shutil.which("docker-registry") is None:
        missing_prerequisite("docker-registry is not on PATH (it goes into the test image)")
    assert not container_exists("boutique-local-registry"), (
        "a container named boutique-local-registry already exists; this test would replace it"
    )
    image = registry_like_image(tmp_path / "image")
    address = f"127.0.0.1:{free_loopback_port()}"
    data_dir = tmp_path / "local-registry"
    # A PATH with docker only: no docker-registry, whichever directory holds it.
    docker_only = tmp_path / "bin"
    docker_only.mkdir()
    docker = shutil.which("docker")
    assert docker is not None
    (docker_only / "docker").symlink_to(docker)
    env = {**os.environ, "PATH": str(docker_only)}

    def host_registry(action: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "host", "registry", action),
                *("--address", address, "--data-dir", str(data_dir), *extra),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    try:
        started = host_registry("ensure", "--image", image)
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout) == {
            "address": address,
            "pid": None,
            "container": "boutique-local-registry",
            "started": True,
        }
        assert started.stderr == (
            f"docker-registry is not on PATH: running {image} as container "
            "boutique-local-registry instead\n"
        )
        assert answers(address)
        reused = host_registry("ensure", "--image", image)
        assert json.loads(reused.stdout)["started"] is False, reused.stderr

        removed = host_registry("remove")
        assert json.loads(removed.stdout) == {
            "address": address,
            "pid": None,
            "container": "boutique-local-registry",
            "stopped": True,
        }
        assert not container_exists("boutique-local-registry")
        assert not answers(address)
        assert json.loads(host_registry("remove").stdout)["stopped"] is False
    finally:
        host_registry("remove")
        subprocess.run(
            ["docker", "rm", "--force", "boutique-local-registry"], check=False, capture_output=True
        )
        subprocess.run(["docker", "image", "rm", image], capture_output=True, check=False)
