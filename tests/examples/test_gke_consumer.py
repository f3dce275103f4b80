"""The GKE consumer example under Pulumi mocks, with the boutique-multiarch stack reference mocked.

Asserts, per service, exactly what the example promises: one apps/v1 Deployment whose only
container runs `images[service]["ref"]`, required node affinity for amd64 and arm64, and a
toleration for the arm64 taint; plus its config validation and its error for a missing image.
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pytest
import yaml

from tests.examples.conftest import CONSUMER_DIR, STACK_REFERENCE, ConsumerHarness

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
IMAGES_STACK = "organization/boutique-multiarch/dev"
REGISTRY = "europe-west1-docker.pkg.dev/acme-images/online-boutique"
DEFAULT_SERVICES = [
    "adservice",
    "cartservice",
    "checkoutservice",
    "currencyservice",
    "emailservice",
    "frontend",
    "paymentservice",
    "productcatalogservice",
    "recommendationservice",
    "shippingservice",
    "loadgenerator",
]
ARCH_AFFINITY = {
    "node_selector_terms": [
        {
            "match_expressions": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}
            ]
        }
    ]
}
ARM64_TOLERATION = {
    "key": "kubernetes.io/arch",
    "operator": "Equal",
    "value": "arm64",
    "effect": "NoSchedule",
}


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def image_entry(service: str) -> dict[str, Any]:
    """One `images` entry as the stack output contract shapes it, distinct per service."""
    index = digest_of(f"{service}-index")
    return {
        "ref": f"{REGISTRY}/{service}:v1@{index}",
        "digest": index,
        "tag": "v1",
        "platforms": {
            "linux/amd64": digest_of(f"{service}-amd64"),
            "linux/arm64": digest_of(f"{service}-arm64"),
        },
    }


def stack_outputs(services: list[str]) -> dict[str, Any]:
    return {"registry": REGISTRY, "images": {s: image_entry(s) for s in services}}


def plain(value: Any) -> Any:
    """Output types are dicts whose attributes shadow dict methods (`values`); copy them plainly."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in dict.items(value)}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def check_deployment(service: str, expected_ref: str, urn: str, spec: Mapping[str, Any]) -> None:
    """Fail with the URN unless the Deployment runs exactly `expected_ref` on amd64 and arm64."""
    pod = spec["template"]["spec"]
    images = [container["image"] for container in pod["containers"]]
    assert images == [expected_ref], f"{urn}: containers run {images}, expected [{expected_ref}]"
    node_affinity = pod["affinity"]["node_affinity"]
    expected_affinity = {"required_during_scheduling_ignored_during_execution": ARCH_AFFINITY}
    assert node_affinity == expected_affinity, f"{urn}: node affinity is {node_affinity}"
    assert pod["tolerations"] == [ARM64_TOLERATION], f"{urn}: tolerations {pod['tolerations']}"
    labels = spec["selector"]["match_labels"]
    assert labels["app.kubernetes.io/name"] == service, f"{urn}: selector {labels}"
    assert pod_labels_match(spec), f"{urn}: the selector does not select the pod template"


def pod_labels_match(spec: Mapping[str, Any]) -> bool:
    selector: Mapping[str, str] = spec["selector"]["match_labels"]
    labels: Mapping[str, str] = spec["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


def check_all(program: dict[str, Any], services: list[str]) -> pulumi.Output[Any]:
    """Assert every service's Deployment inside one Output.all(...).apply(...)."""
    deployments = program["deployments"]
    assert sorted(deployments) == sorted(services)
    checks = [
        pulumi.Output.all(
            service, deployments[service].urn, deployments[service].spec.apply(plain)
        ).apply(
            lambda args: check_deployment(args[0], image_entry(args[0])["ref"], args[1], args[2])
        )
        for service in services
    ]
    return pulumi.Output.all(*checks)


def all_urns(program: dict[str, Any]) -> pulumi.Output[list[str]]:
    """Resolves once every Deployment is registered, raising what any of them raised."""
    return pulumi.Output.all(*(d.urn for d in program["deployments"].values()))


def registered_types(consumer: ConsumerHarness) -> list[str]:
    return sorted(args.typ for args in consumer.mocks.registered)


@pulumi.runtime.test
def test_each_configured_service_gets_one_deployment_of_its_own_ref(
    consumer: ConsumerHarness,
) -> Any:
    services = ["frontend", "cartservice", "adservice"]
    program = consumer.run(
        {"imagesStack": IMAGES_STACK, "services": json.dumps(services)},
        stack_outputs(DEFAULT_SERVICES),
    )
    return check_all(program, services)


@pulumi.runtime.test
def test_all_default_services_are_deployed_when_services_is_unset(
    consumer: ConsumerHarness,
) -> Any:
    program = consumer.run({"imagesStack": IMAGES_STACK}, stack_outputs(DEFAULT_SERVICES))
    return check_all(program, DEFAULT_SERVICES)


@pulumi.runtime.test
def test_only_the_stack_reference_and_the_deployments_are_declared(
    consumer: ConsumerHarness,
) -> Any:
    program = consumer.run(
        {"imagesStack": IMAGES_STACK, "services": '["frontend", "emailservice"]'},
        stack_outputs(DEFAULT_SERVICES),
    )

    def check(_: Any) -> None:
        assert registered_types(consumer) == [DEPLOYMENT, DEPLOYMENT, STACK_REFERENCE]
        [reference] = [a for a in consumer.mocks.registered if a.typ == STACK_REFERENCE]
        assert (reference.name, reference.resource_id) == (IMAGES_STACK, IMAGES_STACK)

    return all_urns(program).apply(check)


def test_pulumi_yaml_runs_the_tested_file_with_its_default_services() -> None:
    project = yaml.safe_load((CONSUMER_DIR / "Pulumi.yaml").read_text())
    assert project["main"] == "consumer.py", "Pulumi must run the file the tests evaluate"
    assert project["config"]["services"]["default"] == DEFAULT_SERVICES
    assert "default" not in project["config"]["imagesStack"], "imagesStack must be required"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"imagesStack": "dev"}, r"config imagesStack='dev' is not a fully qualified stack name"),
        (
            {"imagesStack": "org/boutique-multiarch/dev/extra"},
            r"allowed: <organization>/<project>/<stack>",
        ),
        ({"imagesStack": IMAGES_STACK, "services": "[]"}, r"config services=\[\] is not a non"),
        (
            {"imagesStack": IMAGES_STACK, "services": '"frontend"'},
            r"config services='frontend' is not a non-empty list",
        ),
        (
            {"imagesStack": IMAGES_STACK, "services": '["Frontend"]'},
            r"config services contains 'Frontend'; allowed: lowercase DNS labels",
        ),
        (
            {"imagesStack": IMAGES_STACK, "services": '["frontend", "adservice", "frontend"]'},
            r"config services lists frontend more than once",
        ),
    ],
)
def test_bad_config_is_refused_before_any_resource(
    consumer: ConsumerHarness, config: dict[str, str], message: str
) -> None:
    with pytest.raises(pulumi.RunError, match=message):
        consumer.run(config, stack_outputs(DEFAULT_SERVICES))
    assert consumer.mocks.registered == []


def test_missing_images_stack_config_is_refused(consumer: ConsumerHarness) -> None:
    with pytest.raises(pulumi.ConfigMissingError, match="imagesStack"):
        consumer.run({}, stack_outputs(DEFAULT_SERVICES))
    assert consumer.mocks.registered == []


@pulumi.runtime.test
def test_a_missing_image_is_refused_naming_the_service_and_the_stack(
    consumer: ConsumerHarness,
) -> Any:
    # The program's own lookup, tested as a function: an error raised inside the program's
    # apply would only surface as an unretrieved future of every Deployment.
    program = consumer.run({"imagesStack": IMAGES_STACK}, stack_outputs(DEFAULT_SERVICES))
    image_ref = program["image_ref"]
    exported = {"images": {s: image_entry(s) for s in ["frontend", "cartservice"]}}

    with pytest.raises(pulumi.RunError) as missing_service:
        image_ref(exported["images"], "shoppingassistantservice", IMAGES_STACK)
    assert str(missing_service.value).startswith(
        f"stack {IMAGES_STACK} exports no image ref for service 'shoppingassistantservice' "
        "(exported: cartservice, frontend)"
    )
    with pytest.raises(pulumi.RunError, match=f"stack {IMAGES_STACK} has no `images` output"):
        image_ref(None, "frontend", IMAGES_STACK)
    with pytest.raises(pulumi.RunError, match="exports no image ref for service 'frontend'"):
        image_ref({"frontend": {"digest": digest_of("x")}}, "frontend", IMAGES_STACK)
    assert image_ref(exported["images"], "frontend", IMAGES_STACK) == image_entry("frontend")["ref"]
    return all_urns(program)


def test_example_directory_is_self_contained() -> None:
    requirements = (CONSUMER_DIR / "requirements.txt").read_text().split()
    assert {line.split(">=")[0] for line in requirements} == {"pulumi", "pulumi-kubernetes"}
    assert all("," in line and "<" in line for line in requirements), "ranges, not open pins"
