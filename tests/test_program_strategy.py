"""Under mocks: both build strategies, per-platform builders, and a registry the stack starts."""

import json
import shlex
from collections import Counter
from typing import Any

import pulumi
import pytest

from plan.services import DEFAULT_SERVICES
from tests.program_mocks import (
    COMMAND,
    DEV_CONFIG,
    IMAGE,
    INDEX,
    MOCK_RUN_SECONDS,
    REGISTRY,
    ROOT,
    ProgramRun,
    ProgramRunner,
    Registration,
    digest_of,
    start_program,
)

P = "boutique-multiarch"
PLATFORMS = ("linux/amd64", "linux/arm64")
PER_PLATFORM = {**DEV_CONFIG, f"{P}:strategy": "perPlatform"}


def commands(run: ProgramRun, module: str) -> dict[str, Registration]:
    return {c.name: c for c in run.of_type(COMMAND) if f" -m {module} " in c.inputs["create"]}


@pytest.mark.parametrize(
    ("strategy", "images", "indexes"), [("multiPlatform", 11, 11), ("perPlatform", 22, 11)]
)
def test_resource_counts_per_strategy(
    program: ProgramRunner, strategy: str, images: int, indexes: int
) -> None:
    run = program({**DEV_CONFIG, f"{P}:strategy": strategy})
    counts = Counter(registration.type for registration in run.registrations)
    assert (counts[IMAGE], counts[INDEX]) == (images, indexes)
    assert len(commands(run, "verify")) == images


def test_per_platform_images_are_single_platform_with_their_own_cache(
    program: ProgramRunner,
) -> None:
    run = program(PER_PLATFORM)
    built = {image.name: image for image in run.of_type(IMAGE)}
    assert sorted(built) == sorted(
        f"{service}-{arch}-image" for service in DEFAULT_SERVICES for arch in ("amd64", "arm64")
    )
    for service in DEFAULT_SERVICES:
        for platform in PLATFORMS:
            arch = platform.split("/")[1]
            image = built[f"{service}-{arch}-image"]
            inputs = image.inputs
            cache_ref = f"{REGISTRY}/{service}:buildcache-{arch}"
            assert inputs["platforms"] == [platform], image.urn
            assert inputs["exports"][0]["registry"]["names"] == [f"{REGISTRY}/{service}"]
            assert inputs["cacheFrom"] == [{"registry": {"ref": cache_ref}}], image.urn
            (cache_to,) = inputs["cacheTo"]
            assert (cache_to["registry"]["ref"], cache_to["registry"]["mode"]) == (
                cache_ref,
                "max",
            ), image.urn
            assert inputs["builder"] == {"name": "multiarch-builder"}, image.urn


def test_each_platform_is_verified_for_itself_and_joined_after_both(
    program: ProgramRunner,
) -> None:
    run = program(PER_PLATFORM)
    verifications = commands(run, "verify")
    indexes = {index.name.removesuffix("-index"): index for index in run.of_type(INDEX)}
    assert sorted(indexes) == sorted(DEFAULT_SERVICES)
    for service, index in indexes.items():
        sources = []
        for platform in PLATFORMS:
            arch = platform.split("/")[1]
            command = verifications[f"{service}-{arch}-verification-verify"]
            digest = digest_of(f"{service}-{arch}-image")
            ref = f"{REGISTRY}/{service}@{digest}"
            argv = shlex.split(command.inputs["create"])
            assert argv[3:8] == ["--json", "--deep", "--platform", platform, "--gcp"]
            assert argv[8:10] == ["--run", "--probe"], command.urn
            assert argv[-2:] == ["--", ref], command.urn
            assert command.inputs["triggers"] == [digest], command.urn
            assert command.urn in index.dependencies, index.urn
            sources.append(ref)
        assert index.inputs["sources"] == sources, index.urn
        assert index.inputs["tag"] == f"{REGISTRY}/{service}:v1", index.urn


@pulumi.runtime.test
def test_per_platform_outputs_keep_the_shape(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(ROOT)
    run = start_program(PER_PLATFORM)
    images = run.outputs["images"]
    component = run.namespace["images"]["emailservice"]

    def check(values: list[Any]) -> None:
        urn, emailservice, frontend = values
        sources = [
            f"{REGISTRY}/emailservice@{digest_of(f'emailservice-{arch}-image')}"
            for arch in ("amd64", "arm64")
        ]
        digest = digest_of(" ".join(sources))
        assert set(emailservice) == {
            "ref",
            "digest",
            "tag",
            "platforms",
            "proof",
            "attestations",
        }, urn
        assert emailservice["proof"] == {
            platform: {"elfFiles": 7, "probe": "grpc:8080", "seconds": MOCK_RUN_SECONDS}
            for platform in PLATFORMS
        }, urn
        assert emailservice["digest"] == digest, urn
        assert emailservice["ref"] == f"{REGISTRY}/emailservice:v1@{digest}", urn
        assert emailservice["platforms"] == {
            platform: digest_of(f"{source} {platform}")
            for platform, source in zip(PLATFORMS, sources, strict=True)
        }, urn
        assert set(emailservice["platforms"].values()).isdisjoint(frontend["platforms"].values())

    return pulumi.Output.all(
        component.urn,
        pulumi.Output.from_input(images["emailservice"]),
        pulumi.Output.from_input(images["frontend"]),
    ).apply(check)


def test_a_platform_with_a_builder_of_its_own_builds_there(program: ProgramRunner) -> None:
    arm64_builder = {"name": "arm64-native", "driver": "remote", "endpoint": "tcp://arm:1234"}
    run = program(
        {**PER_PLATFORM, f"{P}:builder": {"platformBuilders": {"linux/arm64": arm64_builder}}}
    )
    owners = {c.name: c for c in run.of_type(COMMAND) if " builder ensure " in c.inputs["create"]}
    assert sorted(owners) == ["buildx-arm64-builder", "buildx-builder"]
    spec = json.loads(shlex.split(owners["buildx-arm64-builder"].inputs["create"])[-1])
    assert spec == {
        "name": "arm64-native",
        "driver": "remote",
        "driverOpts": {},
        "endpoint": "tcp://arm:1234",
        "platforms": [],
        "nodes": [],
    }
    assert owners["buildx-arm64-builder"].inputs["delete"].endswith("--name arm64-native")
    for image in run.of_type(IMAGE):
        arm64 = image.name.endswith("-arm64-image")
        expected = "arm64-native" if arm64 else "multiarch-builder"
        owner = owners["buildx-arm64-builder" if arm64 else "buildx-builder"]
        assert image.inputs["builder"] == {"name": expected}, image.urn
        assert image.property_dependencies["builder"] == [owner.urn], image.urn


def test_a_started_registry_comes_up_before_any_image_pushes(program: ProgramRunner) -> None:
    run = program({f"{P}:registry": {"address": "127.0.0.1:5000/boutique", "start": True}})
    (owner,) = [c for c in run.of_type(COMMAND) if " registry ensure " in c.inputs["create"]]
    argv = shlex.split(owner.inputs["create"])
    assert argv[argv.index("--address") + 1] == "127.0.0.1:5000"
    assert argv[argv.index("--data-dir") + 1] == ".cache/registry"
    for image in run.of_type(IMAGE):
        service = image.name.removesuffix("-image")
        names = image.inputs["exports"][0]["registry"]["names"]
        assert names == [f"127.0.0.1:5000/boutique/{service}"], image.urn
        assert owner.urn in image.property_dependencies["exports"], image.urn
    for index in run.of_type(INDEX):
        assert owner.urn in index.property_dependencies["tag"], index.urn


def test_an_existing_registry_is_not_started(program: ProgramRunner) -> None:
    run = program({f"{P}:registry": {"address": "127.0.0.1:5000/boutique"}})
    assert not [c for c in run.of_type(COMMAND) if " registry " in c.inputs["create"]]
    assert not [r for r in run.registrations if r.type.endswith(":LocalRegistry")]
