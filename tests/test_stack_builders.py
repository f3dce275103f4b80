"""Stacks on one machine do not share a buildx builder: the committed stack files name builders
of their own, and each stack is recorded under a name of its own as their owner."""

import json

from plan.host_commands import stack_owner
from plan.settings import PROJECT, parse_settings
from tests.program_mocks import stack_config

STACKS = ("dev", "prod", "local")


def builder_names(stack: str) -> set[str]:
    config = stack_config(stack)
    raw = {
        key.removeprefix(f"{PROJECT}:"): value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
        if key.startswith(f"{PROJECT}:")
    }
    gcp = {k.removeprefix("gcp:"): str(v) for k, v in config.items() if k.startswith("gcp:")}
    builder = parse_settings(raw, gcp, False).builder
    return {builder.name, *(own.name for own in builder.platform_builders.values())}


def test_committed_stacks_use_distinct_builder_names() -> None:
    names = {stack: builder_names(stack) for stack in STACKS}
    for stack in STACKS:
        others = set().union(*(names[other] for other in STACKS if other != stack))
        assert not names[stack] & others, (stack, names)


def test_owner_names_tell_stacks_and_organizations_apart() -> None:
    owners = {
        stack_owner("acme", PROJECT, "dev"),
        stack_owner("acme", PROJECT, "prod"),
        stack_owner("other", PROJECT, "dev"),
        stack_owner(None, PROJECT, "dev"),
    }
    assert len(owners) == 4
    assert stack_owner(None, PROJECT, "dev") == f"{PROJECT}/dev"
