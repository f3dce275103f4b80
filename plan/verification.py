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


def verify_options(settings: VerifySettings, service: str, gcp: bool) -> VerifyOptions:
    """The options of `service`'s verifications: its allowed paths only (reasons stay in
    config)."""
    allowed = settings.allow.get(service, ())
    return VerifyOptions(deep=settings.deep, allow=tuple(entry.path for entry in allowed), gcp=gcp)


def verify_command(python: str, ref: str, platforms: Sequence[str], options: VerifyOptions) -> str:
    """`python -m verify <ref> --json [--deep] [--allow G]... --platform P... [--gcp]`."""
    argv = [python, "-m", "verify", ref, "--json"]
    if options.deep:
        argv.append("--deep")
    argv += [argument for glob in options.allow for argument in ("--allow", glob)]
    argv += [argument for platform in platforms for argument in ("--platform", platform)]
    if options.gcp:
        argv.append("--gcp")
    return shlex.join(argv)


def candidate_ref(repository: str, digest: str) -> str:
    """The pushed, not yet tagged image: `<registry>/<service>@<digest>`."""
    return f"{repository}@{digest}"


def verified_platforms(stdout: str) -> Mapping[str, str]:
    """`{platform: manifest digest}` from the tool's `--json` document (printed on exit 0)."""
    document = json.loads(stdout)
    return {name: platform["digest"] for name, platform in document["platforms"].items()}


def merged_platforms(results: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The platforms of several single-platform verifications as one mapping."""
    return {name: digest for result in results for name, digest in result.items()}


def digest_of_ref(ref: str) -> str:
    """The digest of `name:tag@sha256:…` (what an Index reports as its `ref`)."""
    name, separator, digest = ref.rpartition("@")
    if not separator or not name or not digest.startswith("sha256:"):
        raise ValueError(f"{ref!r} is not a reference with a digest (name:tag@sha256:…)")
    return digest


def published_check_command(
    python: str,
    ref: str,
    platforms: Mapping[str, str],
    index_urn: str,
    replace: Sequence[str],
    gcp: bool,
) -> str:
    """`python -m verify published <tag>@<digest> --manifest P=D... --index-urn U --replace U...`:
    the exported tag still points at the digest, which exists and holds the verified manifests."""
    argv = [python, "-m", "verify", "published", ref]
    argv += [f"--manifest={platform}={digest}" for platform, digest in sorted(platforms.items())]
    argv += [f"--index-urn={index_urn}", *(f"--replace={urn}" for urn in replace)]
    return shlex.join(argv + (["--gcp"] if gcp else []))


def candidate_check_command(python: str, ref: str, replace: Sequence[str], gcp: bool) -> str:
    """`python -m verify published <repository>@<digest> --replace U...`: a verified candidate an
    Index is built from still exists."""
    argv = [python, "-m", "verify", "published", ref, *(f"--replace={urn}" for urn in replace)]
    return shlex.join(argv + (["--gcp"] if gcp else []))


def immutable_tag_command(
    python: str, tag_ref: str, platforms: Mapping[str, str] | None, gcp: bool
) -> str:
    """`python -m verify published <repository>:<tag> --immutable [--manifest P=D]...`: a tag
    that cannot move is about to be published; it must not exist, or (with the verified
    `platforms`) already hold exactly them. None: new images will be built, digests unknown."""
    argv = [python, "-m", "verify", "published", tag_ref, "--immutable"]
    argv += [
        f"--manifest={platform}={digest}" for platform, digest in sorted((platforms or {}).items())
    ]
    return shlex.join(argv + (["--gcp"] if gcp else []))


def published_digest(stdout: str) -> str:
    """The digest `python -m verify published` confirmed (its JSON on exit 0)."""
    digest = json.loads(stdout)["digest"]
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ValueError(f"verify published confirmed no digest: {stdout!r}")
    return digest
