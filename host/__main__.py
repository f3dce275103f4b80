"""Command line of the host scripts (run from the project directory with `python -m host`).

    python -m host checkout --url URL --commit SHA --cache-dir DIR [--require PATH]...
    python -m host checkout --path DIR [--require PATH]...
    python -m host builder ensure --spec JSON --owner STACK
    python -m host builder remove --name NAME [--owner STACK]
    python -m host registry ensure --address 127.0.0.1:PORT --data-dir DIR [--image IMAGE]
    python -m host registry remove --address 127.0.0.1:PORT --data-dir DIR

Prints one JSON object (`host.results`) on stdout and exits 0; on failure prints one error on
stderr and exits 2, having changed nothing it could not finish.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from host import builder, checkout, registry
from host.process import HostError
from host.results import BuilderResult, CheckoutResult, RegistryRemoval, RegistryResult


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m host", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    source = commands.add_parser("checkout", help="ensure the upstream checkout")
    where = source.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="git URL to fetch the commit from")
    where.add_argument("--path", type=Path, help="an existing checkout to use as it is")
    source.add_argument("--commit", help="full commit SHA to check out (with --url)")
    source.add_argument("--cache-dir", type=Path, help="directory of checkouts keyed by commit")
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
            "--data-dir", required=True, type=Path, help="config, storage, pid and log files"
        )
    registry_actions.choices["ensure"].add_argument(
        "--image",
        default=registry.REGISTRY_IMAGE,
        help=f"image run under Docker when {registry.REGISTRY_BINARY} is absent",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    result: CheckoutResult | BuilderResult | RegistryResult | RegistryRemoval
    try:
        if args.command == "checkout":
            if args.url is not None and (args.commit is None or args.cache_dir is None):
                parser.error("checkout --url needs --commit and --cache-dir")
            result = (
                checkout.use_existing_checkout(args.path, args.require)
                if args.path is not None
                else checkout.ensure_git_checkout(
                    args.url, args.commit, args.cache_dir, args.require
                )
            )
        elif args.command == "registry":
            address = registry.LoopbackAddress.parse(args.address)
            result = (
                registry.ensure(address, args.data_dir, args.image)
                if args.action == "ensure"
                else registry.remove(address, args.data_dir)
            )
        elif args.action == "ensure":
            result = builder.ensure(builder.BuilderSpec.from_json(args.spec), args.owner)
        else:
            result = builder.remove(args.name, args.owner)
    except HostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
