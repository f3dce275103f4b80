"""BuildxBuilder: the buildx builder every Image names, present on whichever machine runs Pulumi.

Creates:
- a `pulumi_command.local.run_output` call of `python -m host builder ensure` (not a resource):
  it runs on every preview and every up, so a fresh CI runner with existing stack state still gets
  the builder, reconciled with the configured driver, options and native nodes;
- `command.local.Command` `<name>-builder`, which owns the builder for `pulumi destroy`
  (its delete removes it) and re-runs the ensure when the spec changes; it starts only once the
  every-run ensure has finished, so the two never race for the same builder.

Both name the stack as the builder's owner: a builder another stack on the same machine owns is
neither reconciled nor removed (the run fails with that stack's name instead).
"""

import hashlib
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_command as command

from host.results import BuilderResult
from plan.host_commands import builder_ensure_command, builder_remove_command


@dataclass(frozen=True)
class BuildxBuilderArgs:
    """The builder to ensure."""

    name: str
    """Builder name (`builder.name`)."""
    spec: str
    """JSON spec for `python -m host builder ensure` (`plan.host_commands.builder_spec`)."""
    python: str
    """Interpreter that runs `-m host` (`plan.host_commands.interpreter`)."""
    owner: str
    """The stack, recorded as the builder's owner (`plan.host_commands.stack_owner`)."""


class BuildxBuilder(pulumi.ComponentResource):
    """A buildx builder ensured on every program run and removed on destroy."""

    name: pulumi.Output[str]
    """Builder name, known once the builder is ensured; depends on the owning Command."""

    def __init__(
        self, name: str, args: BuildxBuilderArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:buildx_builder:BuildxBuilder", name, None, opts)
        ensure = builder_ensure_command(args.python, args.spec, args.owner)
        ensured = command.local.run_output(
            command=ensure, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        owner = command.local.Command(
            f"{name}-builder",
            # Same text, but only once the every-run ensure has finished: run at once, both
            # would create the same builder, and a replacement's delete would remove it mid-ensure.
            create=ensured.stdout.apply(partial(_once_ensured, ensure)),
            delete=builder_remove_command(args.python, args.name, args.owner),
            # A spec change replaces the Command (pulumi-command triggers always replace); the
            # content hash, not a timestamp, keeps unchanged specs from replacing it.
            triggers=[hashlib.sha256(args.spec.encode()).hexdigest()],
            # Create-before-delete would remove the builder the new Command has just ensured
            # under the same name; deleting first and ensuring after leaves it in place.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.name = pulumi.Output.all(ensured.stdout, owner.stdout).apply(_ensured_name)
        self.register_outputs({"name": self.name})


def _ensured_name(outputs: list[str]) -> str:
    """The builder name both ensures report (they name the same builder)."""
    names = {BuilderResult.from_json(stdout).name for stdout in outputs}
    if len(names) != 1:
        raise ValueError(f"builder ensure reported different builders: {sorted(names)}")
    return names.pop()


def _once_ensured(line: str, ensured_stdout: str) -> str:
    """`line`, as an Output that resolves only after the ensure printed `ensured_stdout`."""
    return line
