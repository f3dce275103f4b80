"""The tools' contracts (`host.contract`, `patches.contract`, `verify.contract`).

Every request type renders its arguments and parses them back, through the parser its CLI uses,
to an equal request (edge values included: spaces, repeated flags, values that look like
options); what the contract refuses the CLI refuses, with the same message and exit 2; every
result type reads back what it writes; and what the real `python -m verify` prints is read by
the component's readers (`plan.verification`) against a registry on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cli_contract import ArgvError
from host import contract as host
from patches import contract as patches
from plan.tools import tool_argv, tool_command
from plan.verification import (
    RunPlan,
    VerifyOptions,
    published_check_request,
    published_digest,
    verified_platforms,
    verified_proof,
    verify_request,
)
from tests.hostile_registry import OCI_INDEX, HostileRegistry
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify import contract as verify
from verify.digests import sha256_digest

REPO = Path(__file__).resolve().parent.parent
SHA = "0123456789abcdef" * 2 + "01234567"
DIGEST = "sha256:" + "ab" * 32

REQUESTS: list[Any] = [
    host.CheckoutRequest(path="/my checkouts/online boutique", require=("src/a b/Dockerfile",)),
    host.CheckoutRequest(
        url="https://example.com/fork.git",
        commit=SHA,
        cache_dir=".cache/up stream",
        require=("src/adservice/Dockerfile", "src/cartservice/src/Dockerfile"),
    ),
    host.CheckoutRequest(path="-starts-with-a-dash"),
    host.BuilderEnsureRequest(spec='{"name": "multi arch", "nodes": []}', owner="org/p/dev"),
    host.BuilderRemoveRequest(name="multi arch", owner="org/p/dev"),
    host.BuilderRemoveRequest(name="boutique"),
    host.RegistryEnsureRequest(address="127.0.0.1:5000", data_dir=".cache/local registry"),
    host.RegistryEnsureRequest("[::1]:5001", "data", image="mirror.example/registry:2.8"),
    host.RegistryRemoveRequest(address="127.0.0.1:5000", data_dir=".cache/local registry"),
    patches.PatchRequest("apply", "--help", ("emailservice", "frontend"), SHA, json=True),
    patches.PatchRequest("check", "/tmp/with space", revision=SHA),
    patches.PatchRequest("diff", "src", ("loadgenerator", "-x"), definitions="-defs.toml"),
    verify.CheckRequest(refs=("registry.example/app:1",)),
    verify.CheckRequest(
        refs=(f"127.0.0.1:5000/app@{DIGEST}", f"--gcp/frontend@{DIGEST}"),
        platforms=("linux/amd64", "linux/arm64"),
        deep=True,
        json=True,
        allow=("/opt/my tools/*", "/usr/lib/*.node", "-looks-like-an-option"),
        sbom="sbom dir",
        sbom_format="cyclonedx",
        attest=True,
        key="keys/my key.pem",
        create_key=True,
        gcp=True,
        run=True,
        probe="grpc:9555",
        env=("PORT=9555", "DISABLE_PROFILER=1", "EMPTY="),
        skip_run=("linux/arm64",),
        run_timeout=600.0,
        jobs=2,
        trust_realms=("auth.example.com", "token.example.org"),
        max_layer_bytes="1GiB",
        timeout="120",
    ),
    verify.CheckRequest(
        refs=(f"r/app@{DIGEST}",),
        attest=True,
        kms="projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        run=True,
        probe="up:5",
        run_timeout=1.5,
    ),
    verify.PublishedRequest(
        ref=f"r.example/shop/frontend:v1@{DIGEST}",
        manifests=(f"linux/amd64={DIGEST}", f"linux/arm64={DIGEST}"),
        index_urn="urn:pulumi:dev::p::boutique:service_image:ServiceImage$x::frontend-index",
        replace=("urn:a", "-urn-that-looks-like-an-option"),
        gcp=True,
    ),
    verify.PublishedRequest(ref="r.example/shop/frontend:v2", immutable=True),
    verify.BinauthzRequest(
        ref=f"r.example/shop/frontend@{DIGEST}",
        note="projects/p/notes/boutique-verified",
        kms="projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        platform_digests=(f"linux/amd64={DIGEST}", f"linux/arm64={DIGEST}"),
        json=True,
        gcp=True,
    ),
    verify.BinauthzRequest(
        ref=f"r.example/shop/frontend@{DIGEST}",
        note="projects/p/notes/boutique-verified",
        kms="projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        platform_digests=(f"linux/arm64={DIGEST}",),
    ),
    verify.AttestIndexRequest(
        ref=f"r.example/shop/frontend@{DIGEST}",
        platform_digests=(f"linux/amd64={DIGEST}", f"linux/arm64={DIGEST}"),
        candidates=(DIGEST, DIGEST.replace("a", "b")),
        kms="projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        gcp=True,
        json=True,
    ),
    verify.AttestIndexRequest(
        ref=f"r.example/shop/frontend@{DIGEST}",
        platform_digests=(f"linux/arm64={DIGEST}",),
        candidates=(DIGEST,),
        key="/state dir/-attest-key.pem",
    ),
]

PARSE: dict[str, Callable[[Sequence[str]], object]] = {
    "host": host.parse_request,
    "patches": patches.PatchRequest.from_argv,
    "verify": verify.parse_request,
}
"""Each tool's parse of its arguments (the CLI's parser, raising instead of exiting)."""


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: " ".join(r.argv())[:60])
def test_a_rendered_request_parses_back_to_itself(request_: Any) -> None:
    assert type(request_).from_argv(request_.argv()) == request_
    assert PARSE[request_.TOOL](request_.argv()) == request_


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: " ".join(r.argv())[:60])
def test_the_command_text_carries_the_request_intact(request_: Any) -> None:
    line = tool_command(request_, "/opt/my python/bin/python3")
    assert line.startswith(f"'/opt/my python/bin/python3' -m {request_.TOOL} ")
    assert tool_argv(line, request_.TOOL) == request_.argv()
    assert tool_argv(line, "other") is None


def test_the_default_interpreter_is_the_programs_relative_to_the_project() -> None:
    line = tool_command(host.BuilderRemoveRequest("b"))
    expected = os.path.relpath(sys.executable, os.getcwd())
    assert line.split(" ")[0] == (sys.executable if expected.startswith("..") else expected)


def test_a_request_of_another_subcommand_is_not_read_as_this_one() -> None:
    with pytest.raises(ArgvError, match="not a CheckoutRequest: BuilderRemoveRequest"):
        host.CheckoutRequest.from_argv(host.BuilderRemoveRequest("b").argv())
    with pytest.raises(ArgvError, match="not a CheckRequest: PublishedRequest"):
        verify.CheckRequest.from_argv(verify.PublishedRequest("r/a:1", immutable=True).argv())


REFUSED = [
    ("host", ["checkout", "--url", "https://x/y.git"], "checkout --url needs --commit"),
    ("host", ["checkout", "--url", "u", "--path", "p"], "not allowed with argument"),
    ("host", ["builder", "ensure", "--spec", "{}"], "required: --owner"),
    ("host", ["registry", "start", "--address", "a"], "invalid choice: 'start'"),
    ("patches", ["apply", "--revision", "abc", "--", "src"], "is not a full commit sha"),
    ("patches", ["apply", "--json"], "required: SOURCE_DIR"),
    ("patches", ["apply", "--bogus", "--", "src"], "unrecognized arguments: --bogus"),
    ("verify", ["--run-timeout", "soon", "--", "r/a:1"], "invalid float value: 'soon'"),
    ("verify", ["--sbom-format", "xml", "--", "r/a:1"], "invalid choice: 'xml'"),
    ("verify", ["--json"], "required: REF"),
    ("verify", ["published"], "required: REF"),
    ("verify", ["binauthz", f"r/a@{DIGEST}", "--note", "n"], "required: --kms"),
]


@pytest.mark.parametrize(("tool", "argv", "message"), REFUSED)
def test_the_cli_refuses_what_the_contract_refuses(
    tool: str, argv: list[str], message: str
) -> None:
    with pytest.raises(ArgvError, match=message) as refused:
        PARSE[tool](argv)
    result = subprocess.run(
        [sys.executable, "-m", tool, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage: ")
    assert result.stderr.endswith(f"{refused.value}\n")


FULL_REPORT = verify.ImageReport(
    ref=f"r/app@{DIGEST}",
    digest=DIGEST,
    media_type=OCI_INDEX,
    platforms={
        "linux/amd64": verify.PlatformReport(
            DIGEST,
            "amd64",
            verify.ElfSummary(12, 1, ("/usr/lib/x.node",)),
            verify.RunSummary(False, "grpc:9555", 3.25, 1, ("line 1", "line 2")),
        ),
        "linux/arm64": verify.PlatformReport(DIGEST, "arm64", None),
    },
    attestations=2,
    referrers={"index": DIGEST, "linux/arm64": DIGEST},
)
PLAIN_REPORT = verify.ImageReport("r/app:1", None, None, {}, attestations=0)

RESULTS: list[Any] = [
    host.CheckoutResult(".cache/upstream/" + SHA, SHA, "https://x/y.git", "cloned"),
    host.CheckoutResult("/my checkout", None, None, "reused"),
    host.BuilderResult("multi arch", "reconciled"),
    host.RegistryResult("127.0.0.1:5000", 4242, None, True),
    host.RegistryRemoval("127.0.0.1:5000", None, "boutique-local-registry", True),
    patches.PatchReport(
        SHA,
        (
            patches.PatchedFile("emailservice", "src/emailservice/Dockerfile", "patched", DIGEST),
            patches.PatchedFile("frontend", "src/frontend/Dockerfile", "untouched", None, ""),
        ),
    ),
    FULL_REPORT,
    PLAIN_REPORT,
    verify.PublishedResult(f"r/app:v1@{DIGEST}", DIGEST),
    verify.PublishedResult("r/app:v2", None),
    verify.BinauthzResult("projects/p/occurrences/1", created=False),
    verify.AttestIndexResult(DIGEST),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_a_written_result_reads_back_to_itself(result: Any) -> None:
    assert type(result).from_json(result.to_json()) == result


def test_the_image_document_keeps_its_documented_shape() -> None:
    document = json.loads(FULL_REPORT.to_json())
    assert list(document) == [
        "ref",
        "digest",
        "mediaType",
        "platforms",
        "attestations",
        "referrers",
    ]
    assert document["platforms"]["linux/amd64"]["run"] == {
        "ok": False,
        "probe": "grpc:9555",
        "seconds": 3.25,
        "exitCode": 1,
        "logTail": ["line 1", "line 2"],
    }
    assert document["platforms"]["linux/arm64"] == {
        "digest": DIGEST,
        "configArchitecture": "arm64",
        "elf": None,
    }
    assert "referrers" not in json.loads(PLAIN_REPORT.to_json())


@pytest.fixture
def registry() -> Iterator[HostileRegistry]:
    """An anonymous registry on loopback serving one two-platform image under `v1`."""
    server = HostileRegistry("127.0.0.1").start()
    yield server
    server.stop()


def run_line(line: str, docker_config: Path) -> subprocess.CompletedProcess[str]:
    """A Command's text, run as pulumi-command runs it: `sh -c` from the project directory."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
    }
    return subprocess.run(
        ["/bin/sh", "-c", line],
        cwd=REPO,
        env={**environ, "DOCKER_CONFIG": str(docker_config)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_what_verify_prints_is_what_the_components_read(
    registry: HostileRegistry, tmp_path: Path
) -> None:
    layers: dict[str, Iterable[bytes]] = {
        "amd64": [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(X86_64))]))],
        "arm64": [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(AARCH64))]))],
    }
    image = registry.image("shop/app", "v1", layers)
    index_digest = sha256_digest(image.index)
    registry.put(f"/v2/shop/app/manifests/{index_digest}", image.index, OCI_INDEX)
    candidate = f"{registry.address}/shop/app@{index_digest}"
    platforms = ["linux/amd64", "linux/arm64"]
    run = RunPlan("grpc:9555", (), {"linux/amd64": "not started here"})
    options = VerifyOptions(deep=True, allow=(), gcp=False)

    verified = run_line(tool_command(verify_request(candidate, platforms, options)), tmp_path)

    assert verified.returncode == 0, verified.stderr
    manifests = {f"linux/{arch}": sha256_digest(image.manifests[arch]) for arch in layers}
    assert verified_platforms(verified.stdout) == manifests
    assert verified_proof(platforms, replace(run, skipped={}), verified.stdout) == {
        platform: {"elfFiles": 1, "probe": None, "seconds": None} for platform in platforms
    }
    assert verified_proof(platforms, run, verified.stdout)["linux/amd64"] == {
        "elfFiles": 1,
        "skipped": "not started here",
    }

    exported = f"{registry.address}/shop/app:v1@{index_digest}"
    published = run_line(
        tool_command(published_check_request(exported, manifests, "urn:index", [], gcp=False)),
        tmp_path,
    )
    assert published.returncode == 0, published.stderr
    assert published_digest(published.stdout) == index_digest
