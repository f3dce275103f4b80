"""Real Docker toolchain and registry processes for the integration tests.

Starts Debian's `docker-registry` on loopback ports, probes the Docker Engine and buildx, runs
multi-platform builds and reads manifests back over the registry's HTTP API. The pytest fixtures
in `conftest.py` wrap these; nothing here imports pytest so a failure is a plain exception.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BUSYBOX_CACHE = REPO_ROOT / ".cache" / "busybox"

INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# buildx marks its provenance/SBOM manifests in an index with this annotation.
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"

REGISTRY_START_TIMEOUT_S = 20.0
PORT_ATTEMPTS = 3
BUILD_TIMEOUT_S = 3600


class ToolchainError(RuntimeError):
    """A prerequisite (Docker Engine, buildx, QEMU, registry binary) is missing or broken."""


class BuildError(RuntimeError):
    """`docker buildx build` failed; the message carries the command and the build log."""


@dataclass
class Registry:
    """A `docker-registry serve` process on 127.0.0.1 with filesystem storage."""

    address: str
    """host:port, e.g. "127.0.0.1:40123"; use it in image references."""
    storage_dir: Path
    """Directory that holds the registry's config, storage and (optional) htpasswd file."""
    credentials: tuple[str, str] | None
    """(user, password) the registry requires, or None for an anonymous registry."""
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        """What the registry process has written so far (its stdout and stderr)."""
        log_file = self.storage_dir / "registry.log"
        return log_file.read_text(errors="replace") if log_file.exists() else ""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bcrypt_htpasswd_line(user: str, password: str) -> str:
    """One htpasswd line with a bcrypt hash; the password goes over stdin, never argv."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        raise ToolchainError("htpasswd (apache2-utils) is not on PATH")
    result = subprocess.run(
        [htpasswd, "-B", "-i", "-n", user],
        input=password.encode(),
        capture_output=True,
        check=True,
    )
    return result.stdout.decode().strip() + "\n"


def _registry_config(
    address: str, htpasswd_file: Path | None, storage_root: Path | None = None
) -> str:
    auth = ""
    if htpasswd_file is not None:
        auth = f"auth:\n  htpasswd:\n    realm: boutique-tests\n    path: {htpasswd_file}\n"
    if storage_root is not None:
        # The in-memory driver copies a blob as it grows (about 1 MB/s for a 100 MB upload):
        # benchmarks that push hundreds of MB over HTTP, once and without buildx, use disk.
        return (
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage_root}\n"
            f"http:\n  addr: {address}\n"
            f"{auth}"
        )
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        # In-memory storage: distribution 2.8's filesystem driver rewrites a tag's link file in
        # place, and the engine's second push (buildx `--push` with the docker driver pushes once
        # from BuildKit, then again "with docker") intermittently read it half-written: HEAD
        # manifests/<tag> answered 500 "invalid checksum digest format". The in-memory driver
        # serialises every read and write; test images are small.
        "storage:\n  inmemory: {}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
        f"{auth}"
    )


def start_registry(
    parent_dir: Path, htpasswd: tuple[str, str] | None = None, on_disk: bool = False
) -> Registry:
    """Starts a registry on a free loopback port and waits until /v2/ answers.

    Storage is in memory unless ``on_disk`` (see :func:`_registry_config`).
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        raise ToolchainError("docker-registry is not on PATH")
    storage_dir = Path(tempfile.mkdtemp(prefix="registry-", dir=parent_dir))
    htpasswd_file = None
    if htpasswd is not None:
        htpasswd_file = storage_dir / "htpasswd"
        htpasswd_file.write_text(bcrypt_htpasswd_line(*htpasswd))
    # The free port is released before the registry binds it, so any outgoing connection may
    # take it in between (ephemeral ports come from the same range): then try another port.
    for attempt in range(1, PORT_ATTEMPTS + 1):
        address = f"127.0.0.1:{free_loopback_port()}"
        config_file = storage_dir / "config.yml"
        storage_root = storage_dir / "storage" if on_disk else None
        config_file.write_text(_registry_config(address, htpasswd_file, storage_root))
        with (storage_dir / "registry.log").open("wb") as log:
            process = subprocess.Popen(
                [binary, "serve", str(config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        registry = Registry(address, storage_dir, htpasswd, process)
        try:
            _wait_until_serving(registry)
        except ToolchainError:
            if attempt < PORT_ATTEMPTS and "address already in use" in registry.log():
                continue
            raise
        return registry
    raise AssertionError("unreachable: the last attempt returns or raises")


def _wait_until_serving(registry: Registry) -> None:
    deadline = time.monotonic() + REGISTRY_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            raise ToolchainError(
                f"docker-registry exited with {registry.process.returncode} at {registry.address}:"
                f"\n{registry.log()}"
            )
        try:
            with urllib.request.urlopen(f"{registry.url}/v2/", timeout=2):
                return
        except urllib.error.HTTPError as error:
            if error.code == 401:  # an htpasswd registry is up and asks for credentials
                return
            raise
        except OSError:
            time.sleep(0.1)
    registry.stop()
    raise ToolchainError(
        f"docker-registry did not answer on {registry.url}/v2/ within "
        f"{REGISTRY_START_TIMEOUT_S:.0f} s:\n{registry.log()}"
    )


def _run(args: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def check_docker_engine(platforms: Sequence[str]) -> None:
    """Raises ToolchainError unless dockerd, the containerd image store and buildx are usable
    and the default builder can build every platform in `platforms`."""
    if shutil.which("docker") is None:
        raise ToolchainError("the docker CLI is not on PATH")
    info = _run(["docker", "info", "--format", "{{json .DriverStatus}}"])
    if info.returncode != 0:
        raise ToolchainError(f"'docker info' failed (is dockerd running?): {info.stderr.strip()}")
    if "io.containerd.snapshotter" not in info.stdout:
        raise ToolchainError(
            "dockerd does not use the containerd image store, so it cannot hold multi-platform "
            'images; set {"features": {"containerd-snapshotter": true}} in '
            f"/etc/docker/daemon.json and restart dockerd (storage: {info.stdout.strip()})"
        )
    inspect = _run(["docker", "buildx", "inspect", "default"])
    if inspect.returncode != 0:
        raise ToolchainError(
            f"'docker buildx inspect' failed (buildx plugin missing?): {inspect.stderr.strip()}"
        )
    supported = _builder_platforms(inspect.stdout)
    missing = [platform for platform in platforms if platform not in supported]
    if missing:
        raise ToolchainError(
            f"the default buildx builder cannot build {', '.join(missing)} (it lists "
            f"{', '.join(sorted(supported)) or 'nothing'}); is QEMU registered in binfmt_misc?"
        )


def _builder_platforms(inspect_output: str) -> set[str]:
    platforms: set[str] = set()
    for line in inspect_output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Platforms":
            platforms.update(item.strip().rstrip("*") for item in value.split(","))
    return platforms


def buildx_command(context_dir: Path, platforms: Sequence[str], *options: str) -> list[str]:
    """`docker buildx build` of `context_dir` for `platforms` with the default docker driver."""
    return [
        *("docker", "buildx", "build", "--builder", "default", "--progress", "plain"),
        *("--platform", ",".join(platforms)),
        *options,
        str(context_dir),
    ]


def split_ref(ref: str) -> tuple[str, str, str]:
    """ "127.0.0.1:5000/base/busybox:1" -> ("127.0.0.1:5000", "base/busybox", "1")."""
    address, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    return address, repository, tag


def buildx_build(
    context_dir: Path,
    tag: str,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    extra_args: Sequence[str] = (),
) -> str:
    """Builds `context_dir` for `platforms` with the default docker driver, pushes `tag` and
    returns the pushed digest (the index digest for a multi-platform build)."""
    with tempfile.TemporaryDirectory(prefix="buildx-metadata-") as metadata_dir:
        metadata_file = Path(metadata_dir) / "metadata.json"
        command = buildx_command(
            context_dir,
            platforms,
            *("--tag", tag, "--push", "--metadata-file", str(metadata_file)),
            *extra_args,
        )
        result = _run(command, timeout=BUILD_TIMEOUT_S)
        if result.returncode != 0:
            raise BuildError(
                f"'{' '.join(command)}' exited with {result.returncode}:\n{result.stderr}"
            )
        digest = json.loads(metadata_file.read_text()).get("containerimage.digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise BuildError(f"buildx pushed {tag} but reported no digest:\n{result.stderr}")
    return digest


def remove_local_images(registry_address: str) -> None:
    """Removes the engine's local copies of images tagged for `registry_address`: a push with
    the containerd image store also keeps the image locally, and test registries use a new
    port every session, so nothing would ever reuse them."""
    if shutil.which("docker") is None:
        return
    listing = _run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
    tags = [tag for tag in listing.stdout.split() if tag.startswith(f"{registry_address}/")]
    if tags:
        # Seconds per image, not one minute for all: a session leaves dozens, and a busy engine
        # took over 60 s to remove 45 (2026-12-01, beside a mutation run).
        _run(["docker", "image", "rm", *tags], timeout=max(60, 10 * len(tags)))


def registry_get(
    registry: Registry,
    path: str,
    accept: Sequence[str] = (),
    credentials: tuple[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """GET `path` (below /v2/) from the registry; returns body and headers. HTTP errors raise
    urllib.error.HTTPError."""
    request = urllib.request.Request(f"{registry.url}/v2/{path}")
    if accept:
        request.add_header("Accept", ", ".join(accept))
    if credentials is not None:
        token = b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read(), dict(response.headers.items())


def read_manifest(
    registry: Registry, repository: str, reference: str
) -> tuple[str, dict[str, Any]]:
    """Returns (media type, parsed JSON) of an index or manifest in the registry."""
    body, headers = registry_get(
        registry,
        f"{repository}/manifests/{reference}",
        accept=(*INDEX_MEDIA_TYPES, *MANIFEST_MEDIA_TYPES),
        credentials=registry.credentials,
    )
    manifest = json.loads(body)
    return headers.get("Content-Type", manifest.get("mediaType", "")), manifest


def image_platforms(index: dict[str, Any]) -> dict[str, str]:
    """Maps "os/arch[/variant]" to the image manifest digest in an index, leaving out
    buildx attestation manifests (they carry platform unknown/unknown)."""
    platforms: dict[str, str] = {}
    for descriptor in index.get("manifests", []):
        if ATTESTATION_ANNOTATION in descriptor.get("annotations", {}):
            continue
        platform = descriptor["platform"]
        name = "/".join(
            part
            for part in (platform["os"], platform["architecture"], platform.get("variant"))
            if part
        )
        platforms[name] = descriptor["digest"]
    return platforms
