"""Pulumi mocks for the example programs, kept apart from the main program's test fixtures.

The `consumer` fixture evaluates examples/gke-consumer/consumer.py under fresh mocks and config
for each run, the referenced stack's outputs coming from the mock of `pulumi:pulumi:StackReference`
and a LoadBalancer Service getting an ingress address as the cloud would give it. On teardown it
clears the config and the runtime settings (monitor, root stack) so nothing of an example run
leaks into other tests. The example's pure modules are importable by the tests (its directory
is put on sys.path, as consumer.py does itself).
"""

import runpy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.recorder import reset, resolve, root_outputs, run_to_completion, use_mocks

CONSUMER_DIR = Path(__file__).resolve().parents[2] / "examples" / "gke-consumer"
CONSUMER_PROJECT = "boutique-gke-consumer"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
LOAD_BALANCER_IP = "203.0.113.80"
"""The ingress IP the mocked cloud gives a LoadBalancer Service (TEST-NET-3)."""

if str(CONSUMER_DIR) not in sys.path:
    sys.path.insert(0, str(CONSUMER_DIR))


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
            reference = {"name": args.name, "outputs": dict(self.stack_outputs)}
            return args.name, reference | {"secretOutputNames": []}
        state: dict[str, Any] = dict(args.inputs)
        spec: dict[str, Any] = state.get("spec") or {}
        if args.typ == "kubernetes:core/v1:Service" and spec.get("type") == "LoadBalancer":
            state["status"] = {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}}
        return f"{args.name}-id", state

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the example must not invoke provider functions, called {args.token}")


@dataclass
class Evaluation:
    """One finished evaluation of the consumer: what it registered and exported."""

    registered: list[pulumi.runtime.MockResourceArgs]
    outputs: dict[str, Any]
    """Exported stack outputs, resolved."""
    namespace: dict[str, Any]
    """The program's module globals."""

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        """Resource name -> inputs, for every registered resource of this type."""
        return {args.name: args.inputs for args in self.registered if args.typ == typ}

    @property
    def types(self) -> list[str]:
        return sorted(args.typ for args in self.registered)


class ConsumerHarness:
    """Evaluates the GKE consumer example; keeps the mocks of the latest evaluation."""

    def __init__(self) -> None:
        self.mocks = ExampleMocks({})

    def run(self, config: Mapping[str, str], stack_outputs: Mapping[str, Any]) -> Evaluation:
        """Evaluate the program to the end with these config keys and referenced outputs.

        Raises what the program raises, also from inside its `apply` callbacks; `self.mocks`
        then shows what was registered before.
        """
        # A fresh root stack per run: set_mocks only creates one when none exists.
        self.mocks = ExampleMocks(stack_outputs)
        use_mocks(self.mocks, CONSUMER_PROJECT, "test")
        pulumi.runtime.set_all_config(
            {f"{CONSUMER_PROJECT}:{key}": value for key, value in config.items()}, []
        )
        namespace: dict[str, Any] = {}

        def program() -> None:
            namespace.update(runpy.run_path(str(CONSUMER_DIR / "consumer.py")))

        run_to_completion(program)
        outputs = resolve(pulumi.Output.all(**root_outputs()))
        # Resources declared inside `apply` register asynchronously: wait for them too.
        run_to_completion(lambda: None)
        return Evaluation(list(self.mocks.registered), dict(outputs or {}), namespace)


@pytest.fixture
def consumer() -> Iterator[ConsumerHarness]:
    """A harness for the GKE consumer example, with the Pulumi runtime reset afterwards."""
    yield ConsumerHarness()
    pulumi.runtime.set_all_config({}, [])
    reset()
