"""Command line: ``python -m verify REF... [--platform P]... [--deep] [--json] [--allow GLOB]...
[--gcp] [--trust-realm HOST]... [--max-layer-bytes SIZE] [--timeout SECONDS]``.

Every argument is validated before the first request. Exit codes: 0 every reference verified;
1 verification failed (missing platform, wrong architecture, mislabelled binaries, a layer or
document that is not what its descriptor says); 2 usage, auth, not-found, registry errors and
timeouts (2 wins over 1 when several references are given).
With ``--json``, stdout carries the document of :mod:`verify.report` on exit 0 and 1 (an array
of them when several references are given) and nothing on exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Sequence

from verify.auth import AuthError, CredentialResolver
from verify.checks import EXIT_ERROR, EXIT_FAILED, ImageResult, Options, Verifier
from verify.elf import PLATFORM_MACHINES
from verify.platforms import DEFAULT_PLATFORMS, Platform, PlatformError, parse_platform
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import RegistryClient, RetryPolicy
from verify.report import failure_lines, image_json, printable, summary_line
from verify.tarscan import DEFAULT_MAX_LAYER_BYTES

LAYER_WORKERS = min(8, 2 * (os.cpu_count() or 1))
"""Layers scanned at once: twice the cores, so downloads overlap decompression."""

DEFAULT_TIMEOUT_SECONDS = 900.0
"""Default of ``--timeout``: the whole run, every reference and layer included."""
STOP_GRACE_SECONDS = 10.0
"""After ``--timeout``, how long the run may take to report its timed-out requests itself."""

_SIZE = re.compile(r"([0-9]{1,20})(KiB|MiB|GiB|TiB)?")
_SIZE_UNITS = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_REALM_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|[0-9a-f:.]+"
)


class UsageError(Exception):
    """An argument that is not valid (exit code 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify",
        description="Prove that images are really multi-arch: index platforms, image configs "
        "and (with --deep) the ELF machine of every binary in every layer.",
    )
    parser.add_argument(
        "refs",
        metavar="REF",
        nargs="+",
        help="host[:port]/repository:tag or host[:port]/repository@sha256:<hex>",
    )
    parser.add_argument(
        "--platform",
        action="append",
        metavar="OS/ARCH[/VARIANT]",
        help="required platform (repeatable; default linux/amd64 and linux/arm64)",
    )
    parser.add_argument("--deep", action="store_true", help="scan every layer's ELF headers")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="GLOB",
        help="absolute-path glob of files allowed to be ELF for another machine (repeatable)",
    )
    parser.add_argument(
        "--gcp",
        action="store_true",
        help="authenticate with Google Application Default Credentials (Artifact Registry)",
    )
    parser.add_argument(
        "--trust-realm",
        action="append",
        default=[],
        metavar="HOST",
        help="a token-service host (not the registry's host or domain) that may receive the "
        "registry credentials (repeatable)",
    )
    parser.add_argument(
        "--max-layer-bytes",
        default=str(DEFAULT_MAX_LAYER_BYTES),
        metavar="SIZE",
        help="uncompressed bytes read from one layer at most: a number, optionally with KiB, "
        "MiB, GiB or TiB (default 64GiB)",
    )
    parser.add_argument(
        "--timeout",
        default=str(DEFAULT_TIMEOUT_SECONDS),
        metavar="SECONDS",
        help=f"seconds the whole run may take (default {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    return parser


def _parse_platforms(values: Sequence[str] | None, deep: bool) -> tuple[Platform, ...]:
    platforms: list[Platform] = []
    for value in values or [str(platform) for platform in DEFAULT_PLATFORMS]:
        try:
            platform = parse_platform(value)
        except PlatformError as error:
            raise UsageError(f"--platform: {error}") from None
        if deep and platform.architecture not in PLATFORM_MACHINES:
            known = ", ".join(sorted(PLATFORM_MACHINES))
            raise UsageError(
                f"--platform {value}: --deep knows no ELF machine for architecture "
                f"{platform.architecture!r}; known: {known}"
            )
        if platform not in platforms:
            platforms.append(platform)
    return tuple(platforms)


def _parse_refs(values: Sequence[str]) -> list[tuple[str, Reference]]:
    refs = []
    for value in values:
        try:
            refs.append((value, parse_reference(value)))
        except ReferenceError as error:
            raise UsageError(str(error)) from None
    return refs


def _check_globs(globs: Sequence[str]) -> tuple[str, ...]:
    for glob in globs:
        if not glob.strip() or glob.strip() != glob:
            raise UsageError(f"--allow {glob!r}: a glob must be non-empty with no outer spaces")
    return tuple(globs)


def _parse_trusted_realms(values: Sequence[str]) -> frozenset[str]:
    hosts = set()
    for value in values:
        host = value.strip().lower().rstrip(".")
        if not _REALM_HOST.fullmatch(host):
            raise UsageError(
                f"--trust-realm {value!r}: expected a host name such as auth.example.com "
                "(no scheme, port or path)"
            )
        hosts.add(host)
    return frozenset(hosts)


def _parse_size(value: str) -> int:
    match = _SIZE.fullmatch(value.strip())
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2)] if match else 0
    if size < 1:
        raise UsageError(
            f"--max-layer-bytes {value!r}: expected a number of bytes greater than 0, "
            "optionally followed by KiB, MiB, GiB or TiB (e.g. 64GiB)"
        )
    return size


def _parse_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise UsageError(f"--timeout {value!r}: expected a number of seconds greater than 0")
    return seconds


def _run_within(
    verifier: Verifier,
    client: RegistryClient,
    refs: list[tuple[str, Reference]],
    seconds: float,
) -> list[ImageResult]:
    """Verify in a worker thread; past ``seconds`` (+ grace) name what was busy and exit 2.

    Requests past the run's deadline are cut by the client's watchdog and reported as problems
    like any other; the hard stop is for work no socket read interrupts (e.g. inflating a
    layer already downloaded), which no thread can be made to abandon.
    """
    outcome: list[list[ImageResult]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(verifier.verify_all(refs))
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=run, name="verify", daemon=True)
    worker.start()
    worker.join(seconds + STOP_GRACE_SECONDS)
    if worker.is_alive():
        busy = [watch.describe() for watch in client.watchdog.in_flight()] or ["layer scans"]
        for item in busy:
            print(
                printable(f"verify: --timeout {seconds:g} s reached; still busy with {item}"),
                file=sys.stderr,
            )
        sys.stderr.flush()
        sys.stdout.flush()
        # Threads cannot be stopped; the process can (exit code 2: an error, not a verdict).
        os._exit(EXIT_ERROR)
    if failure:
        raise failure[0]
    return outcome[0]


def main(argv: Sequence[str]) -> int:
    """Run the CLI; returns the exit code."""
    arguments = _parser().parse_args(argv)
    started = time.monotonic()
    credentials = CredentialResolver(use_gcp=arguments.gcp, environ=os.environ)
    try:
        refs = _parse_refs(arguments.refs)
        options = Options(
            platforms=_parse_platforms(arguments.platform, arguments.deep),
            deep=arguments.deep,
            allow=_check_globs(arguments.allow),
            max_layer_bytes=_parse_size(arguments.max_layer_bytes),
        )
        trusted = _parse_trusted_realms(arguments.trust_realm)
        seconds = _parse_seconds(arguments.timeout)
        credentials.check_environment()
    except (UsageError, AuthError) as error:
        print(printable(f"verify: {error}"), file=sys.stderr)
        return EXIT_ERROR
    client = RegistryClient(
        credentials,
        RetryPolicy(),
        connections=LAYER_WORKERS + 8,
        trusted_realms=trusted,
        run_deadline=started + seconds,
        run_limit=f"--timeout {seconds:g} s",
    )
    try:
        results = _run_within(Verifier(client, options, LAYER_WORKERS), client, refs, seconds)
    except Exception:
        # A bug must not exit with 1, which callers read as "the image failed verification".
        traceback.print_exc()
        print("verify: internal error (see the traceback above)", file=sys.stderr)
        return EXIT_ERROR
    exit_code = max(result.exit_code for result in results)
    for result in results:
        for line in failure_lines(result):
            print(line, file=sys.stderr)
        if not result.problems and not arguments.json:
            print(summary_line(result))
    if arguments.json and exit_code <= EXIT_FAILED:
        documents = [image_json(result) for result in results]
        print(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    return exit_code
