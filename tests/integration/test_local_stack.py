"""The local stack's pieces, run for real without the Pulumi CLI (which cannot be installed here).

- `scripts/local-up` with a stub `pulumi` in a release-shaped archive served from 127.0.0.1
  (tests/pulumi_release.py): it installs that CLI into .tools/pulumi, sets the backend and the
  passphrase, runs `stack select --create local` and `up --yes`, prints one line per step from
  the engine events the stub writes, and the proof table from the `images` output it returns;
  `--destroy` destroys and says what it kept. Without Docker it names each fix and changes
  nothing; as root on Debian 12/13 it runs scripts/install-docker (a recording stand-in here:
  the real one would change this shared machine; CI runs the real one through scripts/test).
- The flow `pulumi up --stack local` drives: the LocalRegistry's exact command lines (ensure as
  `run_output` and the Command's create both run it, then delete), a two-platform
  `docker buildx build --push` into that registry, the verification Command's line with
  `--attest` (key created on first use), and `python -m verify attestations` on the tag.

The build uses the engine's default `docker` driver: the stack's `docker-container` builder
(`network: host`) needs the moby/buildkit image, which cannot be pulled on these machines.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from host.contract import RegistryEnsureRequest, RegistryRemoveRequest
from host.progress import step_line
from host.proof_table import render
from plan.settings import PLATFORMS
from plan.tools import tool_command
from plan.verification import RunPlan, VerifyOptions, verify_request
from tests.engine_events import Events
from tests.integration.conftest import BuildxBuild, missing_prerequisite
from tests.integration.dockerenv import free_loopback_port, remove_local_images
from tests.program_mocks import ROOT
from tests.pulumi_release import (
    ReleaseServer,
    path_without_pulumi,
    release_files,
    write_project_files,
)
from verify.attest import dsse
from verify.attest.oras import Registry as ArtifactRegistry
from verify.auth import CredentialResolver
from verify.reference import parse_reference
from verify.registry import RegistryClient

LOCAL_UP = ROOT / "scripts" / "local-up"
PINNED = "3.272.0"


def unprivileged(argv: list[str]) -> list[str]:
    """`argv` as user nobody when the tests run as root (local-up decides by the user id)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop root")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def run_local_up(
    project: Path, env: dict[str, str], *args: str, as_root: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the copy of scripts/local-up in `project` (it works on the directory above itself)."""
    argv = ["bash", str(project / "scripts" / "local-up"), *args]
    return subprocess.run(
        argv if as_root else unprivileged(argv),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def bare_project(parent: Path) -> Path:
    """scripts/local-up and what it reads first, in a directory user nobody can read too."""
    project = parent / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(LOCAL_UP, project / "scripts" / "local-up")
    write_project_files(project, PINNED)
    for directory in (parent, project, project / "scripts"):
        directory.chmod(0o755)
    return project


@pytest.fixture
def readable_tmp() -> Iterator[Path]:
    """A temporary directory user nobody can enter (pytest's tmp_path is root's only)."""
    directory = Path(tempfile.mkdtemp(prefix="local-up-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_local_up_without_docker_names_each_fix_and_changes_nothing(readable_tmp: Path) -> None:
    if shutil.which("docker") is None:
        missing_prerequisite("the docker CLI is not on PATH")
    project = bare_project(readable_tmp)
    env = {
        **os.environ,
        "PATH": path_without_pulumi(),
        "DOCKER_HOST": f"unix://{readable_tmp / 'no-daemon.sock'}",
    }
    result = run_local_up(project, env, as_root=False)
    assert result.returncode == 1, result.stderr
    # Without scripts/install-docker beside it, the fix is the generic one.
    assert result.stderr.splitlines() == [
        "scripts/local-up: missing prerequisite: the Docker daemon is not reachable "
        "(docker version shows no server); fix: start Docker",
    ]
    assert result.stdout == ""
    assert sorted(path.name for path in project.iterdir()) == [
        ".pulumi-version",
        "requirements.txt",
        "scripts",
    ]


def on_debian_12_or_13() -> bool:
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        return False
    return "ID=debian" in release.splitlines() and any(
        f"VERSION_CODENAME={name}" in release.splitlines() for name in ("bookworm", "trixie")
    )


RECORDING_INSTALL_DOCKER = """#!/bin/sh
# Stands in for scripts/install-docker: records that local-up ran it, as whom.
id -u >> "$(dirname "$0")/../install-docker-runs"
"""


def test_local_up_as_non_root_on_debian_names_install_docker_and_changes_nothing(
    readable_tmp: Path,
) -> None:
    if shutil.which("docker") is None:
        missing_prerequisite("the docker CLI is not on PATH")
    if not on_debian_12_or_13():
        pytest.skip("scripts/install-docker is offered on Debian 12/13 only")
    project = bare_project(readable_tmp)
    (project / "scripts" / "install-docker").write_text(RECORDING_INSTALL_DOCKER)
    (project / "scripts" / "install-docker").chmod(0o755)
    env = {**os.environ, "DOCKER_HOST": f"unix://{readable_tmp / 'no-daemon.sock'}"}
    result = run_local_up(project, env, as_root=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "scripts/local-up: missing prerequisite: the Docker daemon is not reachable "
        "(docker version shows no server); fix: `sudo scripts/install-docker` (Debian 12/13)",
    ]
    assert not (project / "install-docker-runs").exists()
    assert not (project / ".venv").exists() and not (project / ".tools").exists()
    assert not (project / ".pulumi-local").exists()


@pytest.fixture
def release_server() -> Iterator[ReleaseServer]:
    server = ReleaseServer(release_files(PINNED)).start()
    yield server
    server.stop()


@dataclass
class StubbedProject:
    """A copy of what scripts/local-up runs, the project's .venv, and the stub CLI's inputs."""

    root: Path
    env: dict[str, str]

    def calls(self) -> list[dict[str, Any]]:
        log = self.root / "pulumi-calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def commands(self) -> list[list[str]]:
        """The stub's arguments, with the event log's temporary path replaced by FILE."""
        return [
            ["FILE" if previous == "--event-log" else arg for previous, arg in pairwise(call)]
            for call in (["", *record["args"]] for record in self.calls())
        ]


def stubbed_project(tmp_path: Path, server: ReleaseServer) -> StubbedProject:
    project = bare_project(tmp_path)
    shutil.copytree(ROOT / "host", project / "host", ignore=shutil.ignore_patterns("__pycache__"))
    # The project's own virtualenv: requirements.txt is satisfied, so pip downloads nothing.
    (project / ".venv").symlink_to(Path(sys.executable).parent.parent)
    up_events, destroy_events = Events(), Events()
    up_events.registry(100, 101)
    up_events.builder(100, 103)
    up_events.service("frontend", 103, 166, 170, 171)
    up_events.service("checkoutservice", 103, 140, 144, 145)
    destroy_events.service("frontend", 200, 200, 200, 200, op="delete")
    destroy_events.registry(200, 201, op="delete")
    destroy_events.builder(201, 203, op="delete")
    inputs = tmp_path / "stub-inputs"
    inputs.mkdir()
    (inputs / "up.json").write_text(json.dumps(up_events.events))
    (inputs / "destroy.json").write_text(json.dumps(destroy_events.events))
    (inputs / "images.json").write_text(IMAGES_OUTPUT)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PULUMI_") and key not in ("no_proxy", "NO_PROXY")
    }
    env.update(
        PATH=path_without_pulumi(),
        PULUMI_DOWNLOAD_URL=server.base_url,
        no_proxy="127.0.0.1",
        NO_PROXY="127.0.0.1",
        STUB_PULUMI_LOG=str(project / "pulumi-calls.jsonl"),
        STUB_PULUMI_UP_EVENTS=str(inputs / "up.json"),
        STUB_PULUMI_DESTROY_EVENTS=str(inputs / "destroy.json"),
        STUB_PULUMI_IMAGES=str(inputs / "images.json"),
    )
    return StubbedProject(project, env)


DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGES_OUTPUT = json.dumps(
    {
        service: {
            "ref": f"127.0.0.1:5000/{service}:v1@{DIGEST}",
            "digest": DIGEST,
            "tag": "v1",
            "platforms": {"linux/amd64": DIGEST, "linux/arm64": DIGEST},
        }
        for service in ("checkoutservice", "frontend")
    }
)


def step_lines(stderr: str) -> list[str]:
    """The step lines (without their durations) local-up printed."""
    return [
        line.removeprefix("scripts/local-up: ")[:46].rstrip()
        for line in stderr.splitlines()
        if line.startswith("scripts/local-up: ") and re.search(r" \d+(s|m\d\ds|h\d\dm)(  |$)", line)
    ]


@pytest.mark.docker
def test_local_up_installs_the_cli_runs_the_stack_and_prints_the_proof(
    docker_engine: None, tmp_path: Path, release_server: ReleaseServer
) -> None:
    project = stubbed_project(tmp_path, release_server)
    result = run_local_up(project.root, project.env, "--refresh")
    assert result.returncode == 0, result.stderr
    backend = f"file://{project.root}/.pulumi-local"
    assert project.commands() == [
        ["version"],  # the installer runs the unpacked CLI once
        ["stack", "select", "--create", "local", "--secrets-provider", "passphrase"],
        [
            "up",
            "--yes",
            "--non-interactive",
            "--stack",
            "local",
            "--event-log",
            "FILE",
            "--refresh",
        ],
        ["stack", "output", "images", "--stack", "local", "--json"],
    ]
    for call in project.calls()[1:]:
        assert call["cwd"] == str(project.root)
        assert call["env"] == {
            "PULUMI_BACKEND_URL": backend,
            "PULUMI_CONFIG_PASSPHRASE": "boutique-local-only",
            "PULUMI_CONFIG_PASSPHRASE_FILE": None,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
    assert step_lines(result.stderr) == [
        "venv .venv (requirements.txt)",
        f"Pulumi CLI {PINNED}",
        "Docker toolchain",
        "registry ready",
        "builder ready",
        "built frontend",
        "verified frontend",
        "tagged frontend",
        "built checkoutservice",
        "verified checkoutservice",
        "tagged checkoutservice",
        "pulumi up --stack local",
    ]
    assert step_line("built frontend", 63) in result.stderr
    assert "downloaded into .tools/pulumi" in result.stderr
    assert "Updating (local):" in result.stdout  # the CLI's own output stays visible
    assert result.stdout.endswith("\n".join(render(IMAGES_OUTPUT)) + "\n")
    assert (project.root / ".tools" / "pulumi" / "bin" / "pulumi").is_file()

    downloads = release_server.downloads()
    again = run_local_up(project.root, project.env)
    assert again.returncode == 0, again.stderr
    assert release_server.downloads() == downloads
    assert "installed earlier in .tools/pulumi" in again.stderr
    assert project.commands()[-3][:3] == ["stack", "select", "--create"]


@pytest.mark.docker
def test_local_up_keeps_your_own_passphrase_and_backend(
    docker_engine: None, tmp_path: Path, release_server: ReleaseServer
) -> None:
    project = stubbed_project(tmp_path, release_server)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("not the default\n")
    state = tmp_path / "elsewhere"
    state.mkdir()
    env = {
        **project.env,
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase),
        "PULUMI_BACKEND_URL": f"file://{state}",
    }
    result = run_local_up(project.root, env)
    assert result.returncode == 0, result.stderr
    assert project.calls()[-1]["env"]["PULUMI_CONFIG_PASSPHRASE"] is None
    assert project.calls()[-1]["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase)
    assert project.calls()[-1]["env"]["PULUMI_BACKEND_URL"] == f"file://{state}"
    assert not (project.root / ".pulumi-local").exists()


@pytest.mark.docker
def test_a_failed_up_prints_no_table(
    docker_engine: None, tmp_path: Path, release_server: ReleaseServer
) -> None:
    project = stubbed_project(tmp_path, release_server)
    result = run_local_up(project.root, {**project.env, "STUB_PULUMI_EXIT": "1"})
    assert result.returncode == 1
    assert [call[0] for call in project.commands()] == ["version", "stack", "up"]
    assert "service" not in result.stdout


def test_destroy_removes_the_stack_s_resources_and_says_what_it_kept(
    tmp_path: Path, release_server: ReleaseServer
) -> None:
    project = stubbed_project(tmp_path, release_server)
    nothing = run_local_up(project.root, project.env, "--destroy")
    assert nothing.returncode == 0, nothing.stderr
    assert (
        "scripts/local-up: nothing to destroy: there is no stack 'local' in "
        f"file://{project.root}/.pulumi-local"
    ) in nothing.stderr.splitlines()
    assert not (project.root / ".pulumi-local").exists()

    (project.root / ".pulumi-local").mkdir()
    (project.root / ".pulumi-local" / "stub-stack-local").touch()  # as `up` left it
    result = run_local_up(project.root, project.env, "--destroy")
    assert result.returncode == 0, result.stderr
    assert project.commands()[-2:] == [
        ["stack", "select", "local"],
        ["destroy", "--yes", "--non-interactive", "--stack", "local", "--event-log", "FILE"],
    ]
    assert project.calls()[-1]["env"]["PULUMI_CONFIG_PASSPHRASE"] == "boutique-local-only"
    assert step_lines(result.stderr)[2:] == [
        "removed frontend",
        "removed frontend",
        "removed frontend",
        "removed registry",
        "removed builder",
        "pulumi destroy --stack local",
    ]
    assert result.stderr.splitlines()[-2:] == [
        "scripts/local-up: kept: the pushed images in .cache/registry/data "
        "(remove: rm -rf .cache/registry)",
        "scripts/local-up: kept: the Pulumi CLI in .tools/pulumi (remove: rm -rf .tools) "
        "and the empty stack in .pulumi-local/ (remove: rm -rf .pulumi-local)",
    ]


def test_as_root_without_the_toolchain_it_runs_install_docker(
    tmp_path: Path, release_server: ReleaseServer
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the install path runs as root only")
    if not on_debian_12_or_13():
        pytest.skip("scripts/install-docker runs on Debian 12/13 only")
    if shutil.which("docker") is None:
        missing_prerequisite("the docker CLI is not on PATH")
    project = stubbed_project(tmp_path, release_server)
    (project.root / "scripts" / "install-docker").write_text(RECORDING_INSTALL_DOCKER)
    (project.root / "scripts" / "install-docker").chmod(0o755)
    env = {**project.env, "DOCKER_HOST": f"unix://{tmp_path / 'no-daemon.sock'}"}
    result = run_local_up(project.root, env)
    # The stand-in installs nothing, so the re-check still finds the daemon missing.
    assert result.returncode == 1
    assert (project.root / "install-docker-runs").read_text() == "0\n"
    assert "scripts/local-up: Docker toolchain incomplete; running scripts/install-docker" in (
        result.stderr.splitlines()
    )
    assert result.stderr.splitlines()[-1] == (
        "scripts/local-up: error: after scripts/install-docker: the Docker daemon is not "
        "reachable (docker version shows no server); fix: `sudo scripts/install-docker` "
        "(Debian 12/13)"
    )
    assert [call[0] for call in project.commands()] == ["version"]


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
    ensure = tool_command(RegistryEnsureRequest(address, data_dir), sys.executable)
    remove = tool_command(RegistryRemoveRequest(address, data_dir), sys.executable)
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
            'CMD ["sleep", "600"]\n'
        )
        repository = f"{address}/boutique/app"
        digest = buildx_build(context, f"{repository}:v1")

        # The verification Command's line as the local stack builds it: deep, started on both
        # platforms (a worker's `up` probe here), attested with a key created on first use. The
        # fixture base carries both architectures' busybox as its "cross toolchain".
        key = tmp_path / "state" / "attest-key.pem"
        options = VerifyOptions(
            deep=True,
            allow=("/opt/cross/*",),
            gcp=False,
            run=RunPlan(probe="up:2", env=(), skipped={}),
            attest_key=str(key),
        )
        line = tool_command(
            verify_request(f"{repository}@{digest}", PLATFORMS, options), sys.executable
        )
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
        assert all(result["run"]["ok"] for result in document["platforms"].values())
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
        # The verification statement names each platform's start.
        public_key = dsse.load_public_key(Path(f"{key}.pub"))
        reference = parse_reference(f"{repository}@{digest}")
        artifacts = ArtifactRegistry(RegistryClient(CredentialResolver(False, environ={})))
        manifest = json.loads(artifacts.get_manifest(reference, document["referrers"]["index"]))
        envelope = artifacts.get_envelope(reference, manifest["layers"][0]["digest"])
        predicate = dsse.open_envelope(envelope, public_key).predicate
        assert predicate["result"] == "PASSED"
        assert {"start:linux/amd64", "start:linux/arm64"} <= set(predicate["passedTests"])

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


PYTHON_WITHOUT_VENV = """#!/bin/sh
# python3 as Debian ships it without python3-venv: no ensurepip.
case "$*" in *ensurepip*) exit 1 ;; esac
exec {python} "$@"
"""


@pytest.mark.docker
def test_a_python_without_venv_is_named_before_anything_is_created(
    docker_engine: None, tmp_path: Path
) -> None:
    project = bare_project(tmp_path)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python3").write_text(PYTHON_WITHOUT_VENV.format(python=sys.executable))
    (tools / "python3").chmod(0o755)
    for tool in ("bash", "dirname", "git", "docker", "grep"):
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not on PATH"
        (tools / tool).symlink_to(found)
    result = run_local_up(project, {**os.environ, "PATH": str(tools)})
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "scripts/local-up: missing prerequisite: python3 cannot create .venv (no venv/ensurepip "
        "module); fix: `sudo apt-get install python3-venv` (Debian/Ubuntu)"
    ]
    assert not (project / ".venv").exists()
