"""The `attest` config: parsed once with one clear error, passed to each verification as a key
path (never key material), and the referrers it pushed exported per image."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from plan.settings import AttestSettings, ConfigError, parse_settings
from plan.tools import tool_command
from plan.verification import (
    VerifyOptions,
    attestation_referrers,
    verify_request,
)
from tests.program_mocks import (
    COMMAND,
    IMAGE,
    INDEX,
    ROOT,
    ProgramRunner,
    digest_of,
    stack_config,
    start_program,
)
from verify.contract import ImageReport

GCP = {"project": "shop-123", "region": "europe-west1"}
P = "boutique-multiarch"
LOCAL_KEY = ".pulumi-local/attest-key.pem"
KMS = "projects/shop-123/locations/europe-west1/keyRings/ci/cryptoKeys/attest/cryptoKeyVersions/2"


def parse(**values: Any) -> AttestSettings:
    raw = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }
    return parse_settings(raw, GCP, False).attest


def test_attest_is_off_unless_a_key_is_configured() -> None:
    assert parse() == AttestSettings(key=None)
    assert parse(attest={}) == AttestSettings(key=None)
    assert parse(attest={"key": "keys/attest.pem"}) == AttestSettings(key="keys/attest.pem")
    assert parse(attest={"binaryAuthorization": True, "enforce": "true"}) == AttestSettings(
        key=None, binary_authorization=True, enforce=True
    )


@pytest.mark.parametrize(
    ("values", "key", "allowed"),
    [
        ({"attest": {"key": ""}}, f"{P}:attest.key", "a path to the PEM key file"),
        ({"attest": {"key": " k.pem"}}, f"{P}:attest.key", "no outer spaces"),
        ({"attest": {"key": 7}}, f"{P}:attest.key", "a path to the PEM key file"),
        ({"attest": {"keys": "k.pem"}}, f"{P}:attest.keys", "one of the fields key"),
        ({"attest": "k.pem"}, f"{P}:attest", "an object with the fields key"),
        (
            {"attest": {"key": "k.pem"}, "verify": {"deep": False}},
            f"{P}:attest",
            "only with verify.deep true",
        ),
        (
            {"attest": {"enforce": True}},
            f"{P}:attest.enforce",
            "only with attest.binaryAuthorization",
        ),
        ({"attest": {"binaryAuthorization": "yes"}}, f"{P}:attest.binaryAuthorization", "true or"),
        ({"attest": {"kms": "projects/p/keys/k"}}, f"{P}:attest.kms", "a Cloud KMS key version"),
        ({"attest": {"kms": KMS + "\n"}}, f"{P}:attest.kms", "cryptoKeyVersions/N"),
        ({"attest": {"kms": 3}}, f"{P}:attest.kms", "a Cloud KMS key version"),
        ({"attest": {"kms": KMS, "key": "k.pem"}}, f"{P}:attest.kms", "not both"),
        (
            {"attest": {"kms": KMS}, "verify": {"deep": False}},
            f"{P}:attest",
            "only with verify.deep true",
        ),
        (
            {"attest": {"binaryAuthorization": True}, "registry": {"address": "127.0.0.1:5000"}},
            f"{P}:attest.binaryAuthorization",
            "only on Artifact Registry stacks",
        ),
        (
            {"attest": {"binaryAuthorization": True}, "verify": {"deep": False}},
            f"{P}:attest",
            "only with verify.deep true",
        ),
    ],
)
def test_bad_attest_config_is_one_error_naming_the_key(
    values: dict[str, Any], key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**values)
    assert raised.value.key == key
    assert allowed in str(raised.value)


def test_command_line_carries_the_key_path_only() -> None:
    options = VerifyOptions(deep=True, allow=(), gcp=False, attest_key="keys/my key.pem")
    argv = shlex.split(
        tool_command(verify_request("r/app@sha256:1", ["linux/arm64"], options), "python")
    )
    assert argv[-6:] == [
        "--attest",
        "--key",
        "keys/my key.pem",
        "--create-key",
        "--",
        "r/app@sha256:1",
    ]
    plain = VerifyOptions(deep=True, allow=(), gcp=False)
    assert "--attest" not in tool_command(
        verify_request("r/app@sha256:1", ["linux/arm64"], plain), "python"
    )


def test_command_line_names_a_kms_key_version_instead_of_a_key_file() -> None:
    assert parse(attest={"kms": KMS}) == AttestSettings(key=None, kms=KMS)
    options = VerifyOptions(deep=True, allow=(), gcp=True, attest_kms=KMS)
    argv = shlex.split(
        tool_command(verify_request("r/app@sha256:1", ["linux/arm64"], options), "python")
    )
    assert argv[-5:] == ["--attest", "--kms", KMS, "--", "r/app@sha256:1"]
    assert "--key" not in argv and "--create-key" not in argv


def test_referrers_are_read_from_the_json_document() -> None:
    # The tool's document (verify.contract.ImageReport), without and with `--attest`.
    plain = ImageReport("r/app@sha256:1", "sha256:1", None, {}, attestations=0)
    assert attestation_referrers(plain.to_json()) == {}
    referrers = {"index": "sha256:a", "linux/arm64": "sha256:b"}
    attested = replace(plain, referrers=referrers)
    assert attestation_referrers(attested.to_json()) == referrers


def test_local_stack_attests_with_a_key_in_the_git_ignored_state_directory(
    program: ProgramRunner,
) -> None:
    run = program(stack_config("local"))
    verifications = [c for c in run.of_type(COMMAND) if " -m verify " in c.inputs["create"]]
    assert len(verifications) == 4
    for command in verifications:
        argv = shlex.split(command.inputs["create"])
        assert argv[argv.index("--key") + 1] == LOCAL_KEY, command.urn
        assert "--attest" in argv and "--create-key" in argv, command.urn
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert LOCAL_KEY.split("/")[0] + "/" in ignored


def test_dev_stack_does_not_attest(program: ProgramRunner) -> None:
    run = program(stack_config("dev"))
    for command in run.of_type(COMMAND):
        assert "--attest" not in command.inputs["create"], command.urn


@pulumi.runtime.test
def test_images_output_names_the_referrers(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(stack_config("local"))
    images = run.outputs["images"]
    services = sorted(images)

    def check(values: list[Any]) -> None:
        for service, digest, attestations in zip(services, values[::2], values[1::2], strict=True):
            candidate = f"127.0.0.1:5000/{service}@{digest}"
            assert attestations == {
                subject: digest_of(f"{candidate} {subject} attestation")
                for subject in ("index", "linux/amd64", "linux/arm64")
            }, service

    return pulumi.Output.all(
        *[
            value
            for service in services
            for value in (images[service]["digest"], images[service]["attestations"])
        ]
    ).apply(check)


PER_PLATFORM_ATTESTED = {
    **stack_config("dev"),
    f"{P}:strategy": "perPlatform",
    f"{P}:attest": {"key": "keys/attest.pem"},
}


def test_per_platform_joined_indexes_are_attested_from_their_candidates(
    program: ProgramRunner,
) -> None:
    run = program(PER_PLATFORM_ATTESTED)
    indexes = {index.name.removesuffix("-index"): index for index in run.of_type(INDEX)}
    images = {image.name.removesuffix("-image"): image for image in run.of_type(IMAGE)}
    joins = [c for c in run.of_type(COMMAND) if " -m verify attest-index " in c.inputs["create"]]
    assert len(joins) == len(indexes) == 11
    for command in joins:
        service = command.name.removesuffix("-attest-index")
        argv = shlex.split(command.inputs["create"])
        assert argv[4].split("@")[0].endswith(f"/{service}"), argv
        # The candidates are the two single-platform images the verifications proved.
        assert [arg.removeprefix("--candidate=") for arg in argv if "--candidate=" in arg] == [
            digest_of(images[f"{service}-{arch}"].name) for arch in ("amd64", "arm64")
        ]
        pairs = [arg.split("=")[1] for arg in argv if arg.startswith("--platform-digest=")]
        assert pairs == ["linux/amd64", "linux/arm64"]
        assert argv[argv.index("--key") + 1] == "keys/attest.pem"
        assert argv[-2:] == ["--gcp", "--json"]
        assert indexes[service].urn in command.dependencies, command.urn
    # Each single-platform verification still attests (the SBOM of its platform).
    verifications = [c for c in run.of_type(COMMAND) if c.name.endswith("-verify")]
    assert len(verifications) == 22
    assert all("--attest" in c.inputs["create"] for c in verifications)


@pulumi.runtime.test
def test_per_platform_output_names_the_joined_index_attestation(
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(PER_PLATFORM_ATTESTED)
    images = run.outputs["images"]
    services = sorted(images)

    def check(values: list[Any]) -> None:
        for service, ref, attestations in zip(services, values[::2], values[1::2], strict=True):
            assert set(attestations) == {"index", "linux/amd64", "linux/arm64"}, service
            tag_ref, digest = ref.split("@")
            published = f"{tag_ref.rpartition(':')[0]}@{digest}"
            # The index's statement is the joined one, not a candidate's.
            assert attestations["index"] == digest_of(f"{published} index attestation"), service

    return pulumi.Output.all(
        *[
            value
            for service in services
            for value in (images[service]["ref"], images[service]["attestations"])
        ]
    ).apply(check)
