"""`python -m verify --run` against images built here with the real toolchain.

Each image is built FROM the busybox base fixture for linux/amd64 and linux/arm64 (arm64 runs
through QEMU), pushed to Debian's docker-registry on 127.0.0.1, then verified and started by
the tool as a real process. After every test no container carrying the tool's run label exists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import BuildxBuild
from tests.integration.dockerenv import REPO_ROOT, Registry
from tests.interrupts import ctrl_c_as_from_a_terminal
from tests.test_verify_cli import run
from verify.attest import dsse
from verify.attest.oras import Registry as ArtifactRegistry
from verify.auth import CredentialResolver
from verify.reference import parse_reference
from verify.registry import RegistryClient
from verify.run import RUN_LABEL

PLATFORMS = ("linux/amd64", "linux/arm64")

SERVING = """\
ARG BASE
FROM ${BASE}
RUN mkdir -p /www && echo ok > /www/index.html
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
"""

# The arm64 entrypoint fails the way a missing native module does: at start, with a message.
ARM64_EXITS_3 = """\
ARG BASE
FROM ${BASE}
ARG TARGETARCH
RUN mkdir -p /www && echo ok > /www/index.html && \\
    printf '#!/bin/sh\\necho "loading native module"\\n' > /fail && \\
    printf 'echo "Error: x.node: \\033[31mwrong ELF class\\033[0m" >&2\\nexit 3\\n' >> /fail && \\
    printf '#!/bin/sh\\nexec httpd -f -p 8080 -h /www\\n' > /serve && \\
    if [ "$TARGETARCH" = arm64 ]; then mv /fail /start; else mv /serve /start; fi && \\
    chmod 755 /start
ENTRYPOINT ["/start"]
"""

NEVER_LISTENS = """\
ARG BASE
FROM ${BASE}
CMD ["sh", "-c", "echo 'connecting to the database'; echo 'still waiting' >&2; sleep 3600"]
"""

WORKER = """\
ARG BASE
FROM ${BASE}
CMD ["sh", "-c", "echo worker started; sleep 3600"]
"""

SHORT_LIVED_WORKER = """\
ARG BASE
FROM ${BASE}
CMD ["sh", "-c", "echo worker started; sleep 1; echo giving up; exit 4"]
"""


def leftover_containers() -> list[str]:
    listing = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={RUN_LABEL}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return listing.stdout.split()


@pytest.fixture(autouse=True)
def no_container_left(docker_engine: None) -> Iterator[None]:
    yield
    assert leftover_containers() == [], "verify --run left containers behind"


def build(
    buildx_build: BuildxBuild, registry: Registry, base: str, dockerfile: str, name: str
) -> str:
    """Build and push `dockerfile` for both platforms; returns `<repository>@<digest>`."""
    with tempfile.TemporaryDirectory(prefix="run-image-") as directory:
        context = Path(directory)
        (context / "Dockerfile").write_text(dockerfile)
        repository = f"{registry.address}/run/{name}"
        digest = buildx_build(
            context,
            f"{repository}:candidate",
            PLATFORMS,
            extra_args=("--build-arg", f"BASE={base}"),
        )
    return f"{repository}@{digest}"


def verify_run(ref: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verify", ref, "--json", "--run", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.docker
@pytest.mark.registry
def test_an_image_serving_http_on_both_platforms_passes(
    buildx_build: BuildxBuild, registry: Registry, busybox_base: str
) -> None:
    ref = build(buildx_build, registry, busybox_base, SERVING, "serving")
    result = verify_run(ref, "--probe", "http:8080/index.html", "--run-timeout", "60")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for platform in PLATFORMS:
        run = document["platforms"][platform]["run"]
        assert run["ok"] is True, (platform, run)
        assert run["probe"] == "http:8080/index.html"
        assert 0 < run["seconds"] < 60
        assert run["exitCode"] is None


@pytest.mark.docker
@pytest.mark.registry
def test_an_arm64_entrypoint_that_exits_3_fails_naming_the_platform_and_status(
    buildx_build: BuildxBuild, registry: Registry, busybox_base: str
) -> None:
    ref = build(buildx_build, registry, busybox_base, ARM64_EXITS_3, "arm64-exits")
    result = verify_run(ref, "--probe", "http:8080/", "--run-timeout", "60")
    assert result.returncode == 1, result.stderr
    expected = f"verify: {ref}: linux/arm64: run failed (http:8080/): the container exited with"
    assert f"{expected} status 3" in result.stderr, result.stderr
    # The log tail, with the escape sequences escaped.
    assert f"verify: {ref}: linux/arm64: log: loading native module" in result.stderr
    assert "wrong ELF class" in result.stderr and "\x1b" not in result.stderr
    assert "\\x1b[31m" in result.stderr
    assert "linux/amd64: run failed" not in result.stderr
    document = json.loads(result.stdout)
    arm64 = document["platforms"]["linux/arm64"]["run"]
    assert arm64["ok"] is False and arm64["exitCode"] == 3
    assert "loading native module" in arm64["logTail"]
    assert document["platforms"]["linux/amd64"]["run"]["ok"] is True


@pytest.mark.docker
@pytest.mark.registry
def test_an_image_that_never_opens_its_port_fails_at_the_timeout_with_its_log(
    buildx_build: BuildxBuild, registry: Registry, busybox_base: str
) -> None:
    ref = build(buildx_build, registry, busybox_base, NEVER_LISTENS, "never-listens")
    started = time.monotonic()
    result = verify_run(
        ref, "--probe", "tcp:8080", "--run-timeout", "4", "--env", "DB_PASSWORD=s3cr3t-value"
    )
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 120
    for platform in PLATFORMS:
        assert (
            f"verify: {ref}: {platform}: run failed (tcp:8080): no success within 4 s "
            "(last attempt: " in result.stderr
        ), result.stderr
        assert f"verify: {ref}: {platform}: log: connecting to the database" in result.stderr
        assert f"verify: {ref}: {platform}: log: still waiting" in result.stderr
        run = json.loads(result.stdout)["platforms"][platform]["run"]
        assert run["ok"] is False and run["exitCode"] is None
        # One line on stdout, one on stderr: Docker keeps no order between the two streams.
        assert sorted(run["logTail"]) == ["connecting to the database", "still waiting"]
    assert "s3cr3t-value" not in result.stderr + result.stdout


@pytest.mark.docker
@pytest.mark.registry
def test_a_worker_up_after_n_seconds_passes_and_one_that_exits_fails(
    buildx_build: BuildxBuild, registry: Registry, busybox_base: str
) -> None:
    worker = build(buildx_build, registry, busybox_base, WORKER, "worker")
    result = verify_run(worker, "--probe", "up:3", "--run-timeout", "30")
    assert result.returncode == 0, result.stderr
    for platform in PLATFORMS:
        run = json.loads(result.stdout)["platforms"][platform]["run"]
        assert run["ok"] is True and run["seconds"] >= 3, run

    short = build(buildx_build, registry, busybox_base, SHORT_LIVED_WORKER, "short-worker")
    result = verify_run(short, "--probe", "up:5", "--run-timeout", "30")
    assert result.returncode == 1, result.stderr
    for platform in PLATFORMS:
        assert f"{platform}: run failed (up:5): the container exited with status 4" in (
            result.stderr
        )
        assert f"verify: {short}: {platform}: log: giving up" in result.stderr


@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_removes_its_containers(
    buildx_build: BuildxBuild, registry: Registry, busybox_base: str, stop: signal.Signals
) -> None:
    ref = build(
        buildx_build, registry, busybox_base, NEVER_LISTENS, f"interrupted-{uuid.uuid4().hex[:6]}"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "verify", ref, "--run", "--probe", "tcp:8080"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
        preexec_fn=ctrl_c_as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 120
        while len(leftover_containers()) < len(PLATFORMS):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the containers never started"
            time.sleep(0.3)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted; the run's containers were removed" in stderr
    assert leftover_containers() == []


@pytest.mark.docker
def test_a_platform_without_emulation_exits_2_naming_it_before_any_request() -> None:
    # Nothing listens on port 1: had a registry request been made, the error would say so.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "verify", "127.0.0.1:1/a:1", "--run", "--probe", "tcp:1"),
            *("--platform", "linux/amd64", "--platform", "linux/nosucharch"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("verify: --run: linux/nosucharch: no emulation known"), (
        result.stderr
    )


def index_statement(ref: str, key_path: Path) -> dict[str, object]:
    """The verification statement on `ref`'s index, opened with the public key."""
    reference = parse_reference(ref)
    assert reference.digest is not None
    artifacts = ArtifactRegistry(RegistryClient(CredentialResolver(use_gcp=False, environ={})))
    (referrer,) = artifacts.referrers(reference, reference.digest)
    manifest = json.loads(artifacts.get_manifest(reference, referrer.digest))
    envelope = artifacts.get_envelope(reference, manifest["layers"][0]["digest"])
    public_key = dsse.load_public_key(key_path.with_name(key_path.name + ".pub"))
    verified = dsse.open_envelope(envelope, public_key)
    assert verified.predicate_type == dsse.TEST_RESULT_PREDICATE
    assert isinstance(verified.predicate, dict)
    return verified.predicate


def attestations(ref: str, key_path: Path) -> subprocess.CompletedProcess[str]:
    return run("attestations", ref, "--public-key", f"{key_path}.pub")


@pytest.mark.docker
@pytest.mark.registry
def test_the_attested_test_result_names_each_start_that_passed_and_each_skipped(
    buildx_build: BuildxBuild, registry: Registry, busybox_base: str, tmp_path: Path
) -> None:
    key = tmp_path / "attest-key.pem"
    # The busybox base carries the other platform's busybox under /opt/cross on purpose.
    attest = ("--deep", "--allow", "/opt/cross/*", "--attest", "--key", str(key), "--create-key")
    ref = build(buildx_build, registry, busybox_base, SERVING, "attested-serving")
    result = verify_run(ref, "--probe", "http:8080/index.html", "--run-timeout", "60", *attest)
    assert result.returncode == 0, result.stderr
    predicate = index_statement(ref, key)
    assert predicate["result"] == "PASSED"
    assert predicate["passedTests"] == [
        *("platform:linux/amd64", "elf:linux/amd64", "start:linux/amd64"),
        *("platform:linux/arm64", "elf:linux/arm64", "start:linux/arm64"),
    ]
    assert predicate["warnedTests"] == [] and predicate["failedTests"] == []
    assert attestations(ref, key).returncode == 0

    # The same image with arm64's start skipped (as cartservice under QEMU): WARNED, and the
    # skipped start is a warned test, never a passed one. `verify attestations` accepts it.
    skipped = build(buildx_build, registry, busybox_base, SERVING, "attested-skipped")
    result = verify_run(
        skipped, "--probe", "http:8080/index.html", "--skip-run", "linux/arm64", *attest
    )
    assert result.returncode == 0, result.stderr
    predicate = index_statement(skipped, key)
    assert predicate["result"] == "WARNED"
    assert predicate["warnedTests"] == ["start:linux/arm64"]
    assert "start:linux/amd64" in predicate["passedTests"]  # type: ignore[operator]
    assert "start:linux/arm64" not in predicate["passedTests"]  # type: ignore[operator]
    checked = attestations(skipped, key)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.docker
@pytest.mark.registry
def test_a_failed_start_is_never_attested(
    buildx_build: BuildxBuild, registry: Registry, busybox_base: str, tmp_path: Path
) -> None:
    key = tmp_path / "attest-key.pem"
    ref = build(buildx_build, registry, busybox_base, ARM64_EXITS_3, "attested-exits")
    result = verify_run(
        ref,
        "--probe",
        "http:8080/",
        "--run-timeout",
        "60",
        "--deep",
        "--allow",
        "/opt/cross/*",
        "--attest",
        "--key",
        str(key),
        "--create-key",
    )
    assert result.returncode == 1, result.stderr
    assert "linux/arm64: run failed" in result.stderr
    assert "verify: attested " not in result.stderr
    assert "referrers" not in json.loads(result.stdout)
    checked = attestations(ref, key)
    assert checked.returncode == 1
    assert "index: no verification attestation refers to" in checked.stderr
    assert "linux/amd64: no SBOM attestation refers to" in checked.stderr
