"""What the Pulumi program runs of `python -m host` and what it reads back: the tool's contract.

One request type per command line (`checkout`, `builder ensure|remove`, `registry
ensure|remove`): `argv()` renders the arguments after `python -m host`, `from_argv` parses them
back through the parser the CLI itself uses (built here, `parser()`), so the two cannot drift.
One result type per JSON object a command prints (`to_json`) and the program reads
(`from_json`). The program reads only the deterministic fields (`path`, `commit`, `name`,
`address`); `action` says what the run did and differs between runs, so it must never reach a
resource input.

Cheap to import (argparse and json only): the program and its test mocks import it.
"""

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

from cli_contract import ParserClass, StrictParser, built, expect, option, repeated

REGISTRY_BINARY = "docker-registry"
"""Debian's build of CNCF distribution (package `docker-registry`)."""
REGISTRY_IMAGE = "registry:2"
"""The fallback when the binary is absent; serves on :5000, stores in /var/lib/registry."""


def parser(parser_class: ParserClass = StrictParser) -> argparse.ArgumentParser:
    """The parser of `python -m host` (the CLI passes argparse's own class)."""
    parser = parser_class(
        prog="python -m host",
        description="Command line of the host scripts (run from the project directory with "
        "`python -m host`).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    source = commands.add_parser("checkout", help="ensure the upstream checkout")
    where = source.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="git URL to fetch the commit from")
    where.add_argument("--path", help="an existing checkout to use as it is")
    source.add_argument("--commit", help="full commit SHA to check out (with --url)")
    source.add_argument("--cache-dir", help="directory of checkouts keyed by commit")
    source.add_argument(
        "--require", action="append", default=[], help="a file the checkout must contain"
    )

    buildx = commands.add_parser("builder", help="ensure or remove the buildx builder")
    actions = buildx.add_subparsers(dest="action", required=True)
    ensure_builder = actions.add_parser("ensure", help="create or reconcile the builder")
    ensure_builder.add_argument("--spec", required=True, help="builder spec as JSON")
    ensure_builder.add_argument(
        "--owner", required=True, help="the stack ensuring it (organization/project/stack)"
    )
    remove_builder = actions.add_parser("remove", help="remove the builder")
    remove_builder.add_argument("--name", required=True, help="builder name")
    remove_builder.add_argument(
        "--owner", help="the stack removing it; without it, an owned builder is kept"
    )

    local_registry = commands.add_parser("registry", help="ensure or remove a loopback registry")
    registry_actions = local_registry.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("ensure", "reuse the registry at the address, or start one"),
        ("remove", "stop the registry ensure started for the data directory"),
    ):
        registry_action = registry_actions.add_parser(action, help=help_text)
        registry_action.add_argument(
            "--address", required=True, help="loopback host:port, e.g. 127.0.0.1:5000"
        )
        registry_action.add_argument(
            "--data-dir", required=True, help="config, storage, pid and log files"
        )
    registry_actions.choices["ensure"].add_argument(
        "--image",
        default=REGISTRY_IMAGE,
        help=f"image run under Docker when {REGISTRY_BINARY} is absent",
    )
    return parser


@dataclass(frozen=True)
class CheckoutRequest:
    """`checkout --url URL --commit SHA --cache-dir DIR [--require PATH]...` or
    `checkout --path DIR [--require PATH]...`; prints a `CheckoutResult`."""

    TOOL: ClassVar[str] = "host"

    path: str | None = None
    """An existing checkout, used as it is."""
    url: str | None = None
    """Git URL to fetch `commit` from (with `commit` and `cache_dir`)."""
    commit: str | None = None
    cache_dir: str | None = None
    """Directory of checkouts keyed by commit."""
    require: tuple[str, ...] = ()
    """Files the checkout must contain."""

    def argv(self) -> list[str]:
        where = option("--path", self.path) + option("--url", self.url)
        where += option("--commit", self.commit) + option("--cache-dir", self.cache_dir)
        return ["checkout", *where, *repeated("--require", self.require)]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "CheckoutRequest":
        return expect(cls, parse_request(argv))


@dataclass(frozen=True)
class BuilderEnsureRequest:
    """`builder ensure --owner STACK --spec JSON`: create the builder or reconcile it with the
    spec, unless another stack owns it; prints a `BuilderResult`."""

    TOOL: ClassVar[str] = "host"

    spec: str
    """The builder spec as JSON (`plan.host_commands.builder_spec`)."""
    owner: str
    """`organization/project/stack` ensuring it."""

    def argv(self) -> list[str]:
        return ["builder", "ensure", *option("--owner", self.owner), *option("--spec", self.spec)]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "BuilderEnsureRequest":
        return expect(cls, parse_request(argv))


@dataclass(frozen=True)
class BuilderRemoveRequest:
    """`builder remove [--owner STACK] --name NAME`: remove the builder unless another stack
    owns it; prints a `BuilderResult`."""

    TOOL: ClassVar[str] = "host"

    name: str
    owner: str | None = None
    """The stack removing it; without it, an owned builder is kept."""

    def argv(self) -> list[str]:
        return ["builder", "remove", *option("--owner", self.owner), *option("--name", self.name)]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "BuilderRemoveRequest":
        return expect(cls, parse_request(argv))


@dataclass(frozen=True)
class RegistryEnsureRequest:
    """`registry ensure --address HOST:PORT --data-dir DIR [--image IMAGE]`: reuse the registry
    at the address or start one; prints a `RegistryResult`."""

    TOOL: ClassVar[str] = "host"

    address: str
    """Loopback `host:port`."""
    data_dir: str
    """Config, storage, pid and log files."""
    image: str = REGISTRY_IMAGE
    """Run under Docker when the registry binary is absent."""

    def argv(self) -> list[str]:
        where = option("--address", self.address) + option("--data-dir", self.data_dir)
        image = [] if self.image == REGISTRY_IMAGE else option("--image", self.image)
        return ["registry", "ensure", *where, *image]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "RegistryEnsureRequest":
        return expect(cls, parse_request(argv))


@dataclass(frozen=True)
class RegistryRemoveRequest:
    """`registry remove --address HOST:PORT --data-dir DIR`: stop what the ensure started for
    the data directory; prints a `RegistryRemoval`."""

    TOOL: ClassVar[str] = "host"

    address: str
    data_dir: str

    def argv(self) -> list[str]:
        where = option("--address", self.address) + option("--data-dir", self.data_dir)
        return ["registry", "remove", *where]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "RegistryRemoveRequest":
        return expect(cls, parse_request(argv))


HostRequest = (
    CheckoutRequest
    | BuilderEnsureRequest
    | BuilderRemoveRequest
    | RegistryEnsureRequest
    | RegistryRemoveRequest
)


def parse_request(argv: Sequence[str], parser_class: ParserClass = StrictParser) -> HostRequest:
    """The request of `python -m host` arguments; `cli_contract.ArgvError` (or, with argparse's
    own class, the CLI's usage exit) for what the parser refuses."""
    arguments = built(parser, parser_class)
    parsed = arguments.parse_args(argv)
    if parsed.command == "checkout":
        if parsed.url is not None and (parsed.commit is None or parsed.cache_dir is None):
            arguments.error("checkout --url needs --commit and --cache-dir")
        return CheckoutRequest(
            parsed.path, parsed.url, parsed.commit, parsed.cache_dir, tuple(parsed.require)
        )
    if parsed.command == "registry":
        if parsed.action == "ensure":
            return RegistryEnsureRequest(parsed.address, parsed.data_dir, parsed.image)
        return RegistryRemoveRequest(parsed.address, parsed.data_dir)
    if parsed.action == "ensure":
        return BuilderEnsureRequest(parsed.spec, parsed.owner)
    return BuilderRemoveRequest(parsed.name, parsed.owner)


@dataclass(frozen=True)
class CheckoutResult:
    """An upstream checkout that is ready to build from."""

    path: str
    """Checkout directory as given (relative paths stay relative to the project directory)."""
    commit: str | None
    """HEAD commit of the checkout; None for a given path that is not a git work tree."""
    url: str | None
    """Where it was fetched from; None for a given path."""
    action: str
    """`cloned` (fetched now) or `reused` (already present at the commit)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "CheckoutResult":
        return CheckoutResult(**json.loads(text))


@dataclass(frozen=True)
class BuilderResult:
    """A buildx builder in the state its spec asks for, or removed."""

    name: str
    """Builder name."""
    action: str
    """`created`, `reused`, `reconciled` (re-created with the new spec), `removed`, `absent`, or
    `kept` (a remove without an owner left a builder that a stack owns)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "BuilderResult":
        return BuilderResult(**json.loads(text))


@dataclass(frozen=True)
class RegistryResult:
    """A registry serving at a loopback address."""

    address: str
    """`host:port` it serves on; the only field the program reads."""
    pid: int | None
    """The `docker-registry` process this data directory's ensure started, if it still runs."""
    container: str | None
    """The container this data directory's ensure started (fallback without the binary)."""
    started: bool
    """True when this run started it, False when a registry already answered there."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "RegistryResult":
        return RegistryResult(**json.loads(text))


@dataclass(frozen=True)
class RegistryRemoval:
    """What `registry remove` stopped; stored images stay in the data directory."""

    address: str
    pid: int | None
    """The process stopped, or None."""
    container: str | None
    """The container removed, or None."""
    stopped: bool
    """False when nothing this data directory's ensure started was running (a no-op)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "RegistryRemoval":
        return RegistryRemoval(**json.loads(text))
