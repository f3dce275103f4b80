"""LocalRegistry: an anonymous registry on a loopback address for the local stack, no cloud needed.

Creates:
- a `pulumi_command.local.run_output` call of `python -m host registry ensure` (not a resource):
  it runs on every preview and every up, so the registry serves on whichever machine runs Pulumi
  (after a reboot, or on a fresh checkout with existing stack state) before any Image pushes;
- `command.local.Command` `<name>-registry`, which owns the registry for `pulumi destroy` (its
  delete stops what the ensure started; the pushed images stay in the data directory) and ensures
  it again when the address or the data directory changes; it starts only once the every-run
  ensure has finished, so the two never race for the same address.
Both through `components.host_state.ensure_every_run`, as every piece of host state.
"""

from dataclasses import dataclass

import pulumi

from components.host_state import HostStateCommands, ensure_every_run
from host.contract import RegistryEnsureRequest, RegistryRemoveRequest, RegistryResult
from plan.tools import tool_command


@dataclass(frozen=True)
class LocalRegistryArgs:
    """Where the registry serves and keeps its files."""

    address: str
    """Loopback `host:port` (`registry.address` without its path), e.g. `127.0.0.1:5000`."""
    data_dir: str
    """Config, storage, pid and log files; relative to the project directory, so the Command's
    text is the same on every machine."""


class LocalRegistry(pulumi.ComponentResource):
    """A registry on loopback, serving whenever the program runs, stopped on destroy."""

    address: pulumi.Output[str]
    """`host:port` the registry serves on, known once it answers; depends on the owning Command,
    so Images that push to it wait for it."""

    def __init__(
        self, name: str, args: LocalRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:local_registry:LocalRegistry", name, None, opts)
        self.address = ensure_every_run(
            self,
            f"{name}-registry",
            HostStateCommands(
                ensure=tool_command(RegistryEnsureRequest(args.address, args.data_dir)),
                remove=tool_command(RegistryRemoveRequest(args.address, args.data_dir)),
                identity=f"{args.address}\0{args.data_dir}",
            ),
            registry_address,
            "addresses",
        )
        self.register_outputs({"address": self.address})


def registry_address(stdout: str) -> str:
    """The address an ensure reports."""
    return RegistryResult.from_json(stdout).address
