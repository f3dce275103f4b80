"""Every run checks the registry (under mocks: which `python -m verify published` command lines
the program runs, and what it exports). The checks themselves run for real against a registry in
tests/integration/test_published_checks.py."""

import time
from typing import Any

import pulumi
import pytest

from plan.tools import tool_argv
from tests.program_mocks import (
    COMMAND,
    IMAGE,
    INDEX,
    BoutiqueMocks,
    ProgramRun,
    ProgramRunner,
    stack_config,
)

P = "boutique-multiarch"


def published_checks(run: ProgramRun) -> list[list[str]]:
    """The arguments after `-m verify published` of every registry check the run made."""
    checks = []
    for call in run.monitor.invocations:
        arguments = tool_argv(call.args.get("command", ""), "verify")
        if call.token == "command:local:run" and arguments and arguments[0] == "published":
            checks.append(arguments[1:])
    return checks


def options(arguments: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in arguments if a.startswith(f"{name}=")]


def test_candidates_and_the_exported_ref_are_checked_with_their_repair_urns(
    program: ProgramRunner,
) -> None:
    run = program(stack_config("dev"))
    checks = published_checks(run)
    images = {image.name: image.urn for image in run.of_type(IMAGE)}
    indexes = {index.name: index for index in run.of_type(INDEX)}
    verified = {
        command.name.removesuffix("-verification-verify"): command
        for command in run.of_type(COMMAND)
        if command.name.endswith("-verification-verify")
    }
    assert len(checks) == 2 * len(indexes)
    for service, index in ((n.removesuffix("-index"), i) for n, i in indexes.items()):
        image_urn = images[f"{service}-image"]
        (candidate,) = [c for c in checks if f"/{service}@" in c[0]]
        assert options(candidate, "--replace") == [image_urn, index.urn], service
        assert candidate[-1] == "--gcp"
        (published,) = [c for c in checks if c[0].startswith(index.inputs["tag"] + "@")]
        assert options(published, "--index-urn") == [index.urn], service
        assert options(published, "--replace") == [image_urn, index.urn], service
        manifests = dict(m.split("=", 1) for m in options(published, "--manifest"))
        assert sorted(manifests) == ["linux/amd64", "linux/arm64"], service
        assert verified[service].inputs["create"].split()[-1] == candidate[0], service


def test_per_platform_lost_index_digest_replaces_only_the_index(program: ProgramRunner) -> None:
    run = program({**stack_config("dev"), f"{P}:strategy": "perPlatform"})
    for index in run.of_type(INDEX):
        (published,) = [c for c in published_checks(run) if c[0].startswith(index.inputs["tag"])]
        assert options(published, "--replace") == [index.urn]


def test_first_run_preview_checks_nothing_it_cannot_know(program: ProgramRunner) -> None:
    assert published_checks(program(stack_config("dev"), preview=True)) == []


def test_immutable_tags_are_guarded_in_preview_before_any_build(program: ProgramRunner) -> None:
    run = program(stack_config("prod"), preview=True)
    guards = published_checks(run)
    tags = sorted(index.inputs["tag"] for index in run.of_type(INDEX))
    assert sorted(g[0] for g in guards) == tags
    assert all(g[1:] == ["--immutable", "--gcp"] for g in guards), guards
    # In an up, after verification and before the Index: the tag may hold exactly the verified.
    up = program(stack_config("prod"))
    after = [c for c in published_checks(up) if "--immutable" in c]
    assert sorted(c[0] for c in after) == tags
    for check in after:
        manifests = options(check, "--manifest")
        assert [m.split("=")[0] for m in manifests] == ["linux/amd64", "linux/arm64"], check


def failing_checks(monkeypatch: pytest.MonkeyPatch, flag: str, message: str) -> None:
    """`verify published` command lines containing `flag` exit 1 with `message`, as pulumi-command
    reports a failing command, after a while (a registry round trip): a resource that did not
    wait for the check would be registered meanwhile."""
    answer = BoutiqueMocks.call

    def call(self: BoutiqueMocks, args: pulumi.runtime.MockCallArgs) -> Any:
        line = args.args.get("command", "")
        if " -m verify published " in line and flag in line:
            time.sleep(1)
            raise RuntimeError(f"exit status 1: running {line!r}: {message}")
        return answer(self, args)

    monkeypatch.setattr(BoutiqueMocks, "call", call)


def test_a_refused_immutable_tag_fails_the_preview_before_any_index(
    program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_checks(monkeypatch, "--immutable", "exists already: Bump the tag")
    with pytest.raises(Exception, match="Bump the tag"):
        program(stack_config("prod"), preview=True)
    assert program.monitor is not None
    assert not [r for r in program.monitor.registrations if r.type == INDEX]


def test_a_lost_candidate_fails_the_run_before_its_index(
    program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_checks(monkeypatch, "/frontend@sha256:", "no longer exists. Repair: pulumi up")
    with pytest.raises(Exception, match=r"no longer exists\. Repair: pulumi up"):
        program(stack_config("dev"))
    assert program.monitor is not None
    assert "frontend-index" not in [r.name for r in program.monitor.registrations]
