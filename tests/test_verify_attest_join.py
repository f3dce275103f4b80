"""``verify attest-index``: the verification attestation of an index joined from verified
single-platform candidates (strategy perPlatform), against an in-process registry with the
referrers API. Each candidate is verified and attested by the real tool first."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cli_help import help_of
from tests.hostile_registry import HostileRegistry
from tests.integration.registrypush import Pusher, digest_of
from tests.referrers_stub import ReferrersRegistry
from tests.test_verify_attest import (
    OCI_INDEX,
    anonymous_client,
    attach_statement,
    buildkit_attestation_entry,
    push_index,
    push_platform_manifest,
)
from tests.test_verify_cli import run
from tests.verify_bytes import AARCH64, X86_64, Entry, descriptor, elf_header, gzip_bytes, tar_bytes
from verify.attest import dsse, join
from verify.attest.attach import StartProof
from verify.attest.attach import test_result as predicate_of
from verify.attest.join import Refused, joined_result
from verify.attest.oras import DSSE_ARTIFACT_TYPE, PREDICATE_ANNOTATION, Referrer
from verify.attest.oras import Registry as ArtifactRegistry
from verify.auth import CredentialResolver
from verify.checks import Options
from verify.manifests import OCI_MANIFEST
from verify.platforms import parse_platform
from verify.reference import parse_reference
from verify.registry import RegistryClient
from verify.sbom.documents import TOOL

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


def _arguments(joined: Joined, key: Path, *extra: str) -> list[str]:
    """``attest-index``'s arguments for ``joined``, signed with ``key``, with ``--json``."""
    pairs = [f"--platform-digest={p}={d}" for p, d in joined.manifests.items()]
    candidates = [f"--candidate={digest}" for digest in joined.candidates.values()]
    ref = f"{joined.repository}@{joined.index}"
    return [ref, *pairs, *candidates, "--key", str(key), "--json", *extra]


def _attest_index(joined: Joined, key: Path, *extra: str) -> tuple[int, str, str]:
    result = run("attest-index", *_arguments(joined, key, *extra))
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


# The same checks in process: `join.main` against the in-process registry, the candidates
# attested by the statements `--attest` signs (attach.test_result), pushed by the write side.


def _join_in_process(
    client: RegistryClient,
    address: str,
    key: ec.EllipticCurvePrivateKey,
    starts: dict[str, StartProof] | None = None,
) -> Joined:
    """Two attested single-platform candidates (each with a BuildKit attestation entry, as
    buildx pushes them) and the index joining them (tag v1); ``starts``: a candidate's
    ``--run`` proof by platform."""
    writer = ArtifactRegistry(client)
    ref = parse_reference(f"{address}/shop/app:v1")
    candidates, manifests, entries = {}, {}, []
    for arch in ARCHES:
        platform = f"linux/{arch}"
        entry = push_platform_manifest(writer, ref, arch)
        listed = [entry, buildkit_attestation_entry(str(entry["digest"]))]
        candidate = push_index(writer, ref, listed, f"candidate-{arch}")
        options = Options(platforms=(parse_platform(platform),), deep=True)
        predicate = predicate_of(options, (starts or {}).get(platform))
        attach_statement(writer, ref, candidate, dsse.TEST_RESULT_PREDICATE, predicate, key)
        candidates[arch], manifests[platform] = candidate.digest, str(entry["digest"])
        entries += listed
    joined = push_index(writer, ref, entries, "v1")
    return Joined(f"{address}/shop/app", joined.digest, candidates, manifests)


@pytest.fixture
def no_registry_login(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
TOKEN = "tok-4b1c07"
PUSHER = {"REGISTRY_USERNAME": "ci", "REGISTRY_PASSWORD": "pw-90d2aa"}


def test_in_process_the_joined_index_is_attested_with_the_registrys_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A registry behind a token service: attest-index logs in with REGISTRY_USERNAME and
    REGISTRY_PASSWORD, checks both candidates' statements and signs the joined index's: the
    candidates' passed tests, arm64's skipped start as the one warned test."""
    realm = HostileRegistry().start()
    realm.on("/token", lambda handler: handler.reply(200, json.dumps({"token": TOKEN}).encode()))
    stub = ReferrersRegistry(bearer=(f"{realm.url}/token", TOKEN))
    for name, value in PUSHER.items():
        monkeypatch.setenv(name, value)
    key_path = tmp_path / "key.pem"
    key = dsse.ensure_private_key(key_path)
    client = anonymous_client(PUSHER)
    starts = {
        "linux/amd64": StartProof("tcp:80", passed=("linux/amd64",), skipped=()),
        "linux/arm64": StartProof("tcp:80", passed=(), skipped=("linux/arm64",)),
    }
    try:
        joined = _join_in_process(client, stub.address, key, starts)
        code = join.main(_arguments(joined, key_path))
        captured = capsys.readouterr()
        assert code == 0, captured.err
        referrer = json.loads(captured.out)["referrers"]["index"]
        ref = parse_reference(f"{joined.repository}@{joined.index}")
        artifacts = ArtifactRegistry(client)
        listed = artifacts.referrers(ref, joined.index)
        manifest = json.loads(artifacts.get_manifest(ref, referrer))
        envelope = artifacts.get_envelope(ref, manifest["layers"][0]["digest"])
        index_size = len(client.get_manifest(ref, joined.index).data)
        # --gcp logs in with Application Default Credentials instead, which fail here.
        adc = tmp_path / "no-adc.json"
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        with_gcp = join.main([*_arguments(joined, key_path), "--gcp"])
        gcp_captured = capsys.readouterr()
    finally:
        stub.stop()
        realm.stop()
    assert (with_gcp, gcp_captured.out) == (2, "")
    gcp_failed = f"verify attest-index: {joined.repository}@{joined.index}: --gcp: Application "
    assert gcp_captured.err.startswith(gcp_failed + "Default Credentials failed: "), gcp_captured
    assert str(adc) in gcp_captured.err and gcp_captured.err.count("\n") == 1
    assert captured.out == json.dumps({"referrers": {"index": referrer}}) + "\n"
    assert captured.err == f"verify: attested index: referrer {referrer}\n"
    annotations = {PREDICATE_ANNOTATION: dsse.TEST_RESULT_PREDICATE}
    assert listed == [Referrer(referrer, DSSE_ARTIFACT_TYPE, annotations)]
    # The registry lists referrers itself: no sha256-<hex> tag index was read or written.
    assert not [path for _, path in stub.requests if "/manifests/sha256-" in path]
    subject = {"mediaType": OCI_INDEX, "digest": joined.index, "size": index_size}
    assert manifest["subject"] == subject
    statement = dsse.open_envelope(envelope, key.public_key())
    assert statement.subjects == {joined.index: joined.repository}
    (signature,) = json.loads(envelope)["signatures"]
    assert signature["keyid"] == dsse.key_id(key.public_key())
    assert statement.predicate == {
        "result": "WARNED",
        "configuration": [
            {
                "name": TOOL,
                "uri": f"urn:boutique-multiarch:{TOOL}",
                "annotations": {
                    "platforms": ["linux/amd64", "linux/arm64"],
                    "joinedFrom": [joined.candidates["amd64"], joined.candidates["arm64"]],
                },
            }
        ],
        "passedTests": [
            "platform:linux/amd64",
            "elf:linux/amd64",
            "start:linux/amd64",
            "platform:linux/arm64",
            "elf:linux/arm64",
        ],
        "warnedTests": ["start:linux/arm64"],
        "failedTests": [],
    }
    # Every token request carried the login (the registry answers nothing without a token).
    basic = "Basic " + base64.b64encode(b"ci:pw-90d2aa").decode()
    assert realm.authorizations() and set(realm.authorizations()) == {basic}


def _pushes(stub: ReferrersRegistry) -> list[tuple[str, str]]:
    return [request for request in stub.requests if request[0] in ("POST", "PUT")]


@pytest.fixture
def joined_anonymously(
    stub: ReferrersRegistry, tmp_path: Path, no_registry_login: None
) -> tuple[Joined, Path, RegistryClient]:
    """Attested candidates and their joined index in the anonymous registry, the key file
    that signed them, and a client of that registry."""
    key_path, client = tmp_path / "key.pem", anonymous_client()
    joined = _join_in_process(client, stub.address, dsse.ensure_private_key(key_path))
    return joined, key_path, client


def test_in_process_nothing_is_signed_unless_the_index_and_every_candidate_check_out(
    stub: ReferrersRegistry,
    joined_anonymously: tuple[Joined, Path, RegistryClient],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    joined, key_path, client = joined_anonymously
    key = dsse.load_private_key(key_path)
    writer = ArtifactRegistry(client)
    ref = parse_reference(f"{joined.repository}:v1")
    amd64, arm64 = joined.manifests["linux/amd64"], joined.manifests["linux/arm64"]
    # A candidate listing an arm64 manifest nobody verified.
    rogue_entry = descriptor(OCI_MANIFEST, b'{"rogue": true}', "linux/arm64")
    rogue = push_index(writer, ref, [rogue_entry]).digest
    # A candidate listing only verified manifests, but never attested.
    unattested_entry = {**descriptor(OCI_MANIFEST, b"", "linux/arm64"), "digest": arm64}
    unattested = push_index(writer, ref, [unattested_entry]).digest
    # A candidate whose signed statement proves arm64's platform but not its ELF files.
    unproven = push_index(writer, ref, [unattested_entry, buildkit_attestation_entry(arm64)])
    predicate = {"result": "PASSED", "passedTests": ["platform:linux/arm64"], "failedTests": []}
    attach_statement(writer, ref, unproven, dsse.TEST_RESULT_PREDICATE, predicate, key)
    # A Docker image manifest without its mediaType field: the answer's Content-Type names it.
    bare = json.loads(client.get_manifest(ref, amd64).data)
    del bare["mediaType"]
    docker_manifest = json.dumps(bare).encode()
    writer.put_manifest(ref, digest_of(docker_manifest), docker_manifest, DOCKER_MANIFEST)
    # A candidate with a valid statement, one another key signed and one that failed: refused
    # for both (fail closed), each named.
    amd64_entry = {**descriptor(OCI_MANIFEST, b"", "linux/amd64"), "digest": amd64}
    mixed = push_index(writer, ref, [amd64_entry, buildkit_attestation_entry("sha256:" + "a" * 64)])
    proven = {"result": "PASSED", "passedTests": ["platform:linux/amd64", "elf:linux/amd64"]}
    attach_statement(writer, ref, mixed, dsse.TEST_RESULT_PREDICATE, proven, key)
    other_path = tmp_path / "other.pem"
    other_key = dsse.ensure_private_key(other_path)
    forged = attach_statement(writer, ref, mixed, dsse.TEST_RESULT_PREDICATE, proven, other_key)
    failed = {"result": "FAILED", "failedTests": ["elf:linux/amd64"]}
    failed_statement = attach_statement(writer, ref, mixed, dsse.TEST_RESULT_PREDICATE, failed, key)
    (amd64_statement,) = writer.referrers(ref, joined.candidates["amd64"])
    before = _pushes(stub)

    name = f"{joined.repository}@{joined.index}"
    wrong = {**joined.manifests, "linux/arm64": "sha256:" + "0" * 64}
    for joined_as, key_file, problem in [
        (
            Joined(joined.repository, joined.index, joined.candidates, wrong),
            key_path,
            f"the index lists {joined.manifests}, the verification proved {wrong}",
        ),
        (
            joined,
            other_path,
            f"candidate {joined.candidates['amd64']}: attestation {amd64_statement.digest}: "
            "no signature verifies with the public key",
        ),
        (
            Joined(joined.repository, joined.index, {"amd64": amd64}, joined.manifests),
            key_path,
            f"candidate {amd64} is not an image index ({OCI_MANIFEST})",
        ),
        (
            Joined(
                joined.repository,
                joined.index,
                {"amd64": digest_of(docker_manifest)},
                joined.manifests,
            ),
            key_path,
            f"candidate {digest_of(docker_manifest)} is not an image index ({DOCKER_MANIFEST})",
        ),
        (
            Joined(joined.repository, joined.index, {"amd64": mixed.digest}, joined.manifests),
            key_path,
            f"candidate {mixed.digest}: attestation {forged}: no signature verifies with the "
            f"public key; candidate {mixed.digest}: attestation {failed_statement}: the test "
            "result is 'FAILED' (failed tests: ['elf:linux/amd64']), not passed",
        ),
        (
            Joined(joined.repository, joined.index, {"arm64": rogue}, joined.manifests),
            key_path,
            f"candidate {rogue} lists linux/arm64 {rogue_entry['digest']}, not a verified manifest",
        ),
        (
            Joined(joined.repository, joined.index, {"arm64": unattested}, joined.manifests),
            key_path,
            f"candidate {unattested}: no verification attestation refers to {unattested}",
        ),
        (
            Joined(
                joined.repository,
                joined.index,
                {"amd64": joined.candidates["amd64"], "arm64": unproven.digest},
                joined.manifests,
            ),
            key_path,
            "no signed statement of a candidate says platform:linux/arm64 and elf:linux/arm64",
        ),
    ]:
        assert join.main(_arguments(joined_as, key_file)) == 1, problem
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", f"verify attest-index: {name}: {problem}\n")
    assert _pushes(stub) == before


def test_in_process_usage_errors_exit_2_with_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_registry_login: None
) -> None:
    digest = "sha256:" + "e" * 64
    ref = f"127.0.0.1:1/a@{digest}"
    pair = f"--platform-digest=linux/amd64={digest}"
    missing = tmp_path / "missing.pem"
    kms = "projects/x/keys/1"
    for args, message in [
        (
            ["127.0.0.1:1/a:1", pair, "--candidate", digest, "--key", "k"],
            "127.0.0.1:1/a:1: give the joined index's digest (REF@sha256:…)",
        ),
        (
            [ref, "--candidate", digest, "--key", "k"],
            "--platform-digest: give every verified PLATFORM=DIGEST",
        ),
        (
            [ref, "--platform-digest=linux/amd64", "--candidate", digest, "--key", "k"],
            "--platform-digest 'linux/amd64': expected PLATFORM=sha256:<hex>",
        ),
        (
            [ref, f"--platform-digest=linux/amd64={digest.upper()}", "--candidate", digest],
            f"--platform-digest 'linux/amd64={digest.upper()}': expected PLATFORM=sha256:<hex>",
        ),
        (
            [ref, f"--platform-digest=linux/amd64={digest}0", "--candidate", digest],
            f"--platform-digest 'linux/amd64={digest}0': expected PLATFORM=sha256:<hex>",
        ),
        (
            [ref, f"--platform-digest=linux/amd64=={digest}", "--candidate", digest],
            f"--platform-digest 'linux/amd64=={digest}': expected PLATFORM=sha256:<hex>",
        ),
        ([ref, pair, "--key", "k"], "--candidate: give every verified candidate index's digest"),
        ([ref, pair, "--candidate", "x", "--key", "k"], "--candidate 'x': expected sha256:<hex>"),
        (
            [ref, pair, "--candidate", digest],
            "give exactly one of --key PEM and --kms KEY_VERSION",
        ),
        (
            [ref, pair, "--candidate", digest, "--key", "k", "--kms", kms],
            "give exactly one of --key PEM and --kms KEY_VERSION",
        ),
        (
            [ref, pair, "--candidate", digest, "--key", str(missing)],
            f"--key {missing}: {missing}: not a readable unencrypted PEM private key "
            f"([Errno 2] No such file or directory: '{missing}')",
        ),
        (
            [ref, pair, "--candidate", digest, "--kms", kms],
            f"--kms {kms!r}: expected "
            "projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N",
        ),
    ]:
        assert join.main(args) == 2, args
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", f"verify attest-index: {message}\n"), args


def test_in_process_a_registry_answer_that_is_not_the_candidate_is_exit_2(
    joined_anonymously: tuple[Joined, Path, RegistryClient], capsys: pytest.CaptureFixture[str]
) -> None:
    joined, key_path, client = joined_anonymously
    ref = parse_reference(f"{joined.repository}:v1")
    # The registry answers another document for this digest.
    forged = "sha256:" + "e" * 64
    candidate = client.get_manifest(ref, joined.candidates["amd64"]).data
    ArtifactRegistry(client).put_manifest(ref, forged, candidate, OCI_INDEX)
    missing = "sha256:" + "f" * 64
    name = f"{joined.repository}@{joined.index}"
    for given, problem in [
        (missing, f"manifest {missing} not found (HTTP 404: NOT_FOUND)"),
        (forged, f"candidate: content digest is {digest_of(candidate)}, expected {forged}"),
    ]:
        only = Joined(joined.repository, joined.index, {"amd64": given}, joined.manifests)
        assert join.main(_arguments(only, key_path)) == 2
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", f"verify attest-index: {name}: {problem}\n")


def test_in_process_a_registry_answer_that_is_not_the_joined_index_is_refused(
    joined_anonymously: tuple[Joined, Path, RegistryClient], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the registry answers for the joined index's digest is checked before anything
    else: other bytes are a registry error (exit 2), an image manifest (its type from the
    answer's Content-Type when it has no mediaType field) is no index to attest (exit 1)."""
    joined, key_path, client = joined_anonymously
    ref = parse_reference(f"{joined.repository}:v1")
    writer = ArtifactRegistry(client)
    forged = "sha256:" + "e" * 64
    index = client.get_manifest(ref, joined.index).data
    writer.put_manifest(ref, forged, index, OCI_INDEX)
    bare = json.loads(client.get_manifest(ref, joined.manifests["linux/amd64"]).data)
    del bare["mediaType"]
    docker_manifest = json.dumps(bare).encode()
    image = digest_of(docker_manifest)
    writer.put_manifest(ref, image, docker_manifest, DOCKER_MANIFEST)
    for given, code, problem in [
        (forged, 2, f"index: content digest is {digest_of(index)}, expected {forged}"),
        (image, 1, f"{image} is not an image index ({DOCKER_MANIFEST})"),
    ]:
        named = Joined(joined.repository, given, joined.candidates, joined.manifests)
        assert join.main(_arguments(named, key_path)) == code
        captured = capsys.readouterr()
        name = f"{joined.repository}@{given}"
        assert (captured.out, captured.err) == ("", f"verify attest-index: {name}: {problem}\n")


def test_a_signed_predicate_that_is_no_object_lists_no_test() -> None:
    amd64 = {"passedTests": ["platform:linux/amd64", "elf:linux/amd64"]}
    for odd in (["platform:linux/arm64", "elf:linux/arm64"], "elf:linux/arm64", None):
        with pytest.raises(Refused) as refused:
            joined_result(["linux/amd64", "linux/arm64"], [], [amd64, odd])
        assert str(refused.value) == (
            "no signed statement of a candidate says platform:linux/arm64 and elf:linux/arm64"
        )


def test_attest_index_help_names_every_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert help_of(join.main, capsys, monkeypatch) == (
        "usage: python -m verify attest-index [-h] [--platform-digest PLATFORM=DIGEST]\n"
        "                                     [--candidate DIGEST] [--key PEM]\n"
        "                                     [--kms KEY_VERSION] [--json] [--gcp]\n"
        "                                     REF@DIGEST\n"
        "\n"
        "Sign the verification attestation of an index joined from verified single-\n"
        "platform candidates.\n"
        "\n"
        "positional arguments:\n"
        "  REF@DIGEST            host/repository@sha256:<hex>\n"
        "\n"
        "options:\n"
        "  -h, --help            show this help message and exit\n"
        "  --platform-digest PLATFORM=DIGEST\n"
        "                        a verified manifest; the index must list exactly these\n"
        "                        (repeatable)\n"
        "  --candidate DIGEST    a verified, attested candidate index the manifests\n"
        "                        come from (repeatable)\n"
        "  --key PEM             ECDSA P-256 private key (PEM)\n"
        "  --kms KEY_VERSION     or a Cloud KMS key version\n"
        '  --json                print {"referrers": {"index": DIGEST}}\n'
        "  --gcp                 read the registry with ADC\n"
    )
