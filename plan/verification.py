"""The verification command line for one pushed digest, and how to read its result.

`python -m verify` fetches its own credentials (Application Default Credentials with `--gcp`,
otherwise `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` or Docker's config.json from the environment
of the process that runs Pulumi), so nothing here ever holds a token: a token in a Command's
inputs would change every run and re-run every verification.
"""

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plan.settings import VerifySettings


@dataclass(frozen=True)
class VerifyOptions:
    """What every verification of one service checks."""

    deep: bool
    """Check the ELF machine of every file (`--deep`)."""
    allow: tuple[str, ...]
    """Globs of paths allowed to be for another architecture (`--allow`)."""
    gcp: bool
    """Authenticate with Application Default Credentials (Artifact Registry)."""
    attest_key: str | None = None
    """Sign and push attestations after a pass (`--attest --key K --create-key`)."""


def verify_options(
    settings: VerifySettings, service: str, gcp: bool, attest_key: str | None = None
) -> VerifyOptions:
    """The options of `service`'s verifications: its allowed paths only (reasons stay in
    config)."""
    allowed = settings.allow.get(service, ())
    paths = tuple(entry.path for entry in allowed)
    return VerifyOptions(deep=settings.deep, allow=paths, gcp=gcp, attest_key=attest_key)


def verify_command(python: str, ref: str, platforms: Sequence[str], options: VerifyOptions) -> str:
    """`python -m verify <ref> --json [--deep] [--allow G]... --platform P... [--gcp]
    [--attest --key K --create-key]`."""
    argv = [python, "-m", "verify", ref, "--json"]
    if options.deep:
        argv.append("--deep")
    argv += [argument for glob in options.allow for argument in ("--allow", glob)]
    argv += [argument for platform in platforms for argument in ("--platform", platform)]
    if options.gcp:
        argv.append("--gcp")
    if options.attest_key is not None:
        # A path, never key material: nothing secret is in the Command's inputs or state.
        argv += ["--attest", "--key", options.attest_key, "--create-key"]
    return shlex.join(argv)


def candidate_ref(repository: str, digest: str) -> str:
    """The pushed, not yet tagged image: `<registry>/<service>@<digest>`."""
    return f"{repository}@{digest}"


def verified_platforms(stdout: str) -> Mapping[str, str]:
    """`{platform: manifest digest}` from the tool's `--json` document (printed on exit 0)."""
    document = json.loads(stdout)
    return {name: platform["digest"] for name, platform in document["platforms"].items()}


def attestation_referrers(stdout: str) -> Mapping[str, str]:
    """`{"index" | platform: referrer digest}` pushed by `--attest` (empty without it)."""
    referrers = json.loads(stdout).get("referrers") or {}
    return {str(subject): str(digest) for subject, digest in referrers.items()}


def merged_platforms(results: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The platforms of several single-platform verifications as one mapping."""
    return {name: digest for result in results for name, digest in result.items()}


def digest_of_ref(ref: str) -> str:
    """The digest of `name:tag@sha256:…` (what an Index reports as its `ref`)."""
    name, separator, digest = ref.rpartition("@")
    if not separator or not name or not digest.startswith("sha256:"):
        raise ValueError(f"{ref!r} is not a reference with a digest (name:tag@sha256:…)")
    return digest
