"""The stack's configuration, read from Pulumi once: the only module that touches Pulumi config.

`read_settings` refuses a key of the project's namespace the program does not read, parses the
rest with `plan.settings.parse_settings` and returns the settings with the `registryPassword`
secret (an Output, never a plain value). Any invalid value stops the program with one error,
before any resource is declared.
"""

import pulumi
from pulumi.runtime import config as runtime_config

from plan.settings import (
    CONFIG_KEYS,
    PROJECT,
    ConfigError,
    Settings,
    check_known_keys,
    parse_settings,
)


def read_settings() -> tuple[Settings, pulumi.Output[str] | None]:
    """The validated settings and the `registryPassword` secret; one error if anything is wrong."""
    config, gcp_config = pulumi.Config(PROJECT), pulumi.Config("gcp")
    password = config.get_secret("registryPassword")
    try:
        # The SDK has no public way to list every config key; these are the two places
        # pulumi.Config itself reads from (the CLI's PULUMI_CONFIG and values set in-process).
        check_known_keys(
            {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()},
            {*runtime_config.get_config_secret_keys_env(), *runtime_config._SECRET_KEYS.get()},
        )
        settings = parse_settings(
            raw={key: value for key in CONFIG_KEYS if (value := config.get(key)) is not None},
            gcp={key: value for key in ("project", "region") if (value := gcp_config.get(key))},
            registry_password_set=password is not None,
        )
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from error
    return settings, password
