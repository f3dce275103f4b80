"""LocalRegistry: an anonymous registry on a loopback address for the local stack, no cloud needed.

Creates:
- a `pulumi_command.local.run_output` call of `python -m host registry ensure` (not a resource):
  it runs on every preview and every up, so the registry serves on whichever machine runs Pulumi
  (after a reboot, or on a fresh checkout with existing stack state) before any Image pushes;
- `command.local.Command` `<name>-registry`, which owns the registry for `pulumi destroy` (its
  delete stops what the ensure started; the pushed images stay in the data directory) and ensures
  it again when the address or the data directory changes; it starts only once the every-run
  ensure has finished, so the two never race for the same address.
"""

import hashlib
import shlex
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_command as command

from host.results import RegistryResult


@dataclass(frozen=True)
class LocalRegistryArgs:
    """Where the registry serves and keeps its files."""

    address: str
    """Loopback `host:port` (`registry.address` without its path), e.g. `127.0.0.1:5000`."""
    data_dir: str
    """Config, storage, pid and log files; relative to the project directory, so the Command's
    text is the same on every machine."""
    python: str
    """Interpreter that runs `-m host` (`plan.host_commands.interpreter`)."""


def registry_ensure_command(python: str, address: str, data_dir: str) -> str:
    """Reuse the registry at `address` or start one; prints a `host.results.RegistryResult`."""
    return shlex.join(
        [python, "-m", "host", "registry", "ensure", "--address", address, "--data-dir", data_dir]
    )


def registry_remove_command(python: str, address: str, data_dir: str) -> str:
    """Stop what the ensure started for `data_dir`; prints a `host.results.RegistryRemoval`."""
    return shlex.join(
        [python, "-m", "host", "registry", "remove", "--address", address, "--data-dir", data_dir]
    )


class LocalRegistry(pulumi.ComponentResource):
    """A registry on loopback, serving whenever the program runs, stopped on destroy."""

    address: pulumi.Output[str]
    """`host:port` the registry serves on, known once it answers; depends on the owning Command,
    so Images that push to it wait for it."""

    def __init__(
        self, name: str, args: LocalRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:local_registry:LocalRegistry", name, None, opts)
        ensure = registry_ensure_command(args.python, args.address, args.data_dir)
        ensured = command.local.run_output(
            command=ensure, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        where = f"{args.address}\0{args.data_dir}"
        owner = command.local.Command(
            f"{name}-registry",
            # Same text, but only once the every-run ensure has finished: run at once, both
            # would create the same registry, and a replacement's delete would remove it mid-ensure.
            create=ensured.stdout.apply(partial(_once_ensured, ensure)),
            delete=registry_remove_command(args.python, args.address, args.data_dir),
            # A new address or data directory replaces the Command (pulumi-command triggers always
            # replace); a content hash, not a timestamp, keeps an unchanged registry in place.
            triggers=[hashlib.sha256(where.encode()).hexdigest()],
            # With create-before-delete, a new data directory at the same address would go wrong:
            # the new Command's ensure finds the old registry answering and reuses it, then the
            # old Command's delete stops it. Deleting first, then ensuring, leaves one serving.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.address = pulumi.Output.all(ensured.stdout, owner.stdout).apply(_ensured_address)
        self.register_outputs({"address": self.address})


def _ensured_address(outputs: list[str]) -> str:
    """The address both ensures report (they name the same registry)."""
    addresses = {RegistryResult.from_json(stdout).address for stdout in outputs}
    if len(addresses) != 1:
        raise ValueError(f"registry ensure reported different addresses: {sorted(addresses)}")
    return addresses.pop()


def _once_ensured(line: str, ensured_stdout: str) -> str:
    """`line`, as an Output that resolves only after the ensure printed `ensured_stdout`."""
    return line
