"""Optional: the GKE consumer on upstream's real release manifest (BOUTIQUE_UPSTREAM_DIR).

Nothing upstream is committed here, so CI runs without it and this module is skipped. Point
BOUTIQUE_UPSTREAM_DIR at a checkout of the images stack's commit (with or without .git); the
consumer reads `release/kubernetes-manifests.yaml` from it through config `manifests`, under
the same mocks and checks as the fixture tests (tests/examples/test_gke_consumer.py).
"""

import os
from pathlib import Path

import pytest

from tests.examples.conftest import LOAD_BALANCER_IP, ConsumerHarness
from tests.examples.rendered import (
    DEFAULT_SERVICES,
    IMAGES_STACK,
    Expected,
    check,
    load,
    refs,
    stack_outputs,
)

UPSTREAM = os.environ.get("BOUTIQUE_UPSTREAM_DIR", "")
pytestmark = pytest.mark.skipif(
    not UPSTREAM,
    reason="BOUTIQUE_UPSTREAM_DIR is not set (no upstream checkout to read; none is committed)",
)
MANIFEST_PATH = Path(UPSTREAM) / "release" / "kubernetes-manifests.yaml"


def test_upstream_manifest_runs_our_images_on_both_architectures(
    consumer: ConsumerHarness,
) -> None:
    manifest = load(MANIFEST_PATH.read_text())
    evaluation = consumer.run(
        {"imagesStack": IMAGES_STACK, "manifests": str(MANIFEST_PATH)},
        stack_outputs(DEFAULT_SERVICES),
    )
    check(evaluation, manifest, Expected(refs(DEFAULT_SERVICES)))
    # Upstream's manifest runs exactly the images stack's default services.
    assert evaluation.outputs == {
        "deployedImages": refs(DEFAULT_SERVICES),
        "frontendAddress": LOAD_BALANCER_IP,
    }


def test_upstream_manifest_with_replicas_spread_and_an_exclusion(
    consumer: ConsumerHarness,
) -> None:
    manifest = load(MANIFEST_PATH.read_text())
    replicas = {"frontend": 3, "cartservice": 2, "adservice": 1}
    exported = [service for service in DEFAULT_SERVICES if service != "loadgenerator"]
    left_out = frozenset(
        f"{o['kind']}/{o['metadata']['name']}"
        for o in manifest
        if o["kind"] in ("Deployment", "ServiceAccount")
        and o["metadata"]["name"] == "loadgenerator"
    )
    evaluation = consumer.run(
        {
            "imagesStack": IMAGES_STACK,
            "manifests": str(MANIFEST_PATH),
            "excludeServices": '["loadgenerator"]',
            "replicas": '{"frontend": 3, "cartservice": 2, "adservice": 1}',
        },
        stack_outputs(exported),
    )
    check(evaluation, manifest, Expected(refs(exported), left_out=left_out, replicas=replicas))
