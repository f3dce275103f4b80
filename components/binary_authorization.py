"""BinaryAuthorization: a KMS signing key and an attestor that GKE's Binary Authorization trusts.

Creates:
- `gcp.kms.KeyRing` `<name>-keyring` (`boutique-attestors`) and `gcp.kms.CryptoKey`
  `<name>-key` (`verified`, asymmetric signing, EC_SIGN_P256_SHA256), whose version 1 signs;
- `gcp.containeranalysis.Note` `<name>-note` (`boutique-verified`) with an attestation
  authority: the occurrences `python -m verify binauthz` creates hang on it;
- `gcp.binaryauthorization.Attestor` `<name>-attestor` holding the key version's public key;
- with `enforce`, `gcp.binaryauthorization.Policy` `<name>-policy`: the project's one policy,
  whose default rule requires the attestor (every workload of every enforcing cluster in the
  project is then held to it; docs/attestations.md says what that means).

The public key is read with the `getKMSCryptoKeyVersion` data source; the private key never
leaves KMS.
"""

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from plan.binary_authorization import (
    ATTESTOR,
    KEY,
    KEY_ALGORITHM,
    KEY_RING,
    NOTE,
    SIGNATURE_ALGORITHM,
    key_version,
    policy_rule,
    public_key_id,
)
from plan.settings import ArtifactRegistry, AttestSettings, ExternalRegistry


@dataclass(frozen=True)
class BinaryAuthorizationArgs:
    """Where the key and the attestor live."""

    project: str
    """`gcp:project` (also where the note, the attestor and the policy are)."""
    location: str
    """KMS location of the key ring (the repository's region)."""
    enforce: bool
    """Declare the project's policy requiring the attestor (`attest.enforce`)."""


class BinaryAuthorization(pulumi.ComponentResource):
    """The attestor of verified images and the key it signs with."""

    key_version: pulumi.Output[str]
    """`projects/…/cryptoKeyVersions/1`: what `verify binauthz --kms` signs with."""
    note: pulumi.Output[str]
    """`projects/P/notes/boutique-verified`: what `verify binauthz --note` attaches to."""
    attestor: pulumi.Output[str]
    """`projects/P/attestors/boutique-verified`."""

    def __init__(
        self, name: str, args: BinaryAuthorizationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:binary_authorization:BinaryAuthorization", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ring = gcp.kms.KeyRing(
            f"{name}-keyring",
            name=KEY_RING,
            location=args.location,
            project=args.project,
            opts=child,
        )
        key = gcp.kms.CryptoKey(
            f"{name}-key",
            name=KEY,
            key_ring=ring.id,
            purpose="ASYMMETRIC_SIGN",
            version_template=gcp.kms.CryptoKeyVersionTemplateArgs(algorithm=KEY_ALGORITHM),
            # Destroying the key destroys every attestation it signed: clusters enforcing the
            # policy would then refuse every image. KMS also keeps key rings forever.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.key_version = pulumi.Output.all(
            args.project, args.location, ring.name, key.name
        ).apply(_key_version)
        version = gcp.kms.get_kms_crypto_key_version_output(crypto_key=key.id, version=1)
        note = gcp.containeranalysis.Note(
            f"{name}-note",
            name=NOTE,
            project=args.project,
            attestation_authority=gcp.containeranalysis.NoteAttestationAuthorityArgs(
                hint=gcp.containeranalysis.NoteAttestationAuthorityHintArgs(
                    human_readable_name="boutique-multiarch: multi-arch layers verified"
                )
            ),
            opts=child,
        )
        self.note = pulumi.Output.format("projects/{0}/notes/{1}", args.project, note.name)
        attestor = gcp.binaryauthorization.Attestor(
            f"{name}-attestor",
            name=ATTESTOR,
            project=args.project,
            attestation_authority_note=gcp.binaryauthorization.AttestorAttestationAuthorityNoteArgs(
                note_reference=note.name,
                public_keys=[
                    gcp.binaryauthorization.AttestorAttestationAuthorityNotePublicKeyArgs(
                        id=self.key_version.apply(public_key_id),
                        pkix_public_key=gcp.binaryauthorization.AttestorAttestationAuthorityNotePublicKeyPkixPublicKeyArgs(
                            public_key_pem=version.public_keys[0].pem,
                            signature_algorithm=SIGNATURE_ALGORITHM,
                        ),
                    )
                ],
            ),
            opts=child,
        )
        self.attestor = pulumi.Output.format(
            "projects/{0}/attestors/{1}", args.project, attestor.name
        )
        if args.enforce:
            gcp.binaryauthorization.Policy(
                f"{name}-policy",
                project=args.project,
                global_policy_evaluation_mode="ENABLE",
                default_admission_rule=self.attestor.apply(_rule),
                opts=child,
            )
        self.register_outputs(
            {"key_version": self.key_version, "note": self.note, "attestor": self.attestor}
        )


def _key_version(names: list[str]) -> str:
    return key_version(*names)


# Quoted: evaluated, the annotation would load `gcp.binaryauthorization` (a lazy module) in every
# stack, also those without Binary Authorization.
def _rule(attestor: str) -> "gcp.binaryauthorization.PolicyDefaultAdmissionRuleArgs":
    return gcp.binaryauthorization.PolicyDefaultAdmissionRuleArgs(**policy_rule(attestor))


def binary_authorization(
    destination: ArtifactRegistry | ExternalRegistry, attest: AttestSettings
) -> BinaryAuthorization | None:
    """BinaryAuthorization `binauthz` for an Artifact Registry stack with
    `attest.binaryAuthorization`, else None (nothing declared)."""
    if not (attest.binary_authorization and isinstance(destination, ArtifactRegistry)):
        return None
    return BinaryAuthorization(
        "binauthz",
        BinaryAuthorizationArgs(
            project=destination.project,
            location=destination.repository.location,
            enforce=attest.enforce,
        ),
    )
