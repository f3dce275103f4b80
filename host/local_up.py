"""Helpers `scripts/local-up` runs (standard library only, no Pulumi imports).

    python3 -m host.local_up pulumi --version-file .pulumi-version --requirements requirements.txt
        --tools-dir .tools
        JSON {"path", "version", "action"} of the Pulumi CLI to run (host.pulumi_cli).
    python -m host.local_up progress --event-log FILE --done-file DONE
        One line per step of `pulumi up --event-log FILE` on stderr, until DONE exists
        (host.progress).
    python -m host.local_up table < images.json
        The proof table from `pulumi stack output images --json` (host.proof_table).

Exit 0, or exit 2 with one `error: ...` line on stderr.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from host import progress, proof_table, pulumi_cli
from host.process import HostError

PREFIX = "scripts/local-up: "


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m host.local_up", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cli = commands.add_parser("pulumi", help="find or install the Pulumi CLI")
    cli.add_argument("--version-file", type=Path, required=True, help="holds the pinned version")
    cli.add_argument(
        "--requirements", type=Path, required=True, help="its `pulumi>=` floor is the minimum"
    )
    cli.add_argument("--tools-dir", type=Path, required=True, help="installs into DIR/pulumi")
    follow = commands.add_parser("progress", help="print one line per step of `pulumi up`")
    follow.add_argument("--event-log", type=Path, required=True, help="the --event-log file")
    follow.add_argument(
        "--done-file", type=Path, required=True, help="created once the Pulumi command exited"
    )
    commands.add_parser("table", help="print the proof table from the images output on stdin")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "pulumi":
            result = pulumi_cli.ensure(
                args.version_file, args.requirements, args.tools_dir, dict(os.environ)
            )
            print(json.dumps(asdict(result), sort_keys=True))
        elif args.command == "progress":
            progress.follow(args.event_log, args.done_file, sys.stderr, PREFIX)
        else:
            print("\n".join(proof_table.render(sys.stdin.read())))
    except HostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
