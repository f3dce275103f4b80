"""The command lines the Pulumi components hand to `pulumi_command` to run `python -m host`.

The interpreter is the one running the program (`sys.executable`; `python` on PATH may be another
one). Inside the project it is written relative to the project directory, where Pulumi runs
programs and commands, so a Command's stored text is the same on every machine that uses the
project's virtualenv and a new CI runner does not replace it.
"""

import json
import os
import shlex
from collections.abc import Iterable, Sequence

from plan.naming import CHECKOUT_CACHE_DIR
from plan.settings import BuilderSettings, GitSource, PathSource


def interpreter(executable: str, project_dir: str) -> str:
    """`executable` relative to `project_dir` when it lies inside it, else as it is."""
    relative = os.path.relpath(executable, project_dir)
    return executable if relative.startswith("..") else relative


def checkout_command(python: str, source: GitSource | PathSource, required: Iterable[str]) -> str:
    """Ensure the checkout; prints a `host.contract.CheckoutResult`."""
    where = (
        ["--path", source.path]
        if isinstance(source, PathSource)
        else ["--url", source.url, "--commit", source.commit, "--cache-dir", CHECKOUT_CACHE_DIR]
    )
    requirements = [argument for path in required for argument in ("--require", path)]
    return shlex.join([python, "-m", "host", "checkout", *where, *requirements])


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


def builder_ensure_command(python: str, spec: str, owner: str) -> str:
    """Create the builder or reconcile it with `spec`, unless another stack than `owner` owns
    it; prints a `host.contract.BuilderResult`."""
    return shlex.join([python, "-m", "host", "builder", "ensure", "--owner", owner, "--spec", spec])


def builder_remove_command(python: str, name: str, owner: str) -> str:
    """Remove the builder unless another stack than `owner` owns it; prints a
    `host.contract.BuilderResult`."""
    return shlex.join([python, "-m", "host", "builder", "remove", "--owner", owner, "--name", name])
