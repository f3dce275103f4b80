"""The small pure planners of plan/, run without Pulumi mocks: names and labels, the service
catalog. (Cleanup policies: test_plan_cleanup.py; settings: test_settings.py; the verification
and patch command lines: test_components_manifest_verification.py,
test_components_dockerfile_patches.py.)"""

import argparse
import json
import shlex
from types import MappingProxyType

import pytest

from host.contract import BuilderEnsureRequest, BuilderRemoveRequest
from host.contract import parser as host_parser
from plan.host_commands import builder_spec, stack_owner
from plan.naming import arch_of, member_slug, oci_labels
from plan.services import CATALOG, DEFAULT_SERVICES, Service, _service
from plan.settings import BuilderNode, BuilderSettings
from plan.tools import tool_argv, tool_command


def test_platform_arch_names_per_platform_resources() -> None:
    assert [arch_of(p) for p in ("linux/amd64", "linux/arm64", "linux/arm/v7")] == [
        "amd64",
        "arm64",
        "arm",
    ]


def test_oci_labels_leave_out_what_is_unknown() -> None:
    source, revision = "org.opencontainers.image.source", "org.opencontainers.image.revision"
    url, commit = "https://github.com/GoogleCloudPlatform/microservices-demo", "5f4ccc7d" * 5
    assert oci_labels(url, commit) == {source: url, revision: commit}
    assert oci_labels(None, commit) == {revision: commit}
    assert oci_labels(url, None) == {source: url}
    assert oci_labels(None, None) == {}


@pytest.mark.parametrize(
    ("member", "slug"),
    [
        (
            "serviceAccount:ci@p.iam.gserviceaccount.com",
            "serviceAccount-ci@p.iam.gserviceaccount.com",
        ),
        (
            "principalSet://iam.googleapis.com/projects/1/x",
            "principalSet-iam.googleapis.com-projects-1-x",
        ),
    ],
)
def test_member_slugs_keep_only_name_safe_separators(member: str, slug: str) -> None:
    assert member_slug(member) == slug


def test_the_catalog_builds_cartservice_from_its_nested_context() -> None:
    cart = CATALOG["cartservice"]
    assert (cart.context, cart.dockerfile) == (
        "src/cartservice/src",
        "src/cartservice/src/Dockerfile",
    )
    for name, service in CATALOG.items():
        assert service.name == name
        assert service.dockerfile == f"{service.context}/Dockerfile"
        if name != "cartservice":
            assert service.context == f"src/{name}"
    assert len(CATALOG) == 12 and len(DEFAULT_SERVICES) == 11
    assert set(CATALOG) - set(DEFAULT_SERVICES) == {"shoppingassistantservice"}


def test_a_catalog_entry_is_built_from_its_name_and_optional_context() -> None:
    # CATALOG is built at import time; called here, its builder is seen by mutation testing.
    assert _service("adservice") == Service(
        name="adservice", context="src/adservice", dockerfile="src/adservice/Dockerfile"
    )
    assert _service("cart", "src/cart/src") == Service(
        name="cart", context="src/cart/src", dockerfile="src/cart/src/Dockerfile"
    )


def host_arguments(line: str) -> argparse.Namespace:
    """The arguments `python -m host` reads from a command line the program generates."""
    python, module_flag, module, *argv = shlex.split(line)
    assert (python, module_flag, module) == ("/venv/bin/python", "-m", "host")
    parsed: argparse.Namespace = host_parser().parse_args(argv)
    return parsed


def test_builder_command_lines_reach_the_host_tool_intact() -> None:
    spec = json.dumps({"name": "multi arch", "driver": "docker-container", "nodes": []})
    owner = "org/boutique-multiarch/dev"
    ensure = host_arguments(tool_command(BuilderEnsureRequest(spec, owner), "/venv/bin/python"))
    assert (ensure.command, ensure.action, ensure.spec) == ("builder", "ensure", spec)
    assert ensure.owner == owner
    remove = host_arguments(
        tool_command(BuilderRemoveRequest("multi arch", owner), "/venv/bin/python")
    )
    assert (remove.command, remove.action, remove.name) == ("builder", "remove", "multi arch")
    assert remove.owner == owner


def test_the_builder_spec_text_does_not_depend_on_the_order_options_were_written() -> None:
    # The spec is a Command input: other text for the same builder would re-run the Command.
    node = BuilderNode("arm", ("linux/arm64",), "ssh://arm")
    first, second = (
        builder_spec(
            BuilderSettings(
                name="b",
                driver="docker-container",
                driver_opts=MappingProxyType(options),
                endpoint=None,
                nodes=(node,),
            ),
            ("linux/amd64", "linux/arm64"),
        )
        for options in ({"network": "host", "image": "x"}, {"image": "x", "network": "host"})
    )
    assert first == second
    assert first == json.dumps(json.loads(first), sort_keys=True)


def test_a_stack_owner_is_organization_project_and_stack() -> None:
    assert stack_owner("acme", "boutique-multiarch", "dev") == "acme/boutique-multiarch/dev"
    # Without an organization (a self-managed backend): the project and stack alone.
    assert stack_owner(None, "boutique-multiarch", "dev") == "boutique-multiarch/dev"
    assert stack_owner("", "boutique-multiarch", "dev") == "boutique-multiarch/dev"


def test_a_command_lines_tool_arguments_are_those_of_its_last_run_of_the_tool() -> None:
    line = "umask 022 && { py -m patches check -- up; } && py -m patches apply --json -- up"
    assert tool_argv(line, "patches") == ["apply", "--json", "--", "up"]
    # A run without arguments is still a run of the tool.
    assert tool_argv("py -m host", "host") == []
    assert tool_argv("py -m host", "verify") is None
