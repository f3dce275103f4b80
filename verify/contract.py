"""What the Pulumi program runs of ``python -m verify`` and what it reads back: the tool's contract.

One request type per command line the program runs (the image check, ``published``,
``binauthz``, ``attest-index``): ``argv()`` renders the arguments after ``python -m verify``,
``from_argv`` parses them back through the parser the CLI itself uses (built here), so the two
cannot drift. One result type per JSON document the tool prints (``to_json``) and the program
reads (``from_json``). A new flag is added once: a field of the request, its argument in the parser
and its place in ``argv()`` (tests/test_tool_contracts.py round-trips every request).

Cheap to import (argparse and the probe syntax only): the program and its test mocks import it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cli_contract import ParserClass, StrictParser, built, expect, option, repeated
from verify.probe import PROBE_FORMS

DEFAULT_TIMEOUT_SECONDS = 900.0
"""Default of ``--timeout``: the whole run, every reference and layer included."""
DEFAULT_RUN_TIMEOUT = 180.0
"""Default of ``--run-timeout``: seconds each container has to pass its probe."""
DEFAULT_SBOM_FORMAT = "spdx"
"""Default of ``--sbom-format``: SPDX 2.3 JSON."""


def _attached(flag: str, values: Sequence[str]) -> list[str]:
    """``--flag=value`` per value: a value starting with ``-`` stays a value."""
    return [f"{flag}={value}" for value in values]


def _seconds(value: float) -> str:
    """``600`` for 600.0, ``1.5`` for 1.5: what a person (and the program) writes."""
    return f"{value:g}"


def check_parser(parser_class: ParserClass = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser of ``python -m verify REF...`` (the image check)."""
    parser = parser_class(
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
        "--sbom",
        metavar="DIR",
        help="with --deep: write one SBOM per platform into DIR (linux-amd64.spdx.json, ...)",
    )
    parser.add_argument(
        "--sbom-format",
        choices=("spdx", "cyclonedx"),
        default=DEFAULT_SBOM_FORMAT,
        help="SPDX 2.3 JSON (default) or CycloneDX 1.6 JSON",
    )
    parser.add_argument(
        "--attest",
        action="store_true",
        help="with --deep, after every check passed: push signed SBOM and verification "
        "attestations (DSSE, in-toto) as OCI referrers of the digests",
    )
    parser.add_argument(
        "--key", metavar="PEM", help="ECDSA P-256 private key (PEM) that signs with --attest"
    )
    parser.add_argument(
        "--kms",
        metavar="KEY_VERSION",
        help="sign with Cloud KMS: projects/P/locations/L/keyRings/R/cryptoKeys/K/"
        "cryptoKeyVersions/N (EC_SIGN_P256_SHA256; Application Default Credentials)",
    )
    parser.add_argument(
        "--create-key",
        action="store_true",
        help="create the --key file (and PEM.pub) if it does not exist yet",
    )
    parser.add_argument(
        "--gcp",
        action="store_true",
        help="authenticate with Google Application Default Credentials (Artifact Registry)",
    )
    _add_run_arguments(parser)
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
        metavar="SIZE",
        help="uncompressed bytes read from one layer at most: a number, optionally with KiB, "
        "MiB, GiB or TiB (default 64GiB)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        help=f"seconds the whole run may take (default {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    return parser


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run``, ``--probe``, ``--env``, ``--skip-run``, ``--run-timeout`` and ``--jobs``."""
    group = parser.add_argument_group("runtime proof (--run)")
    group.add_argument(
        "--run",
        action="store_true",
        help="after the static checks pass, start each platform's image (by digest, with the "
        "local Docker Engine; the foreign platform through QEMU) and apply --probe",
    )
    group.add_argument("--probe", metavar="PROBE", help=f"with --run: {PROBE_FORMS}")
    group.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --run: environment of the container (repeatable)",
    )
    group.add_argument(
        "--skip-run",
        action="append",
        default=[],
        metavar="OS/ARCH",
        help="with --run: a verified platform not to start (repeatable)",
    )
    group.add_argument(
        "--run-timeout",
        type=float,
        metavar="SECONDS",
        help=f"with --run: seconds each container has to pass its probe (default "
        f"{DEFAULT_RUN_TIMEOUT:g})",
    )
    group.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="with --run: platforms started at once (default: the number of CPUs)",
    )


@dataclass(frozen=True)
class CheckRequest:
    """``python -m verify [options] -- REF...``: verify images (and with ``--run``, start them).

    Only the syntax is checked here; the CLI checks the values (platforms, globs, sizes, probe)
    before its first request."""

    TOOL: ClassVar[str] = "verify"

    refs: tuple[str, ...]
    """The images, after ``--``."""
    platforms: tuple[str, ...] = ()
    """``--platform``; empty: the tool's default (linux/amd64 and linux/arm64)."""
    deep: bool = False
    """``--deep``: check the ELF machine of every file in every layer."""
    json: bool = False
    """``--json``: print :class:`ImageReport` on stdout."""
    allow: tuple[str, ...] = ()
    """``--allow`` globs."""
    sbom: str | None = None
    """``--sbom DIR``."""
    sbom_format: str = DEFAULT_SBOM_FORMAT
    """``--sbom-format``: ``spdx`` or ``cyclonedx``."""
    attest: bool = False
    """``--attest``: sign and push attestations after a pass."""
    key: str | None = None
    """``--key PEM``: a path, never key material."""
    kms: str | None = None
    """``--kms KEY_VERSION``."""
    create_key: bool = False
    """``--create-key``: create the ``--key`` file when it does not exist."""
    gcp: bool = False
    """``--gcp``: authenticate with Application Default Credentials."""
    run: bool = False
    """``--run``: start each verified platform's image and probe it."""
    probe: str | None = None
    """``--probe``."""
    env: tuple[str, ...] = ()
    """``--env NAME=VALUE`` values."""
    skip_run: tuple[str, ...] = ()
    """``--skip-run`` platforms."""
    run_timeout: float | None = None
    """``--run-timeout`` seconds; None: the tool's default."""
    jobs: int | None = None
    """``--jobs``; None: the number of CPUs."""
    trust_realms: tuple[str, ...] = ()
    """``--trust-realm`` hosts."""
    max_layer_bytes: str | None = None
    """``--max-layer-bytes SIZE``; None: the tool's default (64GiB)."""
    timeout: str | None = None
    """``--timeout SECONDS``; None: the tool's default."""

    def argv(self) -> list[str]:
        """The flags, then ``--`` and the references: after ``--`` a reference is never read as
        an option, whatever it starts with."""
        argv = ["--json"] if self.json else []
        argv += ["--deep"] if self.deep else []
        argv += repeated("--allow", self.allow) + repeated("--platform", self.platforms)
        argv += ["--gcp"] if self.gcp else []
        argv += ["--run"] if self.run else []
        argv += option("--probe", self.probe)
        argv += repeated("--env", self.env)
        argv += [] if self.run_timeout is None else ["--run-timeout", _seconds(self.run_timeout)]
        argv += repeated("--skip-run", self.skip_run)
        argv += [] if self.jobs is None else ["--jobs", str(self.jobs)]
        argv += ["--attest"] if self.attest else []
        argv += option("--key", self.key)
        argv += option("--kms", self.kms)
        argv += ["--create-key"] if self.create_key else []
        argv += option("--sbom", self.sbom)
        if self.sbom_format != DEFAULT_SBOM_FORMAT:
            argv += option("--sbom-format", self.sbom_format)
        argv += repeated("--trust-realm", self.trust_realms)
        argv += option("--max-layer-bytes", self.max_layer_bytes)
        argv += option("--timeout", self.timeout)
        return [*argv, "--", *self.refs]

    @staticmethod
    def from_namespace(arguments: argparse.Namespace) -> CheckRequest:
        """The request of arguments :func:`check_parser` parsed."""
        return CheckRequest(
            refs=tuple(arguments.refs),
            platforms=tuple(arguments.platform or ()),
            deep=arguments.deep,
            json=arguments.json,
            allow=tuple(arguments.allow),
            sbom=arguments.sbom,
            sbom_format=arguments.sbom_format,
            attest=arguments.attest,
            key=arguments.key,
            kms=arguments.kms,
            create_key=arguments.create_key,
            gcp=arguments.gcp,
            run=arguments.run,
            probe=arguments.probe,
            env=tuple(arguments.env),
            skip_run=tuple(arguments.skip_run),
            run_timeout=arguments.run_timeout,
            jobs=arguments.jobs,
            trust_realms=tuple(arguments.trust_realm),
            max_layer_bytes=arguments.max_layer_bytes,
            timeout=arguments.timeout,
        )

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> CheckRequest:
        return expect(cls, parse_request(argv))


def published_parser(
    parser_class: ParserClass = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The parser of ``python -m verify published``."""
    parser = parser_class(
        prog="python -m verify published",
        description="Check that an exported tag still points at the exported digest, that the "
        "digest exists and holds the verified manifests.",
    )
    parser.add_argument(
        "ref",
        metavar="REF",
        help="HOST/REPO:TAG@DIGEST, HOST/REPO@DIGEST or HOST/REPO:TAG (with --immutable)",
    )
    parser.add_argument(
        "--manifest",
        action="append",
        default=[],
        metavar="PLATFORM=DIGEST",
        help="a verified platform manifest the digest must hold (repeatable)",
    )
    parser.add_argument(
        "--immutable",
        action="store_true",
        help="new images are built for this tag in an immutable repository: it must not exist",
    )
    parser.add_argument("--index-urn", help="URN of the Index that publishes the tag")
    parser.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="URN",
        help="a resource to replace when the digest is lost (repeatable)",
    )
    parser.add_argument(
        "--gcp", action="store_true", help="authenticate with Application Default Credentials"
    )
    return parser


@dataclass(frozen=True)
class PublishedRequest:
    """``python -m verify published REF [--immutable] [--manifest=P=D]... [--index-urn=U]
    [--replace=U]... [--gcp]``: is the registry still what the stack exported?"""

    TOOL: ClassVar[str] = "verify"

    ref: str
    manifests: tuple[str, ...] = ()
    """``PLATFORM=DIGEST`` values, as given."""
    immutable: bool = False
    index_urn: str | None = None
    replace: tuple[str, ...] = ()
    """URNs of the resources to replace when the digest is lost."""
    gcp: bool = False

    def argv(self) -> list[str]:
        argv = ["published", self.ref, *(["--immutable"] if self.immutable else [])]
        argv += _attached("--manifest", self.manifests)
        argv += [] if self.index_urn is None else [f"--index-urn={self.index_urn}"]
        return argv + _attached("--replace", self.replace) + (["--gcp"] if self.gcp else [])

    @staticmethod
    def from_namespace(arguments: argparse.Namespace) -> PublishedRequest:
        return PublishedRequest(
            ref=arguments.ref,
            manifests=tuple(arguments.manifest),
            immutable=arguments.immutable,
            index_urn=arguments.index_urn,
            replace=tuple(arguments.replace),
            gcp=arguments.gcp,
        )

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> PublishedRequest:
        return expect(cls, parse_request(argv))


def binauthz_parser(parser_class: ParserClass = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser of ``python -m verify binauthz``."""
    parser = parser_class(
        prog="python -m verify binauthz",
        description="Create (once) the Binary Authorization attestation of a verified digest.",
    )
    parser.add_argument("ref", metavar="REF@DIGEST", help="host/repository@sha256:<hex>")
    parser.add_argument("--note", required=True, help="projects/P/notes/N (the attestor's note)")
    parser.add_argument("--kms", required=True, metavar="KEY_VERSION", help="the attestor's key")
    _add_platform_digests(parser)
    parser.add_argument("--json", action="store_true", help="print {occurrence, created}")
    parser.add_argument("--gcp", action="store_true", help="read the registry with ADC")
    return parser


@dataclass(frozen=True)
class BinauthzRequest:
    """``python -m verify binauthz REF@DIGEST --note N --kms V --platform-digest P=D...
    [--json] [--gcp]``: create (once) the Binary Authorization occurrence of a digest."""

    TOOL: ClassVar[str] = "verify"

    ref: str
    note: str
    kms: str
    platform_digests: tuple[str, ...] = ()
    """``PLATFORM=DIGEST`` values, as given."""
    json: bool = False
    gcp: bool = False

    def argv(self) -> list[str]:
        argv = ["binauthz", self.ref, *option("--note", self.note), *option("--kms", self.kms)]
        argv += repeated("--platform-digest", self.platform_digests)
        return argv + (["--json"] if self.json else []) + (["--gcp"] if self.gcp else [])

    @staticmethod
    def from_namespace(arguments: argparse.Namespace) -> BinauthzRequest:
        return BinauthzRequest(
            ref=arguments.ref,
            note=arguments.note,
            kms=arguments.kms,
            platform_digests=tuple(arguments.platform_digest),
            json=arguments.json,
            gcp=arguments.gcp,
        )

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> BinauthzRequest:
        return expect(cls, parse_request(argv))


def _add_platform_digests(parser: argparse.ArgumentParser) -> None:
    """``--platform-digest PLATFORM=DIGEST``, repeatable: the manifests a verification proved."""
    parser.add_argument(
        "--platform-digest",
        action="append",
        default=[],
        metavar="PLATFORM=DIGEST",
        help="a verified manifest; the index must list exactly these (repeatable)",
    )


def attest_index_parser(
    parser_class: ParserClass = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The parser of ``python -m verify attest-index``."""
    parser = parser_class(
        prog="python -m verify attest-index",
        description="Sign the verification attestation of an index joined from verified "
        "single-platform candidates.",
    )
    parser.add_argument("ref", metavar="REF@DIGEST", help="host/repository@sha256:<hex>")
    _add_platform_digests(parser)
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="DIGEST",
        help="a verified, attested candidate index the manifests come from (repeatable)",
    )
    parser.add_argument("--key", metavar="PEM", help="ECDSA P-256 private key (PEM)")
    parser.add_argument("--kms", metavar="KEY_VERSION", help="or a Cloud KMS key version")
    parser.add_argument(
        "--json", action="store_true", help='print {"referrers": {"index": DIGEST}}'
    )
    parser.add_argument("--gcp", action="store_true", help="read the registry with ADC")
    return parser


@dataclass(frozen=True)
class AttestIndexRequest:
    """``python -m verify attest-index REF@DIGEST --platform-digest=P=D... --candidate=C...
    (--key PEM | --kms V) [--gcp] [--json]``: the verification attestation of an index joined
    from verified single-platform candidates (strategy perPlatform)."""

    TOOL: ClassVar[str] = "verify"

    ref: str
    platform_digests: tuple[str, ...] = ()
    """``PLATFORM=DIGEST`` values, as given."""
    candidates: tuple[str, ...] = ()
    """Digests of the verified candidate indexes."""
    key: str | None = None
    """``--key PEM``: a path, never key material."""
    kms: str | None = None
    """``--kms KEY_VERSION``."""
    gcp: bool = False
    json: bool = False

    def argv(self) -> list[str]:
        argv = ["attest-index", self.ref, *_attached("--platform-digest", self.platform_digests)]
        argv += _attached("--candidate", self.candidates)
        argv += option("--key", self.key) + option("--kms", self.kms)
        return argv + (["--gcp"] if self.gcp else []) + (["--json"] if self.json else [])

    @staticmethod
    def from_namespace(arguments: argparse.Namespace) -> AttestIndexRequest:
        return AttestIndexRequest(
            ref=arguments.ref,
            platform_digests=tuple(arguments.platform_digest),
            candidates=tuple(arguments.candidate),
            key=arguments.key,
            kms=arguments.kms,
            gcp=arguments.gcp,
            json=arguments.json,
        )

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> AttestIndexRequest:
        return expect(cls, parse_request(argv))


VerifyRequest = CheckRequest | PublishedRequest | BinauthzRequest | AttestIndexRequest


def parse_request(argv: Sequence[str], parser_class: ParserClass = StrictParser) -> VerifyRequest:
    """The request of ``python -m verify`` arguments, dispatched on the first one as the CLI
    does; ``cli_contract.ArgvError`` (or the CLI's usage exit) for what the parser refuses."""
    if list(argv[:1]) == ["published"]:
        published = built(published_parser, parser_class).parse_args(argv[1:])
        return PublishedRequest.from_namespace(published)
    if list(argv[:1]) == ["binauthz"]:
        return BinauthzRequest.from_namespace(
            built(binauthz_parser, parser_class).parse_args(argv[1:])
        )
    if list(argv[:1]) == ["attest-index"]:
        return AttestIndexRequest.from_namespace(
            built(attest_index_parser, parser_class).parse_args(argv[1:])
        )
    return CheckRequest.from_namespace(built(check_parser, parser_class).parse_args(argv))


@dataclass(frozen=True)
class ElfSummary:
    """``--deep``: the ELF files of one platform."""

    checked: int
    mismatched: int
    mismatched_paths: tuple[str, ...]
    """The first of the mismatched files."""


@dataclass(frozen=True)
class RunSummary:
    """``--run``: how one platform's container did."""

    ok: bool
    probe: str
    seconds: float
    """Rounded to hundredths."""
    exit_code: int | None
    log_tail: tuple[str, ...]


@dataclass(frozen=True)
class PlatformReport:
    """One required platform of a verified image."""

    digest: str
    config_architecture: str
    elf: ElfSummary | None
    """None without ``--deep``."""
    run: RunSummary | None = None
    """None when this platform was not started."""


@dataclass(frozen=True)
class ImageReport:
    """The ``--json`` document of one reference (printed on exit 0 and 1): ``{ref, digest,
    mediaType, platforms: {P: {digest, configArchitecture, elf: null | {checked, mismatched,
    mismatchedPaths}, run?: {ok, probe, seconds, exitCode, logTail}}}, attestations,
    referrers?}``."""

    ref: str
    digest: str | None
    media_type: str | None
    platforms: Mapping[str, PlatformReport]
    attestations: int
    """Attestation manifests skipped in the index."""
    referrers: Mapping[str, str] | None = None
    """``--attest``: ``{"index" | platform: referrer digest}``."""

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ref": self.ref,
            "digest": self.digest,
            "mediaType": self.media_type,
            "platforms": {
                name: _platform_dict(platform) for name, platform in self.platforms.items()
            },
            "attestations": self.attestations,
        }
        if self.referrers is not None:
            document["referrers"] = dict(self.referrers)
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_dict(document: Mapping[str, Any]) -> ImageReport:
        referrers = document.get("referrers")
        return ImageReport(
            ref=document["ref"],
            digest=document["digest"],
            media_type=document["mediaType"],
            platforms={
                name: _platform_of(platform) for name, platform in document["platforms"].items()
            },
            attestations=document["attestations"],
            referrers=None if referrers is None else dict(referrers),
        )

    @staticmethod
    def from_json(text: str) -> ImageReport:
        return ImageReport.from_dict(json.loads(text))


@dataclass(frozen=True)
class AttestIndexResult:
    """The ``--json`` document of ``verify attest-index``: ``{"referrers": {"index": DIGEST}}``,
    named as the verification's document names its referrers."""

    index: str
    """The digest of the verification attestation pushed for the joined index."""

    def to_json(self) -> str:
        return json.dumps({"referrers": {"index": self.index}})

    @staticmethod
    def from_json(text: str) -> AttestIndexResult:
        return AttestIndexResult(index=json.loads(text)["referrers"]["index"])


def run_dict(run: RunSummary) -> dict[str, Any]:
    """The ``run`` object of a platform in the ``--json`` document."""
    return {
        "ok": run.ok,
        "probe": run.probe,
        "seconds": run.seconds,
        "exitCode": run.exit_code,
        "logTail": list(run.log_tail),
    }


def _platform_dict(platform: PlatformReport) -> dict[str, Any]:
    elf = platform.elf
    document: dict[str, Any] = {
        "digest": platform.digest,
        "configArchitecture": platform.config_architecture,
        "elf": None
        if elf is None
        else {
            "checked": elf.checked,
            "mismatched": elf.mismatched,
            "mismatchedPaths": list(elf.mismatched_paths),
        },
    }
    if platform.run is not None:
        document["run"] = run_dict(platform.run)
    return document


def _platform_of(document: Mapping[str, Any]) -> PlatformReport:
    elf, run = document["elf"], document.get("run")
    return PlatformReport(
        digest=document["digest"],
        config_architecture=document["configArchitecture"],
        elf=None
        if elf is None
        else ElfSummary(elf["checked"], elf["mismatched"], tuple(elf["mismatchedPaths"])),
        run=None
        if run is None
        else RunSummary(
            ok=run["ok"],
            probe=run["probe"],
            seconds=run["seconds"],
            exit_code=run["exitCode"],
            log_tail=tuple(run["logTail"]),
        ),
    )


@dataclass(frozen=True)
class PublishedResult:
    """What ``verify published`` confirmed (printed on exit 0)."""

    ref: str
    digest: str | None
    """The exported digest; None for ``--immutable`` (nothing is built yet)."""

    def to_json(self) -> str:
        return json.dumps({"ref": self.ref, "digest": self.digest})

    @staticmethod
    def from_json(text: str) -> PublishedResult:
        document = json.loads(text)
        return PublishedResult(ref=document["ref"], digest=document["digest"])


@dataclass(frozen=True)
class BinauthzResult:
    """The occurrence ``verify binauthz --json`` created or found."""

    occurrence: str
    """``projects/P/occurrences/ID``."""
    created: bool
    """False when an occurrence for the digest already existed."""

    def to_json(self) -> str:
        return json.dumps({"occurrence": self.occurrence, "created": self.created})

    @staticmethod
    def from_json(text: str) -> BinauthzResult:
        document = json.loads(text)
        return BinauthzResult(occurrence=document["occurrence"], created=document["created"])
