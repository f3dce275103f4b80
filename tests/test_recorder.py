"""Smoke test of tests/recorder.py, the one module of the harness that leans on SDK internals.

A Pulumi SDK upgrade that renames or reshapes what the recorder reads (the RegisterResource and
Invoke request fields, `run_pulumi_func`, `_sync_await`, the secret wrapping of deserialized
inputs) fails here, naming the field, before it silently weakens every program test.
"""

import gc
import weakref
from typing import Any

import pulumi
import pulumi_command as command

from tests.recorder import (
    RecordingMonitor,
    Registration,
    is_secret,
    reset,
    resolve,
    root_outputs,
    run_to_completion,
    unwrap,
    use_mocks,
)

STACK_URN = "urn:pulumi:smoke::recorder::pulumi:pulumi:Stack::recorder-smoke"


class EchoMocks(pulumi.runtime.Mocks):
    """Every resource's outputs are its inputs; `command:local:run` echoes its command."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", {**args.inputs, "stdout": args.inputs.get("create", "")}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {"stdout": args.args["command"], "stderr": ""}, []


class Box(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("smoke:index:Box", name)
        self.register_outputs({})


class HookedMonitor(RecordingMonitor):
    def __init__(self, mock: pulumi.runtime.Mocks) -> None:
        super().__init__(mock)
        self.seen: list[str] = []

    def registered(self, registration: Registration) -> None:
        self.seen.append(f"registered {registration.name}")

    def invoked(self, invocation: Any) -> None:
        self.seen.append(f"invoked {invocation.token}")


def program() -> None:
    box = Box("box")
    first = command.local.Command(
        "first",
        create="echo first",
        opts=pulumi.ResourceOptions(parent=box, protect=True, delete_before_replace=True),
    )
    ran = command.local.run_output(command="echo ran")
    second = command.local.Command(
        "second",
        create=pulumi.Output.concat(first.stdout, " then ", ran.stdout),
        delete=pulumi.Output.secret("echo s3cret"),
        opts=pulumi.ResourceOptions(depends_on=[box], retain_on_delete=True),
    )
    pulumi.export("second", second.stdout)


def test_the_recorder_reads_what_the_engine_receives() -> None:
    monitor = HookedMonitor(EchoMocks())
    use_mocks(monitor.mocks, "recorder", "smoke", monitor)
    try:
        run_to_completion(program)
        exported = resolve(pulumi.Output.all(**root_outputs()))
    finally:
        reset()

    by_name = {registration.name: registration for registration in monitor.registrations}
    assert sorted(by_name) == ["box", "first", "second"], "the Stack itself is not recorded"
    box, first, second = by_name["box"], by_name["first"], by_name["second"]
    assert (box.custom, box.type, box.parent) == (False, "smoke:index:Box", STACK_URN)
    assert first.urn == (
        "urn:pulumi:smoke::recorder::smoke:index:Box$command:local:Command::first"
    ), "URN with the parent's type"
    assert (first.custom, first.parent) == (True, box.urn), "parent"
    assert (first.protect, first.delete_before_replace, first.retain_on_delete) == (
        True,
        True,
        False,
    ), "protect / deleteBeforeReplace / retainOnDelete"
    assert second.retain_on_delete is True, "retainOnDelete"
    # depends_on a component: the SDK sends the component's custom children instead.
    assert second.dependencies == [first.urn], "dependencies"
    assert first.urn in second.property_dependencies["create"], "propertyDependencies"
    assert second.inputs["create"] == "echo first then echo ran", "inputs"
    assert is_secret(second.inputs["delete"]), "a secret input stays wrapped"
    assert unwrap(second.inputs["delete"]) == "echo s3cret"
    assert not is_secret(second.inputs["create"])
    (invocation,) = monitor.invocations
    assert (invocation.token, invocation.args["command"]) == ("command:local:run", "echo ran")
    assert exported == {"second": "echo first then echo ran"}, "root outputs"
    assert "invoked command:local:run" in monitor.seen
    assert monitor.seen.index("invoked command:local:run") < monitor.seen.index(
        "registered second"
    ), "hooks run as the mocks answer"


class Cycle:
    """An object that only the cyclic garbage collector frees."""

    def __init__(self) -> None:
        self.itself = self


def test_reset_frees_the_garbage_a_program_froze() -> None:
    cycle = Cycle()
    alive = weakref.ref(cycle)
    del cycle
    gc.freeze()  # as `__main__.py` does when it starts: the garbage above is frozen with it
    try:
        gc.collect()
        assert alive() is not None, "a frozen cycle outlives every collection"
    finally:
        reset()
    assert gc.get_freeze_count() == 0, "reset unfreezes"
    assert alive() is None, "reset collects what was frozen, so evaluations do not pile up"
