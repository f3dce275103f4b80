"""Command line: ``python -m verify REF... [--platform P]... [--deep] [--json] [--allow GLOB]...
[--gcp] [--run --probe PROBE [--env NAME=VALUE]... [--run-timeout S] [--jobs N]]``.

Every argument is validated before the first request. Exit codes: 0 every reference verified;
1 verification failed (missing platform, wrong architecture, mislabelled binaries); 2 usage,
auth, not-found or registry errors (2 wins over 1 when several references are given); with
``--run`` also a platform whose container failed its probe (1), or no Docker Engine or no
emulation for a platform (2, before any request). See :mod:`verify.run`.
With ``--json``, stdout carries the document of :mod:`verify.report` on exit 0 and 1 (an array
of them when several references are given) and nothing on exit 2.

``python -m verify gc REPOSITORY --older-than DAYS [--dry-run | --delete]`` deletes the versions
of an Artifact Registry repository that no tag reaches (:mod:`verify.gc`);
``python -m verify published REF ...`` checks that the registry is still what a stack exported
(:mod:`verify.published`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType

from verify import gc, published, run
from verify.auth import AuthError, CredentialResolver, environment_credentials
from verify.checks import EXIT_ERROR, EXIT_FAILED, ImageResult, Options, Verifier
from verify.elf import PLATFORM_MACHINES
from verify.platforms import DEFAULT_PLATFORMS, Platform, PlatformError, parse_platform
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import RegistryClient, RetryPolicy
from verify.report import failure_lines, image_json, summary_line

LAYER_WORKERS = min(8, 2 * (os.cpu_count() or 1))
"""Layers scanned at once: twice the cores, so downloads overlap decompression."""


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
    run.add_arguments(parser)
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


def main(argv: Sequence[str]) -> int:
    """Run the CLI; returns the exit code."""
    if list(argv[:1]) == ["gc"]:
        return gc.main(argv[1:])
    if list(argv[:1]) == ["published"]:
        return published.main(argv[1:])
    arguments = _parser().parse_args(argv)
    credentials = CredentialResolver(use_gcp=arguments.gcp, environ=os.environ)
    try:
        refs = _parse_refs(arguments.refs)
        options = Options(
            platforms=_parse_platforms(arguments.platform, arguments.deep),
            deep=arguments.deep,
            allow=_check_globs(arguments.allow),
        )
        credentials.check_environment()
        run_options = run.options_from(arguments, options.platforms)
        if run_options is not None:
            run.check_prerequisites(run_options.started(options.platforms))
    except (UsageError, AuthError, run.RunUsageError, run.RunUnavailable) as error:
        print(f"verify: {error}", file=sys.stderr)
        return EXIT_ERROR
    client = RegistryClient(credentials, RetryPolicy(), connections=LAYER_WORKERS + 8)
    try:
        results = Verifier(client, options, LAYER_WORKERS).verify_all(refs)
    except Exception:
        # A bug must not exit with 1, which callers read as "the image failed verification".
        traceback.print_exc()
        print("verify: internal error (see the traceback above)", file=sys.stderr)
        return EXIT_ERROR
    exit_code = max(result.exit_code for result in results)
    runs: dict[run.RunKey, run.RunResult] = {}
    if run_options is not None:
        try:
            runs = _run_images(
                results, [ref for _, ref in refs], run_options, credentials, arguments.gcp
            )
        except AuthError as error:
            print(f"verify: --run: {error}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("verify: interrupted; the run's containers were removed", file=sys.stderr)
            return 130
        except Exception:
            traceback.print_exc()
            print("verify: internal error in --run (see the traceback above)", file=sys.stderr)
            return EXIT_ERROR
        if any(not outcome.ok for outcome in runs.values()):
            exit_code = max(exit_code, EXIT_FAILED)
    for index, result in enumerate(results):
        for line in failure_lines(result):
            print(line, file=sys.stderr)
        run_failed = False
        for (ran, platform), outcome in runs.items():
            if ran == index and not outcome.ok:
                run_failed = True
                for line in run.run_failure_lines(result.ref, platform, outcome):
                    print(line, file=sys.stderr)
        if not result.problems and not run_failed and not arguments.json:
            print(summary_line(result))
    if arguments.json and exit_code <= EXIT_FAILED:
        documents = [image_json(result) for result in results]
        for (index, platform), outcome in runs.items():
            documents[index]["platforms"][platform]["run"] = run.run_json(outcome)
        print(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    return exit_code


def _run_images(
    results: Sequence[ImageResult],
    refs: Sequence[Reference],
    options: run.RunOptions,
    credentials: CredentialResolver,
    gcp: bool,
) -> dict[run.RunKey, run.RunResult]:
    """``--run`` for the references that passed. A login is handed to ``docker pull`` only when
    it came from ``--gcp`` or REGISTRY_USERNAME/PASSWORD (Docker reads its own config itself).
    SIGTERM ends the run like Ctrl-C: every container it started is removed."""
    explicit = gcp or environment_credentials(os.environ) is not None
    logins = {
        ref.registry: credentials.for_registry(ref.registry) if explicit else None for ref in refs
    }

    def interrupt(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return run.run_verified(results, refs, options, logins, run.RunSession())
    finally:
        signal.signal(signal.SIGTERM, previous)
