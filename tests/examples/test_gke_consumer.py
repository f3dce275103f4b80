"""The GKE consumer example under Pulumi mocks, on the project's own manifest fixture.

The StackReference is mocked with outputs in the images stack's contract (`source`, `images`);
the manifest is tests/fixtures/gke-consumer/boutique-manifests.yaml, given through config
`manifests` (as a file, and as a URL served on 127.0.0.1). `tests.examples.rendered.check`
compares every declared object with its manifest object.
"""

import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import consumer_config
import manifest_render
import pulumi
import pytest
import yaml

from plan.services import CATALOG
from plan.settings import UPSTREAM_COMMIT
from tests.examples.conftest import (
    CONSUMER_DIR,
    LOAD_BALANCER_IP,
    STACK_REFERENCE,
    ConsumerHarness,
)
from tests.examples.rendered import (
    DEFAULT_SERVICES,
    IMAGES_STACK,
    TYPES,
    Expected,
    check,
    digest_of,
    load,
    refs,
    stack_outputs,
)
from tests.integration.loopbackserver import address_of, serve, shut_down

FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "gke-consumer" / "boutique-manifests.yaml"
)
MANIFEST = load(FIXTURE.read_text())
FIXTURE_SERVICES = [
    "frontend",
    "cartservice",
    "productcatalogservice",
    "currencyservice",
    "loadgenerator",
]


def config(**keys: Any) -> dict[str, str]:
    """Consumer config as Pulumi hands it over: strings, with arrays and objects as JSON."""
    values = {"imagesStack": IMAGES_STACK, "manifests": str(FIXTURE)} | keys
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def test_every_object_is_declared_with_our_images_arch_scheduling_and_spreading(
    consumer: ConsumerHarness,
) -> None:
    evaluation = consumer.run(config(), stack_outputs(DEFAULT_SERVICES))
    check(evaluation, MANIFEST, Expected(refs(DEFAULT_SERVICES)))
    assert evaluation.outputs == {
        "deployedImages": refs(FIXTURE_SERVICES),
        "frontendAddress": LOAD_BALANCER_IP,
    }


def test_spreading_follows_the_effective_replica_count(consumer: ConsumerHarness) -> None:
    replicas = {"frontend": 1, "loadgenerator": 2, "cartservice": 4}
    evaluation = consumer.run(config(replicas=replicas), stack_outputs(DEFAULT_SERVICES))
    check(evaluation, MANIFEST, Expected(refs(DEFAULT_SERVICES), replicas=replicas))
    spreading = sorted(
        name
        for name, inputs in evaluation.of_type(TYPES["Deployment"]).items()
        if inputs["spec"]["template"]["spec"].get("topologySpreadConstraints")
    )
    assert spreading == ["cartservice", "loadgenerator", "productcatalogservice"]


def test_spreading_can_be_switched_off(consumer: ConsumerHarness) -> None:
    evaluation = consumer.run(
        config(spreadAcrossArchitectures=False), stack_outputs(DEFAULT_SERVICES)
    )
    check(evaluation, MANIFEST, Expected(refs(DEFAULT_SERVICES), spread=False))


def test_third_party_images_are_kept_or_pinned(consumer: ConsumerHarness) -> None:
    pins = {"redis:7-alpine": f"redis:7.4-alpine@{digest_of('redis')}"}
    evaluation = consumer.run(config(thirdPartyImages=pins), stack_outputs(DEFAULT_SERVICES))
    check(evaluation, MANIFEST, Expected(refs(DEFAULT_SERVICES), pins=pins))
    deployments = evaluation.of_type(TYPES["Deployment"])
    [redis] = deployments["redis-cart"]["spec"]["template"]["spec"]["containers"]
    [busybox] = deployments["loadgenerator"]["spec"]["template"]["spec"]["initContainers"]
    assert (redis["image"], busybox["image"]) == (pins["redis:7-alpine"], "busybox:1.36")


def test_a_service_the_stack_does_not_export_is_refused_naming_it(
    consumer: ConsumerHarness,
) -> None:
    exported = [s for s in DEFAULT_SERVICES if s not in ("currencyservice", "loadgenerator")]
    with pytest.raises(pulumi.RunError) as refused:
        consumer.run(config(), stack_outputs(exported))
    assert str(refused.value).startswith(
        "the manifest runs upstream service image(s) of currencyservice, loadgenerator, but "
        f"stack {IMAGES_STACK} exports no image for them (exported: adservice, cartservice,"
    )
    assert "list them in config excludeServices" in str(refused.value)
    assert [args.typ for args in consumer.mocks.registered] == [STACK_REFERENCE]


def test_an_excluded_service_is_left_out_with_a_warning(
    consumer: ConsumerHarness, caplog: pytest.LogCaptureFixture
) -> None:
    exported = [s for s in DEFAULT_SERVICES if s != "loadgenerator"]
    with caplog.at_level(logging.WARNING):
        evaluation = consumer.run(
            config(excludeServices=["loadgenerator", "frontend"]), stack_outputs(exported)
        )
    left_out = {
        "Deployment/frontend",
        "Service/frontend",
        "Service/frontend-external",
        "ServiceAccount/frontend",
        "Deployment/loadgenerator",
        "ServiceAccount/loadgenerator",
    }
    check(evaluation, MANIFEST, Expected(refs(exported), left_out=frozenset(left_out)))
    assert evaluation.outputs == {
        "deployedImages": refs(["cartservice", "productcatalogservice", "currencyservice"]),
        "frontendAddress": None,
    }
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "excluded service frontend: left out Deployment/frontend, Service/frontend, "
        "Service/frontend-external, ServiceAccount/frontend",
        "excluded service loadgenerator: left out Deployment/loadgenerator, "
        "ServiceAccount/loadgenerator",
    ]


@pytest.fixture
def served_manifest() -> Iterator[str]:
    """The fixture served over HTTP on 127.0.0.1; yields its URL."""
    body = FIXTURE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = serve(Handler)
    yield f"http://{address_of(server)}/release/kubernetes-manifests.yaml"
    shut_down(server)


def test_manifests_may_come_from_a_url(consumer: ConsumerHarness, served_manifest: str) -> None:
    evaluation = consumer.run(config(manifests=served_manifest), stack_outputs(DEFAULT_SERVICES))
    check(evaluation, MANIFEST, Expected(refs(DEFAULT_SERVICES)))


def test_without_manifests_config_the_stack_source_decides_where_to_read(
    consumer: ConsumerHarness,
) -> None:
    outputs = stack_outputs(DEFAULT_SERVICES) | {
        "source": {"url": "https://git.example.com/shop/boutique.git", "commit": UPSTREAM_COMMIT}
    }
    with pytest.raises(pulumi.RunError) as refused:
        consumer.run(config(manifests=""), outputs)
    assert str(refused.value).startswith(
        f"stack {IMAGES_STACK} was built from source url='https://git.example.com/shop/"
        f"boutique.git' commit='{UPSTREAM_COMMIT}', whose release/kubernetes-manifests.yaml"
    )
    assert [args.typ for args in consumer.mocks.registered] == [STACK_REFERENCE]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"imagesStack": "dev"}, r"config imagesStack='dev' is not a fully qualified stack name"),
        ({"excludeServices": '"frontend"'}, r"config excludeServices='frontend' is not a list"),
        ({"excludeServices": "[frontend"}, r"excludeServices' value '\[frontend' is not a valid"),
        ({"excludeServices": ["Frontend"]}, r"config excludeServices contains 'Frontend'"),
        ({"replicas": {"frontend": -1}}, r"config replicas.frontend=-1 is not an integer from 0"),
        ({"replicas": {"frontend": "2"}}, r"config replicas.frontend='2' is not an integer"),
        ({"thirdPartyImages": {"redis:7-alpine": "redis 7"}}, r"thirdPartyImages.redis:7-alpine"),
        ({"spreadAcrossArchitectures": "yes"}, r"config spreadAcrossArchitectures='yes' is not a"),
        ({"manifests": "ftp://mirror.example.com/m.yaml"}, r"config manifests='ftp://mirror"),
        ({"manifests": "http://mirror.example.com/m.yaml"}, r"http:// on 127.0.0.1"),
    ],
)
def test_bad_config_is_refused_before_any_resource(
    consumer: ConsumerHarness, keys: dict[str, Any], message: str
) -> None:
    with pytest.raises(pulumi.RunError, match=message):
        consumer.run(config(**keys), stack_outputs(DEFAULT_SERVICES))
    assert [args.typ for args in consumer.mocks.registered] in ([], [STACK_REFERENCE])


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"excludeServices": ["adservice"]}, r"config excludeServices names 'adservice', which"),
        ({"replicas": {"redis-cart": 2}}, r"config replicas names 'redis-cart', which the manif"),
        ({"thirdPartyImages": {"redis:alpine": "redis:7"}}, r"third-party images: busybox:1.36,"),
    ],
)
def test_config_naming_what_the_manifest_lacks_is_refused(
    consumer: ConsumerHarness, keys: dict[str, Any], message: str
) -> None:
    with pytest.raises(pulumi.RunError, match=message):
        consumer.run(config(**keys), stack_outputs(DEFAULT_SERVICES))
    assert [args.typ for args in consumer.mocks.registered] == [STACK_REFERENCE]


def test_missing_images_stack_config_is_refused(consumer: ConsumerHarness) -> None:
    with pytest.raises(pulumi.ConfigMissingError, match="imagesStack"):
        consumer.run({}, stack_outputs(DEFAULT_SERVICES))
    assert consumer.mocks.registered == []


def test_pulumi_yaml_declares_the_keys_the_consumer_reads() -> None:
    project = yaml.safe_load((CONSUMER_DIR / "Pulumi.yaml").read_text())
    assert project["main"] == "consumer.py", "Pulumi must run the file the tests evaluate"
    declared = set(project["config"])
    # Object keys cannot be declared in the project schema (Pulumi.yaml says so).
    assert declared | {"thirdPartyImages", "replicas"} == set(consumer_config.KEYS)
    assert "default" not in project["config"]["imagesStack"], "imagesStack must be required"
    assert project["config"]["spreadAcrossArchitectures"]["default"] is True


def test_the_consumer_declares_every_kind_the_rendering_accepts(
    consumer: ConsumerHarness,
) -> None:
    resource_types = consumer.run(config(), stack_outputs(DEFAULT_SERVICES)).namespace[
        "RESOURCE_TYPES"
    ]
    assert set(resource_types) == set(manifest_render.SUPPORTED_KINDS)
    assert {kind for _, kind in resource_types} == set(TYPES)


def test_upstream_service_images_are_the_images_stack_catalog() -> None:
    assert set(manifest_render.UPSTREAM_SERVICES) == set(CATALOG)


def test_example_directory_is_self_contained() -> None:
    requirements = (CONSUMER_DIR / "requirements.txt").read_text().split()
    assert {line.split(">=")[0] for line in requirements} == {
        "pulumi",
        "pulumi-kubernetes",
        "PyYAML",
    }
    assert all("," in line and "<" in line for line in requirements), "ranges, not open pins"
