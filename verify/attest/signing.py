"""Who signs: a local PEM key (``--key``, optionally ``--create-key``) or Cloud KMS (``--kms``).

Either is checked before the verification starts (the key read, or the KMS version's public key
fetched and its algorithm checked), so a wrong key is exit 2 before any layer is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from verify.attest import dsse, kms


class SigningError(ValueError):
    """A key argument that cannot sign (exit 2)."""


@dataclass(frozen=True)
class Signing:
    """A signer and the key id the envelopes name."""

    sign: dsse.Signer
    keyid: str
    public_key: ec.EllipticCurvePublicKey
    """What checks this signer's signatures."""


def local(path: str, create: bool) -> Signing:
    try:
        key = dsse.ensure_private_key(Path(path)) if create else dsse.load_private_key(Path(path))
    except (dsse.KeyFileError, OSError) as error:
        raise SigningError(f"--key {path}: {error}") from None
    return Signing(dsse.local_signer(key), dsse.key_id(key.public_key()), key.public_key())


def cloud_kms(name: str) -> Signing:
    try:
        kms.check_name(name)
    except ValueError as error:
        raise SigningError(str(error)) from None
    import google.auth.exceptions

    try:
        key = kms.KmsKey(kms.adc_http(), name)
        public_key = key.public_key()
    except google.auth.exceptions.GoogleAuthError as error:
        raise SigningError(f"--kms: Application Default Credentials failed: {error}") from None
    except kms.KmsError as error:
        raise SigningError(f"--kms: {error}") from None
    return Signing(key.sign, dsse.key_id(public_key), public_key)
