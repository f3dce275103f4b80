"""Every invalid configuration stops the program with one error before anything is declared."""

from typing import Any

import pulumi
import pytest

from tests.program_mocks import ProgramRunner
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
    assert program.monitor is not None
    assert program.monitor.registrations == [], message
    assert program.monitor.invocations == [], message
