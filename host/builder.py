"""Ensure, reconcile or remove the buildx builder the Images name.

The builder's first node is `<name>0` (buildx's own naming); native nodes are appended with
`docker buildx create --append`, each declaring the platforms it builds so buildx sends those
platforms to it. The current configuration is read back from `docker buildx inspect`: a builder
that matches the spec is reused, one that differs is removed and created again, so the result is
the same whatever state the machine was in. Nothing is bootstrapped: BuildKit starts on the first
build, and creating a builder never pulls an image.

Ownership: several stacks may run on one machine. The stack that creates (or first ensures) a
builder is recorded with it, in buildx's own store (`<docker config>/buildx/boutique-owners/
<name>`), and `ensure` and `remove` refuse a builder another stack owns instead of reconciling or
removing it under that stack's builds. A `remove` without an owner (the delete command stored by
versions before ownership existed) removes only a builder nobody owns.
"""

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from host.contract import BuilderResult
from host.process import HostError, run, run_checked


@dataclass(frozen=True)
class NodeSpec:
    """One node as the builder should have it."""

    name: str
    endpoint: str | None
    """None for the first node when no endpoint is configured (the current Docker context)."""
    platforms: frozenset[str]
    """Platforms declared for the node (buildx marks them with `*`); empty lets buildx detect."""


@dataclass(frozen=True)
class BuilderSpec:
    """The builder as the stack configuration asks for it."""

    name: str
    driver: str
    driver_opts: Mapping[str, str]
    nodes: tuple[NodeSpec, ...]
    """The first node, then the appended native nodes."""

    @staticmethod
    def from_json(text: str) -> "BuilderSpec":
        """Read the spec the program passes: `{name, driver, driverOpts, endpoint, platforms,
        nodes: [{name, platforms, endpoint}]}`."""
        try:
            raw = json.loads(text)
            name = raw["name"]
            first = NodeSpec(f"{name}0", raw.get("endpoint"), frozenset(raw.get("platforms", [])))
            appended = tuple(
                NodeSpec(node["name"], node["endpoint"], frozenset(node["platforms"]))
                for node in raw.get("nodes", [])
            )
            return BuilderSpec(
                name, raw["driver"], dict(raw.get("driverOpts", {})), (first, *appended)
            )
        except (ValueError, KeyError, TypeError) as error:
            raise HostError(f"builder spec {text!r} is not valid: {error}") from error


@dataclass(frozen=True)
class InspectedNode:
    """One node as `docker buildx inspect` reports it."""

    name: str
    endpoint: str
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    declared_platforms: frozenset[str] = frozenset()
    """Platforms set by the user (starred); detected platforms of a running node are left out."""


@dataclass(frozen=True)
class InspectedBuilder:
    """A builder as `docker buildx inspect` reports it."""

    name: str
    driver: str
    nodes: tuple[InspectedNode, ...]


_DRIVER_OPT = re.compile(r'([^\s=]+)="((?:[^"\\]|\\.)*)"')


def parse_inspect(text: str) -> InspectedBuilder:
    """Parse the text `docker buildx inspect NAME` prints (buildx 0.10 to 0.13 format)."""
    header: dict[str, str] = {}
    nodes: list[dict[str, str]] = []
    in_nodes = False
    for line in text.splitlines():
        if line.strip() == "Nodes:":
            in_nodes = True
            continue
        key, separator, value = line.partition(":")
        if not separator:
            continue
        key, value = key.strip(), value.strip()
        if not in_nodes:
            header.setdefault(key, value)
        elif key == "Name":
            nodes.append({"Name": value})
        elif nodes:
            nodes[-1].setdefault(key, value)
    if "Name" not in header or "Driver" not in header:
        raise HostError(f"cannot read `docker buildx inspect` output: {text[:200]!r}")
    return InspectedBuilder(
        name=header["Name"],
        driver=header["Driver"],
        nodes=tuple(
            InspectedNode(
                name=node["Name"],
                endpoint=node.get("Endpoint", ""),
                driver_opts=dict(_DRIVER_OPT.findall(node.get("Driver Options", ""))),
                declared_platforms=frozenset(
                    platform.strip().rstrip("*")
                    for platform in node.get("Platforms", "").split(",")
                    if platform.strip().endswith("*")
                ),
            )
            for node in nodes
        ),
    )


def matches(current: InspectedBuilder, spec: BuilderSpec) -> bool:
    """Whether the existing builder already has the configuration the spec asks for."""
    if current.driver != spec.driver or len(current.nodes) != len(spec.nodes):
        return False
    return all(
        have.name == want.name
        and (want.endpoint is None or have.endpoint == want.endpoint)
        and dict(have.driver_opts) == dict(spec.driver_opts)
        and have.declared_platforms == want.platforms
        for have, want in zip(current.nodes, spec.nodes, strict=True)
    )


def inspect(name: str) -> InspectedBuilder | None:
    """The builder called `name`, or None when there is none."""
    result = run(["docker", "buildx", "inspect", "--", name])
    if result.returncode != 0:
        if "no builder" in result.stderr:
            return None
        raise HostError(f"docker buildx inspect {name} failed: {result.stderr.strip()}")
    return parse_inspect(result.stdout)


def owner_record(name: str) -> Path:
    """Where the stack owning builder `name` is recorded: beside buildx's own builder records
    (`$DOCKER_CONFIG/buildx`, else `~/.docker/buildx`)."""
    config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(config) / "buildx" / "boutique-owners" / name


def recorded_owner(name: str) -> str | None:
    """The stack recorded as owning builder `name`, or None when no stack is."""
    record = owner_record(name)
    try:
        owner = json.loads(record.read_text(encoding="utf-8"))["stack"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise HostError(f"owner record {record} of builder {name} is unreadable: {error}") from None
    if not isinstance(owner, str) or not owner:
        raise HostError(f"owner record {record} of builder {name} names no stack")
    return owner


def _record_owner(name: str, owner: str) -> None:
    record = owner_record(name)
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_name(f".{name}.partial")
    partial.write_text(json.dumps({"stack": owner}), encoding="utf-8")
    os.replace(partial, record)


def _refuse_foreign(name: str, recorded: str | None, owner: str, doing: str) -> None:
    if recorded is not None and recorded != owner:
        raise HostError(
            f"builder {name} belongs to stack {recorded} (recorded in {owner_record(name)}); "
            f"stack {owner} does not {doing} it. Give this stack a builder of its own "
            f"(`pulumi config set --path builder.name <name>`), or remove {name} from stack "
            f"{recorded}"
        )


def ensure(spec: BuilderSpec, owner: str) -> BuilderResult:
    """Create the builder, keep it if it matches, or re-create it when its configuration differs;
    refused when another stack owns it. The builder is recorded as `owner`'s."""
    current = inspect(spec.name)
    if current is not None:
        _refuse_foreign(spec.name, recorded_owner(spec.name), owner, "reconcile or reuse")
    if current is not None and matches(current, spec):
        _record_owner(spec.name, owner)
        return BuilderResult(name=spec.name, action="reused")
    if current is not None:
        run_checked(["docker", "buildx", "rm", spec.name], f"removing builder {spec.name}")
    _create(spec)
    _record_owner(spec.name, owner)
    return BuilderResult(name=spec.name, action="created" if current is None else "reconciled")


def remove(name: str, owner: str | None) -> BuilderResult:
    """Remove the builder (and its BuildKit container, if one was started) and its owner record;
    refused when another stack owns it. Without `owner`, an owned builder is kept."""
    recorded = recorded_owner(name)
    if inspect(name) is None:
        owner_record(name).unlink(missing_ok=True)
        return BuilderResult(name=name, action="absent")
    if owner is None and recorded is not None:
        return BuilderResult(name=name, action="kept")
    if owner is not None:
        _refuse_foreign(name, recorded, owner, "remove")
    run_checked(["docker", "buildx", "rm", "--", name], f"removing builder {name}")
    owner_record(name).unlink(missing_ok=True)
    return BuilderResult(name=name, action="removed")


def create_commands(spec: BuilderSpec) -> list[list[str]]:
    """The `docker buildx create` command lines that make the builder: the first node, then one
    `--append` per native node. Each endpoint follows `--`, so buildx never reads it as an
    option (an endpoint `--driver-opt=image=...` would choose the BuildKit image)."""
    first, *appended = spec.nodes
    options = [f"--driver-opt={key}={value}" for key, value in spec.driver_opts.items()]
    return [
        [
            *("docker", "buildx", "create", "--name", spec.name, "--driver", spec.driver),
            *options,
            *_platform_args(first),
            *(["--", first.endpoint] if first.endpoint else []),
        ],
        *(
            [
                *("docker", "buildx", "create", "--name", spec.name, "--append"),
                *("--node", node.name, *options, *_platform_args(node), "--", node.endpoint or ""),
            ]
            for node in appended
        ),
    ]


def _create(spec: BuilderSpec) -> None:
    try:
        for argv in create_commands(spec):
            run_checked(argv, f"{' '.join(argv[:3])} for builder {spec.name}")
    except HostError:
        # Leave no half-configured builder behind: the next run starts from nothing.
        run(["docker", "buildx", "rm", "--", spec.name])
        raise


def _platform_args(node: NodeSpec) -> list[str]:
    return ["--platform", ",".join(sorted(node.platforms))] if node.platforms else []
