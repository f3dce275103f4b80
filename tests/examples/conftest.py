"""Pulumi mocks for the example programs, kept apart from the main program's test fixtures.

The `consumer` fixture evaluates examples/gke-consumer/consumer.py under fresh mocks and config
for each run, the referenced stack's outputs coming from the mock of `pulumi:pulumi:StackReference`.
On teardown it clears the config and the runtime settings (monitor, root stack) so nothing of an
example run leaks into other tests.
"""

import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings

CONSUMER_DIR = Path(__file__).resolve().parents[2] / "examples" / "gke-consumer"
CONSUMER_PROJECT = "boutique-gke-consumer"
STACK_REFERENCE = "pulumi:pulumi:StackReference"


@dataclass
class ExampleMocks(pulumi.runtime.Mocks):
    """Answers every registration with its inputs; a StackReference with `stack_outputs`."""

    stack_outputs: Mapping[str, Any]
    registered: list[pulumi.runtime.MockResourceArgs] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(args)
        if args.typ == STACK_REFERENCE:
            # A StackReference is read with the stack name as its id; the engine answers with
            # the referenced stack's outputs.
            state = {"name": args.name, "outputs": dict(self.stack_outputs)}
            return args.name, state | {"secretOutputNames": []}
        return f"{args.name}-id", args.inputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the example must not invoke provider functions, called {args.token}")


class ConsumerHarness:
    """Evaluates the GKE consumer example; keeps the mocks of the latest evaluation."""

    def __init__(self) -> None:
        self.mocks = ExampleMocks({})

    def run(self, config: Mapping[str, str], stack_outputs: Mapping[str, Any]) -> dict[str, Any]:
        """Evaluate the program with these config keys and referenced outputs; return its globals.

        Call it inside a `@pulumi.runtime.test` function so registrations are awaited.
        """
        # A fresh root stack per run: set_mocks only creates one when none exists.
        settings.reset_options()
        self.mocks = ExampleMocks(stack_outputs)
        pulumi.runtime.set_mocks(self.mocks, project=CONSUMER_PROJECT, stack="test", preview=False)
        pulumi.runtime.set_all_config(
            {f"{CONSUMER_PROJECT}:{key}": value for key, value in config.items()}, []
        )
        return runpy.run_path(str(CONSUMER_DIR / "consumer.py"))


@pytest.fixture
def consumer() -> Iterator[ConsumerHarness]:
    """A harness for the GKE consumer example, with the Pulumi runtime reset afterwards."""
    yield ConsumerHarness()
    pulumi.runtime.set_all_config({}, [])
    settings.reset_options()
