"""``python -m verify attestations REF --public-key PEM [--platform P]... [--json] [--gcp]``.

Lists the DSSE artifacts referring to the index and to each required platform manifest, and
checks each: its manifest names that digest as ``subject``; its envelope (digest-checked,
bounded) has a signature over the PAE that verifies with the public key; the signed statement
names that digest among its subjects; its predicate type is the expected one and equals the
manifest's annotation; a Test Result says ``PASSED`` (or ``WARNED``: a platform's start was
skipped) and lists no failed test.

Exit 0 when every platform has a valid SBOM attestation and the index a valid verification
attestation; 1 when one is missing or invalid; 2 on a usage or registry error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from verify.attest import dsse
from verify.attest.oras import DSSE_ARTIFACT_TYPE, PREDICATE_ANNOTATION, Registry
from verify.auth import AuthError, CredentialResolver
from verify.digests import DigestMismatch, check_bytes, sha256_digest
from verify.manifests import INDEX_TYPES, ManifestError, document_media_type, parse_index
from verify.platforms import DEFAULT_PLATFORMS, Platform, PlatformError, parse_platform
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import RegistryClient, RegistryError

EXIT_VALID, EXIT_INVALID, EXIT_ERROR = 0, 1, 2
INDEX = "index"
PASSING_RESULTS = ("PASSED", "WARNED")
"""``WARNED``: every test that ran passed; the ``warnedTests`` (a skipped start) were not run."""


@dataclass
class SubjectReport:
    """The attestations found for one digest."""

    digest: str
    predicate_type: str
    valid: list[str] = field(default_factory=list)
    """Referrer digests whose attestation checked out."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """A valid attestation and no invalid one (a forged or broken one fails closed)."""
        return bool(self.valid) and not self.problems


@dataclass
class Report:
    """Everything ``attestations`` found for one reference."""

    ref: str
    digest: str
    subjects: dict[str, SubjectReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.subjects.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "valid": self.ok,
            "problems": self.problems,
            "subjects": {
                name: {
                    "digest": subject.digest,
                    "predicateType": subject.predicate_type,
                    "valid": subject.valid,
                    "problems": subject.problems,
                }
                for name, subject in self.subjects.items()
            },
        }


class _Invalid(Exception):
    """One referrer that is not a valid attestation of its subject."""


def _check_referrer(
    registry: Registry,
    ref: Reference,
    referrer: str,
    subject: SubjectReport,
    key: ec.EllipticCurvePublicKey,
) -> dsse.Verified:
    try:
        manifest = json.loads(registry.get_manifest(ref, referrer))
    except (ValueError, RecursionError):
        raise _Invalid("manifest is not JSON") from None
    named = (manifest.get("subject") or {}).get("digest") if isinstance(manifest, dict) else None
    if named != subject.digest:
        raise _Invalid(f"its manifest refers to {named}, not {subject.digest}")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
        raise _Invalid("its manifest does not have exactly one layer")
    layer = layers[0]
    if layer.get("mediaType") != DSSE_ARTIFACT_TYPE or not isinstance(layer.get("digest"), str):
        raise _Invalid(f"its layer is not a {DSSE_ARTIFACT_TYPE}")
    try:
        verified = dsse.open_envelope(registry.get_envelope(ref, layer["digest"]), key)
    except dsse.EnvelopeError as error:
        raise _Invalid(str(error)) from None
    if subject.digest not in verified.subjects:
        names = ", ".join(sorted(verified.subjects)) or "nothing"
        raise _Invalid(f"the signed statement is about {names}, not {subject.digest}")
    annotated = (manifest.get("annotations") or {}).get(PREDICATE_ANNOTATION)
    if verified.predicate_type != subject.predicate_type or annotated != verified.predicate_type:
        raise _Invalid(
            f"predicate type {verified.predicate_type!r} (annotated {annotated!r}), "
            f"expected {subject.predicate_type!r}"
        )
    if subject.predicate_type == dsse.TEST_RESULT_PREDICATE:
        predicate = verified.predicate if isinstance(verified.predicate, dict) else {}
        result = predicate.get("result")
        if result not in PASSING_RESULTS or predicate.get("failedTests"):
            failed = predicate.get("failedTests")
            raise _Invalid(f"the test result is {result!r} (failed tests: {failed!r}), not passed")
    return verified


def attested(
    registry: Registry,
    ref: Reference,
    name: str,
    subject: SubjectReport,
    key: ec.EllipticCurvePublicKey,
) -> list[dsse.Verified]:
    """The valid statements of ``subject.predicate_type`` about ``subject.digest``; records
    each valid referrer in ``subject.valid`` and each problem (named ``name``) in
    ``subject.problems``."""
    referrers = registry.referrers(ref, subject.digest)
    candidates = [r for r in referrers if r.artifact_type == DSSE_ARTIFACT_TYPE]
    wanted = subject.predicate_type
    expected = [r for r in candidates if r.annotations.get(PREDICATE_ANNOTATION) == wanted]
    if not expected:
        what = "SBOM" if subject.predicate_type == dsse.SPDX_PREDICATE else "verification"
        subject.problems.append(f"{name}: no {what} attestation refers to {subject.digest}")
    statements = []
    for referrer in expected:
        try:
            statements.append(_check_referrer(registry, ref, referrer.digest, subject, key))
            subject.valid.append(referrer.digest)
        except _Invalid as invalid:
            subject.problems.append(f"{name}: attestation {referrer.digest}: {invalid}")
    return statements


def check(
    client: RegistryClient,
    text: str,
    ref: Reference,
    platforms: Sequence[Platform],
    key: ec.EllipticCurvePublicKey,
) -> Report:
    """Check the attestations of ``ref``'s index and of each required platform manifest."""
    document = client.get_manifest(ref, ref.manifest_reference)
    digest = sha256_digest(document.data)
    if ref.digest is not None:
        check_bytes("manifest", document.data, ref.digest)
    report = Report(text, digest)
    media_type = document_media_type(document.data, document.content_type)
    if media_type not in INDEX_TYPES:
        report.problems.append(f"{digest} is not an image index ({media_type})")
        return report
    report.subjects[INDEX] = SubjectReport(digest, dsse.TEST_RESULT_PREDICATE)
    images = [e for e in parse_index(document.data, media_type).manifests if not e.is_attestation]
    for platform in platforms:
        matches = [entry for entry in images if entry.platform == platform]
        if len(matches) != 1:
            report.problems.append(f"{platform}: listed {len(matches)} times in the index")
            continue
        report.subjects[str(platform)] = SubjectReport(matches[0].digest, dsse.SPDX_PREDICATE)
    registry = Registry(client)
    for name, subject in report.subjects.items():
        attested(registry, ref, name, subject, key)
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify attestations",
        description="Check the signed SBOM and verification attestations of an image.",
    )
    parser.add_argument("ref", metavar="REF", help="host[:port]/repository:tag or @sha256:<hex>")
    parser.add_argument("--public-key", required=True, metavar="PEM", help="ECDSA P-256 key")
    parser.add_argument(
        "--platform",
        action="append",
        metavar="OS/ARCH[/VARIANT]",
        help="platform that must have an SBOM attestation (default linux/amd64 and linux/arm64)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--gcp", action="store_true", help="Application Default Credentials")
    return parser


def main(argv: Sequence[str]) -> int:
    arguments = _parser().parse_args(argv)
    try:
        ref = parse_reference(arguments.ref)
        values = arguments.platform or [str(platform) for platform in DEFAULT_PLATFORMS]
        platforms = [parse_platform(value) for value in values]
        key = dsse.load_public_key(Path(arguments.public_key))
        credentials = CredentialResolver(use_gcp=arguments.gcp, environ=os.environ)
        credentials.check_environment()
    except (ReferenceError, PlatformError, dsse.KeyFileError, AuthError) as error:
        print(f"verify attestations: {error}", file=sys.stderr)
        return EXIT_ERROR
    client = RegistryClient(credentials)
    try:
        report = check(client, arguments.ref, ref, platforms, key)
    except (RegistryError, AuthError, DigestMismatch, ManifestError) as error:
        print(f"verify attestations: {arguments.ref}: {error}", file=sys.stderr)
        return EXIT_ERROR
    for problem in report.problems + [p for s in report.subjects.values() for p in s.problems]:
        print(f"verify attestations: {arguments.ref}: {problem}", file=sys.stderr)
    if arguments.json:
        print(json.dumps(report.as_json(), indent=2))
    elif report.ok:
        names = ", ".join(report.subjects)
        print(f"attested {arguments.ref}@{report.digest}: valid attestations for {names}")
    return EXIT_VALID if report.ok else EXIT_INVALID
