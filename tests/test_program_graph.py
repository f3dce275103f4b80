"""Properties of the resource graph: runs are deterministic and images build in parallel."""

import gc
import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from plan.services import CATALOG
from tests.program_mocks import (
    DEV_CONFIG,
    ROOT,
    ProgramRun,
    ProgramRunner,
    longest_chain,
    stack_config,
)

P = "boutique-multiarch"


def declared(run: ProgramRun) -> dict[str, dict[str, object]]:
    """Everything the program tells the engine about each resource, keyed by URN."""
    return {registration.urn: asdict(registration) for registration in run.registrations}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_two_runs_declare_identical_resources(program: ProgramRunner, stack: str) -> None:
    first, second = declared(program(stack_config(stack))), declared(program(stack_config(stack)))
    assert sorted(first) == sorted(second)
    for urn, registration in first.items():
        assert registration == second[urn], f"{urn} differs between two runs"
    # The registry checks of different services run concurrently: compare what, not when.
    invokes = [
        sorted(map(repr, program(stack_config(stack)).monitor.invocations)) for _ in range(2)
    ]
    assert invokes[0] == invokes[1]


@pytest.mark.parametrize(
    ("strategy", "images_per_service"), [("multiPlatform", 1), ("perPlatform", 2)]
)
def test_longest_chain_does_not_grow_with_the_number_of_services(
    program: ProgramRunner, strategy: str, images_per_service: int
) -> None:
    config = {**DEV_CONFIG, f"{P}:strategy": strategy}
    three = program({**config, f"{P}:services": list(CATALOG)[:3]})
    twelve = program({**config, f"{P}:services": list(CATALOG)})
    assert len(three.of_type("docker-build:index:Image")) == 3 * images_per_service
    assert len(twelve.of_type("docker-build:index:Image")) == 12 * images_per_service
    chain_three, chain_twelve = (
        longest_chain(three.registrations),
        longest_chain(twelve.registrations),
    )
    assert len(chain_three) == len(chain_twelve), f"3 services: {chain_three}; 12: {chain_twelve}"
    # repository (tag, cache refs) -> image -> its verification Command -> the service's Index.
    # Nothing chains one service's resources to another's.
    assert len(chain_twelve) == 4, chain_twelve
    kinds = [urn.rsplit("::", 2)[-2].rsplit("$", 1)[-1] for urn in chain_twelve]
    assert kinds == [
        "gcp:artifactregistry/repository:Repository",
        "docker-build:index:Image",
        "command:local:Command",
        "docker-build:index:Index",
    ], chain_twelve


def test_the_program_freezes_what_it_imported(program: ProgramRunner) -> None:
    import pulumi_docker_build

    program(stack_config("dev"))
    # gc.get_referrers sees only objects the collector still walks: a frozen module's
    # namespace is not among them.
    walked = {id(referrer) for referrer in gc.get_referrers(pulumi_docker_build.Image)}
    assert id(vars(pulumi_docker_build)) not in walked, "the SDK modules are frozen"
    assert gc.get_freeze_count() > 0


LOADED_GCP_PACKAGES = """
import json, sys
from tests.program_mocks import evaluate_program, stack_config
evaluate_program(stack_config("dev"))
# A loaded package has submodules in sys.modules; a lazy one is only `pulumi_gcp.<package>`.
modules = [name.split(".") for name in sys.modules if name.startswith("pulumi_gcp.")]
print(json.dumps(sorted({parts[1] for parts in modules if len(parts) > 2})))
"""


def test_the_dev_stack_loads_only_the_gcp_packages_it_declares_from() -> None:
    # Each `pulumi_gcp.<package>` is a lazy module, 10-100 ms to load: one the stack declares
    # nothing from (Binary Authorization and KMS here) must stay unloaded. A fresh interpreter:
    # other tests load them.
    printed = subprocess.run(
        [sys.executable, "-c", LOADED_GCP_PACKAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(printed) == ["artifactregistry", "organizations"]


def test_longest_chain_follows_property_dependencies_through_components() -> None:
    from tests.program_mocks import Registration

    def node(
        urn: str, custom: bool, parent: str = "", deps: list[str] | None = None
    ) -> Registration:
        return Registration(
            urn, "t", urn, custom, parent, False, False, False, [], {"x": deps or []}, {}
        )

    registrations = [
        node("component", False),
        node("a", True, parent="component"),
        node("b", True, deps=["component"]),
        node("c", True, deps=["b"]),
        node("d", True),
    ]
    assert longest_chain(registrations) == ["a", "b", "c"]
