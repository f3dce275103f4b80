"""The CLI's argument checks and exit codes, run as a real process (no registry needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
    }
    return subprocess.run(
        [sys.executable, "-m", "verify", *args],
        cwd=REPO,
        env={**environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


NEEDS_ATTEST = "--key, --create-key and --kms sign attestations: they need --attest"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


REF = "127.0.0.1:5000/a:1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["busybox:1"],
            "image reference 'busybox:1': no registry host; expected host[:port]/repository[:tag] "
            "or host[:port]/repository[:tag]@sha256:<64 hex>",
        ),
        (
            [REF, "--platform", "linux"],
            "--platform: platform 'linux' is not valid; expected os/architecture[/variant], e.g. "
            "linux/amd64 or linux/arm64/v8",
        ),
        (
            [REF, "--deep", "--platform", "linux/sparc"],
            "--platform linux/sparc: --deep knows no ELF machine for architecture 'sparc'; known: "
            "386, amd64, arm, arm64, loong64, mips64le, ppc64le, riscv64, s390x",
        ),
        ([REF, "--allow", ""], "--allow '': a glob must be non-empty with no outer spaces"),
        ([REF, "--allow", " /x"], "--allow ' /x': a glob must be non-empty with no outer spaces"),
        ([REF, "--allow", "/x "], "--allow '/x ': a glob must be non-empty with no outer spaces"),
        ([REF, "--attest"], "--attest needs --deep: the attestations carry the layers' SBOM"),
        (
            [REF, REF, "--deep", "--attest"],
            "--attest attests one image; 2 references were given",
        ),
        (
            [REF, "--deep", "--attest"],
            "--attest needs exactly one of --key PEM and --kms KEY_VERSION",
        ),
        (
            [REF, "--deep", "--attest", "--kms", "k", "--create-key"],
            "--create-key creates the --key file; KMS keys are made in KMS",
        ),
        ([REF, "--key", "k.pem"], NEEDS_ATTEST),
        ([REF, "--create-key"], NEEDS_ATTEST),
        ([REF, "--kms", "k"], NEEDS_ATTEST),
    ],
)
def test_usage_errors_exit_2_with_one_message(args: list[str], message: str) -> None:
    result = run(*args, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"verify: {message}\n"


def test_a_platform_named_twice_is_required_once() -> None:
    ref = f"127.0.0.1:{closed_port()}/a:1"
    result = run(ref, "--platform", "linux/arm64", "--platform", "linux/arm64/v8", "--deep")
    assert result.returncode == 2
    assert result.stderr.startswith(f"verify: {ref}: linux/arm64: manifest 1: connection failed")


def test_half_set_credentials_are_refused_before_any_request() -> None:
    # Nothing listens on the port: had a request been made, the error would be a connection one.
    result = run(f"127.0.0.1:{closed_port()}/a:1", REGISTRY_USERNAME="alice")
    assert result.returncode == 2
    assert result.stderr == (
        "verify: REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not; set both or neither\n"
    )


def test_unreachable_registry_is_retried_then_exit_2() -> None:
    ref = f"127.0.0.1:{closed_port()}/boutique/frontend:v1"
    result = run(ref, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"verify: {ref}: linux/amd64, linux/arm64: manifest v1: ")
    assert "Connection refused" in result.stderr
    assert result.stderr.rstrip().endswith("(gave up after 4 tries)")


def test_argparse_errors_exit_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "the following arguments are required: REF" in result.stderr


DIGEST = "sha256:" + "a" * 64
PINNED = f"127.0.0.1:1/a:1@{DIGEST}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1:1/a:1"], "'127.0.0.1:1/a:1' names no digest (HOST/REPO[:TAG]@DIGEST)"),
        ([PINNED, "--immutable"], "--immutable takes HOST/REPO:TAG (no digest: none is built yet)"),
        (
            [f"127.0.0.1:1/a@{DIGEST}", "--immutable"],
            "--immutable takes HOST/REPO:TAG (no digest: none is built yet)",
        ),
        (
            [PINNED, "--manifest", "linux/amd64"],
            "--manifest 'linux/amd64' is not PLATFORM=sha256:<hex>",
        ),
        (
            [PINNED, "--manifest", "linux/amd64=md5:1"],
            "--manifest 'linux/amd64=md5:1' is not PLATFORM=sha256:<hex>",
        ),
        (
            [PINNED, "--manifest", "linux=sha256:1"],
            "--manifest 'linux=sha256:1': platform 'linux' is not valid; expected "
            "os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8",
        ),
    ],
)
def test_published_usage_errors_exit_2_before_any_request(args: list[str], message: str) -> None:
    # Nothing listens on port 1: a request would have been a connection error instead.
    result = run("published", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"verify published: {args[0]}: {message}\n"
