"""BuildxBuilder: the buildx builder every Image names, present on whichever machine runs Pulumi.

Creates:
- a `pulumi_command.local.run_output` call of `python -m host builder ensure` (not a resource):
  it runs on every preview and every up, so a fresh CI runner with existing stack state still gets
  the builder, reconciled with the configured driver, options and native nodes;
- `command.local.Command` `<name>-builder`, which owns the builder for `pulumi destroy`
  (its delete removes it) and re-runs the ensure when the spec changes; it starts only once the
  every-run ensure has finished, so the two never race for the same builder.

Both through `components.host_state.ensure_every_run`, as every piece of host state; both name
the stack as the builder's owner: a builder another stack on the same machine owns is
neither reconciled nor removed (the run fails with that stack's name instead).
`buildx_builders` declares the builder every Image names and the per-platform ones.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.host_state import HostStateCommands, ensure_every_run
from host.contract import BuilderEnsureRequest, BuilderRemoveRequest, BuilderResult
from plan.host_commands import builder_spec
from plan.naming import arch_of
from plan.settings import BuilderSettings
from plan.tools import tool_command


@dataclass(frozen=True)
class BuildxBuilderArgs:
    """The builder to ensure."""

    name: str
    """Builder name (`builder.name`)."""
    spec: str
    """JSON spec for `python -m host builder ensure` (`plan.host_commands.builder_spec`)."""
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
        self.name = ensure_every_run(
            self,
            f"{name}-builder",
            HostStateCommands(
                ensure=tool_command(BuilderEnsureRequest(spec=args.spec, owner=args.owner)),
                remove=tool_command(BuilderRemoveRequest(name=args.name, owner=args.owner)),
                identity=args.spec,
            ),
            _builder_name,
            "builders",
        )
        self.register_outputs({"name": self.name})


def _builder_name(stdout: str) -> str:
    return BuilderResult.from_json(stdout).name


def buildx_builders(
    settings: BuilderSettings, platforms: Sequence[str], owner: str
) -> tuple[BuildxBuilder, dict[str, BuildxBuilder]]:
    """The builder every Image names (`buildx`), and one per platform that has a builder of its
    own (`buildx-<arch>`, strategy perPlatform); `owner` is the stack
    (`plan.host_commands.stack_owner`)."""
    builder = BuildxBuilder(
        "buildx",
        BuildxBuilderArgs(
            name=settings.name,
            spec=builder_spec(settings, platforms),
            owner=owner,
        ),
    )
    own = {
        platform: BuildxBuilder(
            f"buildx-{arch_of(platform)}",
            BuildxBuilderArgs(name=each.name, spec=builder_spec(each, [platform]), owner=owner),
        )
        for platform, each in settings.platform_builders.items()
    }
    return builder, own
