"""The GKE consumer's pure modules, without Pulumi: where the manifests come from, reading them
within bounds (real files, real HTTP servers on 127.0.0.1), and each refusal of the rendering."""

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import manifest_fetch
import manifest_render
import pytest

from tests.examples.rendered import load
from tests.integration.loopbackserver import address_of, serve, shut_down

COMMIT = "5f4ccc7d1c4312c72e97cba777c4f6a586026e59"
STACK = "organization/boutique-multiarch/dev"
RAW = f"https://raw.githubusercontent.com/GoogleCloudPlatform/microservices-demo/{COMMIT}"
FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "gke-consumer" / "boutique-manifests.yaml"
)
SMALL = manifest_fetch.Limits(max_bytes=1000, timeout=1.0, max_redirects=2)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/GoogleCloudPlatform/microservices-demo.git",
        "https://github.com/GoogleCloudPlatform/microservices-demo",
        "git@github.com:GoogleCloudPlatform/microservices-demo.git",
        "ssh://git@github.com/GoogleCloudPlatform/microservices-demo.git",
    ],
)
def test_upstream_manifests_are_read_at_the_stack_commit(url: str) -> None:
    where = manifest_fetch.location(None, {"url": url, "commit": COMMIT}, STACK)
    assert where == f"{RAW}/release/kubernetes-manifests.yaml"


def test_configured_manifests_win_over_the_stack_source() -> None:
    source = {"url": "https://github.com/acme/boutique.git", "commit": COMMIT}
    assert manifest_fetch.location("shop.yaml", source, STACK) == "shop.yaml"
    url = "https://mirror.example.com/boutique/manifests.yaml"
    assert manifest_fetch.location(url, None, STACK) == url


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, f"stack {STACK} has no `source` output"),
        ({"url": None, "commit": "a" * 40}, "built from source url=None"),
        ({"url": "https://gitlab.com/acme/boutique.git", "commit": COMMIT}, "gitlab.com"),
        ({"url": "https://github.com/acme/boutique.git", "commit": None}, "commit=None"),
        ({"url": "https://github.com/acme/boutique.git", "commit": "v0"}, "commit='v0'"),
    ],
)
def test_a_source_without_derivable_manifests_is_refused(source: Any, message: str) -> None:
    with pytest.raises(manifest_fetch.ManifestError, match="set config manifests") as refused:
        manifest_fetch.location(None, source, STACK)
    assert message in str(refused.value)


def test_a_local_file_is_read_within_the_size_limit(tmp_path: Path) -> None:
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    small.write_text("kind: x\n")
    large.write_bytes(b"#" * 1001)
    assert manifest_fetch.read(str(small), SMALL) == "kind: x\n"
    with pytest.raises(manifest_fetch.ManifestError, match=r"large.yaml is larger than 1000 bytes"):
        manifest_fetch.read(str(large), SMALL)
    with pytest.raises(manifest_fetch.ManifestError, match=r"missing.yaml cannot be read: No such"):
        manifest_fetch.read(str(tmp_path / "missing.yaml"), SMALL)
    (tmp_path / "latin1.yaml").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(manifest_fetch.ManifestError, match=r"latin1.yaml is not UTF-8 text"):
        manifest_fetch.read(str(tmp_path / "latin1.yaml"), SMALL)


Respond = Callable[[BaseHTTPRequestHandler], None]


@pytest.fixture
def http() -> Iterator[Callable[[Respond], str]]:
    """`http(respond)` serves every GET with `respond` on 127.0.0.1 and returns the base URL."""
    servers = []

    def start(respond: Respond) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # The client gives up first in the timeout tests.
                with contextlib.suppress(ConnectionError):
                    respond(self)

            def log_message(self, *args: Any) -> None:
                pass

        servers.append(serve(Handler))
        return f"http://{address_of(servers[-1])}"

    yield start
    for server in servers:
        shut_down(server)


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Respond:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {"Content-Length": str(len(body))}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def test_a_url_is_read(http: Callable[[Respond], str]) -> None:
    base = http(answer(200, b"kind: Service\n"))
    assert manifest_fetch.read(f"{base}/m.yaml", SMALL) == "kind: Service\n"


def test_a_url_answering_an_error_is_refused_with_its_status(
    http: Callable[[Respond], str],
) -> None:
    base = http(answer(404, b"not found"))
    with pytest.raises(manifest_fetch.ManifestError, match=r"m.yaml answered HTTP 404 Not Found"):
        manifest_fetch.read(f"{base}/m.yaml", SMALL)


def test_a_url_too_large_is_refused_by_its_length_or_while_reading(
    http: Callable[[Respond], str],
) -> None:
    declared = http(answer(200, b"#" * 2000))
    with pytest.raises(manifest_fetch.ManifestError, match=r"is 2000 bytes, larger than 1000"):
        manifest_fetch.read(f"{declared}/m.yaml", SMALL)
    # No Content-Length: the body ends when the connection closes; reading stops past the limit.
    undeclared = http(answer(200, b"#" * 200_000, {"Connection": "close"}))
    with pytest.raises(manifest_fetch.ManifestError, match=r"m.yaml is larger than 1000 bytes"):
        manifest_fetch.read(f"{undeclared}/m.yaml", SMALL)


def test_a_url_that_does_not_answer_in_time_is_refused(http: Callable[[Respond], str]) -> None:
    release = threading.Event()

    def stall(handler: BaseHTTPRequestHandler) -> None:
        release.wait(10)

    base = http(stall)
    started = time.monotonic()
    try:
        with pytest.raises(manifest_fetch.ManifestError, match=r"m.yaml did not arrive within 1 s"):
            manifest_fetch.read(f"{base}/m.yaml", SMALL)
    finally:
        release.set()
    assert time.monotonic() - started < 5


def test_a_url_that_trickles_is_cut_off_at_the_deadline(http: Callable[[Respond], str]) -> None:
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "900")
        handler.end_headers()
        for _ in range(900):
            handler.wfile.write(b"#")
            handler.wfile.flush()
            time.sleep(0.01)

    base = http(trickle)
    limits = manifest_fetch.Limits(max_bytes=1000, timeout=0.5)
    with pytest.raises(manifest_fetch.ManifestError, match=r"did not arrive within 0.5 s"):
        manifest_fetch.read(f"{base}/m.yaml", limits)


def test_a_url_that_trickles_its_headers_is_cut_off_at_the_deadline(
    http: Callable[[Respond], str],
) -> None:
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(100):
            handler.wfile.write(b"z")
            handler.wfile.flush()
            time.sleep(0.05)

    base = http(trickle)
    started = time.monotonic()
    limits = manifest_fetch.Limits(max_bytes=1000, timeout=0.5)
    with pytest.raises(manifest_fetch.ManifestError, match=r"did not arrive within 0.5 s"):
        manifest_fetch.read(f"{base}/m.yaml", limits)
    assert time.monotonic() - started < 2


def test_redirects_are_bounded_and_never_leave_https(http: Callable[[Respond], str]) -> None:
    elsewhere = http(answer(302, b"", {"Location": "http://mirror.example.com/m.yaml"}))
    with pytest.raises(manifest_fetch.ManifestError, match=r"the redirect from .* is not an allow"):
        manifest_fetch.read(f"{elsewhere}/m.yaml", SMALL)
    loop = http(answer(302, b"", {"Location": "/again"}))
    with pytest.raises(manifest_fetch.ManifestError, match=r"answered HTTP 302"):
        manifest_fetch.read(f"{loop}/m.yaml", SMALL)


def test_yaml_is_parsed_safely_and_aliases_are_refused() -> None:
    assert manifest_fetch.parse("a: 1\n---\n---\nb: [2]\n", "m.yaml") == [
        {"a": 1},
        None,
        {"b": [2]},
    ]
    with pytest.raises(manifest_fetch.ManifestError, match=r"m.yaml is not valid YAML"):
        manifest_fetch.parse("a: [1\n", "m.yaml")
    with pytest.raises(manifest_fetch.ManifestError, match=r"could not determine a constructor"):
        manifest_fetch.parse("a: !!python/object/apply:os.system [true]\n", "m.yaml")
    with pytest.raises(manifest_fetch.ManifestError, match=r"m.yaml uses YAML aliases"):
        manifest_fetch.parse("a: &x [1, 2]\nb: [*x, *x]\n", "m.yaml")


MANIFEST = load(FIXTURE.read_text())
IMAGES = {
    s: {"ref": f"registry.example.com/shop/{s}:v1@sha256:{'a' * 64}"}
    for s in manifest_render.UPSTREAM_SERVICES
}
OPTIONS = manifest_render.RenderOptions()


def deployment(manifest: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [found] = [o for o in manifest if (o["kind"], o["metadata"]["name"]) == ("Deployment", name)]
    return found


def refused(manifest: list[Any], images: Any = IMAGES, options: Any = OPTIONS) -> str:
    with pytest.raises(manifest_render.RenderError) as error:
        manifest_render.render(manifest, images, options, STACK)
    return str(error.value)


def test_the_rendering_leaves_its_input_untouched() -> None:
    manifest = copy.deepcopy(MANIFEST)
    rendering = manifest_render.render(manifest, IMAGES, OPTIONS, STACK)
    assert manifest == MANIFEST
    assert rendering.frontend_external == "Service/frontend-external"
    assert rendering.warnings == []


def test_images_are_matched_by_the_last_path_element() -> None:
    assert manifest_render.service_of(
        "gcr.io/google-samples/microservices-demo/adservice:v0.8"
    ) == ("adservice")
    assert manifest_render.service_of(f"my.registry:5000/fork/frontend@sha256:{'b' * 64}") == (
        "frontend"
    )
    assert manifest_render.service_of("redis:alpine") is None
    assert manifest_render.service_of("library/busybox:1.36") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m.append(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
            ),
            "manifest document 18 is v1 ConfigMap; supported kinds: apps/v1 Deployment, v1 Service",
        ),
        (lambda m: m.append(["not", "an", "object"]), "manifest document 18 is a list"),
        (lambda m: m[0]["metadata"].update(namespace="shop"), "sets metadata.namespace"),
        (lambda m: m[0].update(status={}), "has field(s) status; allowed:"),
        (lambda m: m.append(copy.deepcopy(m[2])), "declares Service/frontend more than once"),
        (
            lambda m: m[1]["spec"]["template"]["spec"].update(
                nodeSelector={"kubernetes.io/arch": "amd64"}
            ),
            "Deployment frontend pins kubernetes.io/arch in its nodeSelector",
        ),
        (
            lambda m: m[1]["spec"]["template"]["spec"].update(
                affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
            ),
            "Deployment frontend already has required node affinity",
        ),
        (
            lambda m: m[1]["spec"]["template"]["spec"].update(
                topologySpreadConstraints=[{"topologyKey": "kubernetes.io/arch", "maxSkew": 2}]
            ),
            "Deployment frontend already spreads over kubernetes.io/arch",
        ),
        (
            lambda m: m[1]["spec"]["template"]["spec"]["containers"].append(
                {"name": "cart", "image": "x/cartservice:v1"}
            ),
            None,
        ),
    ],
)
def test_what_the_rendering_cannot_do_is_refused(
    change: Callable[[list[Any]], None], message: str | None
) -> None:
    manifest = copy.deepcopy(MANIFEST)
    change(manifest)
    if message is None:  # two services in one Deployment: only excluding one of them is refused
        manifest_render.render(manifest, IMAGES, OPTIONS, STACK)
        options = manifest_render.RenderOptions(exclude=frozenset({"cartservice"}))
        assert refused(manifest, options=options) == (
            "Deployment/frontend runs cartservice, frontend; config excludeServices must name "
            "all of them or none"
        )
    else:
        assert message in refused(manifest)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (None, f"stack {STACK} has no `images` output"),
        (
            {"frontend": {"digest": "sha256:1"}},
            "exports images['frontend'] without a digest-pinned",
        ),
        ({"frontend": {"ref": "registry.example.com/frontend:v1"}}, "without a digest-pinned"),
    ],
)
def test_an_images_output_not_in_the_contract_is_refused(images: Any, message: str) -> None:
    assert message in refused(MANIFEST, images=images)


def test_a_service_account_shared_with_a_kept_deployment_stays() -> None:
    manifest = copy.deepcopy(MANIFEST)
    deployment(manifest, "cartservice")["spec"]["template"]["spec"]["serviceAccountName"] = (
        "loadgenerator"
    )
    options = manifest_render.RenderOptions(exclude=frozenset({"loadgenerator"}))
    rendering = manifest_render.render(manifest, IMAGES, options, STACK)
    kept = {f"{o['kind']}/{o['metadata']['name']}" for o in rendering.objects}
    assert "ServiceAccount/loadgenerator" in kept
    assert "Deployment/loadgenerator" not in kept
    assert rendering.warnings == [
        "excluded service loadgenerator: left out Deployment/loadgenerator"
    ]
