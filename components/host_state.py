"""Host state a component keeps on whichever machine runs Pulumi: ensured every run, owned by a
Command. Not a component: the one way BuildxBuilder and LocalRegistry declare their host state.

`ensure_every_run` creates, under the calling component:
- a `pulumi_command.local.run_output` call of the ensure command (not a resource): it runs on
  every preview and every up, so the state exists on a fresh CI runner or after a reboot even
  though the stack's state says it was created long ago;
- `command.local.Command` `<name>`, which owns the state for `pulumi destroy` (its delete runs
  the remove command) and runs the ensure again when `identity` changes; it starts only once the
  every-run ensure has finished, so the two never race for the same builder or address.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_command as command


@dataclass(frozen=True)
class HostStateCommands:
    """How to ensure and remove one piece of host state."""

    ensure: str
    """Creates or reuses the state; prints one `host.contract` JSON object."""
    remove: str
    """Removes what the ensure created (the owning Command's delete)."""
    identity: str
    """What the state is (name, spec, address, directory); a change replaces the owner."""


def ensure_every_run(
    parent: pulumi.Resource,
    name: str,
    commands: HostStateCommands,
    reported: Callable[[str], str],
    what: str,
) -> pulumi.Output[str]:
    """Declare the every-run ensure and the owning Command `name`. Returns what both ensures
    report (`reported` reads it from an ensure's stdout), known once the owner has run, so a
    resource using it waits for the state; an error if the two ensures disagree (`what` names
    the reported value in that error, e.g. "builders")."""
    ensured = command.local.run_output(
        command=commands.ensure, opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    owner = command.local.Command(
        name,
        # Same text, but only once the every-run ensure has finished: run at once, both would
        # create the same state, and a replacement's delete would remove it mid-ensure.
        create=ensured.stdout.apply(partial(_once_ensured, commands.ensure)),
        delete=commands.remove,
        # A new identity replaces the Command (pulumi-command triggers always replace); a
        # content hash, not a timestamp, keeps unchanged state from being replaced.
        triggers=[hashlib.sha256(commands.identity.encode()).hexdigest()],
        # Create-before-delete would go wrong: the new Command's ensure finds the old state
        # (same builder name, or a registry answering at the same address) and reuses it, then
        # the old Command's delete removes it. Deleting first, then ensuring, leaves it in place.
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )
    return pulumi.Output.all(ensured.stdout, owner.stdout).apply(
        partial(same_report, reported, what)
    )


def same_report(reported: Callable[[str], str], what: str, outputs: list[str]) -> str:
    """The value both ensures report (they name the same state)."""
    values = {reported(stdout) for stdout in outputs}
    if len(values) != 1:
        raise ValueError(f"ensures reported different {what}: {sorted(values)}")
    return values.pop()


def _once_ensured(line: str, ensured_stdout: str) -> str:
    """`line`, as an Output that resolves only after the ensure printed `ensured_stdout`."""
    return line
