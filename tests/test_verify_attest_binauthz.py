"""The Binary Authorization attestation: the simple-signing payload byte for byte, the index's
children checked first, and the occurrence created once over loopback fakes of Cloud KMS and
Container Analysis (google-auth's client, bearer token checked)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tests.cli_help import help_of
from tests.gcp_fakes import (
    NAME,
    TOKEN,
    FakeContainerAnalysis,
    FakeKms,
    application_default_credentials,
    authorized_http,
    start_fake_container_analysis,
    start_fake_kms,
)
from tests.hostile_registry import OCI_INDEX, HostileRegistry
from tests.integration.loopbackserver import address_of, serve, shut_down
from tests.integration.registrypush import Pusher
from tests.referrers_stub import ReferrersRegistry
from tests.test_verify_cli import run
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify.attest import binauthz
from verify.attest.binauthz import (
    ContainerAnalysis,
    OccurrenceError,
    attest_digest,
    check_children,
    resource_uri,
    simple_signing_payload,
)
from verify.attest.kms import KmsKey
from verify.auth import GCP_USERNAME, CredentialResolver
from verify.digests import sha256_digest
from verify.reference import parse_reference
from verify.registry import RegistryClient

REPOSITORY = "europe-west1-docker.pkg.dev/shop-123/online-boutique/frontend"
DIGEST = "sha256:" + "e" * 64
NOTE = "projects/shop-123/notes/boutique-verified"


def test_simple_signing_payload_bytes() -> None:
    assert simple_signing_payload(REPOSITORY, DIGEST) == (
        b'{"critical":{"identity":{"docker-reference":"' + REPOSITORY.encode() + b'"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"Google cloud binauthz container signature"}}'
    )
    assert resource_uri(REPOSITORY, DIGEST) == f"https://{REPOSITORY}@{DIGEST}"


@pytest.fixture
def services() -> Iterator[tuple[ContainerAnalysis, KmsKey]]:
    kms_server, analysis_server = start_fake_kms(), start_fake_container_analysis()
    http = authorized_http()
    yield (
        ContainerAnalysis(http, "shop-123", endpoint=f"http://{address_of(analysis_server)}"),
        KmsKey(http, NAME, endpoint=f"http://{address_of(kms_server)}"),
    )
    shut_down(kms_server)
    shut_down(analysis_server)


def signed_payload(occurrence: dict[str, object]) -> bytes:
    """The occurrence's payload, once its one signature is checked: by the KMS fake's key, over
    the payload, naming the key version."""
    attestation = occurrence["attestation"]
    assert isinstance(attestation, dict)
    payload = base64.b64decode(attestation["serializedPayload"])
    (signature,) = attestation["signatures"]
    assert signature["publicKeyId"] == f"//cloudkms.googleapis.com/v1/{NAME}"
    FakeKms.key.public_key().verify(
        base64.b64decode(signature["signature"]),
        hashlib.sha256(payload).digest(),
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )
    return payload


def test_occurrence_is_created_once_and_signed_over_the_payload(
    services: tuple[ContainerAnalysis, KmsKey],
) -> None:
    analysis, key = services
    # Other images' occurrences fill the first pages: the lookup must page through them.
    for number in range(3):
        FakeContainerAnalysis.occurrences.append(
            {
                "resourceUri": resource_uri(REPOSITORY, DIGEST),
                "noteName": f"projects/x/notes/{number}",
            }
        )
    name, created = attest_digest(analysis, key, NOTE, REPOSITORY, DIGEST)
    assert created and name == "projects/shop-123/occurrences/4"
    payload = signed_payload(FakeContainerAnalysis.occurrences[-1])
    assert payload == simple_signing_payload(REPOSITORY, DIGEST)
    # A re-run finds it and signs nothing.
    signed_before = [line for line in FakeKms.seen if line.startswith("POST")]
    assert attest_digest(analysis, key, NOTE, REPOSITORY, DIGEST) == (name, False)
    assert [line for line in FakeKms.seen if line.startswith("POST")] == signed_before
    assert len(FakeContainerAnalysis.occurrences) == 4


def test_children_must_be_exactly_the_verified_manifests() -> None:
    stub = ReferrersRegistry()
    try:
        layers = {
            arch: [gzip_bytes(tar_bytes([Entry("bin/app", elf_header(machine))]))]
            for arch, machine in (("amd64", X86_64), ("arm64", AARCH64))
        }
        Pusher(stub).image("shop/app", "1", layers, "app")  # type: ignore[arg-type]  # duck-typed
        client = RegistryClient(CredentialResolver(use_gcp=False, environ={}))
        tagged = parse_reference(f"{stub.address}/shop/app:1")
        index_data = client.get_manifest(tagged, "1").data
        index = json.loads(index_data)
        digest = "sha256:" + hashlib.sha256(index_data).hexdigest()
        ref = parse_reference(f"{stub.address}/shop/app@{digest}")
        proved = {f"linux/{e['platform']['architecture']}": e["digest"] for e in index["manifests"]}
        assert check_children(client, ref, proved) == []
        only_arm64 = {"linux/arm64": proved["linux/arm64"]}
        (problem,) = check_children(client, ref, only_arm64)
        assert "the verification proved" in problem
    finally:
        stub.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["r.example.com/app:1", "--note", NOTE, "--kms", NAME], "give the verified digest"),
        ([f"r.example.com/app@{DIGEST}", "--note", "notes/x", "--kms", NAME], "projects/P/notes/N"),
        ([f"r.example.com/app@{DIGEST}", "--note", NOTE, "--kms", "k"], "--kms 'k': expected"),
        (
            [f"r.example.com/app@{DIGEST}", "--note", NOTE, "--kms", NAME],
            "--platform-digest: give every verified PLATFORM=DIGEST",
        ),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = run("binauthz", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_the_occurrence_is_on_the_images_resource_uri(
    services: tuple[ContainerAnalysis, KmsKey],
) -> None:
    analysis, key = services
    attest_digest(analysis, key, NOTE, REPOSITORY, DIGEST)
    (occurrence,) = FakeContainerAnalysis.occurrences
    assert occurrence["resourceUri"] == f"https://{REPOSITORY}@{DIGEST}"
    assert occurrence["noteName"] == NOTE


class _Recording(FakeContainerAnalysis):
    """Records each GET's path; ``endless`` answers every page with another page token; a
    create answers an occurrence whose name is ``created_name``."""

    paths: ClassVar[list[str]] = []
    endless: ClassVar[bool] = False
    created_name: ClassVar[object] = None

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.endless:
            self._answer({"occurrences": [], "nextPageToken": "more"})
            return
        super().do_GET()

    def do_POST(self) -> None:
        self._answer({**self._request(), "name": self.created_name})


@pytest.fixture
def recording() -> Iterator[str]:
    """The address of a fresh _Recording server."""
    FakeContainerAnalysis.occurrences.clear()
    _Recording.paths.clear()
    _Recording.endless, _Recording.created_name = False, None
    server = serve(_Recording)
    yield address_of(server)
    shut_down(server)
    FakeContainerAnalysis.status = 200


def test_the_lookup_asks_for_100_occurrences_a_page_under_the_endpoints_path(
    recording: str,
) -> None:
    # rstrip takes characters, not a suffix: a base path ending in "X/" keeps its X.
    analysis = ContainerAnalysis(authorized_http(), "shop-123", endpoint=f"http://{recording}/BOX/")
    uri = resource_uri(REPOSITORY, DIGEST)
    assert analysis.find(NOTE, uri) is None
    (path,) = _Recording.paths
    assert urlsplit(path).path == "/BOX/v1/projects/shop-123/occurrences"
    assert parse_qs(urlsplit(path).query) == {
        "filter": [f'resourceUrl="{uri}" AND kind="ATTESTATION"'],
        "pageSize": ["100"],
    }


def test_the_lookup_stops_after_20_pages(recording: str) -> None:
    _Recording.endless = True
    analysis = ContainerAnalysis(authorized_http(), "shop-123", endpoint=f"http://{recording}")
    uri = resource_uri(REPOSITORY, DIGEST)
    with pytest.raises(OccurrenceError) as error:
        analysis.find(NOTE, uri)
    assert str(error.value) == f"more than 20 pages of occurrences for {uri}"
    assert len(_Recording.paths) == 20


def test_a_refusal_names_container_analysis_and_its_answer(recording: str) -> None:
    FakeContainerAnalysis.status = 403
    analysis = ContainerAnalysis(authorized_http(), "shop-123", endpoint=f"http://{recording}")
    with pytest.raises(OccurrenceError) as error:
        analysis.find(NOTE, resource_uri(REPOSITORY, DIGEST))
    assert str(error.value) == 'Container Analysis answered HTTP 403 {"occurrences": []}'


@pytest.mark.parametrize("name", ["", 7, None])
def test_an_occurrence_created_without_a_name_is_an_error(recording: str, name: object) -> None:
    _Recording.created_name = name
    analysis = ContainerAnalysis(authorized_http(), "shop-123", endpoint=f"http://{recording}")
    uri = resource_uri(REPOSITORY, DIGEST)
    with pytest.raises(OccurrenceError) as error:
        analysis.create(NOTE, uri, b"payload", b"signature", NAME)
    assert str(error.value) == "Container Analysis created an occurrence without a name"


# `python -m verify binauthz` in-process: the index read from a loopback registry, then the
# occurrence created through the KMS and Container Analysis fakes with Application Default
# Credentials from a loopback token URI.


@dataclass(frozen=True)
class Published:
    """An index a registry serves and the manifests its verification proved."""

    registry: HostileRegistry
    repository: str
    """``host:port/shop/app``."""
    digest: str
    proved: dict[str, str]

    def argv(self, platform_digests: dict[str, str], *options: str) -> list[str]:
        pairs = [f"--platform-digest={platform}={d}" for platform, d in platform_digests.items()]
        return [f"{self.repository}@{self.digest}", "--note", NOTE, "--kms", NAME, *pairs, *options]


def publish(registry: HostileRegistry) -> Published:
    image = registry.image("shop/app", "1", {"amd64": [b"amd64 layer"], "arm64": [b"arm64 layer"]})
    digest = sha256_digest(image.index)
    registry.put(f"/v2/shop/app/manifests/{digest}", image.index, OCI_INDEX)
    proved = {f"linux/{arch}": sha256_digest(data) for arch, data in image.manifests.items()}
    return Published(registry, f"{registry.address}/shop/app", digest, proved)


@pytest.fixture
def google_apis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The KMS and Container Analysis fakes in place of Google's endpoints; ADC from a
    service-account key whose loopback token URI answers the token the fakes accept; no
    registry credentials in the environment or in Docker's config."""
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    kms_server, analysis_server = start_fake_kms(), start_fake_container_analysis()
    monkeypatch.setattr(
        binauthz, "KmsKey", partial(KmsKey, endpoint=f"http://{address_of(kms_server)}")
    )
    monkeypatch.setattr(
        binauthz,
        "ContainerAnalysis",
        partial(ContainerAnalysis, endpoint=f"http://{address_of(analysis_server)}"),
    )
    try:
        with application_default_credentials(tmp_path, TOKEN, monkeypatch):
            yield
    finally:
        shut_down(kms_server)
        shut_down(analysis_server)


def test_main_attests_the_verified_index_once_reading_the_registry_with_adc(
    google_apis: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Artifact Registry's login: the user oauth2accesstoken with the ADC access token.
    registry = HostileRegistry(basic=(GCP_USERNAME, TOKEN)).start()
    try:
        published = publish(registry)
        argv = published.argv(published.proved, "--gcp")
        assert binauthz.main([*argv, "--json"]) == 0
        created = capsys.readouterr()
        # A re-run finds the occurrence, signs nothing and says so.
        assert binauthz.main(argv) == 0
        reused = capsys.readouterr()
    finally:
        registry.stop()
    name = "projects/shop-123/occurrences/1"
    assert (created.err, json.loads(created.out)) == ("", {"occurrence": name, "created": True})
    assert (reused.err, reused.out) == ("", f"reused {name}\n")
    login = "Basic " + base64.b64encode(f"{GCP_USERNAME}:{TOKEN}".encode()).decode()
    assert set(registry.authorizations()) == {login}
    (occurrence,) = FakeContainerAnalysis.occurrences
    assert occurrence["resourceUri"] == f"https://{published.repository}@{published.digest}"
    assert occurrence["noteName"] == NOTE
    payload = signed_payload(occurrence)
    assert payload == simple_signing_payload(published.repository, published.digest)
    assert sum(line.startswith(f"POST /v1/{NAME}:asymmetricSign") for line in FakeKms.seen) == 1


def test_main_refuses_an_index_other_than_the_verified_one_before_signing(
    google_apis: None, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = HostileRegistry().start()
    try:
        published = publish(registry)
        only_arm64 = {"linux/arm64": published.proved["linux/arm64"]}
        assert binauthz.main(published.argv(only_arm64)) == 1
    finally:
        registry.stop()
    ref = f"{published.repository}@{published.digest}"
    assert capsys.readouterr() == (
        "",
        f"verify binauthz: {ref}: the index lists {published.proved}, "
        f"the verification proved {only_arm64}\n",
    )
    assert FakeKms.seen == []
    assert FakeContainerAnalysis.occurrences == []


def test_main_refuses_half_set_registry_credentials_before_any_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = HostileRegistry().start()
    try:
        published = publish(registry)
        monkeypatch.setenv("REGISTRY_USERNAME", "ci")
        monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
        assert binauthz.main(published.argv(published.proved)) == 2
    finally:
        registry.stop()
    assert capsys.readouterr() == (
        "",
        "verify binauthz: REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not; "
        "set both or neither\n",
    )
    assert registry.seen == []


def test_main_prints_created_then_reused_with_the_occurrences_name(
    google_apis: None, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = HostileRegistry().start()
    try:
        published = publish(registry)
        argv = published.argv(published.proved)
        assert binauthz.main(argv) == 0
        created = capsys.readouterr()
        assert binauthz.main(argv) == 0
        reused = capsys.readouterr()
    finally:
        registry.stop()
    name = "projects/shop-123/occurrences/1"
    assert (created.out, created.err) == (f"created {name}\n", "")
    assert (reused.out, reused.err) == (f"reused {name}\n", "")


def test_main_reports_a_container_analysis_refusal_on_stderr_before_signing(
    google_apis: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeContainerAnalysis, "status", 403)
    registry = HostileRegistry().start()
    try:
        published = publish(registry)
        assert binauthz.main(published.argv(published.proved)) == 2
    finally:
        registry.stop()
    ref = f"{published.repository}@{published.digest}"
    assert capsys.readouterr() == (
        "",
        f'verify binauthz: {ref}: Container Analysis answered HTTP 403 {{"occurrences": []}}\n',
    )
    assert not any(line.startswith("POST") for line in FakeKms.seen)
    assert FakeContainerAnalysis.occurrences == []


BINAUTHZ_USAGE = """\
usage: python -m verify binauthz [-h] --note NOTE --kms KEY_VERSION
                                 [--platform-digest PLATFORM=DIGEST] [--json]
                                 [--gcp]
                                 REF@DIGEST
"""


def test_main_help_is_the_whole_binauthz_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert help_of(binauthz.main, capsys, monkeypatch) == (
        BINAUTHZ_USAGE
        + """
Create (once) the Binary Authorization attestation of a verified digest.

positional arguments:
  REF@DIGEST            host/repository@sha256:<hex>

options:
  -h, --help            show this help message and exit
  --note NOTE           projects/P/notes/N (the attestor's note)
  --kms KEY_VERSION     the attestor's key
  --platform-digest PLATFORM=DIGEST
                        a verified manifest; the index must list exactly these
                        (repeatable)
  --json                print {occurrence, created}
  --gcp                 read the registry with ADC
"""
    )


@pytest.mark.parametrize(
    ("given", "missing"), [(["--kms", NAME], "--note"), (["--note", NOTE], "--kms")]
)
def test_main_requires_note_and_kms(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: list[str],
    missing: str,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_:
        binauthz.main([f"r.example.com/app@{DIGEST}", *given])
    assert exit_.value.code == 2
    assert capsys.readouterr() == (
        "",
        BINAUTHZ_USAGE
        + f"python -m verify binauthz: error: the following arguments are required: {missing}\n",
    )
