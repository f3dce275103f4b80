"""Under mocks: a host Command that owns a builder or registry starts only after the every-run
ensure of the same thing has finished.

Both run `python -m host ... ensure` for the same name or address; run at once on a first `up`
they would race (two `docker buildx create --name X`, two registries binding one port), and on a
replacement the old Command's delete would remove the builder while the ensure reconciles it.
The mocked ensure is slowed down so that a Command registered without waiting for it shows.
"""

import shlex
import time

import pytest

from tests.program_mocks import ROOT, evaluate_program, new_monitor, stack_config
from tests.recorder import Invocation, RecordingMonitor, Registration

ENSURE_SECONDS = 0.3


class OrderMonitor(RecordingMonitor):
    """Records when each `command:local:run` finished and when each Command was registered."""

    def __init__(self, monitor: RecordingMonitor) -> None:
        super().__init__(monitor.mocks)
        self.events: list[tuple[str, str]] = []

    def invoked(self, invocation: Invocation) -> None:
        if invocation.token == "command:local:run":
            time.sleep(ENSURE_SECONDS)
            self.events.append(("ran", invocation.args["command"]))

    def registered(self, registration: Registration) -> None:
        if registration.type == "command:local:Command":
            self.events.append(("registered", registration.inputs.get("create", "")))


@pytest.mark.parametrize(("stack", "what"), [("dev", "builder"), ("local", "registry")])
def test_owning_command_waits_for_the_every_run_ensure(
    stack: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    config = stack_config(stack)
    monitor = OrderMonitor(new_monitor(config))
    evaluate_program(config, monitor=monitor)

    def is_ensure(line: str) -> bool:
        return shlex.split(line)[2:5] == ["host", what, "ensure"]

    def positions(event: str) -> list[int]:
        return [
            i for i, (kind, line) in enumerate(monitor.events) if kind == event and is_ensure(line)
        ]

    ran, owners = positions("ran"), positions("registered")
    assert ran and owners, monitor.events
    assert max(ran) < min(owners), f"{what} Command registered before its ensure finished"
