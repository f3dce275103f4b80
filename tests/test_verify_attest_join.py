"""``verify attest-index``: the verification attestation of an index joined from verified
single-platform candidates (strategy perPlatform), against an in-process registry with the
referrers API. Each candidate is verified and attested by the real tool first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.registrypush import Pusher, digest_of
from tests.referrers_stub import ReferrersRegistry
from tests.test_verify_cli import run
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify.attest import dsse
from verify.attest.join import Refused, joined_result
from verify.attest.oras import Registry as ArtifactRegistry
from verify.auth import CredentialResolver
from verify.reference import parse_reference
from verify.registry import RegistryClient

ARCHES = {"amd64": X86_64, "arm64": AARCH64}


@dataclass(frozen=True)
class Joined:
    """Two attested candidates and the index joining their manifests (tag v1)."""

    repository: str
    index: str
    candidates: dict[str, str]
    """architecture -> candidate index digest."""
    manifests: dict[str, str]
    """platform -> manifest digest."""


@pytest.fixture
def stub() -> Iterator[ReferrersRegistry]:
    registry = ReferrersRegistry()
    yield registry
    registry.stop()


def _client() -> RegistryClient:
    return RegistryClient(CredentialResolver(use_gcp=False, environ={}))


def _join(
    stub: ReferrersRegistry, key: Path, name: str = "shop/app", attest: bool = True
) -> Joined:
    pusher, client = Pusher(stub), _client()  # type: ignore[arg-type]  # duck-typed
    repository = f"{stub.address}/{name}"
    candidates, entries = {}, []
    for arch, machine in ARCHES.items():
        layers = {arch: [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(machine))]))]}
        # The label keeps digests apart between repositories (the stub stores by digest).
        pusher.image(name, f"candidate-{arch}", layers, f"{name} {arch}")
        tag = f"candidate-{arch}"
        data = client.get_manifest(parse_reference(f"{repository}:{tag}"), tag).data
        candidates[arch] = digest_of(data)
        entries += json.loads(data)["manifests"]
        if attest:
            flags = ("--attest", "--key", str(key), "--create-key")
            verified = run(
                f"{repository}@{candidates[arch]}", "--deep", "--platform", f"linux/{arch}", *flags
            )
            assert verified.returncode == 0, verified.stderr
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    joined = pusher.manifest(name, "v1", {**index, "manifests": entries})
    manifests = {f"linux/{e['platform']['architecture']}": e["digest"] for e in entries}
    return Joined(repository, joined, candidates, manifests)


def _attest_index(joined: Joined, key: Path, *extra: str) -> tuple[int, str, str]:
    pairs = [f"--platform-digest={p}={d}" for p, d in joined.manifests.items()]
    candidates = [f"--candidate={digest}" for digest in joined.candidates.values()]
    result = run(
        "attest-index",
        f"{joined.repository}@{joined.index}",
        *pairs,
        *candidates,
        "--key",
        str(key),
        "--json",
        *extra,
    )
    return result.returncode, result.stdout, result.stderr


def test_the_joined_index_is_attested_from_its_candidates_statements(
    stub: ReferrersRegistry, tmp_path: Path
) -> None:
    key = tmp_path / "key.pem"
    joined = _join(stub, key)
    code, stdout, stderr = _attest_index(joined, key)
    assert code == 0, stderr
    referrer = json.loads(stdout)["referrers"]["index"]
    # The tag's index now has a verification attestation, its manifests their SBOMs (pushed by
    # the candidates' verifications): `verify attestations` on the tag passes.
    checked = run("attestations", f"{joined.repository}:v1", "--public-key", f"{key}.pub")
    assert checked.returncode == 0, checked.stderr

    ref = parse_reference(f"{joined.repository}@{joined.index}")
    artifacts = ArtifactRegistry(_client())
    manifest = json.loads(artifacts.get_manifest(ref, referrer))
    envelope = artifacts.get_envelope(ref, manifest["layers"][0]["digest"])
    statement = dsse.open_envelope(envelope, dsse.load_public_key(Path(f"{key}.pub")))
    assert statement.subjects == {joined.index: joined.repository}
    predicate = statement.predicate
    assert predicate["result"] == "PASSED"
    assert predicate["passedTests"] == [
        *("platform:linux/amd64", "elf:linux/amd64", "platform:linux/arm64", "elf:linux/arm64")
    ]
    annotations = predicate["configuration"][0]["annotations"]
    assert annotations["joinedFrom"] == list(joined.candidates.values())


def test_nothing_is_signed_unless_the_index_and_every_candidate_check_out(
    stub: ReferrersRegistry, tmp_path: Path
) -> None:
    key = tmp_path / "key.pem"
    joined = _join(stub, key)
    before = [r for r in stub.requests if r[0] == "PUT"]

    # The index lists a manifest the verification did not prove.
    wrong = Joined(
        joined.repository,
        joined.index,
        joined.candidates,
        {**joined.manifests, "linux/arm64": "sha256:" + "0" * 64},
    )
    code, _, stderr = _attest_index(wrong, key)
    assert code == 1
    assert "the verification proved" in stderr

    # A candidate whose statement another key signed.
    other = tmp_path / "other" / "key.pem"
    dsse.ensure_private_key(other)
    code, _, stderr = _attest_index(joined, other)
    assert code == 1
    assert "no signature verifies with the public key" in stderr
    assert [r for r in stub.requests if r[0] == "PUT"] == before

    # Candidates never attested (verified without --attest, or not at all).
    unattested = _join(stub, key, name="shop/unattested", attest=False)
    code, _, stderr = _attest_index(unattested, key)
    assert code == 1
    assert "no verification attestation refers to" in stderr


def test_the_joined_result_is_what_the_candidates_signed() -> None:
    amd64 = {"passedTests": ["platform:linux/amd64", "elf:linux/amd64", "start:linux/amd64"]}
    arm64 = {
        "passedTests": ["platform:linux/arm64", "elf:linux/arm64"],
        "warnedTests": ["start:linux/arm64"],
    }
    platforms = ["linux/amd64", "linux/arm64"]
    result = joined_result(platforms, ["sha256:a", "sha256:b"], [arm64, amd64])
    assert result["result"] == "WARNED"
    assert result["passedTests"] == [
        "platform:linux/amd64",
        "elf:linux/amd64",
        "start:linux/amd64",
        "platform:linux/arm64",
        "elf:linux/arm64",
    ]
    assert result["warnedTests"] == ["start:linux/arm64"]
    # A later statement that says arm64 started supersedes the warning.
    started = {"passedTests": ["start:linux/arm64"]}
    assert joined_result(platforms, [], [arm64, amd64, started])["result"] == "PASSED"
    # Only lists of names count: a string is not read letter by letter.
    odd = {"passedTests": "platform:linux/arm64", "warnedTests": [3, "start:linux/arm64"]}
    with pytest.raises(Refused, match="platform:linux/arm64"):
        joined_result(platforms, [], [amd64, odd])
    # No statement proves arm64's ELF files: refused.
    with pytest.raises(Refused, match="elf:linux/arm64"):
        joined_result(platforms, [], [amd64, {"passedTests": ["platform:linux/arm64"]}])


def test_usage_errors() -> None:
    digest = "sha256:" + "e" * 64
    for args, message in [
        (["127.0.0.1:1/a:1", "--candidate", digest, "--key", "k"], "give the joined index"),
        ([f"127.0.0.1:1/a@{digest}", "--candidate", digest, "--key", "k"], "--platform-digest"),
        (
            [f"127.0.0.1:1/a@{digest}", f"--platform-digest=linux/amd64={digest}", "--key", "k"],
            "--candidate",
        ),
        (
            [
                f"127.0.0.1:1/a@{digest}",
                f"--platform-digest=linux/amd64={digest}",
                "--candidate",
                digest,
            ],
            "exactly one of --key PEM and --kms",
        ),
        (
            [
                f"127.0.0.1:1/a@{digest}",
                f"--platform-digest=linux/amd64={digest}",
                "--candidate",
                "x",
                "--key",
                "k",
            ],
            "--candidate 'x'",
        ),
    ]:
        result = run("attest-index", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, result.stderr
