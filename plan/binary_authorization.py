"""Binary Authorization as data: resource names, the policy, and the attestation command.

Pure: the BinaryAuthorization component turns these into resources, ServiceImage runs the
command after its Index (`python -m verify binauthz`, which needs Application Default
Credentials of an identity with `roles/cloudkms.signerVerifier` on the key and
`roles/containeranalysis.notes.attacher` on the note).
"""

from collections.abc import Mapping
from typing import Any

from plan.settings import ArtifactRegistry, AttestSettings, ExternalRegistry
from verify.contract import BinauthzRequest, BinauthzResult

KEY_RING = "boutique-attestors"
KEY = "verified"
KEY_ALGORITHM = "EC_SIGN_P256_SHA256"
SIGNATURE_ALGORITHM = "ECDSA_P256_SHA256"
"""The attestor's name for KMS's EC_SIGN_P256_SHA256."""
NOTE = "boutique-verified"
ATTESTOR = "boutique-verified"


def key_version(project: str, location: str, key_ring: str, key: str) -> str:
    """The first (and only) version of the key, as KMS names it."""
    return (
        f"projects/{project}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{key}"
        "/cryptoKeyVersions/1"
    )


def referrer_kms(
    destination: ArtifactRegistry | ExternalRegistry, attest: AttestSettings
) -> str | None:
    """The KMS key version that signs the referrer attestations: `attest.kms`; else, on a stack
    with Binary Authorization and no local `attest.key`, the attestor's own key (so a CI runner
    needs no key file); else None (a local key, or no referrers)."""
    if attest.kms is not None:
        return attest.kms
    if attest.key is None and attest.binary_authorization:
        # The config admits Binary Authorization on Artifact Registry stacks only.
        assert isinstance(destination, ArtifactRegistry)
        return key_version(destination.project, destination.repository.location, KEY_RING, KEY)
    return None


def public_key_id(version: str) -> str:
    """How the attestor and the occurrences name the key."""
    return f"//cloudkms.googleapis.com/v1/{version}"


def policy_rule(attestor: str) -> dict[str, Any]:
    """The default admission rule: only images the attestor vouched for; block and log."""
    return {
        "evaluation_mode": "REQUIRE_ATTESTATION",
        "enforcement_mode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
        "require_attestations_bies": [attestor],
    }


def binauthz_request(
    repository: str,
    digest: str,
    platforms: Mapping[str, str],
    note: str,
    version: str,
) -> BinauthzRequest:
    """`python -m verify binauthz <repository>@<digest> --note N --kms V --platform-digest
    P=D... --json --gcp`."""
    return BinauthzRequest(
        ref=f"{repository}@{digest}",
        note=note,
        kms=version,
        platform_digests=tuple(
            f"{platform}={manifest}" for platform, manifest in sorted(platforms.items())
        ),
        json=True,
        gcp=True,
    )


def occurrence_of(stdout: str) -> str:
    """The occurrence name from the command's `--json` line."""
    return BinauthzResult.from_json(stdout).occurrence
