"""Checks of what the GKE consumer declared against the manifest it read (fixture or upstream's),
and the images stack's outputs the tests reference.

Written independently of examples/gke-consumer/manifest_render.py: the expected result is
derived here from the manifest's objects, the stack's refs and the config, and each registered
object is compared with its manifest object after undoing exactly the promised changes.
"""

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from plan import services
from plan.services import CATALOG
from plan.settings import UPSTREAM_COMMIT, UPSTREAM_URL
from tests.examples.conftest import Evaluation

TYPES = {
    "Deployment": "kubernetes:apps/v1:Deployment",
    "Service": "kubernetes:core/v1:Service",
    "ServiceAccount": "kubernetes:core/v1:ServiceAccount",
}
UPSTREAM_REGISTRIES = (
    "us-central1-docker.pkg.dev/google-samples/",
    "gcr.io/google-samples/",
)
ARCH = "kubernetes.io/arch"
REQUIRED_ARCH = {
    "nodeSelectorTerms": [
        {"matchExpressions": [{"key": ARCH, "operator": "In", "values": ["amd64", "arm64"]}]}
    ]
}
ARM64_TOLERATION = {"key": ARCH, "operator": "Equal", "value": "arm64", "effect": "NoSchedule"}
IMAGES_STACK = "organization/boutique-multiarch/dev"
REGISTRY = "europe-west1-docker.pkg.dev/acme-images/online-boutique"
DEFAULT_SERVICES = list(services.DEFAULT_SERVICES)
"""The services the images stack builds by default."""


@dataclass(frozen=True)
class Expected:
    """What the config asked of the consumer."""

    refs: Mapping[str, str]
    """Service -> ref the images stack exports."""
    left_out: frozenset[str] = frozenset()
    """`Kind/name` of the manifest objects that must not be declared."""
    pins: Mapping[str, str] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)
    spread: bool = True


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
    return {
        "registry": REGISTRY,
        "images": {s: image_entry(s) for s in services},
        "source": {"url": UPSTREAM_URL, "commit": UPSTREAM_COMMIT},
    }


def refs(services: list[str]) -> dict[str, str]:
    return {service: image_entry(service)["ref"] for service in services}


def load(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document is not None]


def service_of(image: str) -> str | None:
    name = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    return name if name in CATALOG else None


def containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def check(evaluation: Evaluation, manifest: list[dict[str, Any]], expected: Expected) -> None:
    """Every kept object declared once, changed only as promised; nothing else declared."""
    declared = {
        f"{kind}/{name}": inputs
        for kind, typ in TYPES.items()
        for name, inputs in evaluation.of_type(typ).items()
    }
    wanted = {f"{o['kind']}/{o['metadata']['name']}": o for o in manifest}
    assert set(declared) == set(wanted) - expected.left_out, sorted(declared)
    assert len(evaluation.registered) == len(declared) + 1, evaluation.types  # + StackReference
    for key, inputs in declared.items():
        original = wanted[key]
        if original["kind"] == "Deployment":
            check_deployment(key, inputs, original, expected)
        else:
            assert inputs == original, f"{key}: declared {inputs}, manifest has {original}"


def check_deployment(
    key: str, inputs: dict[str, Any], original: dict[str, Any], expected: Expected
) -> None:
    declared = copy.deepcopy(inputs)
    pod = declared["spec"]["template"]["spec"]
    services: set[str] = set()
    for container, before in zip(
        containers(pod), containers(original["spec"]["template"]["spec"]), strict=True
    ):
        image, service = container["image"], service_of(before["image"])
        assert not image.startswith(UPSTREAM_REGISTRIES), f"{key}: still runs {image}"
        if service is None:
            pinned = expected.pins.get(before["image"], before["image"])
            assert image == pinned, f"{key}: third-party {before['image']} became {image}"
        else:
            assert image == expected.refs[service], f"{key}: {container['name']} runs {image}"
            services.add(service)
        container["image"] = before["image"]

    node_affinity = pod["affinity"]["nodeAffinity"]
    required = node_affinity.pop("requiredDuringSchedulingIgnoredDuringExecution")
    assert required == REQUIRED_ARCH, f"{key}: required node affinity {required}"
    drop_if_empty(pod["affinity"], "nodeAffinity")
    drop_if_empty(pod, "affinity")
    assert ARM64_TOLERATION in pod["tolerations"], f"{key}: tolerations {pod['tolerations']}"
    pod["tolerations"].remove(ARM64_TOLERATION)
    drop_if_empty(pod, "tolerations")

    overrides = [expected.replicas[s] for s in services if s in expected.replicas]
    replicas = overrides[0] if overrides else original["spec"].get("replicas", 1)
    assert declared["spec"].get("replicas", 1) == replicas, f"{key}: replicas"
    if overrides:
        declared["spec"].pop("replicas")
        if "replicas" in original["spec"]:
            declared["spec"]["replicas"] = original["spec"]["replicas"]
    spread = [c for c in pod.get("topologySpreadConstraints", []) if c["topologyKey"] == ARCH]
    if expected.spread and replicas >= 2:
        assert spread == [
            {
                "maxSkew": 1,
                "topologyKey": ARCH,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": original["spec"]["selector"],
            }
        ], f"{key}: {replicas} replicas, spread constraints {spread}"
        pod["topologySpreadConstraints"].remove(spread[0])
        drop_if_empty(pod, "topologySpreadConstraints")
    else:
        assert spread == [], f"{key}: {replicas} replica(s), yet spread constraints {spread}"
    assert declared == original, f"{key}: changed beyond the promised transformations"


def drop_if_empty(parent: dict[str, Any], key: str) -> None:
    if parent.get(key) in ({}, []):
        del parent[key]
