"""The ManifestVerification and Index helpers: command line, result parsing, digests.

The parser reads documents made by the verifier's own `verify.report.image_json` (the `--json`
contract); tests/integration/test_promotion.py runs the command line and parser against a real
registry.
"""

import json
import shlex
import subprocess
import sys
from types import MappingProxyType

import pytest

from plan.settings import AllowedPath, VerifySettings
from plan.verification import (
    VerifyOptions,
    candidate_ref,
    digest_of_ref,
    merged_platforms,
    verified_platforms,
    verify_command,
    verify_options,
)
from tests.program_mocks import ROOT
from verify.checks import ElfReport, ImageResult, PlatformResult
from verify.report import image_json

DIGEST = "sha256:" + "1" * 64
REF = f"europe-west1-docker.pkg.dev/p/online-boutique/frontend@{DIGEST}"


def test_command_line_carries_options_in_a_fixed_order_and_quotes_globs() -> None:
    options = VerifyOptions(deep=True, allow=("/opt/my tools/*", "/usr/lib/*.node"), gcp=True)
    line = verify_command(".venv/bin/python", REF, ["linux/amd64", "linux/arm64"], options)
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
    shallow = verify_command("python", REF, ["linux/arm64"], VerifyOptions(False, (), False))
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
    line = verify_command(sys.executable, ref, ["linux/amd64"], VerifyOptions(False, (), False))
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
    )
    assert verify_options(settings, "currencyservice", gcp=False) == VerifyOptions(
        deep=True, allow=("/app/*.node",), gcp=False
    )
    assert verify_options(settings, "frontend", gcp=True) == VerifyOptions(True, (), True)


def test_platform_digests_come_from_the_verifiers_json() -> None:
    result = ImageResult(
        ref=REF,
        digest=DIGEST,
        media_type="application/vnd.oci.image.index.v1+json",
        platforms={
            "linux/amd64": PlatformResult("sha256:" + "a" * 64, "amd64", ElfReport(checked=3)),
            "linux/arm64": PlatformResult("sha256:" + "b" * 64, "arm64", ElfReport(checked=3)),
        },
        attestations=2,
    )
    stdout = json.dumps(image_json(result), indent=2) + "\n"
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
