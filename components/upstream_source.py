"""UpstreamSource: the Online Boutique source tree the images are built from.

Creates no resource: a `pulumi_command.local.run_output` call of `python -m host checkout` runs
on every preview and every up, so any machine (a fresh CI runner included) has the checkout at
exactly the pinned commit, in `.cache/upstream/<commit>`, or finds the configured path, before
an Image reads it. Its result is known during preview, so image contexts are known then too.
The checkout is a cache shared by stacks at the same commit, so nothing removes it on destroy.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from host.contract import CheckoutResult
from plan.host_commands import checkout_request
from plan.naming import oci_labels
from plan.settings import GitSource, PathSource
from plan.tools import tool_command


@dataclass(frozen=True)
class UpstreamSourceArgs:
    """Which source to ensure."""

    source: GitSource | PathSource
    """Validated `source` config."""
    required: Sequence[str]
    """Files the checkout must contain (the Dockerfiles of the configured services)."""


class UpstreamSource(pulumi.ComponentResource):
    """The checkout every ServiceImage builds from."""

    root: pulumi.Output[str]
    """Checkout directory (relative to the project directory for the commit cache)."""
    labels: pulumi.Output[dict[str, str]]
    """OCI labels for images built from this checkout (source URL, revision)."""
    origin: pulumi.Output[dict[str, str | None]]
    """`{url, commit}` the images are built from, for consumers that render upstream's
    manifests at the same revision: the configured URL (None for a `path` source without one)
    and the checkout's HEAD (None for a path that is not a git work tree)."""

    def __init__(
        self, name: str, args: UpstreamSourceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:upstream_source:UpstreamSource", name, None, opts)
        ensured = command.local.run_output(
            command=tool_command(checkout_request(args.source, args.required)),
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        checkout = ensured.stdout.apply(CheckoutResult.from_json)
        self.root = checkout.apply(_root)
        # The commit at HEAD of the checkout; None for a path that is not a git work tree.
        revision = checkout.apply(_revision)
        self.labels = pulumi.Output.all(args.source.url, revision).apply(_labels)
        self.origin = pulumi.Output.all(args.source.url, revision).apply(_origin)
        self.register_outputs({"root": self.root, "labels": self.labels, "origin": self.origin})

    def path(self, relative: str) -> pulumi.Output[str]:
        """A path inside the checkout."""
        return pulumi.Output.concat(self.root, "/", relative)


def _root(checkout: CheckoutResult) -> str:
    return checkout.path


def _revision(checkout: CheckoutResult) -> str | None:
    return checkout.commit


def _labels(url_and_revision: list[str | None]) -> dict[str, str]:
    return dict(oci_labels(*url_and_revision))


def _origin(url_and_revision: list[str | None]) -> dict[str, str | None]:
    url, revision = url_and_revision
    return {"url": url, "commit": revision}
