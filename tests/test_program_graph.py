"""Properties of the resource graph: runs are deterministic and images build in parallel."""

from dataclasses import asdict

import pytest

from plan.services import CATALOG
from tests.conftest import DEV_CONFIG, ProgramRun, ProgramRunner, longest_chain, stack_config

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
    invokes = [program(stack_config(stack)).monitor.invocations for _ in range(2)]
    assert invokes[0] == invokes[1]


def test_longest_chain_does_not_grow_with_the_number_of_services(program: ProgramRunner) -> None:
    three = program({**DEV_CONFIG, f"{P}:services": list(CATALOG)[:3]})
    twelve = program({**DEV_CONFIG, f"{P}:services": list(CATALOG)})
    assert len(three.of_type("docker-build:index:Image")) == 3
    assert len(twelve.of_type("docker-build:index:Image")) == 12
    chain_three, chain_twelve = (
        longest_chain(three.registrations),
        longest_chain(twelve.registrations),
    )
    assert len(chain_three) == len(chain_twelve), f"3 services: {chain_three}; 12: {chain_twelve}"
    # An image waits for the repository (tag, cache refs) and the builder Command, nothing more;
    # IAM members wait for the repository. Nothing chains images to each other.
    assert len(chain_twelve) == 2, chain_twelve


def test_longest_chain_follows_property_dependencies_through_components() -> None:
    from tests.conftest import Registration

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
