"""The runtime proof in the program (under mocks): each verification Command starts the image
with its service's probe and env, re-runs exactly when the digest or the probe definition
changes, never carries a credential or a skip reason, and `proof` reaches the stack output.

The mocked `verify --json` is built with the verifier's own writers (tests/program_mocks.py);
the tool itself runs for real in tests/integration/test_verify_run.py.
"""

import json
import logging
import shlex
from typing import Any

import pulumi
import pytest

from tests.program_mocks import (
    COMMAND,
    MOCK_ACCESS_TOKEN,
    MOCK_RUN_SECONDS,
    ROOT,
    ProgramRun,
    ProgramRunner,
    Registration,
    stack_config,
    start_program,
    unwrap,
)

P = "boutique-multiarch"
CART_SKIP = "the .NET runtime is unsupported under QEMU (dotnet/runtime#97828)"


def verifications(run: ProgramRun) -> dict[str, Registration]:
    """Verification Commands by service (strategy multiPlatform)."""
    return {
        command.name.removesuffix("-verification-verify"): command
        for command in run.of_type(COMMAND)
        if command.name.endswith("-verification-verify")
    }


def argv_of(command: Registration) -> list[str]:
    return shlex.split(command.inputs["create"])


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, argument in enumerate(argv[:-1]) if argument == flag]


def test_the_local_stack_starts_each_go_service_with_its_upstream_probe(
    program: ProgramRunner,
) -> None:
    commands = verifications(program(stack_config("local")))
    probes = {service: values(argv_of(c), "--probe") for service, c in commands.items()}
    assert probes == {
        "checkoutservice": ["grpc:5050"],
        "frontend": ["http:8080/_healthz"],
        "productcatalogservice": ["grpc:3550"],
        "shippingservice": ["grpc:50051"],
    }
    checkout = values(argv_of(commands["checkoutservice"]), "--env")
    assert "PORT=5050" in checkout and "EMAIL_SERVICE_ADDR=127.0.0.1:5000" in checkout
    assert "PRODUCT_CATALOG_SERVICE_ADDR=127.0.0.1:3550" in checkout
    for command in commands.values():
        assert "--skip-run" not in argv_of(command), command.urn


def test_no_credential_reaches_a_command_line_that_runs_images(program: ProgramRunner) -> None:
    config = {f"{P}:registry": {"address": "registry.example.com/team", "username": "ci"}}
    run = program(config, secrets={f"{P}:registryPassword": "s3cret-password"})
    dev = program(stack_config("dev"))
    for command in [*verifications(run).values(), *verifications(dev).values()]:
        assert "--run" in argv_of(command), command.urn
        text = json.dumps({key: unwrap(value) for key, value in command.inputs.items()})
        assert "s3cret-password" not in text and MOCK_ACCESS_TOKEN not in text, command.urn


def test_a_probe_change_reruns_only_that_verification_and_a_no_op_run_nothing(
    program: ProgramRunner,
) -> None:
    base = stack_config("dev")
    first, again = verifications(program(base)), verifications(program(base))
    dev_verify = base[f"{P}:verify"]
    assert isinstance(dev_verify, dict)
    verify = {**dev_verify, "probes": {"frontend": {"probe": "tcp:8080"}}}
    changed = verifications(program({**base, f"{P}:verify": verify}))
    for service, command in first.items():
        # pulumi-command replaces (re-runs) a Command whose `create` or `triggers` change.
        assert again[service].inputs == command.inputs, command.urn
        if service == "frontend":
            assert changed[service].inputs["create"] != command.inputs["create"]
            assert values(argv_of(changed[service]), "--probe") == ["tcp:8080"]
        else:
            assert changed[service].inputs == command.inputs, command.urn
        assert command.inputs["triggers"] == changed[service].inputs["triggers"], command.urn


def test_an_env_or_timeout_change_reruns_the_verification(program: ProgramRunner) -> None:
    base = stack_config("dev")
    env = {"probes": {"adservice": {"env": {"JAVA_TOOL_OPTIONS": "-Xmx256m"}, "timeout": 600}}}
    before = verifications(program(base))["adservice"]
    after = verifications(program({**base, f"{P}:verify": env}))["adservice"]
    assert "JAVA_TOOL_OPTIONS=-Xmx256m" in values(argv_of(after), "--env")
    assert values(argv_of(after), "--run-timeout") == ["600"]
    assert "--run-timeout" not in argv_of(before)
    assert after.inputs["create"] != before.inputs["create"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_deploying_stacks_skip_cartservice_arm64_logged_with_its_reason(
    program: ProgramRunner, caplog: pytest.LogCaptureFixture, stack: str
) -> None:
    with caplog.at_level(logging.WARNING):
        commands = verifications(program(stack_config(stack)))
    cart = argv_of(commands["cartservice"])
    assert values(cart, "--skip-run") == ["linux/arm64"]
    assert "QEMU" not in commands["cartservice"].inputs["create"]
    assert f"runtime proof of linux/arm64 skipped: {CART_SKIP}" in caplog.text
    assert "--skip-run" not in argv_of(commands["frontend"])


def test_without_verify_run_nothing_is_started(program: ProgramRunner) -> None:
    config = {**stack_config("dev"), f"{P}:verify": {"run": False}}
    for command in verifications(program(config)).values():
        assert "--run" not in argv_of(command), command.urn


@pulumi.runtime.test
def test_the_proof_reaches_the_stack_output(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(
        {
            f"{P}:registry": {"address": "127.0.0.1:5000/boutique"},
            f"{P}:services": ["cartservice", "loadgenerator", "shoppingassistantservice"],
            f"{P}:verify": {"skipRun": {"cartservice": {"linux/arm64": CART_SKIP}}},
        }
    )
    images = run.outputs["images"]

    def check(outputs: list[Any]) -> None:
        urn, cart, loadgenerator, assistant = outputs
        assert cart["proof"] == {
            "linux/amd64": {"elfFiles": 7, "probe": "grpc:7070", "seconds": MOCK_RUN_SECONDS},
            "linux/arm64": {"elfFiles": 7, "skipped": CART_SKIP},
        }, urn
        assert loadgenerator["proof"]["linux/arm64"]["probe"] == "up:45", urn
        reason = assistant["proof"]["linux/amd64"]["skipped"]
        assert reason.startswith("needs Google Cloud to start"), urn
        assert set(assistant["proof"]) == {"linux/amd64", "linux/arm64"}, urn

    return pulumi.Output.all(
        run.namespace["images"]["cartservice"].urn,
        pulumi.Output.from_input(images["cartservice"]),
        pulumi.Output.from_input(images["loadgenerator"]),
        pulumi.Output.from_input(images["shoppingassistantservice"]),
    ).apply(check)
