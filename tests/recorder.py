"""The one module of the test harness that touches Pulumi SDK internals.

Pulumi's public testing API (`pulumi.runtime.set_mocks`, `Mocks`, `@pulumi.runtime.test`) hands
a test what a resource's provider sees, not what the engine receives: `MockResourceArgs` carries
no parent, protect, delete_before_replace or dependencies, and there is no public way to run a
whole program to its end outside `@pulumi.runtime.test`. Everything that needs more lives here,
so an SDK upgrade that moves these internals breaks one module, and `tests/test_recorder.py`
names what moved:

- `RecordingMonitor` reads the engine's RegisterResource and Invoke requests (protobuf fields);
- `use_mocks` starts a fresh root stack with a monitor; `reset` forgets it;
- `run_to_completion` runs a program with the SDK's own runner and waits for every RPC;
- `resolve` waits for one Output; `is_secret` / `unwrap` read secret-wrapped inputs.
"""

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await


@dataclass
class Registration:
    """One RegisterResource request, as the engine receives it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    protect: bool
    delete_before_replace: bool
    retain_on_delete: bool
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    """Deserialized inputs; secret values stay wrapped (see `is_secret`)."""


@dataclass
class Invocation:
    """One provider function call (an invoke)."""

    token: str
    args: dict[str, Any]


class RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that keeps the registration and invoke requests. Subclasses may override
    `registered` and `invoked`, called once the mocks have answered."""

    def __init__(self, mock: mocks.Mocks) -> None:
        super().__init__(mock)
        self.registrations: list[Registration] = []
        self.invocations: list[Invocation] = []

    def RegisterResource(self, request: Any) -> Any:
        registration = None
        if request.type != "pulumi:pulumi:Stack":
            registration = Registration(
                urn=self.make_urn(request.parent, request.type, request.name),
                type=request.type,
                name=request.name,
                custom=request.custom,
                parent=request.parent,
                protect=request.protect,
                delete_before_replace=request.deleteBeforeReplace,
                retain_on_delete=request.retainOnDelete,
                dependencies=sorted(request.dependencies),
                property_dependencies={
                    key: sorted(value.urns)
                    for key, value in sorted(request.propertyDependencies.items())
                },
                inputs=rpc.deserialize_properties(request.object),
            )
            self.registrations.append(registration)
        response = super().RegisterResource(request)
        if registration is not None:
            self.registered(registration)
        return response

    def Invoke(self, request: Any) -> Any:
        invocation = Invocation(request.tok, rpc.deserialize_properties(request.args))
        self.invocations.append(invocation)
        response = super().Invoke(request)
        self.invoked(invocation)
        return response

    def registered(self, registration: Registration) -> None:
        """Called after the mocks answered `registration`."""

    def invoked(self, invocation: Invocation) -> None:
        """Called after the mocks answered `invocation`."""


def use_mocks(
    mock: pulumi.runtime.Mocks,
    project: str,
    stack: str,
    monitor: RecordingMonitor | None = None,
    preview: bool = False,
) -> None:
    """Route the next program's resources to `mock` (through `monitor` when given), under a
    fresh root stack: `set_mocks` only creates one when none exists. `preview` runs the program
    as `pulumi preview` does."""
    reset()
    pulumi.runtime.set_mocks(mock, project=project, stack=stack, preview=preview, monitor=monitor)


def reset() -> None:
    """Forget the root stack and the options of the last program, and what it froze: the
    program freezes everything alive when it starts (`gc.freeze()` in `__main__.py`), which in
    a test process also holds the garbage of earlier evaluations; unfrozen and collected, it
    does not pile up from one evaluation to the next."""
    settings.reset_options()
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()


def run_to_completion(program: Callable[[], None]) -> None:
    """Run `program` as the SDK runs a program, and wait until every registration and invoke it
    started (also those started inside `apply`) has been answered."""
    _sync_await(run_pulumi_func(program))


def resolve(output: pulumi.Output[Any]) -> Any:
    """The value of `output`, waited for outside a running program."""
    return _sync_await(output.future())


def root_outputs() -> dict[str, Any]:
    """The outputs the last program exported (Outputs, not yet resolved)."""
    return dict(getattr(pulumi.runtime.get_root_resource(), "outputs", {}) or {})


def is_secret(value: Any) -> bool:
    """Whether a deserialized input value is a secret."""
    return bool(rpc.is_rpc_secret(value))


def unwrap(value: Any) -> Any:
    """The plain value of a deserialized input, secret or not."""
    return rpc.unwrap_rpc_secret(value) if is_secret(value) else value
