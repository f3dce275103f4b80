"""What the `python -m host` requests of the Pulumi components are made of: the checkout
request, the builder spec and the stack as owner. The requests are `host.contract`'s, rendered
as Command text by `plan.tools.tool_command`."""

import json
from collections.abc import Iterable, Sequence

from host.contract import CheckoutRequest
from plan.naming import CHECKOUT_CACHE_DIR
from plan.settings import BuilderSettings, GitSource, PathSource


def checkout_request(source: GitSource | PathSource, required: Iterable[str]) -> CheckoutRequest:
    """Ensure the checkout; prints a `host.contract.CheckoutResult`."""
    if isinstance(source, PathSource):
        return CheckoutRequest(path=source.path, require=tuple(required))
    return CheckoutRequest(
        url=source.url,
        commit=source.commit,
        cache_dir=CHECKOUT_CACHE_DIR,
        require=tuple(required),
    )


def builder_spec(builder: BuilderSettings, platforms: Sequence[str]) -> str:
    """The JSON spec `host builder ensure` takes. With native nodes, the first node declares the
    platforms no native node builds, so buildx sends each platform to the node meant for it."""
    native = {platform for node in builder.nodes for platform in node.platforms}
    first_platforms = [p for p in platforms if p not in native] if builder.nodes else []
    return json.dumps(
        {
            "name": builder.name,
            "driver": builder.driver,
            "driverOpts": dict(builder.driver_opts),
            "endpoint": builder.endpoint,
            "platforms": first_platforms,
            "nodes": [
                {"name": node.name, "platforms": list(node.platforms), "endpoint": node.endpoint}
                for node in builder.nodes
            ],
        },
        sort_keys=True,
    )


def stack_owner(organization: str | None, project: str, stack: str) -> str:
    """The name a stack is recorded under as a builder's owner: `organization/project/stack`."""
    return "/".join(part for part in (organization, project, stack) if part)
