"""``python -m verify attest-index REF@DIGEST --platform-digest PLATFORM=DIGEST...
--candidate DIGEST... (--key PEM | --kms KEY_VERSION) [--json] [--gcp]``: the verification
attestation of an index joined from verified single-platform candidates.

Strategy ``perPlatform`` verifies (and, with ``--attest``, attests) one single-platform
candidate per platform; an Index then joins their manifests into the index the tag points at,
which no verification read. This signs that index's Test Result from evidence only:

1. the index's image entries must be exactly the ``--platform-digest`` pairs (the manifests
   the verifications proved), as ``verify binauthz`` checks them;
2. each ``--candidate`` (a verified candidate index in the same repository) may list only those
   manifests, and must carry a verification attestation that verifies with the signer's own
   public key (``PASSED`` or ``WARNED``, no failed test);
3. every platform must be proven by those signed statements: ``platform:P`` and ``elf:P``
   among their passed tests.

The new statement's ``passedTests`` and ``warnedTests`` are those of the candidates' statements
for the index's platforms (``start:P`` included), and its ``configuration`` names the
candidates it was joined from. Nothing is signed when a check fails (exit 1).

Exit 0 with the referrer pushed (``--json``: ``{"referrers": {"index": DIGEST}}``, as the
verification's document names its referrers), 1 when a check fails,
2 on a usage, registry or KMS error.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from verify.attest import dsse
from verify.attest.attach import subject_of
from verify.attest.binauthz import check_children, verified_manifests
from verify.attest.check import SubjectReport, attested
from verify.attest.kms import KmsError
from verify.attest.oras import Registry
from verify.attest.signing import Signing, SigningError
from verify.auth import AuthError, CredentialResolver
from verify.contract import AttestIndexRequest, AttestIndexResult, attest_index_parser
from verify.digests import DigestMismatch, check_bytes
from verify.manifests import INDEX_TYPES, ManifestError, document_media_type, parse_index
from verify.reference import Reference, ReferenceError, parse_reference
from verify.registry import RegistryClient, RegistryError
from verify.sbom.documents import TOOL

EXIT_DONE, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2
TEST_KINDS = ("platform", "elf", "start")
"""The tests a verification attests per platform, in the order they are listed."""


class Refused(Exception):
    """A check failed: nothing is signed (exit 1)."""


def joined_result(
    platforms: Sequence[str], candidates: Sequence[str], statements: Sequence[Any]
) -> dict[str, Any]:
    """The Test Result of the joined index from its candidates' verified predicates."""
    passed = {test for s in statements for test in _tests(s, "passedTests")}
    warned = {test for s in statements for test in _tests(s, "warnedTests")} - passed
    for platform in platforms:
        missing = [f"{kind}:{platform}" for kind in ("platform", "elf")]
        if not all(test in passed for test in missing):
            raise Refused(f"no signed statement of a candidate says {' and '.join(missing)}")
    ordered = [f"{kind}:{platform}" for platform in platforms for kind in TEST_KINDS]
    warned_tests = [test for test in ordered if test in warned]
    return {
        "result": "WARNED" if warned_tests else "PASSED",
        "configuration": [
            {
                "name": TOOL,
                "uri": f"urn:boutique-multiarch:{TOOL}",
                "annotations": {"platforms": list(platforms), "joinedFrom": list(candidates)},
            }
        ],
        "passedTests": [test for test in ordered if test in passed],
        "warnedTests": warned_tests,
        "failedTests": [],
    }


def _tests(predicate: Any, field: str) -> list[str]:
    """The test names a signed predicate lists under ``field`` (strings in a list only)."""
    tests = predicate.get(field) if isinstance(predicate, dict) else None
    return [test for test in tests if isinstance(test, str)] if isinstance(tests, list) else []


def _candidate_statement(
    client: RegistryClient,
    ref: Reference,
    candidate: str,
    expected: Mapping[str, str],
    signer: Signing,
) -> list[Any]:
    """The verified Test Result predicates of one candidate, after checking it lists only
    verified manifests."""
    document = client.get_manifest(ref, candidate)
    check_bytes("candidate", document.data, candidate)
    media_type = document_media_type(document.data, document.content_type)
    if media_type not in INDEX_TYPES:
        raise Refused(f"candidate {candidate} is not an image index ({media_type})")
    for entry in parse_index(document.data, media_type).manifests:
        if not entry.is_attestation and expected.get(str(entry.platform)) != entry.digest:
            raise Refused(
                f"candidate {candidate} lists {entry.platform} {entry.digest}, "
                "not a verified manifest"
            )
    subject = SubjectReport(candidate, dsse.TEST_RESULT_PREDICATE)
    statements = attested(
        Registry(client), ref, f"candidate {candidate}", subject, signer.public_key
    )
    if subject.problems or not statements:
        # Fail closed, as `verify attestations` does: an invalid statement next to a valid one.
        raise Refused("; ".join(subject.problems))
    return [statement.predicate for statement in statements]


def attest_joined(
    client: RegistryClient,
    ref: Reference,
    expected: Mapping[str, str],
    candidates: Sequence[str],
    signer: Signing,
) -> str:
    """Check the joined index ``ref`` and its candidates, then sign and push its Test Result;
    returns the referrer's digest."""
    assert ref.digest is not None
    problems = check_children(client, ref, dict(expected))
    if problems:
        raise Refused("; ".join(problems))
    predicates = [
        predicate
        for candidate in candidates
        for predicate in _candidate_statement(client, ref, candidate, expected, signer)
    ]
    predicate = joined_result(list(expected), candidates, predicates)
    name = f"{ref.registry}/{ref.repository}"
    payload = dsse.statement([(name, ref.digest)], dsse.TEST_RESULT_PREDICATE, predicate)
    envelope = dsse.envelope(payload, signer.sign, signer.keyid)
    subject = subject_of(client, ref, ref.digest)
    return Registry(client).attach(ref, subject, envelope, dsse.TEST_RESULT_PREDICATE)


def _signer(key: str | None, kms: str | None) -> Signing:
    from verify.attest import signing

    if (key is None) == (kms is None):
        raise ValueError("give exactly one of --key PEM and --kms KEY_VERSION")
    return signing.local(key, create=False) if key is not None else signing.cloud_kms(str(kms))


def main(argv: Sequence[str]) -> int:
    arguments = AttestIndexRequest.from_namespace(attest_index_parser().parse_args(argv))
    try:
        ref = parse_reference(arguments.ref)
        if ref.digest is None:
            raise ValueError(f"{arguments.ref}: give the joined index's digest (REF@sha256:…)")
        expected = verified_manifests(arguments.platform_digests)
        for candidate in arguments.candidates:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", candidate):
                raise ValueError(f"--candidate {candidate!r}: expected sha256:<hex>")
        if not arguments.candidates:
            raise ValueError("--candidate: give every verified candidate index's digest")
        credentials = CredentialResolver(use_gcp=arguments.gcp, environ=os.environ)
        credentials.check_environment()
        signer = _signer(arguments.key, arguments.kms)
    except (ReferenceError, ValueError, AuthError, SigningError) as error:
        print(f"verify attest-index: {error}", file=sys.stderr)
        return EXIT_ERROR
    client = RegistryClient(credentials)
    try:
        referrer = attest_joined(client, ref, expected, arguments.candidates, signer)
    except Refused as refused:
        print(f"verify attest-index: {arguments.ref}: {refused}", file=sys.stderr)
        return EXIT_REFUSED
    except (RegistryError, AuthError, DigestMismatch, ManifestError, KmsError) as error:
        print(f"verify attest-index: {arguments.ref}: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(f"verify: attested index: referrer {referrer}", file=sys.stderr)
    if arguments.json:
        print(AttestIndexResult(index=referrer).to_json())
    return EXIT_DONE
