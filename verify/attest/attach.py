"""``python -m verify REF --deep --attest --key PEM``: after every check passed, sign and push

- per platform manifest, an in-toto Statement whose predicate is the platform's SPDX document
  (predicate type ``https://spdx.dev/Document``), subject the platform manifest's digest;
- on the index, a Statement with the Test Result predicate (``passedTests``: ``platform:P`` for
  the index entry and image config, ``elf:P`` for the ELF scan, ``start:P`` for a container
  that passed its ``--run`` probe; ``warnedTests``: ``start:P`` for a platform whose start was
  skipped, and then ``result`` ``WARNED``), subject the index digest,

each in a DSSE envelope, as an OCI artifact referring to its subject. A verification that did
not pass is never attested: the caller only gets here on exit 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from verify.attest import dsse
from verify.attest.oras import Registry, Subject
from verify.checks import ImageResult, Options
from verify.manifests import document_media_type
from verify.reference import Reference
from verify.registry import RegistryClient
from verify.sbom.documents import TOOL, spdx_document


@dataclass(frozen=True)
class Attested:
    """The referrer digests pushed: ``{"index": ..., "linux/amd64": ..., ...}``."""

    referrers: dict[str, str]


@dataclass(frozen=True)
class StartProof:
    """What ``--run`` proved: each verified platform was started and passed, or was skipped."""

    probe: str
    """The ``--probe`` every started container passed."""
    passed: tuple[str, ...]
    """Platforms whose container passed the probe."""
    skipped: tuple[str, ...]
    """Platforms not started (``--skip-run``)."""


def test_result(options: Options, start: StartProof | None = None) -> dict[str, Any]:
    """The Test Result predicate of a passed verification of ``options.platforms`` (and runtime
    proof, if any).

    A platform whose start was skipped is a warned test (``start:P``) and makes the result
    ``WARNED``: every test that ran passed, but not everything was proven.
    """
    passed, warned = [], []
    for platform in options.platforms:
        passed.append(f"platform:{platform}")
        if options.deep:
            passed.append(f"elf:{platform}")
        if start is None:
            continue
        if str(platform) in start.passed:
            passed.append(f"start:{platform}")
        elif str(platform) in start.skipped:
            warned.append(f"start:{platform}")
        else:
            raise ValueError(f"{platform}: its start did not pass; it is not attested")
    run = None if start is None else {"probe": start.probe, "skipped": list(start.skipped)}
    return {
        "result": "WARNED" if warned else "PASSED",
        "configuration": [
            {
                "name": TOOL,
                "uri": f"urn:boutique-multiarch:{TOOL}",
                "annotations": {
                    "platforms": [str(platform) for platform in options.platforms],
                    "deep": options.deep,
                    "allow": list(options.allow),
                    "run": run,
                },
            }
        ],
        "passedTests": passed,
        "warnedTests": warned,
        "failedTests": [],
    }


def subject_of(client: RegistryClient, ref: Reference, digest: str) -> Subject:
    """The manifest ``digest`` of ``ref``'s repository as an artifact's subject."""
    document = client.get_manifest(ref, digest)
    media_type = document_media_type(document.data, document.content_type)
    return Subject(media_type, digest, len(document.data))


def attest(
    client: RegistryClient,
    ref: Reference,
    result: ImageResult,
    options: Options,
    sign: dsse.Signer,
    keyid: str,
    start: StartProof | None = None,
) -> Attested:
    """Sign and push every statement of a passed verification of ``ref`` (``start``: what its
    ``--run`` proved, None without ``--run``)."""
    if result.problems or result.digest is None:
        raise ValueError("only a passed verification is attested")
    # Every statement is made before any is pushed: a refusal leaves nothing half-attested.
    predicate = test_result(options, start)
    documents = {}
    for platform, outcome in result.platforms.items():
        if outcome.inventory is None:
            raise ValueError(f"{platform}: no SBOM inventory (attesting needs --deep)")
        documents[platform] = spdx_document(ref, outcome.inventory)
    registry = Registry(client)
    name = f"{ref.registry}/{ref.repository}"
    pushed: dict[str, str] = {}
    for platform, outcome in result.platforms.items():
        payload = dsse.statement([(name, outcome.digest)], dsse.SPDX_PREDICATE, documents[platform])
        subject = subject_of(client, ref, outcome.digest)
        envelope = dsse.envelope(payload, sign, keyid)
        pushed[platform] = registry.attach(ref, subject, envelope, dsse.SPDX_PREDICATE)
    payload = dsse.statement([(name, result.digest)], dsse.TEST_RESULT_PREDICATE, predicate)
    subject = subject_of(client, ref, result.digest)
    envelope = dsse.envelope(payload, sign, keyid)
    pushed["index"] = registry.attach(ref, subject, envelope, dsse.TEST_RESULT_PREDICATE)
    return Attested(pushed)
