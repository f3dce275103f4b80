"""Signed records of a passed verification, stored beside the verified digests.

- :mod:`verify.attest.dsse`: DSSE envelopes over in-toto Statement v1, ECDSA P-256 signatures.
- :mod:`verify.attest.oras`: OCI 1.1 artifact manifests pushed as referrers of a digest (the
  referrers API where the registry has one, the ``sha256-<hex>`` tag schema otherwise).
- :mod:`verify.attest.attach`: what ``python -m verify --attest`` signs and pushes.
- :mod:`verify.attest.check`: ``python -m verify attestations REF --public-key PEM``.
- :mod:`verify.attest.names`: the form of a KMS key version name (also checked in config).
"""
