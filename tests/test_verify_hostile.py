"""``python -m verify`` against a hostile registry on loopback and hand-made layers.

Each test plays one attack from issue 8 against the real CLI process and asserts the safe
outcome: the exit code, the message, that another host saw no credential, and that memory and
the bytes read stay bounded (the process runs under an address-space limit where it matters).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
import zstandard
from urllib3.connection import HTTPConnection

from tests.hostile_registry import OCI_INDEX, Handler, HostileRegistry, Responder
from tests.integration.loopbackserver import never_accepting, raised_within
from tests.integration.test_verify_registry import _service_account_key
from tests.interrupts import ctrl_c_as_from_a_terminal
from tests.test_verify_cli import closed_port
from tests.throwaway_ca import throwaway_ca
from tests.verify_bytes import (
    AARCH64,
    END_OF_ARCHIVE,
    X86_64,
    Entry,
    descriptor,
    elf_header,
    gzip_bytes,
    tar_bytes,
    tar_header,
    tar_member,
)
from verify import cli, deadline, published, registry
from verify.auth import CredentialResolver
from verify.digests import SizeMismatch, sha256_digest
from verify.reference import parse_reference

REPO = Path(__file__).resolve().parent.parent
USER, PASSWORD = "alice", "pw-S3cret-5d8a"
TOKEN = "tok-3f9c2e"
REPOSITORY = "boutique/app"
MEMORY_LIMIT = 2 << 30
"""Address space of the verifier process in the memory tests (the attacks took 3.1-4.1 GiB)."""

AMD64_LAYER = gzip_bytes(tar_bytes([Entry("bin/app", elf_header(X86_64))]))


def arm_layer(*entries: Entry) -> bytes:
    return gzip_bytes(tar_bytes([Entry("bin/app", elf_header(AARCH64)), *entries]))


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    server = HostileRegistry("127.0.0.1").start()
    yield server
    server.stop()


@pytest.fixture
def other() -> Iterator[HostileRegistry]:
    """Another host (127.0.0.2): where a hostile registry sends the verifier."""
    server = HostileRegistry("127.0.0.2").start()
    yield server
    server.stop()


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    """An empty Docker config directory, so no credentials of this machine are found."""
    return tmp_path


def run_verify(
    docker_config: Path,
    *args: str,
    credentials: tuple[str | bytes, str | bytes] | None = None,
    memory_limit: int | None = None,
    environ: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environment: dict[str | bytes, str | bytes] = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD", "DOCKER_CONFIG")
    }
    environment.update(environ or {})
    environment["DOCKER_CONFIG"] = str(docker_config)
    # Few malloc arenas, so the address-space limit measures the heap, not thread reservations.
    environment["MALLOC_ARENA_MAX"] = "2"
    if credentials is not None:
        environment["REGISTRY_USERNAME"], environment["REGISTRY_PASSWORD"] = credentials

    def limit_memory() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [sys.executable, "-m", "verify", *args],
        cwd=REPO,
        env=environment,  # type: ignore[arg-type]  # bytes values are valid on POSIX
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=120,
        check=False,
        preexec_fn=limit_memory,
    )


def assert_clean(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    """No traceback and no secret in anything the process printed."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "internal error" not in output, output
    for secret in (PASSWORD, TOKEN, *secrets):
        assert secret not in output, f"{secret!r} leaked: {output}"


def ref(server: HostileRegistry, tag: str = "v1") -> str:
    return f"{server.address}/{REPOSITORY}:{tag}"


def redirect_to(url: str) -> Responder:
    def respond(handler: Handler) -> None:
        handler.reply(307, headers={"Location": url})

    return respond


# 1. Credentials go only where they belong.


def test_a_host_a_blob_is_redirected_to_never_gets_the_credentials(
    hostile: HostileRegistry, other: HostileRegistry, docker_config: Path
) -> None:
    hostile.basic = (USER, PASSWORD)
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    layer_path = hostile.blob_path(REPOSITORY, image.layers["arm64"][0])
    hostile.on(layer_path, redirect_to(f"http://{other.address}/storage/blob"))
    # The other host asks for credentials with a token realm of its own, as in the attack.
    challenge = f'Bearer realm="http://{other.address}/token",service="x"'
    other.on("/storage/blob", lambda h: h.reply(401, b"{}", {"WWW-Authenticate": challenge}))
    other.on("/token", lambda h: h.reply(200, json.dumps({"token": "stolen"}).encode()))

    result = run_verify(docker_config, ref(hostile), "--deep", credentials=(USER, PASSWORD))

    assert result.returncode == 2
    assert (
        f"{other.address}, where {hostile.address} redirected the request, asks for "
        f"credentials; they are only ever sent to {hostile.address}" in result.stderr
    )
    assert other.authorizations() == []
    assert [s.path for s in other.seen] == ["/storage/blob"]  # the realm was never asked
    assert hostile.authorizations()  # the registry itself did get them
    assert_clean(result)


def test_a_blob_redirected_elsewhere_is_fetched_without_authorization(
    hostile: HostileRegistry, other: HostileRegistry, docker_config: Path
) -> None:
    hostile.basic = (USER, PASSWORD)
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    blob = image.layers["arm64"][0]
    hostile.on(
        hostile.blob_path(REPOSITORY, blob), redirect_to(f"http://{other.address}/storage/b")
    )
    other.on("/storage/b", lambda h: h.reply(200, blob))

    result = run_verify(docker_config, ref(hostile), "--deep", credentials=(USER, PASSWORD))

    assert result.returncode == 0, result.stderr
    assert other.authorizations() == []
    assert_clean(result)


def _token_service(server: HostileRegistry) -> None:
    """A token realm that issues TOKEN for the right basic credentials, else answers 401."""
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def respond(handler: Handler) -> None:
        if handler.headers.get("Authorization") == expected:
            handler.reply(200, json.dumps({"token": TOKEN}).encode())
        else:
            handler.reply(401, b'{"details":"credentials required"}')

    server.on("/token", respond)


def test_a_token_realm_on_another_host_is_asked_without_credentials(
    hostile: HostileRegistry, other: HostileRegistry, docker_config: Path
) -> None:
    hostile.bearer = (f"http://{other.address}/token", TOKEN)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    _token_service(other)

    result = run_verify(docker_config, ref(hostile), credentials=(USER, PASSWORD))

    assert result.returncode == 2
    assert (
        "anonymous (credentials are not sent to 127.0.0.2, which is neither 127.0.0.1 nor in "
        "its domain; pass --trust-realm 127.0.0.2 if it is the registry's token service) "
        "refused (HTTP 401)" in result.stderr
    )
    assert other.authorizations() == []
    assert [s.path.split("?")[0] for s in other.seen] == ["/token"]
    assert_clean(result)


def test_trust_realm_lets_a_token_service_on_another_host_have_the_credentials(
    hostile: HostileRegistry, other: HostileRegistry, docker_config: Path
) -> None:
    hostile.bearer = (f"http://{other.address}/token", TOKEN)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    _token_service(other)

    result = run_verify(
        docker_config, ref(hostile), "--deep", "--trust-realm", "127.0.0.2",
        credentials=(USER, PASSWORD),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert len(other.authorizations()) == 1
    assert_clean(result)


def test_the_refusal_of_a_realm_on_another_host_says_why_no_credentials_went_there(
    hostile: HostileRegistry, other: HostileRegistry
) -> None:
    # In-process, the message of the test above in full: the credentials stayed home, and the
    # flag that would send them is named with the realm's host.
    hostile.bearer = (f"http://{other.address}/token", TOKEN)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    _token_service(other)
    environ = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
    client = registry.RegistryClient(
        CredentialResolver(use_gcp=False, environ=environ), registry.RetryPolicy(attempts=1)
    )

    with pytest.raises(registry.AuthError) as raised:
        client.get_manifest(parse_reference(ref(hostile)), "v1")

    assert str(raised.value) == (
        f"token from http://{other.address}/token: anonymous (credentials are not sent to "
        "127.0.0.2, which is neither 127.0.0.1 nor in its domain; pass --trust-realm 127.0.0.2 "
        "if it is the registry's token service) refused (HTTP 401)"
    )
    assert other.authorizations() == []


MANIFEST_V1 = f"/v2/{REPOSITORY}/manifests/v1"
UNSAFE_REDIRECTS = pytest.mark.parametrize(
    ("location", "refusal"),
    [
        (None, "manifest v1: redirected to '', not an http(s) URL"),
        ("ftp://127.0.0.1/m", "manifest v1: redirected to 'ftp://127.0.0.1/m', not an http(s) URL"),
        ("https://:443/m", "manifest v1: redirected to 'https://:443/m', not an http(s) URL"),
        (
            "http://registry.example.com/m",
            "manifest v1: redirected to plain HTTP off this machine (http://registry.example.com/m)",
        ),
        (MANIFEST_V1 + "?again", "manifest v1: more than 5 redirects"),
        (
            "http://127.0.0.1:99999/m",
            "manifest v1: redirected to 'http://127.0.0.1:99999/m', not a valid URL",
        ),
        ("http://[::1/m", "manifest v1: redirected to 'http://[::1/m', not a valid URL"),
    ],
    ids=[
        "no-location",
        "not-http",
        "no-host",
        "plain-http-off-this-machine",
        "endless",
        "port-out-of-range",
        "broken-ipv6",
    ],
)
"""Location headers (None: none at all) that are not followed, and the refusal of each."""


@UNSAFE_REDIRECTS
def test_a_redirect_that_cannot_be_followed_safely_is_refused(
    hostile: HostileRegistry, docker_config: Path, location: str | None, refusal: str
) -> None:
    headers = {} if location is None else {"Location": location}
    hostile.on(MANIFEST_V1, lambda h: h.reply(307, headers=headers))

    result = run_verify(docker_config, ref(hostile))

    assert result.returncode == 2
    assert result.stderr == f"verify: {ref(hostile)}: linux/amd64, linux/arm64: {refusal}\n"
    # The endless one is followed 5 times after the first answer, then given up (no retries).
    assert len(hostile.seen) == (6 if location == MANIFEST_V1 + "?again" else 1)


def test_a_redirect_within_the_registry_keeps_the_credentials(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    hostile.basic = (USER, PASSWORD)
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    hostile.put("/moved/v1", image.index, "application/vnd.oci.image.index.v1+json")
    hostile.on(MANIFEST_V1, redirect_to("/moved/v1"))

    result = run_verify(docker_config, ref(hostile), credentials=(USER, PASSWORD))

    assert result.returncode == 0, result.stderr
    moved = [s for s in hostile.seen if s.path == "/moved/v1"]
    # Challenged once without credentials, then fetched with them through the redirect.
    assert ["Authorization" in s.headers for s in moved] == [False, True]


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (403, "manifest v1: anonymous refused (HTTP 403: DENIED no)"),
        (418, "manifest v1: unexpected HTTP 418: DENIED no"),
    ],
)
def test_an_answer_that_is_neither_content_nor_a_challenge_is_an_error(
    hostile: HostileRegistry, docker_config: Path, status: int, refusal: str
) -> None:
    body = b'{"errors": [{"code": "DENIED", "message": "no"}]}'
    hostile.on(MANIFEST_V1, lambda h: h.reply(status, body))

    result = run_verify(docker_config, ref(hostile))

    assert result.returncode == 2
    assert result.stderr == f"verify: {ref(hostile)}: linux/amd64, linux/arm64: {refusal}\n"
    assert len(hostile.seen) == 1


def test_documents_of_the_wrong_kind_fail_naming_their_media_type(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    odd = json.dumps({"mediaType": "application/vnd.example+json"}).encode()
    hostile.put(f"/v2/{REPOSITORY}/manifests/odd", odd, "application/json")
    hostile.put(f"/v2/{REPOSITORY}/manifests/broken", b"{not json", OCI_INDEX)
    # An index whose linux/arm64 entry is another index, not an image manifest.
    inner = sha256_digest(image.index)
    hostile.put(f"/v2/{REPOSITORY}/manifests/{inner}", image.index, OCI_INDEX)
    entries = json.loads(image.index)["manifests"]
    entries[1] = {**descriptor(OCI_INDEX, image.index), "platform": entries[1]["platform"]}
    nested = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    hostile.put(f"/v2/{REPOSITORY}/manifests/nested", nested.encode(), OCI_INDEX)

    neither = run_verify(docker_config, ref(hostile, "odd"))
    malformed = run_verify(docker_config, ref(hostile, "broken"))
    not_an_image = run_verify(docker_config, ref(hostile, "nested"))

    assert (neither.returncode, neither.stderr) == (
        1,
        f"verify: {ref(hostile, 'odd')}: linux/amd64, linux/arm64: media type "
        "'application/vnd.example+json' is neither an image index nor an image manifest\n",
    )
    assert (malformed.returncode, malformed.stderr) == (
        2,
        f"verify: {ref(hostile, 'broken')}: linux/amd64, linux/arm64: the manifest is malformed: "
        "manifest is not valid JSON: Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1)\n",
    )
    assert (not_an_image.returncode, not_an_image.stderr) == (
        1,
        f"verify: {ref(hostile, 'nested')}: linux/arm64: {inner} has media type "
        f"'{OCI_INDEX}', not an image manifest\n",
    )


# 2. A layer is read to its true end.


def test_a_bad_header_hiding_an_x86_binary_in_the_arm64_layer_fails(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    arm_tool = tar_member("bin/app", elf_header(AARCH64))
    hidden = tar_member("usr/bin/hidden", elf_header(X86_64))
    bad = tar_header("usr/bin/decoy", good_checksum=False)
    layer = gzip_bytes(arm_tool + bad + hidden + END_OF_ARCHIVE)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [layer]})

    result = run_verify(docker_config, ref(hostile), "--deep")

    assert result.returncode == 1
    assert (
        f"linux/arm64: layer {sha256_digest(layer)}: tar archive at offset {len(arm_tool)}: "
        "header checksum mismatch" in result.stderr
    )
    assert_clean(result)


# 3. Names are normalised before --allow matches them; every name of a file is checked.


def test_dot_dot_in_a_name_does_not_slip_past_an_allow_glob(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    sneaky = Entry("usr/lib/node_modules/../../../bin/busybox", elf_header(X86_64))
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer(sneaky)]})

    result = run_verify(docker_config, ref(hostile), "--deep", "--allow", "/usr/lib/node_modules/*")

    assert result.returncode == 1
    assert "linux/arm64: /bin/busybox is an ELF binary for x86-64" in result.stderr


def test_a_name_that_climbs_above_the_root_fails(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    escaping = Entry("../../etc/ld.so.preload", b"/x")
    layer = arm_layer(escaping)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [layer]})

    result = run_verify(docker_config, ref(hostile), "--deep", "--allow", "*")

    assert result.returncode == 1
    assert "member name '../../etc/ld.so.preload' climbs above the root" in result.stderr


ADDON = "usr/src/app/node_modules/pprof/build"
NODE_GYP_LINKS = [
    Entry(f"{ADDON}/Release/obj.target/pprof.node", elf_header(X86_64)),
    Entry(
        f"{ADDON}/node-v115-linux-arm64/pprof.node",
        kind=tarfile.LNKTYPE,
        target=f"{ADDON}/Release/obj.target/pprof.node",
    ),
]


def test_allow_must_cover_every_name_of_a_hard_linked_binary(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer(*NODE_GYP_LINKS)]})

    only_build_dir = run_verify(
        docker_config, ref(hostile), "--deep", "--allow", f"/{ADDON}/Release/*"
    )
    every_name = run_verify(docker_config, ref(hostile), "--deep", "--allow", f"/{ADDON}/*")

    assert only_build_dir.returncode == 1
    assert (
        f"linux/arm64: /{ADDON}/node-v115-linux-arm64/pprof.node (a hard link to "
        f"/{ADDON}/Release/obj.target/pprof.node) is an ELF binary for x86-64"
        in only_build_dir.stderr
    )
    assert f"/{ADDON}/Release/obj.target/pprof.node is" not in only_build_dir.stderr
    assert every_name.returncode == 0, every_name.stderr


def test_a_hard_link_to_a_binary_of_a_lower_layer_is_checked(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    lower = gzip_bytes(tar_bytes([Entry("opt/cross/tool", elf_header(X86_64))]))
    upper = gzip_bytes(
        tar_bytes([Entry("usr/bin/tool", kind=tarfile.LNKTYPE, target="opt/cross/tool")])
    )
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [lower, upper]})

    result = run_verify(docker_config, ref(hostile), "--deep", "--allow", "/opt/cross/*")

    assert result.returncode == 1
    assert "/usr/bin/tool (a hard link to /opt/cross/tool) is an ELF binary for x86-64" in (
        result.stderr
    )


# 4. Bounded memory and time.


def test_a_huge_gnu_long_name_is_refused_in_bounded_memory(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    # A 1 GiB long name in a small layer: 3.1 GiB of memory before; refused unread now.
    size = 1 << 30
    layer = zstandard.ZstdCompressor().compress(
        tar_header("././@LongLink", size, b"L") + b"n" * (4 << 20)
    )
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [layer]})

    result = run_verify(docker_config, ref(hostile), "--deep", memory_limit=MEMORY_LIMIT)

    assert result.returncode == 1, result.stderr
    assert (
        f"tar archive at offset 0: an extended header (GNU long name or PAX) of {size} bytes; "
        "at most 1048576 are accepted" in result.stderr
    )
    assert_clean(result)


def _zstd_zeros_member(member_size: int, frame_bytes: int = 1 << 30) -> bytes:
    """A zstd tar layer of one member of ``member_size`` zero bytes, a few KiB per GiB."""
    compressor = zstandard.ZstdCompressor(level=1)
    frame = compressor.compress(bytes(frame_bytes))
    records = f"size={member_size}\n"
    record = f"{len(records) + 3} {records}".encode()
    pax = tar_header("pax", len(record), b"x") + record.ljust(512, b"\0")
    head = compressor.compress(pax + tar_header("bomb", 0))
    return head + frame * (member_size // frame_bytes)


def test_a_zstd_bomb_stops_at_max_layer_bytes(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    layer = _zstd_zeros_member(256 << 30)  # inflates to 256 GiB (283 s before)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [layer]})

    result = run_verify(
        docker_config, ref(hostile), "--deep", "--max-layer-bytes", "64MiB",
        memory_limit=MEMORY_LIMIT,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    assert (
        f"layer {sha256_digest(layer)}: the layer inflates to more than 67108864 bytes "
        "(--max-layer-bytes)" in result.stderr
    )


def test_a_zstd_bomb_stops_at_the_run_timeout(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    layer = _zstd_zeros_member(256 << 30)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [layer]})

    result = run_verify(
        docker_config, ref(hostile), "--deep", "--max-layer-bytes", "1TiB", "--timeout", "2"
    )

    assert result.returncode == 2, result.stderr
    assert (
        f"linux/arm64: layer {sha256_digest(layer)}: no complete answer from {hostile.address} "
        "within --timeout 2 s (" in result.stderr
    )


def _drip(handler: Handler, byte: bytes) -> None:
    """Write ``byte`` every 0.2 s until the client hangs up."""
    for _ in range(100000):
        try:
            handler.wfile.write(byte)
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.2)


def _drip_recorded(handler: Handler, body: bytes, seconds: float, ended: list[str]) -> None:
    """Write ``body`` one byte every ``seconds``; then record in ``ended`` whether it was all
    sent or the client hung up first."""
    for byte in body:
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            ended.append("the client hung up")
            return
        time.sleep(seconds)
    ended.append("all sent")


def _wait_for_end(ended: list[str]) -> None:
    """Wait up to 5 s for a `_drip_recorded` server to record its end: after a hang-up it
    notices at its next write or two."""
    for _ in range(100):
        if ended:
            return
        time.sleep(0.05)


def _drip_body(handler: Handler) -> None:
    """Headers at once, then one byte of the body every 0.2 s."""
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    _drip(handler, b" ")


def _drip_headers(handler: Handler) -> None:
    """A status line, then the headers one byte every 0.2 s (never ending)."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    _drip(handler, b"X")


@pytest.mark.parametrize("responder", [_drip_body, _drip_headers])
def test_a_server_that_drips_is_given_up_at_the_run_timeout(
    hostile: HostileRegistry, docker_config: Path, responder: Responder
) -> None:
    hostile.on(f"/v2/{REPOSITORY}/manifests/v1", responder)

    result = run_verify(docker_config, ref(hostile), "--timeout", "1.5")

    assert result.returncode == 2
    assert result.stderr.startswith(
        f"verify: {ref(hostile)}: linux/amd64, linux/arm64: manifest v1: no complete answer "
        f"from {hostile.address} within --timeout 1.5 s ("
    )
    assert_clean(result)


def test_work_no_deadline_can_interrupt_ends_at_the_run_timeout(
    hostile: HostileRegistry, docker_config: Path, tmp_path: Path
) -> None:
    # google-auth's token refresh (--gcp) runs outside the client's watchdog: a token endpoint
    # that drips holds it forever, so the run stops itself and names what it was waiting for.
    hostile.basic = ("oauth2accesstoken", "never-issued")
    hostile.on("/oauth2", _drip_body)
    adc = tmp_path / "adc.json"
    _service_account_key(adc, "v@boutique-test.iam.gserviceaccount.com", f"{hostile.url}/oauth2")
    environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(adc)}

    result = run_verify(docker_config, ref(hostile), "--gcp", "--timeout", "1", environ=environ)

    assert result.returncode == 2
    assert result.stderr.startswith(
        f"verify: --timeout 1 s reached; still busy with manifest v1 from {hostile.address} ("
    )
    assert_clean(result)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_verification_ends_at_once_with_130(
    hostile: HostileRegistry, docker_config: Path, stop: signal.Signals
) -> None:
    # A request in flight would hold the process until its deadline (here a minute away).
    asked = threading.Event()

    def hold(handler: Handler) -> None:
        asked.set()
        _drip_body(handler)

    hostile.on(f"/v2/{REPOSITORY}/manifests/v1", hold)
    environment = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    child = subprocess.Popen(
        [sys.executable, "-m", "verify", ref(hostile), "--timeout", "60"],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_from_a_terminal,
    )
    try:
        assert asked.wait(30), "the manifest was never asked for"
        child.send_signal(stop)
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
    assert (child.returncode, out, err) == (130, "", "verify: interrupted\n")


def test_the_requests_in_flight_are_named_oldest_first_with_their_progress() -> None:
    # What the run-timeout message above lists, one line per request still open.
    watchdog = deadline.Watchdog()
    never = time.monotonic() + 3600
    with (
        watchdog.watch("manifest v1", "r.example", never, "--timeout 900 s") as manifest,
        watchdog.watch("layer sha256:ab", "cdn.example", never, "--timeout 900 s") as layer,
    ):
        manifest.bytes_read, layer.bytes_read = 120, 4096
        layer.started = time.monotonic() - 7  # opened later, but older: it comes first
        manifest.started = time.monotonic() - 2
        assert [watch.describe() for watch in watchdog.in_flight()] == [
            "layer sha256:ab from cdn.example (4096 bytes in 7 s)",
            "manifest v1 from r.example (120 bytes in 2 s)",
        ]
    assert watchdog.in_flight() == []


def test_a_request_past_its_deadline_is_reported_with_its_bytes_and_seconds() -> None:
    # The message of registry.TimedOut: what the request had read, and for how long.
    watch = deadline.Watch("manifest v1", "r.example", time.monotonic(), "--timeout 5 s")
    watch.bytes_read, watch.started = 512, time.monotonic() - 7
    assert str(registry._timed_out(watch)) == (
        "manifest v1: no complete answer from r.example within --timeout 5 s (512 bytes in 7 s)"
    )


def _connection_on(sock: socket.socket) -> HTTPConnection:
    connection = HTTPConnection("127.0.0.1", 1)
    connection.sock = sock
    return connection


@pytest.mark.parametrize("connected", [True, False], ids=["closed-socket", "not-connected"])
def test_a_connection_closed_or_not_made_before_its_cut_does_not_stop_the_watchdog(
    connected: bool,
) -> None:
    # A request can end (its socket closed) just as its deadline passes: shutting the socket
    # down then fails; or pass its deadline before it has a connection. The watchdog still cuts
    # the next request that runs past its deadline.
    watchdog = deadline.Watchdog()
    closed = socket.socket()
    closed.close()
    soon = time.monotonic() + 0.2
    with watchdog.watch("manifest v1", "r.example", soon, "--timeout 1 s") as first:
        first.connection = _connection_on(closed) if connected else None
        for _ in range(100):
            if first.expired:
                break
            time.sleep(0.02)
        assert first.expired
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(2)
        soon = time.monotonic() + 0.2
        with watchdog.watch("layer sha256:ab", "r.example", soon, "--timeout 1 s") as w:
            w.connection = _connection_on(ours)
            assert ours.recv(1) == b""  # shut down by the watchdog, not the 2 s timeout
        assert w.expired


def test_a_blob_dripping_over_https_is_cut_at_its_deadline(
    hostile: HostileRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry redirects the layer to blob storage on HTTPS (trusted as a private CA is:
    # SSL_CERT_FILE), which sends it one byte every 0.05 s: a read timeout never trips, so only
    # the watchdog cutting the TLS connection ends the request at the run's deadline.
    authority = throwaway_ca(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))
    storage = HostileRegistry(tls=authority.server_context).start()
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    layer = image.layers["amd64"][0]
    location = f"{storage.url}/layer"
    hostile.on(
        hostile.blob_path(REPOSITORY, layer), lambda h: h.reply(307, b"", {"Location": location})
    )
    ended: list[str] = []

    def drip(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(layer)))
        handler.end_headers()
        _drip_recorded(handler, layer, 0.05, ended)

    storage.on("/layer", drip)
    client = registry.RegistryClient(
        CredentialResolver(use_gcp=False, environ={}),
        run_deadline=time.monotonic() + 0.5,
        run_limit="the test's 0.5 s",
    )
    digest = sha256_digest(layer)
    try:
        with (
            pytest.raises(registry.TimedOut) as raised,
            client.open_blob(
                parse_reference(ref(hostile)), digest, "the layer", len(layer)
            ) as blob,
        ):
            while blob.read(65536):
                pass
        _wait_for_end(ended)
    finally:
        storage.stop()
    message = re.escape(
        f"the layer: no complete answer from {hostile.address} within the test's 0.5 s ("
    )
    assert re.fullmatch(message + r"[0-9]+ bytes in [0-9]+ s\)", str(raised.value)), raised.value
    assert ended == ["the client hung up"]
    # The request went out whole: its headers too.
    assert [(seen.path, seen.headers.get("User-Agent")) for seen in storage.seen] == [
        ("/layer", registry.USER_AGENT)
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Length": "150"},
        {"Content-Length": "150", "Connection": "close"},
        {"Connection": "close"},
    ],
    ids=["kept-alive", "connection-close", "no-length"],
)
def test_a_dripping_answer_is_cut_at_its_deadline(headers: dict[str, str]) -> None:
    # A drip of one byte every 0.02 s never trips a read timeout: the watchdog cuts the socket
    # at the deadline. http.client hands the socket to an answer that ends with its connection
    # (Connection: close, or a body without a length) and drops it from the connection, so the
    # watchdog must cut it where the answer reads.
    server = HostileRegistry().start()
    body = b"{" + b" " * 148 + b"}"  # 3 s of dripping
    ended: list[str] = []

    def drip(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", OCI_INDEX)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        _drip_recorded(handler, body, 0.02, ended)

    server.on(f"/v2/{REPOSITORY}/manifests/v1", drip)
    client = registry.RegistryClient(
        CredentialResolver(use_gcp=False, environ={}),
        run_deadline=time.monotonic() + 0.5,
        run_limit="the test's 0.5 s",
    )
    try:
        with pytest.raises(registry.TimedOut) as raised:
            client.get_manifest(parse_reference(ref(server)), "v1")
        _wait_for_end(ended)
    finally:
        server.stop()
    assert ended == ["the client hung up"]
    message = f"manifest v1: no complete answer from {server.address} within the test's 0.5 s ("
    assert str(raised.value).startswith(message), raised.value


def test_one_request_has_its_own_deadline(
    hostile: HostileRegistry,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In-process to shorten the per-request limit; the run's own --timeout stays at 900 s.
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    hostile.on(hostile.blob_path(REPOSITORY, image.configs["arm64"]), _drip_body)
    monkeypatch.setattr(registry, "REQUEST_SECONDS", 1.0)
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    code = cli.main([ref(hostile)])

    assert code == 2
    config = f"config {sha256_digest(image.configs['arm64'])}"
    assert (
        f"linux/arm64: {config}: no complete answer from {hostile.address} within the 1 s "
        "limit of one request" in capsys.readouterr().err
    )


def _endless(blob: bytes, sent: list[int]) -> Responder:
    """The real blob, then zeros until the client hangs up (no Content-Length)."""

    def respond(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        total = 0
        try:
            handler.wfile.write(blob)
            total += len(blob)
            while total < (1 << 34):
                handler.wfile.write(bytes(1 << 20))
                total += 1 << 20
        except OSError:
            pass
        sent.append(total)

    return respond


def test_a_blob_that_goes_on_after_its_size_is_not_read_on(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    blob = image.layers["arm64"][0]
    sent: list[int] = []
    hostile.on(hostile.blob_path(REPOSITORY, blob), _endless(blob, sent))

    result = run_verify(docker_config, ref(hostile), "--deep")

    assert result.returncode == 1
    assert (
        f"layer {sha256_digest(blob)} goes on after the {len(blob)} bytes its descriptor "
        "declares" in result.stderr
    )
    # What the server got out before the client hung up: socket buffers, not gigabytes.
    deadline = time.monotonic() + 10
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent and sent[0] < 64 << 20


@pytest.mark.parametrize(
    ("announced", "message"),
    [
        ("999999", "the registry announces '999999' bytes; its descriptor declares"),
        (None, "ends after"),
    ],
)
def test_a_blob_shorter_than_its_descriptor_fails(
    hostile: HostileRegistry, docker_config: Path, announced: str | None, message: str
) -> None:
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    blob = image.layers["arm64"][0]
    truncated = blob[: len(blob) // 2]

    def respond(handler: Handler) -> None:
        handler.send_response(200)
        if announced is None:
            handler.send_header("Connection", "close")
        else:
            handler.send_header("Content-Length", announced)
        handler.end_headers()
        handler.wfile.write(truncated)
        handler.close_connection = True

    hostile.on(hostile.blob_path(REPOSITORY, blob), respond)

    result = run_verify(docker_config, ref(hostile), "--deep")

    assert result.returncode == 1, result.stderr
    assert f"linux/arm64: layer {sha256_digest(blob)}" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("what", ["manifest", "config"])
def test_a_descriptor_size_that_differs_from_the_document_fails(
    hostile: HostileRegistry, docker_config: Path, what: str
) -> None:
    plain = HostileRegistry().image("x/y", "v1", {"arm64": [arm_layer()]})
    document = plain.manifests["arm64"] if what == "manifest" else plain.configs["arm64"]
    hostile.image(
        REPOSITORY,
        "v1",
        {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]},
        sizes={sha256_digest(document): len(document) - 1},
    )

    result = run_verify(docker_config, ref(hostile))

    assert result.returncode == 1, result.stderr
    assert (
        f"linux/arm64: {what} {sha256_digest(document)} goes on after the "
        f"{len(document) - 1} bytes its descriptor declares" in result.stderr
    )


# 5. No traceback, no secret, no forged output.


def test_a_non_ascii_retry_after_is_not_a_traceback(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    def busy(handler: Handler) -> None:
        handler.reply(503, b"{}", {"Retry-After": "²"})

    hostile.on(f"/v2/{REPOSITORY}/manifests/v1", busy)

    result = run_verify(docker_config, ref(hostile))

    assert result.returncode == 2
    assert "manifest v1: HTTP 503 (gave up after 4 tries)" in result.stderr
    assert_clean(result)


def test_a_token_with_a_line_break_is_refused_without_showing_it(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    hostile.bearer = (f"http://{hostile.address}/token", TOKEN)
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    forged = f"{TOKEN}\r\nX-Injected: 1"
    hostile.on("/token", lambda h: h.reply(200, json.dumps({"token": forged}).encode()))

    result = run_verify(docker_config, ref(hostile), credentials=(USER, PASSWORD))

    assert result.returncode == 2
    assert "the token holds characters an Authorization header cannot carry" in result.stderr
    assert_clean(result)


def test_a_password_that_is_not_utf8_is_a_clear_error(docker_config: Path) -> None:
    result = run_verify(
        docker_config, "127.0.0.1:9/a:1", credentials=(USER, b"pw-\xff\xfe-" + PASSWORD.encode())
    )

    assert result.returncode == 2
    assert result.stderr == (
        "verify: REGISTRY_USERNAME/REGISTRY_PASSWORD: the password is not valid UTF-8\n"
    )
    assert_clean(result)


def test_registry_strings_cannot_forge_output_lines(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    forged = f"gone\nverified {ref(hostile)}@sha256:{'0' * 64}: all good\x1b[2K\x1b]0;x\x07"
    body = json.dumps({"errors": [{"code": "NOT_FOUND", "message": forged}]}).encode()
    hostile.on(f"/v2/{REPOSITORY}/manifests/v1", lambda h: h.reply(404, body))

    result = run_verify(docker_config, ref(hostile))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "NOT_FOUND gone\\nverified " in result.stderr
    assert "\\x1b[2K\\x1b]0;x\\x07" in result.stderr


def test_member_names_with_control_characters_are_escaped(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    odd = Entry("bin/evil\nverified everything\x1b[1A", elf_header(X86_64))
    hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer(odd)]})

    result = run_verify(docker_config, ref(hostile), "--deep")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "/bin/evil\\nverified everything\\x1b[1A is an ELF binary for x86-64" in result.stderr


# 6. A compression bomb in Content-Encoding stays bounded (urllib3 >= 2.6 decodes at most what
# is asked for; 2.5 decoded whatever one raw read inflated to).


def test_a_content_encoding_bomb_is_read_in_bounded_memory(
    hostile: HostileRegistry, docker_config: Path
) -> None:
    member = gzip.compress(b" " * (64 << 20), compresslevel=9)
    body = member * 64  # 4 GiB once decoded, about 4 MB on the wire

    def respond(handler: Handler) -> None:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        handler.reply(200, body, headers)

    hostile.on(f"/v2/{REPOSITORY}/manifests/v1", respond)

    result = run_verify(docker_config, ref(hostile), memory_limit=MEMORY_LIMIT)

    assert result.returncode == 2
    assert "manifest v1 is larger than 4194304 bytes" in result.stderr
    assert_clean(result)


def test_usage_errors_of_the_new_options(docker_config: Path) -> None:
    cases = {
        ("--trust-realm", "https://auth.example/"): "--trust-realm 'https://auth.example/': "
        "expected a host name",
        ("--max-layer-bytes", "10GB"): "--max-layer-bytes '10GB': expected a number of bytes",
        ("--max-layer-bytes", "0"): "--max-layer-bytes '0': expected a number of bytes",
        ("--timeout", "nan"): "--timeout 'nan': expected a number of seconds greater than 0",
        ("--timeout", "-5"): "--timeout '-5': expected a number of seconds greater than 0",
    }
    for args, message in cases.items():
        result = run_verify(docker_config, "127.0.0.1:9/a:1", *args)
        assert result.returncode == 2
        assert result.stderr.startswith(f"verify: {message}"), result.stderr
        assert result.stderr.count("\n") == 1


def test_layer_bytes_and_timeouts_in_the_help(docker_config: Path) -> None:
    result = run_verify(docker_config, "--help")
    text = " ".join(result.stdout.split())
    assert "--trust-realm HOST" in text
    assert "(default 64GiB)" in text
    assert "(default 900)" in text


# 7. The token exchange, in-process: what a realm is sent, and what its answers make of a run.

SCOPE = f"repository:{REPOSITORY}:pull"
ANONYMOUS: dict[str, str] = {}
WITH_CREDENTIALS = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}


def ask_for_token(
    realm: str, environ: dict[str, str], retry: registry.RetryPolicy | None = None
) -> str:
    """The Authorization a client of the registry 127.0.0.1:9 makes of a challenge to ``realm``."""
    client = registry.RegistryClient(CredentialResolver(use_gcp=False, environ=environ), retry)
    challenge = f'Bearer realm="{realm}",service="hostile"'
    return client.authorization(parse_reference(f"127.0.0.1:9/{REPOSITORY}:v1"), SCOPE, challenge)


def test_a_token_realm_over_https_is_asked_for_json_and_its_token_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = throwaway_ca(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))
    realm = HostileRegistry(tls=authority.server_context).start()
    realm.on("/token", lambda h: h.reply(200, json.dumps({"access_token": TOKEN}).encode()))
    try:
        authorization = ask_for_token(f"{realm.url}/token", ANONYMOUS)
    finally:
        realm.stop()

    assert authorization == f"Bearer {TOKEN}"
    asked = [(s.path, s.headers.get("User-Agent"), s.headers.get("Accept")) for s in realm.seen]
    assert asked == [
        (
            "/token?scope=repository%3Aboutique%2Fapp%3Apull&service=hostile",
            registry.USER_AGENT,
            "application/json",
        )
    ]


@pytest.mark.parametrize(
    ("realm", "refusal"),
    [
        ("ftp://auth.example/" + "t" * 300, "is not an http(s) URL"),
        ("http://auth.example/" + "t" * 300, "is plain HTTP off this machine"),
    ],
)
def test_a_token_realm_refused_is_named_by_its_first_200_characters(
    realm: str, refusal: str
) -> None:
    with pytest.raises(registry.AuthError) as raised:
        ask_for_token(realm, WITH_CREDENTIALS)

    assert str(raised.value) == f"127.0.0.1:9: token realm {realm[:200]!r} {refusal}"


@pytest.mark.parametrize(
    ("realm_host", "environ", "who"),
    [
        # No credentials: asked anonymously, wherever the realm is.
        ("other", ANONYMOUS, "anonymous"),
        # Credentials sent to a realm on the registry's own host.
        ("hostile", WITH_CREDENTIALS, "credentials from REGISTRY_USERNAME/REGISTRY_PASSWORD"),
    ],
)
def test_a_token_refusal_says_whose_request_was_refused(
    realm_host: str, environ: dict[str, str], who: str, request: pytest.FixtureRequest
) -> None:
    realm: HostileRegistry = request.getfixturevalue(realm_host)
    realm.on("/token", lambda h: h.reply(401, b'{"details":"no"}'))

    with pytest.raises(registry.AuthError) as raised:
        ask_for_token(f"{realm.url}/token", environ)

    assert str(raised.value) == f"token from {realm.url}/token: {who} refused (HTTP 401)"
    assert len(realm.authorizations()) == (1 if environ else 0)


def test_a_token_realm_failing_is_named_in_the_error(hostile: HostileRegistry) -> None:
    hostile.on("/token", lambda h: h.reply(503, b"{}"))

    with pytest.raises(registry.RegistryError) as raised:
        ask_for_token(f"{hostile.url}/token", ANONYMOUS, registry.RetryPolicy(attempts=1))

    assert str(raised.value) == f"token from {hostile.url}/token: HTTP 503 (gave up after 1 tries)"


def test_a_token_answer_over_the_document_bound_is_refused(hostile: HostileRegistry) -> None:
    bound = registry.MAX_DOCUMENT_BYTES
    answer = json.dumps({"token": TOKEN, "padding": " " * bound}).encode()
    hostile.on("/token", lambda h: h.reply(200, answer))

    with pytest.raises(registry.RegistryError) as raised:
        ask_for_token(f"{hostile.url}/token", ANONYMOUS)

    assert str(raised.value) == f"token from {hostile.url}/token is larger than {bound} bytes"


@pytest.mark.parametrize(
    "answer",
    [b'{"token": 7}', b'{"token": "", "access_token": ""}', b'["token"]', b"not json"],
    ids=["not-a-string", "empty", "not-an-object", "not-json"],
)
def test_a_token_answer_without_a_token_string_is_refused(
    hostile: HostileRegistry, answer: bytes
) -> None:
    hostile.on("/token", lambda h: h.reply(200, answer))

    with pytest.raises(registry.AuthError) as raised:
        ask_for_token(f"{hostile.url}/token", ANONYMOUS)

    assert str(raised.value) == f"token from {hostile.url}/token: the answer holds no token"


@pytest.mark.parametrize(
    "token", [f"{TOKEN}\r\nX-Injected: 1", "t" * 65537], ids=["line-break", "over-64-KiB"]
)
def test_a_token_an_authorization_header_cannot_carry_is_refused_whole(
    hostile: HostileRegistry, token: str
) -> None:
    hostile.on("/token", lambda h: h.reply(200, json.dumps({"token": token}).encode()))

    with pytest.raises(registry.AuthError) as raised:
        ask_for_token(f"{hostile.url}/token", ANONYMOUS)

    assert str(raised.value) == (
        f"token from {hostile.url}/token: the token holds characters an Authorization header "
        "cannot carry (or is longer than 64 KiB); not used"
    )


def test_a_token_of_64_kib_is_used(hostile: HostileRegistry) -> None:
    token = "t" * 65536
    hostile.on("/token", lambda h: h.reply(200, json.dumps({"token": token}).encode()))

    assert ask_for_token(f"{hostile.url}/token", ANONYMOUS) == f"Bearer {token}"


def test_a_token_realm_on_its_schemes_default_port_is_named_without_a_port() -> None:
    # Whatever the loopback's port 443 does (refuses, most likely), the message names the realm
    # as it was given: no ":None" where the URL has no port.
    with pytest.raises((registry.RegistryError, registry.AuthError)) as raised:
        ask_for_token("https://127.0.0.1/token", ANONYMOUS, registry.RetryPolicy(attempts=1))

    assert str(raised.value).startswith("token from https://127.0.0.1/token: "), raised.value


# 8. `verify published --immutable` against a tag that already holds something else.

AMD64_DIGEST, ARM64_DIGEST = "sha256:" + "a" * 64, "sha256:" + "b" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def published_immutable(
    hostile: HostileRegistry,
    held: bytes,
    media_type: str,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    """Exit code and stderr of `published --immutable` for the tag v1 holding ``held``,
    checked against the verified manifests AMD64_DIGEST and ARM64_DIGEST."""
    hostile.put(f"/v2/{REPOSITORY}/manifests/v1", held, media_type)
    verified = [f"linux/arm64={ARM64_DIGEST}", f"linux/amd64={AMD64_DIGEST}"]
    code = published.main([ref(hostile), "--immutable", *[f"--manifest={m}" for m in verified]])
    return code, capsys.readouterr().err


@pytest.fixture
def no_credentials(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs find no credentials of this machine."""
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def _index(*entries: tuple[str, str]) -> bytes:
    """An OCI index of ``(os/architecture, digest)`` entries."""
    manifests = []
    for platform, digest in entries:
        os_name, _, architecture = platform.partition("/")
        manifests.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": 500,
                "platform": {"os": os_name, "architecture": architecture},
            }
        )
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


@pytest.mark.usefixtures("no_credentials")
@pytest.mark.parametrize(
    ("held", "listing"),
    [
        (
            _index(("linux/arm64", "sha256:" + "2" * 64), ("linux/amd64", "sha256:" + "1" * 64)),
            f"linux/amd64=sha256:{'1' * 64}, linux/arm64=sha256:{'2' * 64}",
        ),
        # Only a BuildKit attestation manifest: no platform at all.
        (_index(("unknown/unknown", "sha256:" + "3" * 64)), "nothing"),
    ],
)
def test_an_immutable_tag_holding_other_images_is_listed_against_the_verified_ones(
    hostile: HostileRegistry, held: bytes, listing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = published_immutable(hostile, held, OCI_INDEX, capsys)

    assert code == published.EXIT_DIFFERS
    assert stderr == (
        f"verify published: {ref(hostile)} exists already (digest {sha256_digest(held)}) in a "
        f"repository with immutable tags, and it holds {listing}, not the verified "
        f"linux/amd64={AMD64_DIGEST}, linux/arm64={ARM64_DIGEST}: the Index would be refused "
        "after every build. Bump the tag: pulumi config set tag <new tag>\n"
    )


@pytest.mark.usefixtures("no_credentials")
def test_an_immutable_tag_holding_no_index_is_named_with_its_digest(
    hostile: HostileRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    held = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
    code, stderr = published_immutable(hostile, held, OCI_MANIFEST, capsys)

    assert code == published.EXIT_ERROR
    assert stderr == (
        f"verify published: {ref(hostile)}: {ref(hostile)} ({sha256_digest(held)}) is a "
        f"{OCI_MANIFEST}, not an index\n"
    )


# 9. `verify published HOST/REPO@DIGEST --manifest ...`: the exported digest, read back.


def published_exported(
    hostile: HostileRegistry, digest: str, capsys: pytest.CaptureFixture[str]
) -> tuple[str, int, str]:
    """The ref, exit code and stderr of `published` for the exported ``digest``, checked
    against the verified manifests AMD64_DIGEST and ARM64_DIGEST."""
    exported = f"{hostile.address}/{REPOSITORY}@{digest}"
    verified = [f"--manifest=linux/amd64={AMD64_DIGEST}", f"--manifest=linux/arm64={ARM64_DIGEST}"]
    code = published.main([exported, *verified])
    return exported, code, capsys.readouterr().err


@pytest.mark.usefixtures("no_credentials")
def test_an_exported_digest_answered_with_other_bytes_is_an_error(
    hostile: HostileRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = _index(("linux/amd64", AMD64_DIGEST), ("linux/arm64", ARM64_DIGEST))
    served = _index(("linux/amd64", AMD64_DIGEST))
    digest = sha256_digest(exported)
    hostile.put(f"/v2/{REPOSITORY}/manifests/{digest}", served, OCI_INDEX)

    name, code, stderr = published_exported(hostile, digest, capsys)

    assert code == published.EXIT_ERROR
    assert stderr == (
        f"verify published: {name}: manifest {name}: content digest is "
        f"{sha256_digest(served)}, expected {digest}\n"
    )


@pytest.mark.usefixtures("no_credentials")
@pytest.mark.parametrize(
    "held",
    [
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST},
        # No mediaType field: the registry's Content-Type names what it is.
        {"schemaVersion": 2},
    ],
    ids=["declared", "content-type"],
)
def test_an_exported_digest_holding_no_index_is_named(
    hostile: HostileRegistry, held: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.dumps(held).encode()
    digest = sha256_digest(data)
    hostile.put(f"/v2/{REPOSITORY}/manifests/{digest}", data, OCI_MANIFEST)

    name, code, stderr = published_exported(hostile, digest, capsys)

    assert code == published.EXIT_ERROR
    assert stderr == f"verify published: {name}: {name} is a {OCI_MANIFEST}, not an index\n"


# 10. The registry client in-process: a blob as sent, its deadline, a config read whole.

CONFIG_DIGEST = "sha256:" + "c" * 64


def anonymous_client(
    run_deadline: float = float("inf"), run_limit: str = "no run deadline"
) -> registry.RegistryClient:
    resolver = CredentialResolver(use_gcp=False, environ={})
    return registry.RegistryClient(resolver, run_deadline=run_deadline, run_limit=run_limit)


def test_a_layer_marked_content_encoded_is_read_as_sent(hostile: HostileRegistry) -> None:
    # Storage may mark a .tar.gz layer `Content-Encoding: gzip`; its digest is of the bytes as
    # sent, so they are not inflated on the way.
    path = hostile.blob_path(REPOSITORY, AMD64_LAYER)
    hostile.on(path, lambda h: h.reply(200, AMD64_LAYER, {"Content-Encoding": "gzip"}))
    digest = sha256_digest(AMD64_LAYER)

    with anonymous_client().open_blob(
        parse_reference(ref(hostile)), digest, "the layer", len(AMD64_LAYER)
    ) as blob:
        received = b"".join(iter(lambda: blob.read(65536), b""))

    assert received == AMD64_LAYER


def test_a_blob_read_of_no_bytes_takes_none_from_the_stream(hostile: HostileRegistry) -> None:
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    layer = image.layers["arm64"][0]

    with anonymous_client().open_blob(
        parse_reference(ref(hostile)), sha256_digest(layer), "the layer", len(layer)
    ) as blob:
        first = blob.read(10)
        assert blob.read(0) == b""
        rest = b"".join(iter(lambda: blob.read(65536), b""))

    assert first + rest == layer


def test_the_end_of_a_blob_read_after_its_deadline_is_reported_as_the_deadline(
    hostile: HostileRegistry,
) -> None:
    # The watchdog's cut reads like the end of the body, so an end read once the deadline has
    # passed is reported as the deadline, with the bytes every read brought.
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    layer = image.layers["arm64"][0]
    client = anonymous_client(time.monotonic() + 0.3, "the test's 0.3 s")
    received = b""

    with client.open_blob(
        parse_reference(ref(hostile)), sha256_digest(layer), "the layer", len(layer)
    ) as blob:
        while len(received) < len(layer) and (chunk := blob.read(100)):
            received += chunk
        for _ in range(200):
            if all(watch.expired for watch in client.watchdog.in_flight()):
                break
            time.sleep(0.01)
        with pytest.raises(registry.TimedOut) as raised:
            blob.read(100)
        # Inflating bytes already received stops there too.
        with pytest.raises(registry.TimedOut) as stopped:
            blob.check_deadline()

    assert received == layer
    message = re.escape(
        f"the layer: no complete answer from {hostile.address} within the test's 0.3 s "
        f"({len(layer)} bytes in "
    )
    assert re.fullmatch(message + r"[0-9]+ s\)", str(raised.value)), raised.value
    assert re.fullmatch(message + r"[0-9]+ s\)", str(stopped.value)), stopped.value


def test_a_config_is_fetched_whole_as_any_media_type(hostile: HostileRegistry) -> None:
    config = b'{"architecture": "arm64", "os": "linux"}'
    hostile.put(f"/v2/{REPOSITORY}/blobs/{CONFIG_DIGEST}", config, "application/octet-stream")

    document = anonymous_client().get_blob(
        parse_reference(ref(hostile)), CONFIG_DIGEST, "the config", len(config)
    )

    assert document.data == config
    assert [seen.headers.get("Accept") for seen in hostile.seen] == ["*/*"]


@pytest.mark.parametrize(
    ("served", "message"),
    [
        (b"{}", "the config is 2 bytes; its descriptor declares 5"),
        (b'{"a": 1}', "the config goes on after the 5 bytes its descriptor declares"),
    ],
    ids=["shorter", "longer"],
)
def test_a_config_of_another_size_than_its_descriptor_is_refused(
    hostile: HostileRegistry, served: bytes, message: str
) -> None:
    hostile.put(f"/v2/{REPOSITORY}/blobs/{CONFIG_DIGEST}", served, "application/octet-stream")

    with pytest.raises(SizeMismatch) as raised:
        anonymous_client().get_blob(parse_reference(ref(hostile)), CONFIG_DIGEST, "the config", 5)

    assert str(raised.value) == message


def test_a_config_missing_from_the_registry_is_named(hostile: HostileRegistry) -> None:
    with pytest.raises(registry.NotFoundError) as raised:
        anonymous_client().get_blob(parse_reference(ref(hostile)), CONFIG_DIGEST, "the config", 5)

    assert str(raised.value) == "the config not found (HTTP 404: NOT_FOUND unknown)"


def test_a_config_declared_over_the_document_bound_is_not_asked_for(
    hostile: HostileRegistry,
) -> None:
    declared = registry.MAX_DOCUMENT_BYTES + 1
    hostile.put(f"/v2/{REPOSITORY}/blobs/{CONFIG_DIGEST}", b" " * declared, "application/json")

    with pytest.raises(SizeMismatch) as raised:
        anonymous_client().get_blob(
            parse_reference(ref(hostile)), CONFIG_DIGEST, "the config", declared
        )

    assert str(raised.value) == (
        f"the config: its descriptor declares {declared} bytes; a manifest or config has at "
        f"most {registry.MAX_DOCUMENT_BYTES}"
    )
    assert hostile.seen == []


# 11. Origins, deadlines and document bounds of the registry client, in-process.


@pytest.mark.parametrize(
    ("url", "other", "same"),
    [
        ("https://r.example/v2/a", "https://R.Example/v2/b?n=1", True),
        ("http://127.0.0.1:5000/v2/", "http://127.0.0.2:5000/v2/", False),
        # urllib3 encodes the second with IDNA 2008 (xn--strae-oqa.example): another host.
        ("https://strasse.example/v2/", "https://stra\u00dfe.example/v2/", False),
        ("https://r.example/v2/", "http://r.example/v2/", False),
        ("https://r.example/v2/", "https://r.example:8443/v2/", False),
    ],
    ids=["host-case-and-path", "host", "unicode-host", "scheme", "port"],
)
def test_urls_share_an_origin_only_with_the_same_scheme_host_and_port(
    url: str, other: str, same: bool
) -> None:
    # The origin decides whether Authorization follows a redirect and whose 401 is answered.
    assert (registry.origin_of(url) == registry.origin_of(other)) is same


def test_a_request_whose_deadline_has_passed_is_not_sent(hostile: HostileRegistry) -> None:
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    layer = image.layers["arm64"][0]
    client = anonymous_client(time.monotonic() - 1, "the test's deadline")

    with (
        pytest.raises(registry.TimedOut) as raised,
        client.open_blob(
            parse_reference(ref(hostile)), sha256_digest(layer), "the layer", len(layer)
        ),
    ):
        pass

    assert str(raised.value) == (
        f"the layer: no complete answer from {hostile.address} within the test's deadline "
        "(0 bytes in 0 s)"
    )
    assert hostile.seen == []


def test_a_watched_pool_sends_outside_any_watch(hostile: HostileRegistry) -> None:
    # The connections attach to the watch of their request only when there is one; a thread
    # that never opened a watch sends as any pool would.
    hostile.on("/ping", lambda h: h.reply(200, b"pong"))
    pool = urllib3.PoolManager()
    pool.pool_classes_by_scheme = deadline.watched_pool_classes()
    answers: list[tuple[int, bytes]] = []

    def ping() -> None:
        response = pool.request("GET", f"{hostile.url}/ping", retries=False, timeout=5)
        answers.append((response.status, response.data))

    thread = threading.Thread(target=ping)
    thread.start()
    thread.join(10)
    pool.clear()

    assert answers == [(200, b"pong")]


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-bound", "one-byte-over"])
def test_a_manifest_declared_at_the_document_bound_is_read_and_one_over_it_not_asked_for(
    hostile: HostileRegistry, extra: int
) -> None:
    declared = registry.MAX_DOCUMENT_BYTES + extra
    digest = "sha256:" + "d" * 64
    body = b" " * declared
    hostile.put(f"/v2/{REPOSITORY}/manifests/{digest}", body, OCI_INDEX)
    reference = parse_reference(ref(hostile))

    if not extra:
        assert anonymous_client().get_manifest(reference, digest, declared).data == body
        return
    with pytest.raises(SizeMismatch) as raised:
        anonymous_client().get_manifest(reference, digest, declared)
    assert str(raised.value) == (
        f"manifest {digest}: its descriptor declares {declared} bytes; a manifest or config has "
        f"at most {registry.MAX_DOCUMENT_BYTES}"
    )
    assert hostile.seen == []


# 12. Redirects and timeouts of the registry client, in-process (section 1 runs them as the CLI).


@UNSAFE_REDIRECTS
def test_the_client_refuses_a_redirect_it_cannot_follow_safely(
    hostile: HostileRegistry, location: str | None, refusal: str
) -> None:
    headers = {} if location is None else {"Location": location}
    hostile.on(MANIFEST_V1, lambda h: h.reply(307, headers=headers))

    with pytest.raises(registry.RegistryError) as refused:
        anonymous_client().get_manifest(parse_reference(ref(hostile)), "v1")

    assert str(refused.value) == refusal
    # The endless one is followed 5 times after the first answer, then given up (no retries).
    assert len(hostile.seen) == (6 if location == MANIFEST_V1 + "?again" else 1)


def test_a_redirect_to_https_is_followed(hostile: HostileRegistry) -> None:
    # Nothing listens there: the client tried to connect rather than refusing the Location.
    hostile.on(MANIFEST_V1, redirect_to(f"https://127.0.0.1:{closed_port()}/m"))
    client = registry.RegistryClient(
        CredentialResolver(use_gcp=False, environ={}), registry.RetryPolicy(attempts=1)
    )
    with pytest.raises(registry.RegistryError) as failed:
        client.get_manifest(parse_reference(ref(hostile)), "v1")
    assert str(failed.value).startswith("manifest v1: connection failed: "), failed.value


def test_a_redirect_is_read_by_the_client_not_by_urllib3(hostile: HostileRegistry) -> None:
    # urllib3 following it would fail to parse this host (and the failure be retried as a
    # connection failure); the client reads the Location itself and refuses it at once.
    hostile.on(MANIFEST_V1, redirect_to("http://exa mple.com/m"))

    with pytest.raises(registry.RegistryError) as refused:
        anonymous_client().get_manifest(parse_reference(ref(hostile)), "v1")

    assert str(refused.value) == (
        "manifest v1: redirected to plain HTTP off this machine (http://exa mple.com/m)"
    )
    assert len(hostile.seen) == 1


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same-origin", "other-host"])
def test_the_authorization_a_client_holds_follows_a_redirect_only_within_its_origin(
    hostile: HostileRegistry, other: HostileRegistry, elsewhere: bool
) -> None:
    hostile.basic = (USER, PASSWORD)
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})
    target = other if elsewhere else hostile
    target.put("/moved/v2", image.index, OCI_INDEX)
    location = f"{other.url}/moved/v2" if elsewhere else "/moved/v2"
    hostile.on(f"/v2/{REPOSITORY}/manifests/v2", redirect_to(location))
    environ = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
    client = registry.RegistryClient(CredentialResolver(use_gcp=False, environ=environ))
    reference = parse_reference(ref(hostile))
    client.get_manifest(reference, "v1")  # answers the challenge: v2 is asked with credentials

    assert client.get_manifest(reference, "v2").data == image.index
    moved = [s for s in target.seen if s.path == "/moved/v2"]
    assert ["Authorization" in s.headers for s in moved] == [not elsewhere]
    assert other.authorizations() == []


def test_a_registry_that_never_accepts_the_connection_is_given_up_at_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "CONNECT_TIMEOUT_SECONDS", 0.2)
    client = registry.RegistryClient(
        CredentialResolver(use_gcp=False, environ={}), registry.RetryPolicy(attempts=1)
    )
    with never_accepting() as address:
        reference = parse_reference(f"{address}/{REPOSITORY}:v1")
        error = raised_within(lambda: client.get_manifest(reference, "v1"), 3)
    assert isinstance(error, registry.RegistryError), f"{error!r} (None: still connecting)"
    assert str(error).startswith("manifest v1: connection failed: ")
    assert "Connection to 127.0.0.1 timed out. (connect timeout=0.2)" in str(error)
    assert str(error).endswith(" (gave up after 1 tries)")


def test_a_registry_slower_than_the_read_timeout_is_given_up(
    hostile: HostileRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "READ_TIMEOUT_SECONDS", 0.2)
    image = hostile.image(REPOSITORY, "v1", {"amd64": [AMD64_LAYER], "arm64": [arm_layer()]})

    def late(handler: Handler) -> None:
        time.sleep(1)  # then the index: a client without a read timeout takes it
        handler.reply(200, image.index, {"Content-Type": OCI_INDEX})

    hostile.on(MANIFEST_V1, late)
    client = registry.RegistryClient(
        CredentialResolver(use_gcp=False, environ={}), registry.RetryPolicy(attempts=1)
    )

    with pytest.raises(registry.RegistryError) as raised:
        client.get_manifest(parse_reference(ref(hostile)), "v1")

    assert str(raised.value).startswith("manifest v1: connection failed: ")
    assert str(raised.value).endswith("Read timed out. (read timeout=0.2) (gave up after 1 tries)")
