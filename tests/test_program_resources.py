"""The whole program under mocks with the dev stack's configuration (Pulumi.dev.yaml)."""

from collections import Counter
from typing import Any

import pulumi
import pytest

from patches.definitions import load
from plan.services import DEFAULT_SERVICES
from plan.settings import UPSTREAM_COMMIT
from tests.program_mocks import (
    COMMAND,
    IAM_MEMBER,
    IMAGE,
    INDEX,
    MOCK_ACCESS_TOKEN,
    REGISTRY,
    REPOSITORY,
    ROOT,
    ProgramRun,
    ProgramRunner,
    Registration,
    digest_of,
    is_secret,
    stack_config,
    start_program,
    unwrap,
)

CHECKOUT = f".cache/upstream/{UPSTREAM_COMMIT}"
DEPLOYER = "serviceAccount:deployer@boutique-dev-123456.iam.gserviceaccount.com"
GKE_NODES = "serviceAccount:gke-nodes@boutique-dev-123456.iam.gserviceaccount.com"
CONTEXTS = {name: f"src/{name}" for name in DEFAULT_SERVICES} | {
    "cartservice": "src/cartservice/src"
}
V0 = load().revision(UPSTREAM_COMMIT)
assert V0 is not None
PATCH_IDS = {
    service: (file.patch_id or "none")
    for service in DEFAULT_SERVICES
    if (file := V0.file(service)) is not None
}


@pytest.fixture
def dev(program: ProgramRunner) -> ProgramRun:
    return program(stack_config("dev"))


def service_of(image: Registration) -> str:
    return image.name.removesuffix("-image")


def verifications(run: ProgramRun) -> list[Registration]:
    return [
        command for command in run.of_type(COMMAND) if " -m verify " in command.inputs["create"]
    ]


def test_dev_stack_declares_one_image_per_service_and_a_scoped_repository(dev: ProgramRun) -> None:
    counts = Counter(registration.type for registration in dev.registrations)
    assert counts == {
        IMAGE: 11,
        INDEX: 11,
        "boutique:service_image:ServiceImage": 11,
        "boutique:manifest_verification:ManifestVerification": 11,
        REPOSITORY: 1,
        IAM_MEMBER: 2,
        "boutique:artifact_repository:ArtifactRepository": 1,
        COMMAND: 12,
        "boutique:buildx_builder:BuildxBuilder": 1,
        "boutique:upstream_source:UpstreamSource": 1,
        "boutique:dockerfile_patches:DockerfilePatches": 1,
    }
    assert sorted(service_of(image) for image in dev.of_type(IMAGE)) == sorted(DEFAULT_SERVICES)


def test_every_image_builds_its_service_for_both_platforms(dev: ProgramRun) -> None:
    for image in dev.of_type(IMAGE):
        service, inputs = service_of(image), image.inputs
        context = f"{CHECKOUT}/{CONTEXTS[service]}"
        cache_ref = f"{REGISTRY}/{service}:buildcache"
        assert inputs["platforms"] == ["linux/amd64", "linux/arm64"], image.urn
        assert "tags" not in inputs, image.urn
        assert inputs["push"] is False, image.urn
        (export,) = inputs["exports"]
        registry_export = export["registry"]
        assert registry_export["names"] == [f"{REGISTRY}/{service}"], image.urn
        assert registry_export["push"] is registry_export["pushByDigest"] is True, image.urn
        assert registry_export["ociMediaTypes"] is True, image.urn
        assert inputs["context"] == {"location": context}, image.urn
        assert inputs["dockerfile"] == {"location": f"{context}/Dockerfile"}, image.urn
        assert inputs["builder"] == {"name": "boutique-dev"}, image.urn
        assert inputs["buildOnPreview"] is False, image.urn
        assert inputs["cacheFrom"] == [{"registry": {"ref": cache_ref}}], image.urn
        (cache_to,) = inputs["cacheTo"]
        assert cache_to["registry"]["ref"] == cache_ref, image.urn
        assert (cache_to["registry"]["mode"], cache_to["registry"]["ignoreError"]) == ("max", True)
        assert inputs["labels"] == {
            "org.opencontainers.image.source": (
                "https://github.com/GoogleCloudPlatform/microservices-demo.git"
            ),
            "org.opencontainers.image.revision": UPSTREAM_COMMIT,
            "dev.boutique-multiarch.patch-id": PATCH_IDS[service],
        }, image.urn


def test_access_token_is_a_secret_equal_to_the_providers(dev: ProgramRun) -> None:
    for image in dev.of_type(IMAGE):
        registries = image.inputs["registries"]
        assert is_secret(registries), f"{image.urn}: registries are not secret"
        assert unwrap(registries) == [
            {
                "address": "europe-west1-docker.pkg.dev",
                "username": "oauth2accesstoken",
                "password": MOCK_ACCESS_TOKEN,
            }
        ], image.urn
    tokens = [call for call in dev.monitor.invocations if "getClientConfig" in call.token]
    assert len(tokens) == 1


def test_iam_is_granted_on_the_repository_only(dev: ProgramRun) -> None:
    (repository,) = dev.of_type(REPOSITORY)
    assert repository.inputs["format"] == "DOCKER"
    assert repository.inputs["repositoryId"] == "online-boutique"
    assert repository.inputs["project"] == "boutique-dev-123456"
    members = {
        (grant.inputs["member"], grant.inputs["role"]): grant for grant in dev.of_type(IAM_MEMBER)
    }
    assert set(members) == {
        (DEPLOYER, "roles/artifactregistry.writer"),
        (GKE_NODES, "roles/artifactregistry.reader"),
    }
    for grant in members.values():
        assert grant.inputs["repository"] == "online-boutique", grant.urn
        assert grant.inputs["location"] == "europe-west1", grant.urn
        assert grant.property_dependencies["repository"] == [repository.urn], grant.urn
    # Nothing is granted anywhere else: the only custom resource types are these.
    assert {registration.type for registration in dev.custom} == {
        IMAGE,
        INDEX,
        REPOSITORY,
        IAM_MEMBER,
        COMMAND,
    }


def test_resource_options_come_through_to_the_engine(dev: ProgramRun) -> None:
    protected = {registration.name for registration in dev.registrations if registration.protect}
    assert protected == {"artifacts-repository"}
    replaced_first = {r.name for r in dev.registrations if r.delete_before_replace}
    assert replaced_first == {"buildx-builder"}
    retained = {r.name for r in dev.registrations if r.retain_on_delete}
    assert retained == {
        f"{service}-{kind}" for service in DEFAULT_SERVICES for kind in ("image", "index")
    }


def test_every_resource_is_parented_to_its_component(dev: ProgramRun) -> None:
    components = {r.urn: r for r in dev.registrations if not r.custom}
    expected_parent = {
        IMAGE: "boutique:service_image:ServiceImage",
        INDEX: "boutique:service_image:ServiceImage",
        REPOSITORY: "boutique:artifact_repository:ArtifactRepository",
        IAM_MEMBER: "boutique:artifact_repository:ArtifactRepository",
    }
    for registration in dev.custom:
        parent = components.get(registration.parent)
        assert parent is not None, f"{registration.urn}: parent {registration.parent!r}"
        if registration.type == COMMAND:
            verifies = " -m verify " in registration.inputs["create"]
            expected = "ManifestVerification" if verifies else "BuildxBuilder"
            assert parent.type.endswith(f":{expected}"), registration.urn
        else:
            assert parent.type == expected_parent[registration.type], registration.urn
        assert registration.name.startswith(f"{parent.name}-"), registration.urn
    for component in components.values():
        if component.type.endswith(":ManifestVerification"):
            parent = components[component.parent]
            assert parent.type == "boutique:service_image:ServiceImage", component.urn
            assert component.name.startswith(f"{parent.name}-"), component.urn
            continue
        assert component.parent.endswith("pulumi:pulumi:Stack::boutique-multiarch-dev"), (
            component.urn
        )


def test_builder_command_owns_the_builder_for_destroy(dev: ProgramRun) -> None:
    (owner,) = [c for c in dev.of_type(COMMAND) if " -m host builder " in c.inputs["create"]]
    assert (
        " -m host builder ensure --owner boutique-multiarch/dev --spec " in owner.inputs["create"]
    )
    assert owner.inputs["delete"].endswith(
        "-m host builder remove --owner boutique-multiarch/dev --name boutique-dev"
    )
    (trigger,) = owner.inputs["triggers"]
    assert len(trigger) == 64, owner.urn
    ensures = [
        call.args["command"]
        for call in dev.monitor.invocations
        if call.token == "command:local:run" and " builder ensure " in call.args["command"]
    ]
    assert ensures == [owner.inputs["create"]]
    for image in dev.of_type(IMAGE):
        assert image.property_dependencies["builder"] == [owner.urn], image.urn


def test_checkout_is_ensured_for_exactly_the_configured_services(dev: ProgramRun) -> None:
    (checkout,) = [
        call.args["command"]
        for call in dev.monitor.invocations
        if call.token == "command:local:run" and " -m host checkout " in call.args["command"]
    ]
    assert " -m host checkout --url https://github.com/GoogleCloudPlatform/" in checkout
    assert f"--commit {UPSTREAM_COMMIT} --cache-dir .cache/upstream" in checkout
    required = checkout.split("--require ")[1:]
    assert [path.strip() for path in required] == [
        f"{CONTEXTS[service]}/Dockerfile" for service in DEFAULT_SERVICES
    ]


@pulumi.runtime.test
def test_stack_outputs_give_each_service_its_own_digest(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(stack_config("dev"))
    images = run.outputs["images"]
    components = run.namespace["images"]
    services = sorted(images)

    def check(values: list[Any]) -> None:
        registry, resolved = values[0], values[1:]
        assert registry == REGISTRY, "stack output registry"
        seen_platform_digests: set[str] = set()
        for service, urn, ref, digest, tag, platforms in zip(
            services, *[iter(resolved)] * 5, strict=True
        ):
            # multiPlatform: the Index copies the verified index as it is, so the tag's
            # digest is the pushed one.
            expected = digest_of(f"{service}-image")
            assert digest == expected, f"{urn}: digest {digest}"
            assert ref == f"{REGISTRY}/{service}:v1@{expected}", f"{urn}: ref {ref}"
            assert tag == "v1", urn
            candidate = f"{REGISTRY}/{service}@{expected}"
            assert platforms == {
                platform: digest_of(f"{candidate} {platform}")
                for platform in ("linux/amd64", "linux/arm64")
            }, f"{urn}: platforms {platforms}"
            seen_platform_digests.update(platforms.values())
        assert len({digest for digest in resolved[2::5]}) == len(services)
        assert len(seen_platform_digests) == 2 * len(services)

    return pulumi.Output.all(
        run.outputs["registry"],
        *[
            value
            for service in services
            for value in (
                components[service].urn,
                images[service]["ref"],
                images[service]["digest"],
                images[service]["tag"],
                images[service]["platforms"],
            )
        ],
    ).apply(check)
