"""LocalRegistry under Pulumi mocks, and the local stack's configuration file.

The mocks answer `command:local:run` and `local.Command` with what `python -m host registry
ensure` prints (built with `host.contract`, the scripts' own contract); the scripts themselves run
for real in tests/test_host_registry.py and tests/integration/test_local_stack.py.
"""

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi_command as command
import pytest

from components.host_state import same_report
from components.local_registry import (
    LocalRegistry,
    LocalRegistryArgs,
    registry_address,
)
from host.contract import RegistryEnsureRequest, RegistryRemoveRequest, RegistryResult
from plan.settings import CONFIG_KEYS, PROJECT, StartedRegistry, parse_settings
from plan.tools import interpreter, tool_command
from tests.program_mocks import COMMAND, stack_config
from tests.recorder import RecordingMonitor, Registration, reset, use_mocks

ADDRESS = "127.0.0.1:5000"
DATA_DIR = ".cache/local-registry"
PYTHON = interpreter(sys.executable, os.getcwd())
"""The interpreter the program writes (`.venv/bin/python` in the project's virtualenv)."""


def ensure_stdout(command_line: str) -> str:
    """What `python -m host registry ensure` prints for this command line."""
    argv = shlex.split(command_line)
    assert argv[2:5] == ["host", "registry", "ensure"], command_line
    address = argv[argv.index("--address") + 1]
    return RegistryResult(address=address, pid=4242, container=None, started=True).to_json()


class RegistryMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == COMMAND and args.name != "consumer":
            outputs["stdout"] = ensure_stdout(outputs["create"])
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        assert args.token == "command:local:run", args.token
        return {"stdout": ensure_stdout(args.args["command"]), "stderr": ""}, []


@pytest.fixture
def monitor() -> Iterator[RecordingMonitor]:
    recording = RecordingMonitor(RegistryMocks())
    use_mocks(recording.mocks, PROJECT, "local", recording)
    yield recording
    reset()


def named(monitor: RecordingMonitor, name: str) -> Registration:
    (registration,) = [r for r in monitor.registrations if r.name == name]
    return registration


@pulumi.runtime.test
def test_registry_is_ensured_every_run_and_owned_by_a_command(
    monitor: RecordingMonitor,
) -> pulumi.Output[None]:
    registry = LocalRegistry("local", LocalRegistryArgs(ADDRESS, DATA_DIR))
    consumer = command.local.Command(
        "consumer", create=pulumi.Output.concat("echo ", registry.address)
    )
    ensure = f"{PYTHON} -m host registry ensure --address {ADDRESS} --data-dir {DATA_DIR}"

    def check(values: list[Any]) -> None:
        address, _ = values
        assert address == ADDRESS
        component = named(monitor, "local")
        assert component.type == "boutique:local_registry:LocalRegistry"
        owner = named(monitor, "local-registry")
        assert (owner.type, owner.custom, owner.parent) == (COMMAND, True, component.urn)
        assert owner.inputs["create"] == ensure
        assert owner.inputs["delete"] == (
            f"{PYTHON} -m host registry remove --address {ADDRESS} --data-dir {DATA_DIR}"
        )
        expected_trigger = hashlib.sha256(f"{ADDRESS}\0{DATA_DIR}".encode()).hexdigest()
        assert owner.inputs["triggers"] == [expected_trigger], owner.urn
        assert owner.delete_before_replace, owner.urn
        assert not owner.protect and not owner.retain_on_delete, owner.urn
        customs = [r.name for r in monitor.registrations if r.custom]
        assert customs == ["local-registry", "consumer"]
        runs = [call for call in monitor.invocations if call.token == "command:local:run"]
        assert [call.args["command"] for call in runs] == [ensure]
        # A resource that uses the address waits for the owning Command (which ensured it).
        dependent = named(monitor, "consumer")
        assert owner.urn in dependent.property_dependencies["create"], dependent.urn

    return pulumi.Output.all(registry.address, consumer.stdout).apply(check)


def test_trigger_changes_with_the_address_or_the_data_directory_only() -> None:
    def trigger(address: str, data_dir: str) -> str:
        return hashlib.sha256(f"{address}\0{data_dir}".encode()).hexdigest()

    assert len({trigger(ADDRESS, DATA_DIR), trigger("127.0.0.1:5001", DATA_DIR)}) == 2
    assert trigger(ADDRESS, DATA_DIR) != trigger(ADDRESS, ".cache/other")


def test_command_lines_quote_their_arguments() -> None:
    line = tool_command(RegistryEnsureRequest(ADDRESS, "data dir"), "/opt/my python/bin/python")
    assert shlex.split(line) == [
        "/opt/my python/bin/python",
        *("-m", "host", "registry", "ensure"),
        *("--address", ADDRESS, "--data-dir", "data dir"),
    ]
    assert shlex.split(tool_command(RegistryRemoveRequest(ADDRESS, DATA_DIR)))[3:5] == [
        "registry",
        "remove",
    ]


def test_ensures_that_disagree_are_an_error() -> None:
    first = RegistryResult(ADDRESS, 1, None, True).to_json()
    reused = RegistryResult(ADDRESS, 1, None, False).to_json()
    assert same_report(registry_address, "addresses", [first, reused]) == ADDRESS
    other = RegistryResult("127.0.0.1:5001", None, None, False).to_json()
    with pytest.raises(ValueError, match="different addresses"):
        same_report(registry_address, "addresses", [first, other])


def test_local_stack_file_parses_into_a_started_loopback_registry() -> None:
    # With the defaults of Pulumi.yaml, as the CLI hands the stack's config to the program.
    config = stack_config("local")
    prefix = f"{PROJECT}:"
    assert all(key.startswith(prefix) for key in config), "no gcp: or other namespace"
    raw = {
        key.removeprefix(prefix): value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }
    # __main__.py only reads CONFIG_KEYS: a key outside them would be silently ignored.
    assert set(raw) <= set(CONFIG_KEYS), set(raw) - set(CONFIG_KEYS)
    settings = parse_settings(raw, gcp={}, registry_password_set=False)
    assert settings.destination == StartedRegistry(ADDRESS, username=None)
    assert settings.builder.name == "boutique-local"
    assert settings.builder.driver == "docker-container"
    assert dict(settings.builder.driver_opts) == {"network": "host"}
    assert settings.platforms == ("linux/amd64", "linux/arm64")
    assert [service.name for service in settings.services] == [
        "checkoutservice",
        "frontend",
        "productcatalogservice",
        "shippingservice",
    ]
    assert settings.verify.deep is True
