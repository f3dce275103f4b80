"""The whole program under mocks for configurations other than the dev stack's."""

import json
import shlex
from typing import Any

import pulumi
import pytest

from plan.settings import UPSTREAM_COMMIT
from tests.program_mocks import (
    COMMAND,
    DEV_CONFIG,
    IAM_MEMBER,
    IMAGE,
    INDEX,
    PATH_CHECKOUT_HEAD,
    REGISTRY,
    REPOSITORY,
    ROOT,
    ProgramRun,
    ProgramRunner,
    Registration,
    is_secret,
    stack_config,
    start_program,
    unwrap,
)

P = "boutique-multiarch"
Program = ProgramRunner


def images(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {image.name.removesuffix("-image"): image.inputs for image in run.of_type(IMAGE)}


def tags(run: ProgramRun) -> dict[str, str]:
    """The tag each service's Index publishes."""
    return {index.name.removesuffix("-index"): index.inputs["tag"] for index in run.of_type(INDEX)}


def builder_owner(run: ProgramRun) -> Registration:
    (owner,) = [c for c in run.of_type(COMMAND) if " -m host builder " in c.inputs["create"]]
    return owner


def test_other_platform_list(program: Program) -> None:
    run = program({**DEV_CONFIG, f"{P}:platforms": ["linux/arm64"]})
    for service, inputs in images(run).items():
        assert inputs["platforms"] == ["linux/arm64"], service
    assert len(images(run)) == 11


def test_service_subset_builds_and_checks_out_only_those(program: Program) -> None:
    run = program({**DEV_CONFIG, f"{P}:services": ["shoppingassistantservice", "cartservice"]})
    built = images(run)
    assert sorted(built) == ["cartservice", "shoppingassistantservice"]
    assert built["cartservice"]["context"]["location"].endswith("/src/cartservice/src")
    (checkout,) = [
        call.args["command"]
        for call in run.monitor.invocations
        if " -m host checkout " in str(call.args)
    ]
    argv = shlex.split(checkout)
    required = [argv[index + 1] for index, arg in enumerate(argv) if arg == "--require"]
    assert required == [
        "src/shoppingassistantservice/Dockerfile",
        "src/cartservice/src/Dockerfile",
    ]


def test_existing_registry_declares_no_gcp_resource(program: Program) -> None:
    config = {
        f"{P}:registry": {"address": "127.0.0.1:5000/boutique", "username": "ci"},
        f"{P}:tag": "pr-42",
    }
    run = program(config, secrets={f"{P}:registryPassword": "s3cret-password"})
    assert not [r for r in run.registrations if r.type.startswith("gcp:")]
    assert not [call for call in run.monitor.invocations if call.token.startswith("gcp:")]
    for service, tag in tags(run).items():
        assert tag == f"127.0.0.1:5000/boutique/{service}:pr-42", service
    for service, inputs in images(run).items():
        assert inputs["cacheFrom"] == [
            {"registry": {"ref": f"127.0.0.1:5000/boutique/{service}:buildcache"}}
        ]
        assert is_secret(inputs["registries"]), service
        assert unwrap(inputs["registries"]) == [
            {"address": "127.0.0.1:5000", "username": "ci", "password": "s3cret-password"}
        ], service


def test_anonymous_registry_sends_no_credentials(program: Program) -> None:
    run = program({f"{P}:registry": {"address": "127.0.0.1:5000"}, f"{P}:cache": False})
    for service, inputs in images(run).items():
        assert unwrap(inputs["registries"]) == [], service
        assert inputs["cacheFrom"] == inputs["cacheTo"] == [], service


def test_native_nodes_are_appended_to_the_builder(program: Program) -> None:
    plain = program(DEV_CONFIG)
    native = program(stack_config("prod"))
    owner = builder_owner(native)
    spec = json.loads(shlex.split(owner.inputs["create"])[-1])
    assert spec["nodes"] == [
        {
            "name": "arm64-native",
            "platforms": ["linux/arm64"],
            "endpoint": "ssh://builder@arm64-builder.internal",
        }
    ]
    assert spec["platforms"] == ["linux/amd64"]
    plain_owner = builder_owner(plain)
    assert owner.inputs["triggers"] != plain_owner.inputs["triggers"]
    for service, inputs in images(native).items():
        assert inputs["builder"] == {"name": "boutique-prod"}, service


def test_immutable_tags_move_the_cache_to_a_mutable_repository(program: Program) -> None:
    run = program(stack_config("prod"))
    repositories = {r.inputs["repositoryId"]: r for r in run.of_type(REPOSITORY)}
    assert set(repositories) == {"online-boutique", "online-boutique-cache"}
    assert repositories["online-boutique"].inputs["dockerConfig"] == {"immutableTags": True}
    assert "dockerConfig" not in repositories["online-boutique-cache"].inputs
    assert repositories["online-boutique"].protect
    assert not repositories["online-boutique-cache"].protect
    registry = "europe-west1-docker.pkg.dev/boutique-prod-654321"
    for service, tag in tags(run).items():
        assert tag == f"{registry}/online-boutique/{service}:1.0.0", service
    for service, inputs in images(run).items():
        cache_ref = f"{registry}/online-boutique-cache/{service}:buildcache"
        assert inputs["cacheFrom"] == [{"registry": {"ref": cache_ref}}], service
        assert inputs["cacheTo"][0]["registry"]["ref"] == cache_ref, service
    grants = sorted(
        (g.inputs["repository"], g.inputs["role"].rsplit(".", 1)[-1])
        for g in run.of_type(IAM_MEMBER)
    )
    assert grants == [
        ("online-boutique", "reader"),
        ("online-boutique", "writer"),
        ("online-boutique-cache", "writer"),
    ]


def test_cleanup_policies_and_lifted_protection(program: Program) -> None:
    run = program(
        {
            **DEV_CONFIG,
            f"{P}:tag": "v7",
            f"{P}:ephemeralTagPrefixes": ["pr-"],
            f"{P}:repository": {
                "protect": False,
                "cleanup": {"keepCount": 4, "olderThanDays": 10},
            },
        }
    )
    (repository,) = run.of_type(REPOSITORY)
    assert not repository.protect
    assert repository.inputs["cleanupPolicyDryRun"] is True
    assert repository.inputs["cleanupPolicies"] == [
        {"id": "keep-most-recent", "action": "KEEP", "mostRecentVersions": {"keepCount": 4}},
        {
            "id": "keep-stack-tag",
            "action": "KEEP",
            "condition": {"tagState": "TAGGED", "tagPrefixes": ["v7"]},
        },
        {
            "id": "delete-old-ephemeral-tags",
            "action": "DELETE",
            "condition": {"tagState": "TAGGED", "olderThan": "864000s", "tagPrefixes": ["pr-"]},
        },
    ]


def test_existing_checkout_path_is_built_as_it_is(program: Program) -> None:
    run = program({**DEV_CONFIG, f"{P}:source": {"path": "/srv/microservices-demo"}})
    for service, inputs in images(run).items():
        assert inputs["context"]["location"].startswith("/srv/microservices-demo/src/"), service
        assert inputs["labels"]["org.opencontainers.image.revision"] == PATH_CHECKOUT_HEAD
        assert "org.opencontainers.image.source" not in inputs["labels"], service


def test_another_pinned_commit_changes_every_context(program: Program) -> None:
    other = "5b3a712ab85ccb8f6f7cd5b720d36ba9a8d041eb"
    run = program({**DEV_CONFIG, f"{P}:source": {"commit": other}})
    for service, inputs in images(run).items():
        assert inputs["context"]["location"].startswith(f".cache/upstream/{other}/"), service
        assert UPSTREAM_COMMIT not in json.dumps(inputs), service


@pulumi.runtime.test
def test_registry_output_is_the_configured_address(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program({f"{P}:registry": {"address": "registry.example.com/team"}})
    image = run.namespace["images"]["frontend"]

    def check(values: list[Any]) -> None:
        urn, registry, ref, digest = values
        assert registry == "registry.example.com/team", urn
        assert ref == f"registry.example.com/team/frontend:v1@{digest}", urn

    return pulumi.Output.all(image.urn, run.outputs["registry"], image.ref, image.digest).apply(
        check
    )


def test_default_repository_lives_in_gcp_region(program: Program) -> None:
    run = program(DEV_CONFIG)
    (repository,) = run.of_type(REPOSITORY)
    assert repository.inputs["location"] == "europe-west1"
    assert tags(run)["frontend"] == f"{REGISTRY}/frontend:v1"


def test_local_stack_starts_its_registry_and_verifies_without_cloud_credentials(
    program: Program,
) -> None:
    run = program(stack_config("local"))
    assert not [r for r in run.registrations if r.type.startswith("gcp:")]
    (owner,) = [c for c in run.of_type(COMMAND) if " registry ensure " in c.inputs["create"]]
    verifications = [c for c in run.of_type(COMMAND) if " -m verify " in c.inputs["create"]]
    assert (
        sorted(tags(run))
        == sorted(images(run))
        == [
            "checkoutservice",
            "frontend",
            "productcatalogservice",
            "shippingservice",
        ]
    )
    assert len(verifications) == 4
    for command in verifications:
        argv = shlex.split(command.inputs["create"])
        assert argv[-2] == "--" and argv[-1].startswith("127.0.0.1:5000/"), command.urn
        assert "--deep" in argv and "--gcp" not in argv, command.urn
    for service, inputs in images(run).items():
        assert inputs["builder"] == {"name": "boutique-local"}, service
        assert unwrap(inputs["registries"]) == [], service
    for index in run.of_type(INDEX):
        assert owner.urn in index.property_dependencies["tag"], index.urn
