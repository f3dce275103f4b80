"""``--attest`` and ``verify attestations`` against distribution 2.8 on loopback, which has no
referrers API: the ``sha256-<hex>`` tag-schema path runs for real. A tampered envelope, a
statement about another digest and a missing platform each fail."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.conftest import BuildxBuild
from tests.integration.dockerenv import Registry
from tests.integration.registrypush import Pusher
from tests.test_verify_cli import run
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify.attest import dsse
from verify.attest.oras import Registry as ArtifactRegistry
from verify.attest.oras import Subject, tag_schema_tag
from verify.auth import CredentialResolver
from verify.digests import sha256_digest
from verify.manifests import OCI_MANIFEST
from verify.reference import parse_reference
from verify.registry import RegistryClient

pytestmark = pytest.mark.registry


def _push(registry: Registry, repository: str) -> str:
    layers = {
        arch: [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(machine))]))]
        for arch, machine in (("amd64", X86_64), ("arm64", AARCH64))
    }
    Pusher(registry).image(repository, "1", layers, repository)
    return f"{registry.address}/{repository}:1"


def _keys(directory: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    """A new key pair, written as `--create-key` writes it."""
    private = directory / "key.pem"
    key = dsse.ensure_private_key(private)
    return private, directory / "key.pem.pub", key


_verify = run


def _artifacts() -> ArtifactRegistry:
    return ArtifactRegistry(RegistryClient(CredentialResolver(use_gcp=False, environ={})))


def test_attest_then_check_on_the_tag_schema(registry: Registry, tmp_path: Path) -> None:
    ref = _push(registry, "attest/good")
    private, public, _ = _keys(tmp_path)
    result = _verify(ref, "--deep", "--json", "--attest", "--key", str(private))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    referrers = report["referrers"]
    assert set(referrers) == {"index", "linux/amd64", "linux/arm64"}

    # distribution 2.8 has no referrers API: each digest got a sha256-<hex> index.
    parsed = parse_reference(ref)
    client = _artifacts()
    assert not client.has_referrers_api(parsed, report["digest"])
    arm64 = report["platforms"]["linux/arm64"]["digest"]
    (listed,) = client.referrers(parsed, arm64)
    assert listed.digest == referrers["linux/arm64"]
    assert listed.annotations == {"in-toto.io/predicate-type": dsse.SPDX_PREDICATE}
    assert tag_schema_tag(arm64) == "sha256-" + arm64.removeprefix("sha256:")

    checked = _verify("attestations", ref, "--public-key", str(public), "--json")
    assert checked.returncode == 0, checked.stderr
    document = json.loads(checked.stdout)
    assert document["valid"] is True
    assert document["subjects"]["linux/arm64"]["valid"] == [referrers["linux/arm64"]]

    # Another key: every signature fails.
    (tmp_path / "other").mkdir()
    _, other_public, _ = _keys(tmp_path / "other")
    wrong = _verify("attestations", ref, "--public-key", str(other_public))
    assert wrong.returncode == 1
    assert "no signature verifies with the public key" in wrong.stderr


def test_failed_verification_is_never_attested(registry: Registry, tmp_path: Path) -> None:
    layers = {
        arch: [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(X86_64))]))]
        for arch in ("amd64", "arm64")
    }
    Pusher(registry).image("attest/bad", "1", layers, "bad")
    ref = f"{registry.address}/attest/bad:1"
    private, public, _ = _keys(tmp_path)
    result = _verify(ref, "--deep", "--attest", "--key", str(private))
    assert result.returncode == 1
    assert "attested" not in result.stderr
    checked = _verify("attestations", ref, "--public-key", str(public))
    assert checked.returncode == 1
    assert "linux/arm64: no SBOM attestation refers to" in checked.stderr
    assert "index: no verification attestation refers to" in checked.stderr


def _platforms(ref: str) -> dict[str, Subject]:
    """The platform manifests of ``ref``'s index as subjects, by architecture."""
    reader = RegistryClient(CredentialResolver(use_gcp=False, environ={}))
    index = json.loads(reader.get_manifest(parse_reference(ref), "1").data)
    return {
        entry["platform"]["architecture"]: Subject(OCI_MANIFEST, entry["digest"], entry["size"])
        for entry in index["manifests"]
    }


def test_tampered_wrong_subject_and_missing_platform_fail(
    registry: Registry, tmp_path: Path
) -> None:
    private, public, key = _keys(tmp_path)
    signer, keyid = dsse.local_signer(key), dsse.key_id(key.public_key())
    client = _artifacts()

    # A tampered envelope: a validly signed one with one payload byte changed.
    ref = _push(registry, "attest/forged")
    assert _verify(ref, "--deep", "--attest", "--key", str(private)).returncode == 0
    amd64 = _platforms(ref)["amd64"]
    payload = dsse.statement([("x", amd64.digest)], dsse.SPDX_PREDICATE, {"spdxVersion": "x"})
    envelope = json.loads(dsse.envelope(payload, signer, keyid))
    envelope["payload"] = base64.b64encode(payload.replace(b'"x"', b'"y"')).decode()
    client.attach(parse_reference(ref), amd64, json.dumps(envelope).encode(), dsse.SPDX_PREDICATE)
    tampered = _verify("attestations", ref, "--public-key", str(public))
    assert tampered.returncode == 1
    assert "linux/amd64: attestation" in tampered.stderr
    assert "no signature verifies with the public key" in tampered.stderr

    # A correctly signed statement about the arm64 digest, attached to the amd64 manifest.
    ref = _push(registry, "attest/subject")
    assert _verify(ref, "--deep", "--attest", "--key", str(private)).returncode == 0
    subjects = _platforms(ref)
    about_arm64 = dsse.statement([("x", subjects["arm64"].digest)], dsse.SPDX_PREDICATE, {})
    envelope = dsse.envelope(about_arm64, signer, keyid)
    client.attach(parse_reference(ref), subjects["amd64"], envelope, dsse.SPDX_PREDICATE)
    wrong_subject = _verify("attestations", ref, "--public-key", str(public))
    assert wrong_subject.returncode == 1
    assert f"the signed statement is about {subjects['arm64'].digest}" in wrong_subject.stderr

    # A platform never attested: the index and amd64 are, arm64 is not.
    ref = _push(registry, "attest/partial")
    subjects = _platforms(ref)
    statement = dsse.statement([("x", subjects["amd64"].digest)], dsse.SPDX_PREDICATE, {})
    envelope = dsse.envelope(statement, signer, keyid)
    client.attach(parse_reference(ref), subjects["amd64"], envelope, dsse.SPDX_PREDICATE)
    missing = _verify("attestations", ref, "--public-key", str(public), "--json")
    assert missing.returncode == 1
    report = json.loads(missing.stdout)
    assert report["subjects"]["linux/amd64"]["valid"] != []
    assert report["subjects"]["linux/arm64"]["valid"] == []
    assert "linux/arm64: no SBOM attestation refers to" in missing.stderr


@pytest.mark.docker
def test_per_platform_candidates_joined_by_imagetools_are_attested(
    registry: Registry, buildx_build: BuildxBuild, busybox_base: str, tmp_path: Path
) -> None:
    """The perPlatform flow with the real toolchain: one single-platform buildx image per
    platform, each verified and attested; `imagetools create` joins them (what the Index does);
    `attest-index` attests the joined index on distribution 2.8 (tag schema), and `verify
    attestations` on the tag passes."""
    private, public, _ = _keys(tmp_path)
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_base}\n")
    repository = f"{registry.address}/attest/joined"
    candidates, manifests = [], {}
    for platform in ("linux/amd64", "linux/arm64"):
        arch = platform.split("/")[1]
        digest = buildx_build(context, f"{repository}:candidate-{arch}", (platform,))
        verified = _verify(
            f"{repository}@{digest}",
            *("--deep", "--allow", "/opt/cross/*", "--platform", platform, "--json"),
            *("--attest", "--key", str(private)),
        )
        assert verified.returncode == 0, verified.stderr
        candidates.append(digest)
        manifests[platform] = json.loads(verified.stdout)["platforms"][platform]["digest"]
    joined = subprocess.run(
        [
            *("docker", "buildx", "imagetools", "create", "--tag", f"{repository}:v1"),
            *(f"{repository}@{digest}" for digest in candidates),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert joined.returncode == 0, joined.stderr
    reader = RegistryClient(CredentialResolver(use_gcp=False, environ={}))
    index = sha256_digest(reader.get_manifest(parse_reference(f"{repository}:v1"), "v1").data)
    result = _verify(
        "attest-index",
        f"{repository}@{index}",
        *(f"--platform-digest={platform}={digest}" for platform, digest in manifests.items()),
        *(f"--candidate={digest}" for digest in candidates),
        *("--key", str(private), "--json"),
    )
    assert result.returncode == 0, result.stderr
    assert not _artifacts().has_referrers_api(parse_reference(f"{repository}:v1"), index)
    checked = _verify("attestations", f"{repository}:v1", "--public-key", str(public))
    assert checked.returncode == 0, checked.stderr
