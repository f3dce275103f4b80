"""Binary Authorization (`attest.binaryAuthorization`, `attest.enforce`) under mocks: the key,
note, attestor and optional policy, and one attestation Command per published digest."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from plan.binary_authorization import referrer_kms
from plan.settings import AttestSettings, parse_settings
from tests.program_mocks import (
    COMMAND,
    INDEX,
    MOCK_KMS_PUBLIC_KEY_PEM,
    PROJECT,
    ROOT,
    ProgramRun,
    ProgramRunner,
    stack_config,
    start_program,
)

VERSION = (
    "projects/boutique-dev-123456/locations/europe-west1/keyRings/boutique-attestors"
    "/cryptoKeys/verified/cryptoKeyVersions/1"
)


def dev_with(**attest: object) -> dict[str, object]:
    return {**stack_config("dev"), f"{PROJECT}:attest": attest}


def binauthz_commands(run: ProgramRun) -> list[Any]:
    return [c for c in run.of_type(COMMAND) if " -m verify binauthz " in c.inputs["create"]]


@pytest.fixture
def gcp_run(program: ProgramRunner, monkeypatch: pytest.MonkeyPatch) -> ProgramRun:
    return program(dev_with(binaryAuthorization=True))


def test_key_note_and_attestor(gcp_run: ProgramRun) -> None:
    (ring,) = gcp_run.of_type("gcp:kms/keyRing:KeyRing")
    (key,) = gcp_run.of_type("gcp:kms/cryptoKey:CryptoKey")
    (note,) = gcp_run.of_type("gcp:containeranalysis/note:Note")
    (attestor,) = gcp_run.of_type("gcp:binaryauthorization/attestor:Attestor")
    assert ring.inputs["location"] == "europe-west1"
    assert key.inputs["purpose"] == "ASYMMETRIC_SIGN"
    assert key.inputs["versionTemplate"]["algorithm"] == "EC_SIGN_P256_SHA256"
    assert key.protect, "the key that signed every attestation must not be destroyed"
    assert note.inputs["attestationAuthority"]["hint"]["humanReadableName"]
    authority = attestor.inputs["attestationAuthorityNote"]
    assert authority["noteReference"] == "boutique-verified"
    (public_key,) = authority["publicKeys"]
    assert public_key["id"] == f"//cloudkms.googleapis.com/v1/{VERSION}"
    assert public_key["pkixPublicKey"] == {
        "publicKeyPem": MOCK_KMS_PUBLIC_KEY_PEM,
        "signatureAlgorithm": "ECDSA_P256_SHA256",
    }
    assert not gcp_run.of_type("gcp:binaryauthorization/policy:Policy")


def test_each_published_digest_is_attested_after_its_index(gcp_run: ProgramRun) -> None:
    commands = binauthz_commands(gcp_run)
    indexes = {index.name.removesuffix("-index"): index for index in gcp_run.of_type(INDEX)}
    assert len(commands) == len(indexes) == 11
    for command in commands:
        service = command.name.removesuffix("-binauthz")
        argv = shlex.split(command.inputs["create"])
        assert argv[2:4] == ["verify", "binauthz"], command.urn
        assert argv[4].startswith("europe-west1-docker.pkg.dev/boutique-dev-123456/"), argv
        assert argv[4].split("@")[0].endswith(f"/{service}"), argv
        assert (
            argv[argv.index("--note") + 1] == "projects/boutique-dev-123456/notes/boutique-verified"
        )
        assert argv[argv.index("--kms") + 1] == VERSION
        pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--platform-digest"]
        assert [pair.split("=")[0] for pair in pairs] == ["linux/amd64", "linux/arm64"]
        assert argv[-2:] == ["--json", "--gcp"]
        assert indexes[service].urn in command.dependencies, command.urn


def test_which_kms_key_version_signs_the_referrers() -> None:
    settings = parse_settings(
        {"attest": json.dumps({"binaryAuthorization": True})},
        {"project": "boutique-dev-123456", "region": "europe-west1"},
        False,
    )
    assert referrer_kms(settings.destination, settings.attest) == VERSION
    configured = (
        "projects/boutique-dev-123456/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/9"
    )
    attest = replace(settings.attest, kms=configured)
    assert referrer_kms(settings.destination, attest) == configured
    local = replace(settings.attest, key="k.pem")
    assert referrer_kms(settings.destination, local) is None
    assert referrer_kms(settings.destination, AttestSettings()) is None


def verify_commands(run: ProgramRun) -> list[Any]:
    return [c for c in run.of_type(COMMAND) if c.name.endswith("-verify")]


def test_referrers_are_signed_with_the_attestors_kms_key_once_it_exists(
    gcp_run: ProgramRun,
) -> None:
    (key,) = gcp_run.of_type("gcp:kms/cryptoKey:CryptoKey")
    (attestor,) = gcp_run.of_type("gcp:binaryauthorization/attestor:Attestor")
    commands = verify_commands(gcp_run)
    assert len(commands) == 11
    for command in commands:
        argv = shlex.split(command.inputs["create"])
        assert argv[argv.index("--attest") + 1 : argv.index("--attest") + 3] == ["--kms", VERSION]
        assert "--key" not in argv and "--create-key" not in argv, command.urn
        # The first signature needs the key version, and the attestor reading its public key
        # proves it is generated: the verification waits for both.
        assert key.urn in command.dependencies, command.urn
        assert attestor.urn in command.dependencies, command.urn


def test_a_configured_key_version_or_a_local_key_signs_the_referrers_instead(
    program: ProgramRunner,
) -> None:
    other = "projects/shop-123/locations/global/keyRings/ci/cryptoKeys/attest/cryptoKeyVersions/3"
    run = program(dev_with(binaryAuthorization=True, kms=other))
    for command in verify_commands(run):
        argv = shlex.split(command.inputs["create"])
        assert argv[argv.index("--kms") + 1] == other, command.urn
    # The Binary Authorization occurrences stay signed by the attestor's key.
    for command in binauthz_commands(run):
        argv = shlex.split(command.inputs["create"])
        assert argv[argv.index("--kms") + 1] == VERSION, command.urn

    run = program(dev_with(binaryAuthorization=True, key="keys/attest.pem"))
    for command in verify_commands(run):
        argv = shlex.split(command.inputs["create"])
        assert "--kms" not in argv, command.urn
        assert argv[argv.index("--key") + 1] == "keys/attest.pem", command.urn

    # Without Binary Authorization: a configured key version alone, nothing else declared.
    run = program(dev_with(kms=other))
    assert not run.of_type("gcp:kms/cryptoKey:CryptoKey")
    for command in verify_commands(run):
        argv = shlex.split(command.inputs["create"])
        assert argv[argv.index("--kms") + 1] == other, command.urn
        assert not command.dependencies or all("kms" not in d for d in command.dependencies)


def test_enforce_declares_the_policy_requiring_the_attestor(program: ProgramRunner) -> None:
    run = program(dev_with(binaryAuthorization=True, enforce=True))
    (policy,) = run.of_type("gcp:binaryauthorization/policy:Policy")
    assert policy.inputs["globalPolicyEvaluationMode"] == "ENABLE"
    assert policy.inputs["defaultAdmissionRule"] == {
        "evaluationMode": "REQUIRE_ATTESTATION",
        "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
        "requireAttestationsBies": ["projects/boutique-dev-123456/attestors/boutique-verified"],
    }


def test_stacks_without_binary_authorization_declare_none_of_it(program: ProgramRunner) -> None:
    run = program(stack_config("dev"))
    assert not [r for r in run.registrations if "kms" in r.type or "binaryauthorization" in r.type]
    assert not binauthz_commands(run)


@pulumi.runtime.test
def test_images_output_names_the_occurrence(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(dev_with(binaryAuthorization=True))
    images = run.outputs["images"]

    def check(values: list[Any]) -> None:
        for attestations in values:
            # The KMS-signed referrers of the verification, and the occurrence.
            assert set(attestations) == {"index", "linux/amd64", "linux/arm64", "occurrence"}
            assert attestations["occurrence"].startswith("projects/shop-123/occurrences/")
            assert attestations["index"].startswith("sha256:")
        assert len({a["occurrence"] for a in values}) == len(values)

    return pulumi.Output.all(*[image["attestations"] for image in images.values()]).apply(check)
