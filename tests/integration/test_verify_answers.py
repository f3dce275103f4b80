"""The verifier's verdicts on hand-made images in a real registry, run in-process.

Each image is pushed to Debian's docker-registry over its HTTP API (no Docker Engine needed):
gzip layers of crafted ELF headers, image configs and an OCI index. Registry answers a real
registry never gives (a 429, a lying Docker-Content-Digest header, an oversized index) come from
the fault proxy in front of it. `verify.cli.main` runs in this process, so mutation testing sees
which of these tests reach which function (docs/mutation.md). The assertions are on exit codes,
JSON documents and the digests or counts named in stderr, not on the wording of messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RegistryFactory
from tests.integration.dockerenv import Registry
from tests.integration.faultproxy import FaultProxy
from tests.integration.registrycopy import manifest_digest, push_blob, put_manifest
from tests.integration.test_verify_registry import _service_account_key as service_account_key
from tests.integration.tokenserver import TokenServer
from tests.verify_bytes import AARCH64, X86_64, Entry, elf_header, gzip_bytes, tar_bytes
from verify import cli
from verify.auth import CredentialResolver, docker_config_credentials
from verify.elf import machine_name
from verify.manifests import MAX_DOCUMENT_BYTES, OCI_INDEX, OCI_MANIFEST

pytestmark = pytest.mark.registry

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MACHINES = {"amd64": X86_64, "arm64": AARCH64}


@dataclass(frozen=True)
class Verdict:
    """What one in-process ``python -m verify`` run gave."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def document(self) -> dict[str, Any]:
        parsed = json.loads(self.stdout)
        assert isinstance(parsed, dict), self.stdout
        return parsed


Verify = Callable[..., Verdict]


@pytest.fixture
def verify(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Verify:
    """Run the CLI with no credentials from the environment or a Docker config."""
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))

    def run(*args: str) -> Verdict:
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return Verdict(code, out, err)

    return run


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    running = FaultProxy(upstream=registry.address).start()
    yield running
    running.stop()


def descriptor(media_type: str, data: bytes, platform: str | None = None) -> dict[str, object]:
    found: dict[str, object] = {
        "mediaType": media_type,
        "digest": manifest_digest(data),
        "size": len(data),
    }
    if platform:
        os_name, architecture = platform.split("/")
        found["platform"] = {"os": os_name, "architecture": architecture}
    return found


def push_image(registry: Registry, repository: str, architecture: str, binaries: int = 1) -> bytes:
    """An image manifest for linux/<architecture> whose layer holds ``binaries`` ELF files
    built for ``MACHINES[architecture]``, its config saying ``architecture``; returns its bytes.
    """
    return push_manifest(registry, repository, architecture, architecture, binaries)


def push_manifest(
    registry: Registry, repository: str, architecture: str, elf_for: str, binaries: int = 1
) -> bytes:
    """Like :func:`push_image`, with the ELF files built for ``elf_for`` instead."""
    entries = [
        Entry(f"usr/bin/tool-{number:02d}", elf_header(MACHINES[elf_for]) + bytes([number]))
        for number in range(binaries)
    ]
    return push_layer_image(registry, repository, architecture, gzip_bytes(tar_bytes(entries)))


def push_layer_image(registry: Registry, repository: str, architecture: str, layer: bytes) -> bytes:
    """An image manifest of one layer, its config saying linux/<architecture>; its bytes."""
    config = json.dumps({"os": "linux", "architecture": architecture, "rootfs": {}}).encode()
    push_blob(registry, repository, layer)
    push_blob(registry, repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        }
    ).encode()
    put_manifest(registry, repository, manifest_digest(manifest), manifest, OCI_MANIFEST)
    return manifest


def index_of(entries: list[tuple[str, bytes]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, body, platform) for platform, body in entries],
        }
    ).encode()


def push_index(
    registry: Registry, repository: str, tag: str, entries: list[tuple[str, bytes]]
) -> str:
    """PUT an index of ``(platform, manifest bytes)`` as ``tag``; returns its reference."""
    put_manifest(registry, repository, tag, index_of(entries), OCI_INDEX)
    return f"{registry.address}/{repository}:{tag}"


def good_image(registry: Registry, repository: str) -> tuple[str, bytes]:
    """``repository:1``, a correct two-platform image; returns its reference and index bytes."""
    entries = [
        ("linux/amd64", push_image(registry, repository, "amd64")),
        ("linux/arm64", push_image(registry, repository, "arm64")),
    ]
    return push_index(registry, repository, "1", entries), index_of(entries)


def via(proxy: FaultProxy, ref: str) -> str:
    return proxy.address + ref[ref.index("/") :]


def test_a_good_hand_made_image_passes_deep(registry: Registry, verify: Verify) -> None:
    # The baseline the failures below are measured against: the same images pass.
    repository = "answers/good"
    amd64 = push_image(registry, repository, "amd64")
    arm64 = push_image(registry, repository, "arm64")
    ref, index = good_image(registry, repository)
    verdict = verify(ref, "--deep", "--json")
    assert verdict.exit_code == 0, verdict.stderr
    # The whole document: its shape is the ManifestVerification component's contract.
    elf = {"checked": 1, "mismatched": 0, "mismatchedPaths": []}
    assert verdict.document == {
        "ref": ref,
        "digest": manifest_digest(index),
        "mediaType": OCI_INDEX,
        "platforms": {
            "linux/amd64": {
                "digest": manifest_digest(amd64),
                "configArchitecture": "amd64",
                "elf": elf,
            },
            "linux/arm64": {
                "digest": manifest_digest(arm64),
                "configArchitecture": "arm64",
                "elf": elf,
            },
        },
        "attestations": 0,
    }
    summary = verify(ref, "--deep")
    assert summary.exit_code == 0
    assert (
        f"linux/amd64 {manifest_digest(amd64)} (1 ELF files checked); "
        f"linux/arm64 {manifest_digest(arm64)} (1 ELF files checked)"
    ) in summary.stdout


def test_a_tag_whose_digest_header_contradicts_its_content_is_refused(
    registry: Registry, proxy: FaultProxy, verify: Verify
) -> None:
    # The real index, served with the digest of other content: had the check gone, the image
    # would pass, so only the header check can make this exit 2.
    ref, content = good_image(registry, "answers/lying-header")
    claimed = manifest_digest(index_of([]))
    headers = {"Content-Type": OCI_INDEX, "Docker-Content-Digest": claimed}
    proxy.answer_next("/manifests/1$", content, headers, 1)
    verdict = verify(via(proxy, ref), "--json")
    assert verdict.exit_code == 2
    assert verdict.stdout == ""
    assert verdict.stderr == (
        f"verify: {via(proxy, ref)}: linux/amd64, linux/arm64: the registry says the manifest "
        f"is {claimed}, its content is {manifest_digest(content)}\n"
    )


def test_429_is_retried_like_a_server_error(
    registry: Registry, proxy: FaultProxy, verify: Verify
) -> None:
    ref, _ = good_image(registry, "answers/rate-limited")
    proxy.fail_next("/manifests/1$", 429, 2)
    verdict = verify(via(proxy, ref))
    assert verdict.exit_code == 0, verdict.stderr
    assert [entry.status for entry in proxy.requests_to("/manifests/1$")] == [429, 429, 200]


def test_an_index_larger_than_the_document_cap_is_refused(
    registry: Registry, proxy: FaultProxy, verify: Verify
) -> None:
    # The real index padded with whitespace: it parses and its header digest is right, only
    # its size is wrong.
    ref, index = good_image(registry, "answers/oversized")
    padded = index[:-1] + b" " * (MAX_DOCUMENT_BYTES + 1 - len(index)) + b"}"
    assert len(padded) == MAX_DOCUMENT_BYTES + 1
    headers = {"Content-Type": OCI_INDEX, "Docker-Content-Digest": manifest_digest(padded)}
    proxy.answer_next("/manifests/1$", padded, headers, 1)
    verdict = verify(via(proxy, ref))
    assert verdict.exit_code == 2
    assert verdict.stderr == (
        f"verify: {via(proxy, ref)}: linux/amd64, linux/arm64: manifest 1 is larger than "
        f"{MAX_DOCUMENT_BYTES} bytes\n"
    )


def test_an_image_manifest_larger_than_the_document_cap_is_refused(
    registry: Registry, proxy: FaultProxy, verify: Verify
) -> None:
    repository = "answers/oversized-child"
    ref, _ = good_image(registry, repository)
    arm64 = push_image(registry, repository, "arm64")
    padded = arm64[:-1] + b" " * (MAX_DOCUMENT_BYTES + 1 - len(arm64)) + b"}"
    proxy.answer_next(
        f"/manifests/{manifest_digest(arm64)}$", padded, {"Content-Type": OCI_MANIFEST}, 1
    )
    verdict = verify(via(proxy, ref))
    # Read only up to the size its index entry declares: the rest is a size mismatch (exit 1),
    # never a document read without bound.
    assert verdict.exit_code == 1, verdict.stderr
    lines = verdict.stderr.splitlines()
    assert [line.split(": ")[2] for line in lines] == ["linux/arm64"], lines
    assert "goes on after the" in lines[0], lines


def test_an_error_on_one_platform_outranks_a_failure_on_another(
    registry: Registry, proxy: FaultProxy, verify: Verify
) -> None:
    repository = "answers/mixed"
    mislabelled = push_image(registry, repository, "arm64")  # its config says arm64
    unreadable = push_manifest(registry, repository, "arm64", "amd64")  # another digest
    entries = [("linux/amd64", mislabelled), ("linux/arm64", unreadable)]
    ref = push_index(registry, repository, "1", entries)
    # linux/amd64 fails (exit 1: its config says arm64); linux/arm64 cannot be read (exit 2).
    proxy.fail_next(f"/manifests/{manifest_digest(unreadable)}$", 404, 1)
    verdict = verify(via(proxy, ref))
    assert verdict.exit_code == 2
    assert sorted(verdict.stderr.splitlines()) == [
        f"verify: {via(proxy, ref)}: linux/amd64: the index entry says linux/amd64 but its image "
        "config says linux/arm64",
        f"verify: {via(proxy, ref)}: linux/arm64: manifest {manifest_digest(unreadable)} not "
        "found (HTTP 404: UNAVAILABLE injected fault)",
    ]


def test_an_error_in_one_reference_outranks_a_failure_in_another(
    registry: Registry, verify: Verify
) -> None:
    failing = push_index(
        registry,
        "answers/one-platform",
        "1",
        [("linux/amd64", push_image(registry, "answers/one-platform", "amd64"))],
    )
    missing = f"{registry.address}/answers/one-platform:no-such-tag"
    assert verify(failing).exit_code == 1
    assert verify(failing, missing).exit_code == 2
    assert verify(missing, failing).exit_code == 2


@pytest.mark.parametrize(("binaries", "listed", "more"), [(20, 20, 0), (21, 20, 1), (23, 20, 3)])
def test_mismatched_paths_are_listed_up_to_twenty_then_counted(
    registry: Registry, verify: Verify, binaries: int, listed: int, more: int
) -> None:
    repository = f"answers/mismatched-{binaries}"
    amd64 = push_image(registry, repository, "amd64")
    arm64 = push_manifest(registry, repository, "arm64", "amd64", binaries)
    ref = push_index(registry, repository, "1", [("linux/amd64", amd64), ("linux/arm64", arm64)])
    verdict = verify(ref, "--deep", "--json")
    assert verdict.exit_code == 1
    platforms = verdict.document["platforms"]
    assert isinstance(platforms, dict)
    elf = platforms["linux/arm64"]["elf"]
    assert elf["checked"] == binaries and elf["mismatched"] == binaries
    assert elf["mismatchedPaths"] == [f"/usr/bin/tool-{number:02d}" for number in range(listed)]
    lines = verdict.stderr.splitlines()
    assert len(lines) == listed + (1 if more else 0)
    assert all(": linux/arm64: " in line for line in lines)
    named = [line for line in lines if "/usr/bin/tool-" in line]
    assert len(named) == listed
    if more:
        assert f" {more} " in lines[-1] and "/usr/bin/tool-" not in lines[-1]
    # Each line names the machine found and the one expected.
    found, expected = machine_name(X86_64), machine_name(AARCH64)
    assert all(found in line and expected in line for line in named)
    assert not more or expected in lines[-1]


def test_a_single_platform_manifest_passes_only_for_its_own_platform(
    registry: Registry, verify: Verify
) -> None:
    repository = "answers/single"
    manifest = push_image(registry, repository, "arm64")
    put_manifest(registry, repository, "1", manifest, OCI_MANIFEST)
    ref = f"{registry.address}/{repository}:1"
    passed = verify(ref, "--platform", "linux/arm64", "--deep", "--json")
    assert passed.exit_code == 0, passed.stderr
    assert passed.document["mediaType"] == OCI_MANIFEST
    assert passed.document["digest"] == manifest_digest(manifest)
    platforms = passed.document["platforms"]
    assert isinstance(platforms, dict) and list(platforms) == ["linux/arm64"]
    assert platforms["linux/arm64"]["elf"]["checked"] == 1
    other = verify(ref, "--platform", "linux/amd64", "--json")
    assert other.exit_code == 1
    # The failure names the required platform and the one the manifest is for.
    assert other.stderr == (
        f"verify: {ref}: linux/amd64: the reference is a single-platform image manifest for "
        "linux/arm64\n"
    )
    assert other.document["platforms"] == {}
    both = verify(ref)
    assert both.exit_code == 1
    # With several platforms required, each failure says an index of them was expected.
    assert both.stderr.splitlines() == [
        f"verify: {ref}: {platform}: the reference is a single-platform image manifest "
        "(linux/arm64), not an index of linux/amd64, linux/arm64"
        for platform in ("linux/amd64", "linux/arm64")
    ]


def test_attestations_are_counted_and_skipped_and_missing_platforms_fail(
    registry: Registry, verify: Verify
) -> None:
    repository = "answers/attested"
    amd64 = push_image(registry, repository, "amd64")
    arm64 = push_image(registry, repository, "arm64")
    attestation = push_manifest(registry, repository, "unknown", "amd64")
    entries = [("linux/amd64", amd64), ("linux/arm64", arm64), ("unknown/unknown", attestation)]
    ref = push_index(registry, repository, "1", entries)
    verdict = verify(ref, "--json")
    assert verdict.exit_code == 0, verdict.stderr
    assert verdict.document["attestations"] == 1
    assert set(verdict.document["platforms"]) == {"linux/amd64", "linux/arm64"}
    summary = verify(ref)
    assert summary.exit_code == 0 and summary.stderr == ""
    assert summary.stdout == (
        f"verified {ref}@{manifest_digest(index_of(entries))}: "
        f"linux/amd64 {manifest_digest(amd64)}; linux/arm64 {manifest_digest(arm64)}; "
        "1 attestation manifest(s) skipped\n"
    )
    missing = verify(ref, "--platform", "linux/arm64", "--platform", "linux/riscv64")
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"verify: {ref}: linux/riscv64: missing from the index (it lists: linux/amd64, "
        "linux/arm64)\n"
    )
    only = push_index(registry, repository, "only", [("unknown/unknown", attestation)])
    nothing = verify(only, "--platform", "linux/arm64")
    assert nothing.exit_code == 1
    assert nothing.stderr == (
        f"verify: {only}: linux/arm64: missing from the index (it lists: no platforms)\n"
    )


def test_a_platform_listed_twice_fails_only_that_platform(
    registry: Registry, verify: Verify
) -> None:
    repository = "answers/twice"
    amd64 = push_image(registry, repository, "amd64")
    arm64 = push_image(registry, repository, "arm64")
    ref = push_index(
        registry,
        repository,
        "1",
        [("linux/amd64", amd64), ("linux/arm64", arm64), ("linux/arm64", arm64)],
    )
    verdict = verify(ref, "--json")
    assert verdict.exit_code == 1
    assert verdict.stderr == (
        f"verify: {ref}: linux/arm64: listed 2 times in the index; expected exactly once\n"
    )
    assert list(verdict.document["platforms"]) == ["linux/amd64"]


def test_allowed_globs_excuse_only_the_paths_they_match(registry: Registry, verify: Verify) -> None:
    repository = "answers/allowed"
    amd64 = push_image(registry, repository, "amd64")
    arm64 = push_manifest(registry, repository, "arm64", "amd64", binaries=3)
    ref = push_index(registry, repository, "1", [("linux/amd64", amd64), ("linux/arm64", arm64)])
    excused = verify(ref, "--deep", "--json", "--allow", "usr/bin/tool-*")
    assert excused.exit_code == 0, excused.stderr
    elf = excused.document["platforms"]["linux/arm64"]["elf"]
    assert (elf["checked"], elf["mismatched"], elf["mismatchedPaths"]) == (3, 0, [])
    partly = verify(ref, "--deep", "--json", "--allow", "/usr/bin/tool-01")
    assert partly.exit_code == 1
    elf = partly.document["platforms"]["linux/arm64"]["elf"]
    assert elf["mismatchedPaths"] == ["/usr/bin/tool-00", "/usr/bin/tool-02"]
    # Shallow checks never read a layer.
    shallow = verify(ref, "--json")
    assert shallow.exit_code == 0
    assert shallow.document["platforms"]["linux/arm64"]["elf"] is None


def test_a_layer_cut_off_midway_is_fetched_again_and_a_corrupt_one_refused(
    registry: Registry, proxy: FaultProxy, verify: Verify
) -> None:
    repository = "answers/layers"
    ref, _ = good_image(registry, repository)
    arm64 = json.loads(push_image(registry, repository, "arm64"))
    layer = arm64["layers"][0]["digest"]
    proxy.cut_next(f"/blobs/{layer}$", 1)
    again = verify(via(proxy, ref), "--deep")
    assert again.exit_code == 0, again.stderr
    assert len(proxy.requests_to(f"/blobs/{layer}$")) == 2
    proxy.cut_next(f"/blobs/{layer}$", 3)
    broken = verify(via(proxy, ref), "--deep")
    assert broken.exit_code == 2  # every try broke off
    assert layer in broken.stderr and ": linux/arm64: " in broken.stderr
    proxy.corrupt_next(f"/blobs/{layer}$", 1)
    refused = verify(via(proxy, ref), "--deep", "--json")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert layer in refused.stderr and ": linux/arm64: " in refused.stderr


def test_a_layer_that_is_no_archive_fails_its_platform(registry: Registry, verify: Verify) -> None:
    repository = "answers/not-a-layer"
    amd64 = push_image(registry, repository, "amd64")
    garbage = b"this is not a tar archive, compressed or not" * 20
    manifest = push_layer_image(registry, repository, "arm64", garbage)
    ref = push_index(registry, repository, "1", [("linux/amd64", amd64), ("linux/arm64", manifest)])
    assert verify(ref).exit_code == 0  # shallow: the config is right
    deep = verify(ref, "--deep", "--json")
    assert deep.exit_code == 1
    [line] = deep.stderr.splitlines()
    assert ": linux/arm64: " in line and manifest_digest(garbage) in line


PASSWORD = "s3cret-Pa55"


def test_the_registry_token_flow_with_good_wrong_and_no_credentials(
    registry: Registry, verify: Verify, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, _ = good_image(registry, "answers/bearer")
    tokens = TokenServer(username="bob", password=PASSWORD).start()
    proxy = FaultProxy(upstream=registry.address, bearer=tokens).start()
    try:
        anonymous = verify(via(proxy, ref))
        assert anonymous.exit_code == 2 and tokens.issued == {}
        monkeypatch.setenv("REGISTRY_USERNAME", "bob")
        monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
        passed = verify(via(proxy, ref), "--deep", "--json")
        assert passed.exit_code == 0, passed.stderr
        assert set(tokens.issued.values()) == {"repository:answers/bearer:pull"}
        # The token is asked for the challenge's service and the repository's pull scope.
        asked = {request for request in tokens.requests if request.startswith("GET /token")}
        assert asked == {
            "GET /token?scope=repository%3Aanswers%2Fbearer%3Apull&service=boutique-test-registry"
        }
        monkeypatch.setenv("REGISTRY_PASSWORD", "wrong")
        refused = verify(via(proxy, ref), "--json")
        assert refused.exit_code == 2 and refused.stdout == ""
        assert tokens.realm in refused.stderr and "wrong" not in refused.stderr
        assert PASSWORD not in passed.stdout + passed.stderr + refused.stderr
    finally:
        proxy.stop()
        tokens.stop()


def test_basic_auth_with_good_wrong_and_no_credentials(
    registry_factory: RegistryFactory, verify: Verify, monkeypatch: pytest.MonkeyPatch
) -> None:
    protected = registry_factory(htpasswd=("alice", PASSWORD))
    ref, _ = good_image(protected, "answers/basic")
    anonymous = verify(ref)
    assert anonymous.exit_code == 2 and "REGISTRY_USERNAME" in anonymous.stderr
    monkeypatch.setenv("REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    assert verify(ref, "--deep").exit_code == 0
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD + "!")
    refused = verify(ref)
    assert refused.exit_code == 2 and "401" in refused.stderr
    assert PASSWORD not in refused.stderr


@pytest.mark.parametrize(
    ("challenge", "refusal"),
    [
        (
            'Bearer realm="ftp://127.0.0.1/token",service="registry"',
            ": token realm 'ftp://127.0.0.1/token' is not an http(s) URL",
        ),
        (
            'Bearer realm="http://registry.example.com/token",service="registry"',
            ": token realm 'http://registry.example.com/token' is plain HTTP off this machine",
        ),
        ('Bearer service="registry"', ": token realm '' is not an http(s) URL"),
        ('Bearer realm="http:///token"', ": token realm 'http:///token' is not an http(s) URL"),
        (
            'Negotiate realm="registry"',
            " answered 401 with no usable challenge ('Negotiate realm=\"registry\"')",
        ),
    ],
    ids=["realm-not-http", "plain-http-off-this-machine", "no-realm", "no-host", "unknown-scheme"],
)
def test_a_challenge_that_cannot_be_answered_safely_is_refused(
    registry: Registry, proxy: FaultProxy, verify: Verify, challenge: str, refusal: str
) -> None:
    ref, _ = good_image(registry, "answers/challenged")
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    proxy.answer_next("/manifests/1$", body, {"WWW-Authenticate": challenge}, 1, status=401)
    verdict = verify(via(proxy, ref), "--json")
    assert verdict.exit_code == 2 and verdict.stdout == ""
    # Nothing but the one challenged request reached the proxy: no token was asked anywhere.
    assert [entry.status for entry in proxy.log] == [401]
    assert verdict.stderr == (
        f"verify: {via(proxy, ref)}: linux/amd64, linux/arm64: {proxy.address}{refusal}\n"
    )


@pytest.mark.parametrize(
    "answer", [b'{"expires_in": 300}', b'{"token": ""}', b"not json", b'["token"]']
)
def test_a_token_answer_without_a_token_is_refused(
    registry: Registry, proxy: FaultProxy, verify: Verify, answer: bytes
) -> None:
    ref, _ = good_image(registry, "answers/tokenless")
    realm = f"http://{proxy.address}/token?issuer=test"
    challenge = f'Bearer realm="{realm}",service="registry",scope="repository:answers/x:pull"'
    proxy.answer_next("/manifests/1$", b"", {"WWW-Authenticate": challenge}, 1, status=401)
    proxy.answer_next("^/token", answer, {"Content-Type": "application/json"}, 1)
    verdict = verify(via(proxy, ref))
    assert verdict.exit_code == 2
    assert verdict.stderr.endswith(
        f": token from http://{proxy.address}/token: the answer holds no token\n"
    )
    [asked] = [entry.path for entry in proxy.log if entry.path.startswith("/token")]
    # The realm's own query is kept; the challenge's scope and service are added.
    assert asked.startswith("/token?issuer=test&")
    assert "scope=repository%3Aanswers%2Fx%3Apull" in asked and "service=registry" in asked


def test_a_token_answered_as_access_token_is_used(
    registry: Registry, proxy: FaultProxy, verify: Verify
) -> None:
    ref, _ = good_image(registry, "answers/oauth-style")
    challenge = f'Bearer realm="http://{proxy.address}/token"'
    proxy.answer_next("/manifests/1$", b"", {"WWW-Authenticate": challenge}, 1, status=401)
    proxy.answer_next("^/token", b'{"access_token": "t0k"}', {}, 1)
    verdict = verify(via(proxy, ref))
    assert verdict.exit_code == 0, verdict.stderr
    # Without a scope in the challenge, the repository's pull scope is asked for (no service).
    [asked] = [entry.path for entry in proxy.log if entry.path.startswith("/token")]
    assert asked == "/token?scope=repository%3Aanswers%2Foauth-style%3Apull"


def test_a_missing_tag_exits_2_with_the_registrys_own_error_code(
    registry: Registry, verify: Verify
) -> None:
    ref = f"{registry.address}/answers/nothing:here"
    verdict = verify(ref, "--json")
    assert verdict.exit_code == 2 and verdict.stdout == ""
    # distribution answers 404 with {"errors": [{"code": "MANIFEST_UNKNOWN", ...}]}.
    assert "404" in verdict.stderr and "MANIFEST_UNKNOWN" in verdict.stderr


@pytest.mark.parametrize(
    ("body", "shown", "hidden"),
    [
        (
            b'{"errors": [{"code": "DENIED", "message": "quota exceeded"}]}',
            "DENIED quota exceeded",
            "",
        ),
        (b'{"errors": [{"code": "DENIED"}]}', "HTTP 400: DENIED\n", "None"),
        (b'{"errors": [{"message": "no code"}]}', "HTTP 400:  no code", "None"),
        (b'{"errors": ["DENIED"]}', "HTTP 400\n", "DENIED"),
        (b'{"errors": []}', "HTTP 400\n", "errors"),
        (b'["DENIED"]', "HTTP 400\n", "DENIED"),
        (b"<html>Bad Request</html>", "HTTP 400\n", "html"),
        (b"", "HTTP 400\n", "{}"),
    ],
)
def test_an_error_answer_shows_the_registrys_code_and_message_when_it_has_them(
    registry: Registry, proxy: FaultProxy, verify: Verify, body: bytes, shown: str, hidden: str
) -> None:
    ref, _ = good_image(registry, "answers/bad-request")
    proxy.answer_next("/manifests/1$", body, {"Content-Type": "application/json"}, 1, status=400)
    verdict = verify(via(proxy, ref))
    assert verdict.exit_code == 2
    assert shown in verdict.stderr, verdict.stderr
    assert not hidden or hidden not in verdict.stderr, verdict.stderr


def test_gcp_credentials_come_from_application_default_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = "verifier@boutique-test.iam.gserviceaccount.com"
    tokens = TokenServer(
        username="unused", password="unused", service_account=email, access_token="ya29.test"
    ).start()
    try:
        adc = tmp_path / "adc.json"
        service_account_key(adc, email, tokens.oauth_uri)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        found = CredentialResolver(use_gcp=True, environ={}).for_registry("europe-docker.pkg.dev")
        assert found is not None
        assert (found.username, found.password) == ("oauth2accesstoken", "ya29.test")
        assert "Application Default Credentials" in found.source
        assert tokens.requests == ["POST /oauth2"]
    finally:
        tokens.stop()


def test_a_credential_helper_gets_the_environment_it_is_given(tmp_path: Path) -> None:
    helper = tmp_path / "docker-credential-env"
    helper.write_text(
        '#!/bin/sh\nread host\necho "{\\"Username\\":\\"$HELPER_USER\\",\\"Secret\\":\\"s\\"}"\n'
    )
    helper.chmod(0o755)
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "env"}))
    environ = {"DOCKER_CONFIG": str(tmp_path), "PATH": str(tmp_path), "HELPER_USER": "given"}
    found = docker_config_credentials("r.example", environ)
    assert found is not None and found.username == "given"
