"""Command line: ``python -m verify REF... [--platform P]... [--deep] [--json] [--allow GLOB]...
[--sbom DIR [--sbom-format spdx|cyclonedx]] [--gcp] [--trust-realm HOST]... [--max-layer-bytes SIZE]
[--timeout SECONDS] [--run --probe PROBE [--env NAME=VALUE]... [--run-timeout S] [--jobs N]]``.

The arguments are parsed into a :class:`verify.contract.CheckRequest` (the parser is the
contract's, so the program's command lines and the CLI cannot drift); every value is validated
before the first request. Exit codes: 0 every reference verified;
1 verification failed (missing platform, wrong architecture, mislabelled binaries, a layer or
document that is not what its descriptor says); 2 usage, auth, not-found, registry errors and
timeouts (2 wins over 1 when several references are given); with ``--run`` also a platform
whose container failed its probe (1), or no Docker Engine or no emulation for a platform (2,
before any request). See :mod:`verify.run`.
With ``--json``, stdout carries :class:`verify.contract.ImageReport` on exit 0 and 1 (an array
of them when several references are given) and nothing on exit 2.

``python -m verify gc REPOSITORY --older-than DAYS [--dry-run | --delete]`` deletes the versions
of an Artifact Registry repository that no tag reaches (:mod:`verify.gc`);
``python -m verify published REF ...`` checks that the registry is still what a stack exported
(:mod:`verify.published`); ``python -m verify attest-index`` attests an index joined from
verified candidates (:mod:`verify.attest.join`).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from verify import gc, published, run
from verify.auth import AuthError, CredentialResolver, environment_credentials
from verify.checks import EXIT_ERROR, EXIT_FAILED, EXIT_VERIFIED, ImageResult, Options, Verifier
from verify.contract import DEFAULT_TIMEOUT_SECONDS, CheckRequest, check_parser
from verify.digests import DigestMismatch
from verify.elf import PLATFORM_MACHINES
from verify.manifests import ManifestError
from verify.platforms import DEFAULT_PLATFORMS, Platform, PlatformError, parse_platform
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import RegistryClient, RegistryError, RetryPolicy
from verify.report import failure_lines, image_report, printable, summary_line
from verify.sbom.output import (
    SbomUsageError,
    SbomWriteError,
    check_directory,
    write_documents,
)
from verify.tarscan import DEFAULT_MAX_LAYER_BYTES

if TYPE_CHECKING:
    from verify.attest.attach import Attested, StartProof
    from verify.attest.signing import Signing

LAYER_WORKERS = min(8, 2 * (os.cpu_count() or 1))
"""Layers scanned at once: twice the cores, so downloads overlap decompression."""

STOP_GRACE_SECONDS = 10.0
"""After ``--timeout``, how long the run may take to report its timed-out requests itself."""

EXIT_INTERRUPTED = 130
"""Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it)."""

_SIZE = re.compile(r"([0-9]{1,20})(KiB|MiB|GiB|TiB)?")
_SIZE_UNITS = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_REALM_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|[0-9a-f:.]+"
)


class UsageError(Exception):
    """An argument that is not valid (exit code 2)."""


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


def _check_sbom(
    directory: str | None, deep: bool, refs: Sequence[tuple[str, Reference]]
) -> Path | None:
    if directory is None:
        return None
    if not deep:
        raise UsageError("--sbom needs --deep: the SBOM is read from the layers")
    if len(refs) != 1:
        raise UsageError(f"--sbom describes one image; {len(refs)} references were given")
    return check_directory(directory)


def _check_attest(request: CheckRequest, refs: Sequence[tuple[str, Reference]]) -> Signing | None:
    key = request.key
    if not request.attest:
        if key is not None or request.create_key or request.kms is not None:
            raise UsageError("--key, --create-key and --kms sign attestations: they need --attest")
        return None
    if not request.deep:
        raise UsageError("--attest needs --deep: the attestations carry the layers' SBOM")
    if len(refs) != 1:
        raise UsageError(f"--attest attests one image; {len(refs)} references were given")
    if (key is None) == (request.kms is None):
        raise UsageError("--attest needs exactly one of --key PEM and --kms KEY_VERSION")
    if request.create_key and key is None:
        raise UsageError("--create-key creates the --key file; KMS keys are made in KMS")
    from verify.attest import signing  # cryptography and google-auth load with --attest only

    try:
        if request.kms is not None:
            return signing.cloud_kms(request.kms)
        assert key is not None  # exactly one of --key and --kms, checked above
        return signing.local(key, request.create_key)
    except signing.SigningError as error:
        raise UsageError(str(error)) from None


def attest(
    client: RegistryClient,
    ref: Reference,
    result: ImageResult,
    options: Options,
    signer: Signing,
    start: StartProof | None = None,
) -> Attested:
    """Sign and push every statement of the passed verification."""
    from verify.attest.attach import attest as push_attestations

    return push_attestations(client, ref, result, options, signer.sign, signer.keyid, start)


def start_proof(
    options: run.RunOptions | None, runs: dict[run.RunKey, run.RunResult]
) -> StartProof | None:
    """What ``--run`` proved for the first reference (the one ``--attest`` attests)."""
    from verify.attest.attach import StartProof

    if options is None:
        return None
    passed = tuple(
        platform for (index, platform), outcome in runs.items() if index == 0 and outcome.ok
    )
    skipped = tuple(str(platform) for platform in options.skip)
    return StartProof(str(options.probe), passed, skipped)


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


def _or_default(value: str | None, default: float) -> str:
    """An option's text, or its default's as argparse would have given it."""
    return str(default) if value is None else value


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

    def work() -> None:
        try:
            outcome.append(verifier.verify_all(refs))
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=work, name="verify", daemon=True)
    worker.start()
    try:
        with _sigterm_interrupts():
            worker.join(seconds + STOP_GRACE_SECONDS)
    except KeyboardInterrupt:
        # The requests in flight would hold the process until their deadline: it ends now.
        print("verify: interrupted", file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
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
    if list(argv[:1]) == ["gc"]:
        return gc.main(argv[1:])
    if list(argv[:1]) == ["published"]:
        return published.main(argv[1:])
    if argv and argv[0] == "attestations":
        from verify.attest.check import main as attestations

        return attestations(argv[1:])
    if argv and argv[0] == "binauthz":
        from verify.attest.binauthz import main as binauthz

        return binauthz(argv[1:])
    if argv and argv[0] == "attest-index":
        from verify.attest.join import main as attest_index

        return attest_index(argv[1:])
    request = CheckRequest.from_namespace(check_parser().parse_args(argv))
    started = time.monotonic()
    credentials = CredentialResolver(use_gcp=request.gcp, environ=os.environ)
    try:
        refs = _parse_refs(request.refs)
        options = Options(
            platforms=_parse_platforms(request.platforms, request.deep),
            deep=request.deep,
            allow=_check_globs(request.allow),
            sbom=request.sbom is not None or request.attest,
            max_layer_bytes=_parse_size(
                _or_default(request.max_layer_bytes, DEFAULT_MAX_LAYER_BYTES)
            ),
        )
        trusted = _parse_trusted_realms(request.trust_realms)
        seconds = _parse_seconds(_or_default(request.timeout, DEFAULT_TIMEOUT_SECONDS))
        sbom_directory = _check_sbom(request.sbom, request.deep, refs)
        signing_key = _check_attest(request, refs)
        credentials.check_environment()
        run_options = run.options_from(request, options.platforms)
        if run_options is not None:
            run.check_prerequisites(run_options.started(options.platforms))
    except (UsageError, AuthError, SbomUsageError, run.RunUsageError, run.RunUnavailable) as error:
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
    runs: dict[run.RunKey, run.RunResult] = {}
    if run_options is not None:
        try:
            runs = _run_images(
                results, [ref for _, ref in refs], run_options, credentials, request.gcp
            )
        except AuthError as error:
            print(printable(f"verify: --run: {error}"), file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("verify: interrupted; the run's containers were removed", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception:
            traceback.print_exc()
            print("verify: internal error in --run (see the traceback above)", file=sys.stderr)
            return EXIT_ERROR
        if any(not outcome.ok for outcome in runs.values()):
            exit_code = max(exit_code, EXIT_FAILED)
    if sbom_directory is not None and exit_code <= EXIT_FAILED:
        try:
            written = write_documents(
                sbom_directory, refs[0][1], results[0], len(options.platforms), request.sbom_format
            )
        except SbomWriteError as error:
            # Not a verdict on the image (1): what was asked for could not be done.
            print(printable(f"verify: {error}"), file=sys.stderr)
            written, exit_code = [], EXIT_ERROR
        for path in written:
            print(f"verify: wrote {path}", file=sys.stderr)
    for index, result in enumerate(results):
        for line in failure_lines(result):
            print(line, file=sys.stderr)
        run_failed = False
        for (ran, platform), outcome in runs.items():
            if ran == index and not outcome.ok:
                run_failed = True
                for line in run.run_failure_lines(result.ref, platform, outcome):
                    print(line, file=sys.stderr)
        if not result.problems and not run_failed and not request.json:
            print(summary_line(result))
    referrers: dict[str, str] | None = None
    if signing_key is not None and exit_code == EXIT_VERIFIED:
        try:
            start = start_proof(run_options, runs)
            referrers = attest(
                client, refs[0][1], results[0], options, signing_key, start
            ).referrers
        except (RegistryError, AuthError, DigestMismatch, ManifestError) as error:
            print(printable(f"verify: {refs[0][0]}: attesting failed: {error}"), file=sys.stderr)
            return EXIT_ERROR
        for subject, digest in referrers.items():
            print(f"verify: attested {subject}: referrer {digest}", file=sys.stderr)
    if request.json and exit_code <= EXIT_FAILED:
        reports = [
            image_report(
                result,
                {key[1]: run.run_summary(outcome) for key, outcome in runs.items() if key[0] == i},
                referrers if i == 0 else None,
            )
            for i, result in enumerate(results)
        ]
        if len(reports) == 1:
            print(reports[0].to_json())
        else:
            print(json.dumps([report.to_dict() for report in reports], indent=2))
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

    with _sigterm_interrupts():
        return run.run_verified(results, refs, options, logins, run.RunSession())


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the block like Ctrl-C (a KeyboardInterrupt in the main thread)."""

    def interrupt(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
