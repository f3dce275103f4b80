"""The verification requests for one pushed digest (`verify.contract`), and how to read their
results; `plan.tools.tool_command` renders a request as a Command's text.

`python -m verify` fetches its own credentials (Application Default Credentials with `--gcp`,
otherwise `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` or Docker's config.json from the environment
of the process that runs Pulumi), so nothing here ever holds a token: a token in a Command's
inputs would change every run and re-run every verification.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, TypeVar

from plan.probes import service_probe
from plan.settings import PLATFORMS, VerifySettings
from verify.contract import (
    AttestIndexRequest,
    AttestIndexResult,
    CheckRequest,
    ImageReport,
    PublishedRequest,
    PublishedResult,
)

T = TypeVar("T")


@dataclass(frozen=True)
class RunPlan:
    """The runtime proof of one service (`verify --run`)."""

    probe: str
    """`--probe` value."""
    env: tuple[tuple[str, str], ...]
    """`--env` pairs, sorted by name."""
    skipped: Mapping[str, str]
    """Platforms not started, with the reason (which stays off the command line)."""
    timeout: int | None = None
    """`--run-timeout` seconds, or None for the tool's default."""


@dataclass(frozen=True)
class VerifyOptions:
    """What every verification of one service checks."""

    deep: bool
    """Check the ELF machine of every file (`--deep`)."""
    allow: tuple[str, ...]
    """Globs of paths allowed to be for another architecture (`--allow`)."""
    gcp: bool
    """Authenticate with Application Default Credentials (Artifact Registry)."""
    run: RunPlan | None = None
    """Start each platform's image and probe it; None when `verify.run` is false."""
    attest_key: str | None = None
    """Sign and push attestations after a pass (`--attest --key K --create-key`)."""
    attest_kms: str | None = None
    """Or sign them with this Cloud KMS key version (`--attest --kms V`)."""


def verify_options(
    settings: VerifySettings,
    service: str,
    gcp: bool,
    commit: str | None = None,
    attest_key: str | None = None,
    attest_kms: str | None = None,
) -> VerifyOptions:
    """The options of `service`'s verifications: its allowed paths only (reasons stay in
    config), and its probe at upstream `commit` with the config's overrides."""
    allowed = settings.allow.get(service, ())
    return VerifyOptions(
        deep=settings.deep,
        allow=tuple(entry.path for entry in allowed),
        gcp=gcp,
        run=_run_plan(settings, service, commit) if settings.run else None,
        attest_key=attest_key,
        attest_kms=attest_kms,
    )


def _run_plan(settings: VerifySettings, service: str, commit: str | None) -> RunPlan:
    table = service_probe(service, commit)
    override = settings.probes.get(service)
    probe = override.probe if override is not None and override.probe else table.probe
    env = {**dict(table.env), **(dict(override.env) if override is not None else {})}
    skipped = dict(settings.skip_run.get(service, {}))
    if probe is None:
        skipped = {platform: table.unprobed for platform in PLATFORMS} | skipped
    return RunPlan(
        probe=probe or "",
        env=tuple(sorted(env.items())),
        skipped=MappingProxyType(skipped),
        timeout=None if override is None else override.timeout,
    )


def verify_request(ref: str, platforms: Sequence[str], options: VerifyOptions) -> CheckRequest:
    """`python -m verify --json [--deep] [--allow G]... --platform P... [--gcp]
    [--run --probe P [--env N=V]... [--run-timeout S] [--skip-run P]...]
    [--attest --key K --create-key | --attest --kms V] -- <ref>`: `--run` only when a platform
    of this verification is started."""
    # A key path, never key material: nothing secret is in the Command's inputs or state; or a
    # KMS key version name: the private key never leaves KMS.
    key = options.attest_key
    request = CheckRequest(
        refs=(ref,),
        json=True,
        deep=options.deep,
        allow=options.allow,
        platforms=tuple(platforms),
        gcp=options.gcp,
        attest=attests(options),
        key=key,
        kms=options.attest_kms if key is None else None,
        create_key=key is not None,
    )
    plan = options.run
    if plan is None or all(platform in plan.skipped for platform in platforms):
        return request
    return replace(
        request,
        run=True,
        probe=plan.probe,
        env=tuple(f"{name}={value}" for name, value in plan.env),
        run_timeout=None if plan.timeout is None else float(plan.timeout),
        skip_run=tuple(platform for platform in platforms if platform in plan.skipped),
    )


def attest_index_request(
    ref: str,
    platforms: Mapping[str, str],
    candidates: Sequence[str],
    options: VerifyOptions,
) -> AttestIndexRequest:
    """`python -m verify attest-index <repository>@<digest> --platform-digest=P=D...
    --candidate=C... (--key K | --kms V) [--gcp] --json`: the verification attestation of the
    index an Index joined from the verified single-platform `candidates` (perPlatform)."""
    key = options.attest_key
    return AttestIndexRequest(
        ref=ref,
        platform_digests=tuple(f"{platform}={digest}" for platform, digest in platforms.items()),
        candidates=tuple(candidates),
        key=key,
        kms=options.attest_kms if key is None else None,
        gcp=options.gcp,
        json=True,
    )


def attests(options: VerifyOptions) -> bool:
    """Whether verifications sign and push attestations (`attest` config)."""
    return options.attest_key is not None or options.attest_kms is not None


def candidate_ref(repository: str, digest: str) -> str:
    """The pushed, not yet tagged image: `<registry>/<service>@<digest>`."""
    return f"{repository}@{digest}"


def verified_platforms(stdout: str) -> Mapping[str, str]:
    """`{platform: manifest digest}` from the tool's `--json` document (printed on exit 0)."""
    return {name: found.digest for name, found in ImageReport.from_json(stdout).platforms.items()}


def verified_proof(
    platforms: Sequence[str], plan: RunPlan | None, stdout: str
) -> dict[str, dict[str, Any]]:
    """`{platform: {elfFiles, probe, seconds} | {elfFiles, skipped}}` from the tool's `--json`
    document: what was proven for each platform (`elfFiles` is None without `--deep`; `probe`
    and `seconds` are None when `verify.run` is false)."""
    report = ImageReport.from_json(stdout)
    proof: dict[str, dict[str, Any]] = {}
    for platform in platforms:
        found = report.platforms[platform]
        elf_files = None if found.elf is None else found.elf.checked
        if plan is not None and platform in plan.skipped:
            proof[platform] = {"elfFiles": elf_files, "skipped": plan.skipped[platform]}
            continue
        ran = found.run
        proof[platform] = {
            "elfFiles": elf_files,
            "probe": None if ran is None else ran.probe,
            "seconds": None if ran is None else ran.seconds,
        }
    return proof


def joined_attestation_referrers(stdout: str) -> Mapping[str, str]:
    """`{"index": referrer digest}` pushed by `verify attest-index`."""
    return {"index": AttestIndexResult.from_json(stdout).index}


def attestation_referrers(stdout: str) -> Mapping[str, str]:
    """`{"index" | platform: referrer digest}` pushed by `--attest` (empty without it)."""
    referrers = ImageReport.from_json(stdout).referrers or {}
    return {str(subject): str(digest) for subject, digest in referrers.items()}


def merged_platforms(results: Sequence[Mapping[str, T]]) -> dict[str, T]:
    """The platforms (digests, proofs) of several single-platform verifications as one
    mapping."""
    return {name: digest for result in results for name, digest in result.items()}


def digest_of_ref(ref: str) -> str:
    """The digest of `name:tag@sha256:…` (what an Index reports as its `ref`)."""
    name, separator, digest = ref.rpartition("@")
    if not separator or not name or not digest.startswith("sha256:"):
        raise ValueError(f"{ref!r} is not a reference with a digest (name:tag@sha256:…)")
    return digest


def _manifests(platforms: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(f"{platform}={digest}" for platform, digest in sorted(platforms.items()))


def published_check_request(
    ref: str,
    platforms: Mapping[str, str],
    index_urn: str,
    replace: Sequence[str],
    gcp: bool,
) -> PublishedRequest:
    """`python -m verify published <tag>@<digest> --manifest P=D... --index-urn U --replace U...`:
    the exported tag still points at the digest, which exists and holds the verified manifests."""
    return PublishedRequest(
        ref, _manifests(platforms), index_urn=index_urn, replace=tuple(replace), gcp=gcp
    )


def candidate_check_request(ref: str, replace: Sequence[str], gcp: bool) -> PublishedRequest:
    """`python -m verify published <repository>@<digest> --replace U...`: a verified candidate an
    Index is built from still exists."""
    return PublishedRequest(ref, replace=tuple(replace), gcp=gcp)


def immutable_tag_request(
    tag_ref: str, platforms: Mapping[str, str] | None, gcp: bool
) -> PublishedRequest:
    """`python -m verify published <repository>:<tag> --immutable [--manifest P=D]...`: a tag
    that cannot move is about to be published; it must not exist, or (with the verified
    `platforms`) already hold exactly them. None: new images will be built, digests unknown."""
    return PublishedRequest(tag_ref, _manifests(platforms or {}), immutable=True, gcp=gcp)


def published_digest(stdout: str) -> str:
    """The digest `python -m verify published` confirmed (its JSON on exit 0)."""
    digest = PublishedResult.from_json(stdout).digest
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ValueError(f"verify published confirmed no digest: {stdout!r}")
    return digest
