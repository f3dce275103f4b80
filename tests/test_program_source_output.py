"""The `source` stack output: the upstream URL and commit the images were built from.

GKE consumers (examples/gke-consumer) render upstream's manifests at exactly this commit, so it
must be the checkout's revision for every committed stack, and for a `path` source the HEAD the
checkout reports (with the configured URL, or none).
"""

from typing import Any

import pulumi
import pytest

from plan.settings import UPSTREAM_COMMIT, UPSTREAM_URL
from tests.program_mocks import PATH_CHECKOUT_HEAD, PROJECT, ROOT, stack_config, start_program


def check_source(run_outputs: dict[str, Any], expected: dict[str, str | None]) -> Any:
    def check(source: Any) -> None:
        assert source == expected, f"stack output source is {source}, expected {expected}"

    return run_outputs["source"].apply(check)


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
@pulumi.runtime.test
def test_committed_stacks_export_the_pinned_commit(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(stack_config(stack))
    return check_source(run.outputs, {"url": UPSTREAM_URL, "commit": UPSTREAM_COMMIT})


@pulumi.runtime.test
def test_a_git_source_exports_its_own_url(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    fork = "https://git.example.com/shop/boutique-fork.git"
    run = start_program(stack_config("local") | {f"{PROJECT}:source": {"url": fork}})
    return check_source(run.outputs, {"url": fork, "commit": UPSTREAM_COMMIT})


@pytest.mark.parametrize(
    ("source", "url"),
    [
        ({"path": "../microservices-demo"}, None),
        (
            {"path": "../microservices-demo", "url": "https://git.example.com/shop/fork.git"},
            "https://git.example.com/shop/fork.git",
        ),
    ],
)
@pulumi.runtime.test
def test_a_path_source_exports_the_checkout_head_and_the_configured_url(
    source: dict[str, str], url: str | None, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(stack_config("local") | {f"{PROJECT}:source": source})
    # The mocked `host checkout --path` reports PATH_CHECKOUT_HEAD as the work tree's HEAD.
    return check_source(run.outputs, {"url": url, "commit": PATH_CHECKOUT_HEAD})
