"""Every invalid configuration stops the program with one error before anything is declared."""

from typing import Any

import pulumi
import pytest

from tests.program_mocks import ProgramRunner
from tests.program_mocks import stack_config as stack_file_config
from tests.test_settings import BAD_CONFIG, GCP

P = "boutique-multiarch"


def stack_config(values: dict[str, Any], gcp: dict[str, str] | None) -> dict[str, object]:
    gcp_values = GCP if gcp is None else gcp
    config: dict[str, object] = {f"gcp:{key}": value for key, value in gcp_values.items()}
    config.update({f"{P}:{key}": value for key, value in values.items()})
    return config


@pytest.mark.parametrize(("values", "gcp", "password", "key", "allowed"), BAD_CONFIG)
def test_invalid_config_declares_nothing_and_runs_no_command(
    program: ProgramRunner,
    values: dict[str, Any],
    gcp: dict[str, str] | None,
    password: bool,
    key: str,
    allowed: str,
) -> None:
    secrets = {f"{P}:registryPassword": "s3cret-password"} if password else None
    with pytest.raises(pulumi.RunError) as raised:
        program(stack_config(values, gcp), secrets=secrets)
    message = str(raised.value)
    assert message.startswith(f"config {key} = "), message
    assert allowed in message, message
    assert "s3cret-password" not in message
    assert "ghp_s3cret" not in message
    assert program.monitor is not None
    assert program.monitor.registrations == [], message
    assert program.monitor.invocations == [], message


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        (f"{P}:registy", {"address": "127.0.0.1:5000"}, False),
        (f"{P}:platform", ["linux/arm64"], False),
        (f"{P}:registryPasword", "s3cret-password", True),
    ],
)
def test_a_misspelt_key_is_refused_before_anything_is_declared(
    program: ProgramRunner, key: str, value: object, secret: bool
) -> None:
    config = stack_config({}, None)
    secrets: dict[str, str] | None = None
    if secret:
        secrets = {key: str(value)}
    else:
        config[key] = value
    with pytest.raises(pulumi.RunError) as raised:
        program(config, secrets=secrets)
    message = str(raised.value)
    assert message.startswith(f"config {key} = "), message
    assert "one of the keys services, platforms, tag," in message, message
    assert "s3cret-password" not in message
    assert program.monitor is not None
    assert program.monitor.registrations == [], message
    assert program.monitor.invocations == [], message


def test_every_key_of_the_stack_files_is_known(program: ProgramRunner) -> None:
    """The shipped stack files only use keys the program reads (else the check above refuses)."""
    for stack in ("dev", "prod", "local"):
        program(stack_file_config(stack))
        assert program.monitor is not None
        assert program.monitor.registrations, stack
