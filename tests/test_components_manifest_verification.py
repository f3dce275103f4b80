"""The ManifestVerification and Index helpers: command line, result parsing, digests.

The parser reads documents made by the verifier's own `verify.report.image_report` (the `--json`
contract); tests/integration/test_promotion.py runs the command line and parser against a real
registry.
"""

import json
import shlex
import subprocess
import sys
from types import MappingProxyType

import pytest

from plan.probes import UPSTREAM_V0_10_6, service_probe
from plan.services import CATALOG
from plan.settings import AllowedPath, ProbeOverride, VerifySettings
from plan.tools import tool_command
from plan.verification import (
    RunPlan,
    VerifyOptions,
    attest_index_request,
    candidate_check_request,
    candidate_ref,
    digest_of_ref,
    immutable_tag_request,
    merged_platforms,
    published_check_request,
    published_digest,
    verified_platforms,
    verified_proof,
    verify_options,
    verify_request,
)
from tests.program_mocks import ROOT
from verify.checks import ElfReport, ImageResult, PlatformResult
from verify.contract import PublishedResult
from verify.report import image_report
from verify.run import RunResult, run_json

DIGEST = "sha256:" + "1" * 64
REF = f"europe-west1-docker.pkg.dev/p/online-boutique/frontend@{DIGEST}"


def test_command_line_carries_options_in_a_fixed_order_and_quotes_globs() -> None:
    options = VerifyOptions(deep=True, allow=("/opt/my tools/*", "/usr/lib/*.node"), gcp=True)
    line = tool_command(
        verify_request(REF, ["linux/amd64", "linux/arm64"], options), ".venv/bin/python"
    )
    assert shlex.split(line) == [
        ".venv/bin/python",
        "-m",
        "verify",
        "--json",
        "--deep",
        "--allow",
        "/opt/my tools/*",
        "--allow",
        "/usr/lib/*.node",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--gcp",
        "--",
        REF,
    ]
    shallow = tool_command(
        verify_request(REF, ["linux/arm64"], VerifyOptions(False, (), False)), "python"
    )
    assert shlex.split(shallow) == [
        "python",
        "-m",
        "verify",
        "--json",
        "--platform",
        "linux/arm64",
        "--",
        REF,
    ]


def test_a_reference_that_looks_like_an_option_reaches_the_verifier_as_a_reference() -> None:
    """The reference follows `--`: the verifier refuses it as a reference (exit 2, naming it);
    read as options, `--gcp/...` would be an unknown option and the image never named."""
    ref = f"--gcp/frontend@{DIGEST}"
    line = tool_command(
        verify_request(ref, ["linux/amd64"], VerifyOptions(False, (), False)), sys.executable
    )
    result = subprocess.run(
        ["/bin/sh", "-c", line], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"'{ref}'" in result.stderr and "usage:" not in result.stderr, result.stderr


def test_options_of_a_service_take_its_paths_and_never_the_reasons() -> None:
    settings = VerifySettings(
        deep=True,
        allow=MappingProxyType(
            {"currencyservice": (AllowedPath("/app/*.node", "profiler addon, disabled"),)}
        ),
        run=False,
    )
    assert verify_options(settings, "currencyservice", gcp=False) == VerifyOptions(
        deep=True, allow=("/app/*.node",), gcp=False
    )
    assert verify_options(settings, "frontend", gcp=True) == VerifyOptions(True, (), True)


def verified_result(amd64_elf_files: int, arm64_elf_files: int) -> ImageResult:
    """What the verifier found for a two-platform image (deep)."""
    return ImageResult(
        ref=REF,
        digest=DIGEST,
        media_type="application/vnd.oci.image.index.v1+json",
        platforms={
            "linux/amd64": PlatformResult(
                "sha256:" + "a" * 64, "amd64", ElfReport(amd64_elf_files)
            ),
            "linux/arm64": PlatformResult(
                "sha256:" + "b" * 64, "arm64", ElfReport(arm64_elf_files)
            ),
        },
        attestations=2,
    )


def test_platform_digests_come_from_the_verifiers_json() -> None:
    result = verified_result(3, 3)
    stdout = image_report(result).to_json() + "\n"  # as `verify --json` prints it
    assert verified_platforms(stdout) == {
        "linux/amd64": "sha256:" + "a" * 64,
        "linux/arm64": "sha256:" + "b" * 64,
    }


def test_single_platform_results_merge_into_one_mapping() -> None:
    merged = merged_platforms([{"linux/amd64": "sha256:a"}, {"linux/arm64": "sha256:b"}])
    assert merged == {"linux/amd64": "sha256:a", "linux/arm64": "sha256:b"}


def test_candidate_and_index_refs() -> None:
    assert candidate_ref("127.0.0.1:5000/boutique/frontend", DIGEST) == (
        f"127.0.0.1:5000/boutique/frontend@{DIGEST}"
    )
    assert digest_of_ref(f"127.0.0.1:5000/boutique/frontend:v1@{DIGEST}") == DIGEST


@pytest.mark.parametrize(
    "ref", ["127.0.0.1:5000/boutique/frontend:v1", "@sha256:abc", "r/frontend:v1@md5:abc"]
)
def test_an_index_ref_without_a_digest_is_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="not a reference with a digest"):
        digest_of_ref(ref)


def test_the_run_plan_is_the_probe_table_with_the_configs_overrides_and_skips() -> None:
    settings = VerifySettings(
        deep=True,
        allow={},
        probes={"frontend": ProbeOverride(probe="tcp:8080", env={"PORT": "8080", "EXTRA": "1"})},
        skip_run={"cartservice": {"linux/arm64": ".NET is unsupported under QEMU"}},
    )
    frontend = verify_options(settings, "frontend", gcp=False).run
    assert frontend is not None and frontend.probe == "tcp:8080"
    env = dict(frontend.env)
    assert env["EXTRA"] == "1" and env["PRODUCT_CATALOG_SERVICE_ADDR"] == "127.0.0.1:3550"
    assert [name for name, _ in frontend.env] == sorted(env)
    cart = verify_options(settings, "cartservice", gcp=False, commit=UPSTREAM_V0_10_6).run
    assert cart == RunPlan("grpc:7070", (), {"linux/arm64": ".NET is unsupported under QEMU"})
    assistant = verify_options(settings, "shoppingassistantservice", gcp=False).run
    assert assistant is not None
    assert set(assistant.skipped) == {"linux/amd64", "linux/arm64"}
    assert "needs Google Cloud" in assistant.skipped["linux/amd64"]
    # No probe of its own: an empty one (never on a command line, since no platform starts).
    assert (assistant.probe, assistant.timeout) == ("", None)


def test_the_command_line_carries_probe_env_and_skips_never_the_reason() -> None:
    plan = RunPlan(
        "grpc:7070",
        (("GREETING", "hello world"), ("PORT", "7070")),
        {"linux/arm64": ".NET is unsupported under QEMU"},
    )
    options = VerifyOptions(deep=False, allow=(), gcp=True, run=plan)
    both = shlex.split(
        tool_command(verify_request(REF, ["linux/amd64", "linux/arm64"], options), "py")
    )
    run = both.index("--run")
    assert both[run : run + 9] == [
        *("--run", "--probe", "grpc:7070"),
        *("--env", "GREETING=hello world", "--env", "PORT=7070"),
        *("--skip-run", "linux/arm64"),
    ]
    assert both.count("--run") == 1 and REF in both
    assert "QEMU" not in " ".join(both)
    slow = VerifyOptions(False, (), False, RunPlan("grpc:9555", (), {}, timeout=600))
    assert values_of(
        tool_command(verify_request(REF, ["linux/arm64"], slow), "py"), "--run-timeout"
    ) == ["600"]
    assert "--run-timeout" not in tool_command(verify_request(REF, ["linux/arm64"], options), "py")
    # perPlatform: the arm64 verification starts nothing, the amd64 one skips nothing.
    assert "--run" not in tool_command(verify_request(REF, ["linux/arm64"], options), "py")
    amd64 = shlex.split(tool_command(verify_request(REF, ["linux/amd64"], options), "py"))
    assert "--run" in amd64 and "--skip-run" not in amd64


def test_the_proof_says_what_each_platform_proved_or_why_it_was_skipped() -> None:
    result = verified_result(3, 4)
    document = image_report(result).to_dict()
    document["platforms"]["linux/amd64"]["run"] = run_json(
        RunResult(ok=True, probe="grpc:7070", seconds=3.14159)
    )
    stdout = json.dumps(document)
    plan = RunPlan("grpc:7070", (), {"linux/arm64": ".NET is unsupported under QEMU"})
    assert verified_proof(["linux/amd64", "linux/arm64"], plan, stdout) == {
        "linux/amd64": {"elfFiles": 3, "probe": "grpc:7070", "seconds": 3.14},
        "linux/arm64": {"elfFiles": 4, "skipped": ".NET is unsupported under QEMU"},
    }
    assert verified_proof(["linux/amd64"], None, image_report(result).to_json()) == {
        "linux/amd64": {"elfFiles": 3, "probe": None, "seconds": None}
    }


def values_of(line: str, flag: str) -> list[str]:
    argv = shlex.split(line)
    return [argv[i + 1] for i, argument in enumerate(argv[:-1]) if argument == flag]


def test_an_immutable_tag_check_names_the_tag_and_the_digests_it_may_already_hold() -> None:
    # Before new images are built (digests unknown): the tag must not exist yet.
    fresh = tool_command(immutable_tag_request("r/frontend:v1", None, False), "python")
    assert shlex.split(fresh) == [
        "python",
        "-m",
        "verify",
        "published",
        "r/frontend:v1",
        "--immutable",
    ]
    # After the verification: the tag may already hold exactly these manifests (sorted).
    verified = {"linux/arm64": "sha256:2", "linux/amd64": "sha256:1"}
    again = tool_command(immutable_tag_request("r/frontend:v1", verified, True), "python")
    assert shlex.split(again) == [
        "python",
        "-m",
        "verify",
        "published",
        "r/frontend:v1",
        "--immutable",
        "--manifest=linux/amd64=sha256:1",
        "--manifest=linux/arm64=sha256:2",
        "--gcp",
    ]


KMS = "projects/p/locations/europe-west1/keyRings/ci/cryptoKeys/attest/cryptoKeyVersions/1"


@pytest.mark.parametrize(
    ("key", "kms", "signer"),
    [
        (None, KMS, ["--kms", KMS]),
        ("keys/attest.pem", None, ["--key", "keys/attest.pem"]),
        # A key file wins over a KMS key version, as in each platform's verification (the
        # settings never hold both).
        ("keys/attest.pem", KMS, ["--key", "keys/attest.pem"]),
    ],
)
def test_a_joined_index_is_attested_with_the_configured_signer_only(
    key: str | None, kms: str | None, signer: list[str]
) -> None:
    options = VerifyOptions(deep=True, allow=(), gcp=True, attest_key=key, attest_kms=kms)
    platforms = {"linux/amd64": "sha256:1", "linux/arm64": "sha256:2"}
    request = attest_index_request(REF, platforms, ["sha256:a", "sha256:b"], options)
    assert shlex.split(tool_command(request, "python")) == [
        "python",
        "-m",
        "verify",
        "attest-index",
        REF,
        "--platform-digest=linux/amd64=sha256:1",
        "--platform-digest=linux/arm64=sha256:2",
        "--candidate=sha256:a",
        "--candidate=sha256:b",
        *signer,
        "--gcp",
        "--json",
    ]
    # Each platform's verification signs with the same one.
    verification = shlex.split(tool_command(verify_request(REF, ["linux/amd64"], options), "py"))
    assert verification[verification.index("--attest") :] == [
        "--attest",
        *signer,
        *(["--create-key"] if signer[0] == "--key" else []),
        "--",
        REF,
    ]


def test_a_services_options_carry_its_run_timeout_and_the_signer() -> None:
    settings = VerifySettings(
        deep=False,
        allow={"adservice": (AllowedPath("/opt/*.so", "a profiler"),)},
        probes={"adservice": ProbeOverride(probe=None, env={}, timeout=600)},
    )
    options = verify_options(settings, "adservice", gcp=True, attest_kms=KMS)
    assert options == VerifyOptions(
        deep=False,
        allow=("/opt/*.so",),
        gcp=True,
        run=RunPlan("grpc:9555", (("PORT", "9555"),), {}, timeout=600),
        attest_key=None,
        attest_kms=KMS,
    )
    keyed = verify_options(settings, "frontend", gcp=False, attest_key="keys/attest.pem")
    assert (keyed.attest_key, keyed.attest_kms, keyed.allow) == ("keys/attest.pem", None, ())
    assert keyed.run is not None and keyed.run.timeout is None


def test_a_proof_without_deep_checks_has_no_elf_count_and_a_skip_ends_no_other_platform() -> None:
    result = verified_result(3, 4)
    document = image_report(result).to_dict()
    for platform in document["platforms"].values():
        platform["elf"] = None
    document["platforms"]["linux/arm64"]["run"] = run_json(
        RunResult(ok=True, probe="grpc:7070", seconds=2.0)
    )
    plan = RunPlan("grpc:7070", (), {"linux/amd64": "no amd64 runner"})
    assert verified_proof(["linux/amd64", "linux/arm64"], plan, json.dumps(document)) == {
        "linux/amd64": {"elfFiles": None, "skipped": "no amd64 runner"},
        "linux/arm64": {"elfFiles": None, "probe": "grpc:7070", "seconds": 2.0},
    }


def test_the_published_digest_is_read_from_the_tools_json_or_refused() -> None:
    confirmed = PublishedResult("r/frontend:v1@" + DIGEST, DIGEST).to_json()
    assert published_digest(confirmed) == DIGEST
    # `--immutable` confirms no digest; neither may a digest of another algorithm be exported.
    for digest in (None, "md5:" + "1" * 32):
        stdout = PublishedResult("r/frontend:v1", digest).to_json()
        with pytest.raises(ValueError) as raised:
            published_digest(stdout)
        assert str(raised.value) == f"verify published confirmed no digest: {stdout!r}"


def test_a_published_tag_and_a_candidate_are_checked_with_whole_command_lines() -> None:
    platforms = {"linux/arm64": "sha256:2", "linux/amd64": "sha256:1"}
    index = "urn:pulumi:dev::boutique-multiarch::docker-build:index:Index::frontend-index"
    image = "urn:pulumi:dev::boutique-multiarch::docker-build:index:Image::frontend-image"
    published = published_check_request(f"r/frontend:v1@{DIGEST}", platforms, index, [image], True)
    assert shlex.split(tool_command(published, "py")) == [
        *("py", "-m", "verify", "published", f"r/frontend:v1@{DIGEST}"),
        "--manifest=linux/amd64=sha256:1",
        "--manifest=linux/arm64=sha256:2",
        f"--index-urn={index}",
        f"--replace={image}",
        "--gcp",
    ]
    candidate = candidate_check_request(f"r/frontend@{DIGEST}", [image], True)
    assert shlex.split(tool_command(candidate, "py")) == [
        *("py", "-m", "verify", "published", f"r/frontend@{DIGEST}"),
        f"--replace={image}",
        "--gcp",
    ]
    # Without GCP credentials (an existing registry), no `--gcp`.
    anonymous = candidate_check_request(f"r/frontend@{DIGEST}", [], False)
    assert shlex.split(tool_command(anonymous, "py"))[3:] == ["published", f"r/frontend@{DIGEST}"]


def test_an_unknown_upstream_revision_gets_the_pinned_revisions_probes() -> None:
    # A `source.commit` of the user's own (a fork) has no table of its own.
    pinned = [service_probe(service, None) for service in CATALOG]
    assert [service_probe(service, "0" * 40) for service in CATALOG] == pinned
    assert [service_probe(service, UPSTREAM_V0_10_6) for service in CATALOG] == pinned
