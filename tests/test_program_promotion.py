"""Under mocks: Dockerfile patches before the builds, verification before the tag moves.

The mocked tools answer with JSON shaped exactly like `python -m patches apply --json` and
`python -m verify --json` print it (tests/program_mocks.py); the tools run for real in their own
tests and in tests/integration/test_promotion.py.
"""

import json
import re
import shlex
from dataclasses import asdict
from typing import Any

import pulumi
import pytest

from patches.definitions import load
from plan.services import CATALOG, DEFAULT_SERVICES
from plan.settings import UPSTREAM_COMMIT
from tests.program_mocks import (
    COMMAND,
    DEV_CONFIG,
    IMAGE,
    INDEX,
    MOCK_ACCESS_TOKEN,
    REGISTRY,
    ROOT,
    ProgramRun,
    ProgramRunner,
    Registration,
    digest_of,
    is_secret,
    stack_config,
    start_program,
    unwrap,
)

P = "boutique-multiarch"
CHECKOUT = f".cache/upstream/{UPSTREAM_COMMIT}"
PATCH_LABEL = "dev.boutique-multiarch.patch-id"


def patch_commands(run: ProgramRun) -> list[str]:
    return [
        call.args["command"]
        for call in run.monitor.invocations
        if call.token == "command:local:run" and " -m patches " in call.args["command"]
    ]


def verifications(run: ProgramRun) -> dict[str, Registration]:
    """Verification Commands by the name of the Image they verify."""
    return {
        command.name.removesuffix("-verification-verify") + "-image": command
        for command in run.of_type(COMMAND)
        if " -m verify " in command.inputs["create"]
    }


def images(run: ProgramRun) -> dict[str, Registration]:
    return {image.name: image for image in run.of_type(IMAGE)}


def indexes(run: ProgramRun) -> dict[str, Registration]:
    return {index.name.removesuffix("-index"): index for index in run.of_type(INDEX)}


def test_patches_run_once_for_exactly_the_configured_services(program: ProgramRunner) -> None:
    services = ["emailservice", "cartservice", "frontend"]
    run = program({**DEV_CONFIG, f"{P}:services": services})
    (line,) = patch_commands(run)
    shape = re.fullmatch(
        r"umask 022 && \{ (?P<check>.+) >/dev/null 2>&1 \|\| \[ \$\? -ne 2 \] \|\| "
        r"(?P<restore>.+); \} && (?P<apply>.+)",
        line,
    )
    assert shape is not None, line
    dockerfiles = [CATALOG[service].dockerfile for service in services]
    assert shlex.split(shape["restore"]) == [
        "git",
        "-c",
        "core.autocrlf=false",
        "-C",
        CHECKOUT,
        "checkout",
        "--quiet",
        UPSTREAM_COMMIT,
        "--",
        *dockerfiles,
    ]
    selection = [
        "--revision",
        UPSTREAM_COMMIT,
        *[argument for service in services for argument in ("--service", service)],
    ]
    check, apply = shlex.split(shape["check"]), shlex.split(shape["apply"])
    assert check[1:] == ["-m", "patches", "check", *selection, "--", CHECKOUT]
    assert apply[1:] == ["-m", "patches", "apply", "--json", *selection, "--", CHECKOUT]
    assert apply[0] == check[0] and apply[0].endswith("python"), apply


def test_a_checkout_of_the_users_is_patched_as_it_is(program: ProgramRunner) -> None:
    run = program({**DEV_CONFIG, f"{P}:source": {"path": "/srv/boutique"}})
    (line,) = patch_commands(run)
    assert "&&" not in line and "git" not in line, line
    argv = shlex.split(line)
    assert argv[1:4] == ["-m", "patches", "apply"]
    assert argv[-2:] == ["--", "/srv/boutique"]
    assert "--revision" not in argv


def test_each_image_builds_its_patched_dockerfile_labelled_with_the_patch_id(
    program: ProgramRunner,
) -> None:
    run = program(stack_config("dev"))
    revision = load().revision(UPSTREAM_COMMIT)
    assert revision is not None
    labelled = set()
    for service in DEFAULT_SERVICES:
        image = images(run)[f"{service}-image"]
        definition = revision.file(service)
        assert definition is not None, service
        assert image.inputs["dockerfile"] == {"location": f"{CHECKOUT}/{definition.path}"}, (
            image.urn
        )
        assert image.inputs["labels"][PATCH_LABEL] == (definition.patch_id or "none"), image.urn
        if definition.patch_id:
            labelled.add(service)
    # The v0 patch set patches the three Python services and the two Node services.
    assert labelled == {
        "emailservice",
        "recommendationservice",
        "loadgenerator",
        "currencyservice",
        "paymentservice",
    }


def test_a_new_patch_id_changes_exactly_that_services_image(program: ProgramRunner) -> None:
    before = {r.urn: asdict(r) for r in program(stack_config("dev")).registrations}
    changed_run = program(stack_config("dev"), patch_ids={"emailservice": "f" * 64})
    after = {r.urn: asdict(r) for r in changed_run.registrations}
    assert sorted(before) == sorted(after)
    differing = [urn for urn in before if before[urn] != after[urn]]
    assert [urn.rsplit("::", 1)[-1] for urn in differing] == ["emailservice-image"], differing
    (urn,) = differing
    assert after[urn]["inputs"]["labels"][PATCH_LABEL] == "f" * 64


def test_a_patch_failure_fails_the_run_with_the_tools_message(program: ProgramRunner) -> None:
    message = "patches apply: drift: src/emailservice/Dockerfile (emailservice) has sha256 0a1b"
    with pytest.raises(Exception, match="drift: src/emailservice/Dockerfile"):
        program(stack_config("dev"), patch_failure=message)
    assert program.monitor is not None
    assert not [r for r in program.monitor.registrations if r.type == IMAGE]


def test_each_image_is_verified_by_digest_with_the_configured_options(
    program: ProgramRunner,
) -> None:
    allowed = "/usr/src/app/node_modules/@google-cloud/profiler/*.node"
    config = {
        **stack_config("dev"),
        f"{P}:verify": {
            "allow": {"currencyservice": [{"path": allowed, "reason": "profiler addon, off"}]}
        },
    }
    run = program(config)
    commands = verifications(run)
    assert sorted(commands) == sorted(images(run))
    for image_name, command in commands.items():
        service = image_name.removesuffix("-image")
        digest = digest_of(image_name)
        argv = shlex.split(command.inputs["create"])
        expected = ["--json", "--deep"]
        if service == "currencyservice":
            expected += ["--allow", allowed]
        expected += ["--platform", "linux/amd64", "--platform", "linux/arm64", "--gcp"]
        assert argv[1:3] == ["-m", "verify"], command.urn
        assert argv[3 : 3 + len(expected)] == expected, command.urn
        assert argv[3 + len(expected)] == "--run", command.urn
        assert argv[-2:] == ["--", f"{REGISTRY}/{service}@{digest}"], command.urn
        assert command.inputs["triggers"] == [digest], command.urn
        assert "reason" not in command.inputs["create"] and "profiler addon" not in str(argv)
        assert images(run)[image_name].urn in command.property_dependencies["create"]


def test_shallow_verification_of_an_existing_registry_uses_no_gcp_credentials(
    program: ProgramRunner,
) -> None:
    config = {
        f"{P}:registry": {"address": "registry.example.com/team", "username": "ci"},
        f"{P}:verify": {"deep": False},
    }
    run = program(config, secrets={f"{P}:registryPassword": "s3cret-password"})
    for command in verifications(run).values():
        argv = shlex.split(command.inputs["create"])
        assert "--deep" not in argv and "--gcp" not in argv, command.urn
        assert argv[-2] == "--" and argv[-1].startswith("registry.example.com/team/"), command.urn
        assert "s3cret-password" not in json.dumps(command.inputs), command.urn
        assert "environment" not in command.inputs, command.urn


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_verification_inputs_are_identical_across_runs_and_hold_no_credential(
    program: ProgramRunner, stack: str
) -> None:
    first, second = (
        verifications(program(stack_config(stack))),
        verifications(program(stack_config(stack))),
    )
    assert len(first) == 11
    for name, command in first.items():
        assert command.inputs == second[name].inputs, command.urn
        assert not any(is_secret(value) for value in command.inputs.values()), command.urn
        text = json.dumps({key: unwrap(value) for key, value in command.inputs.items()})
        assert MOCK_ACCESS_TOKEN not in text, command.urn
        assert "oauth2accesstoken" not in text, command.urn


def test_no_command_input_anywhere_holds_the_access_token(program: ProgramRunner) -> None:
    run = program(stack_config("dev"))
    for command in run.of_type(COMMAND):
        text = json.dumps({key: unwrap(value) for key, value in command.inputs.items()})
        assert MOCK_ACCESS_TOKEN not in text, command.urn
    for call in run.monitor.invocations:
        assert MOCK_ACCESS_TOKEN not in json.dumps(call.args, default=str), call.token


def test_each_index_moves_the_tag_only_after_its_verification(program: ProgramRunner) -> None:
    run = program(stack_config("dev"))
    commands = verifications(run)
    for service, index in indexes(run).items():
        verification = commands[f"{service}-image"]
        assert verification.urn in index.dependencies, index.urn
        other = [c.urn for name, c in commands.items() if name != f"{service}-image"]
        assert not set(other) & set(index.dependencies), index.urn
        assert index.inputs["tag"] == f"{REGISTRY}/{service}:v1", index.urn
        digest = digest_of(f"{service}-image")
        assert index.inputs["sources"] == [f"{REGISTRY}/{service}@{digest}"], index.urn
        assert index.inputs["push"] is True, index.urn
        assert index.retain_on_delete, index.urn
        registry = index.inputs["registry"]
        assert is_secret(registry), index.urn
        assert unwrap(registry) == {
            "address": "europe-west1-docker.pkg.dev",
            "username": "oauth2accesstoken",
            "password": MOCK_ACCESS_TOKEN,
        }, index.urn


@pulumi.runtime.test
def test_outputs_carry_the_verified_platform_digests(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program({f"{P}:registry": {"address": "127.0.0.1:5000/boutique"}})
    outputs = run.outputs["images"]

    def check(values: list[Any]) -> None:
        urn, frontend, emailservice = values
        digest = digest_of("frontend-image")
        assert frontend == {
            "ref": f"127.0.0.1:5000/boutique/frontend:v1@{digest}",
            "digest": digest,
            "tag": "v1",
            "platforms": {
                platform: digest_of(f"127.0.0.1:5000/boutique/frontend@{digest} {platform}")
                for platform in ("linux/amd64", "linux/arm64")
            },
            # What the verifier's JSON said (elf.checked, run.probe, run.seconds).
            "proof": {
                platform: {"elfFiles": 7, "probe": "http:8080/_healthz", "seconds": 2.5}
                for platform in ("linux/amd64", "linux/arm64")
            },
            "attestations": {},  # no `attest` config
        }, urn
        assert set(frontend["platforms"].values()).isdisjoint(emailservice["platforms"].values())

    return pulumi.Output.all(
        run.namespace["images"]["frontend"].urn,
        pulumi.Output.from_input(outputs["frontend"]),
        pulumi.Output.from_input(outputs["emailservice"]),
    ).apply(check)
