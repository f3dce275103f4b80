"""The every-run registry checks, run for real: the exact command lines the program builds
(`plan.verification`), against the local registry, after changing it by hand."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass

import pytest

from plan.tools import tool_command
from plan.verification import (
    candidate_check_request,
    immutable_tag_request,
    published_check_request,
)
from tests.integration.dockerenv import Registry
from tests.integration.registrypush import delete_manifest, push_multiarch
from tests.program_mocks import ROOT
from verify.published import EXIT_DIFFERS, main

COMPONENT = "urn:pulumi:dev::boutique-multiarch::boutique:service_image:ServiceImage"
INDEX_URN = f"{COMPONENT}$docker-build:index:Index::frontend-index"
IMAGE_URN = f"{COMPONENT}$docker-build:index:Image::frontend-image"


@dataclass
class Published:
    """A service as a stack exported it: the tag at a verified index."""

    registry: Registry
    repository: str
    digest: str
    platforms: dict[str, str]

    @property
    def tag_ref(self) -> str:
        return f"{self.registry.address}/{self.repository}:v1"

    def check(self) -> subprocess.CompletedProcess[str]:
        line = tool_command(
            published_check_request(
                f"{self.tag_ref}@{self.digest}",
                self.platforms,
                INDEX_URN,
                [IMAGE_URN, INDEX_URN],
                gcp=False,
            ),
            sys.executable,
        )
        return run(line)


def run(line: str) -> subprocess.CompletedProcess[str]:
    """As pulumi-command runs it: `/bin/sh -c` in the project directory."""
    return subprocess.run(
        ["/bin/sh", "-c", line], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.fixture
def published(registry: Registry) -> Published:
    repository = f"checks-{uuid.uuid4().hex[:8]}/frontend"
    index, entries = push_multiarch(registry, repository, "exported", tag="v1")
    platforms = {
        f"linux/{entry['platform']['architecture']}": str(entry["digest"])  # type: ignore[index]
        for entry in entries
        if "annotations" not in entry
    }
    return Published(registry, repository, str(index["digest"]), platforms)


def test_the_exported_ref_as_exported_passes_and_prints_its_digest(published: Published) -> None:
    result = published.check()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == published.digest


def test_a_tag_moved_by_hand_fails_with_the_repair_command(published: Published) -> None:
    moved, _ = push_multiarch(published.registry, published.repository, "another-writer", tag="v1")
    result = published.check()
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"verify published: {published.tag_ref} points at {moved['digest']}, not at "
        f"{published.digest} the stack exported and verified (moved by another writer or by "
        f"hand). Repair: pulumi up --replace '{INDEX_URN}' points it at the verified image again "
        "(with immutableTags: bump tag)\n"
    )


def test_a_deleted_digest_fails_with_the_replace_command(published: Published) -> None:
    delete_manifest(published.registry, published.repository, published.digest)
    result = published.check()
    candidate = f"{published.registry.address}/{published.repository}@{published.digest}"
    assert result.returncode == 1
    assert result.stderr == (
        f"verify published: {candidate}: the digest the stack exported no longer exists in the "
        "registry (deleted by hand or by a cleanup). Repair: pulumi up --replace "
        f"'{IMAGE_URN}' --replace '{INDEX_URN}'\n"
    )
    lost = run(
        tool_command(
            candidate_check_request(candidate, [IMAGE_URN, INDEX_URN], False), sys.executable
        )
    )
    assert lost.returncode == 1 and f"--replace '{IMAGE_URN}'" in lost.stderr


def test_a_deleted_tag_is_repaired_by_a_refresh(published: Published) -> None:
    # Deleting the tag alone: re-point it at another manifest, then delete that manifest.
    other, _ = push_multiarch(published.registry, published.repository, "tmp", tag="v1")
    delete_manifest(published.registry, published.repository, str(other["digest"]))
    result = published.check()
    assert result.returncode == 1
    assert result.stderr == (
        f"verify published: {published.tag_ref} no longer exists (deleted by hand?); the stack "
        f"exported it at {published.digest}, which still exists. Repair: pulumi up --refresh "
        "(the refresh finds the tag missing and the Index publishes it again)\n"
    )


def test_without_urns_to_replace_the_repair_is_a_refresh(
    published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run by hand (no --replace, no --index-urn): the repair names no resource to replace."""
    candidate = f"{published.registry.address}/{published.repository}@{published.digest}"
    moved, _ = push_multiarch(published.registry, published.repository, "another-writer", tag="v1")
    assert main([f"{published.tag_ref}@{published.digest}"]) == EXIT_DIFFERS
    assert capsys.readouterr().err == (
        f"verify published: {published.tag_ref} points at {moved['digest']}, not at "
        f"{published.digest} the stack exported and verified (moved by another writer or by "
        "hand). Repair: pulumi up --refresh points it at the verified image again (with "
        "immutableTags: bump tag)\n"
    )
    delete_manifest(published.registry, published.repository, published.digest)
    assert main([candidate]) == EXIT_DIFFERS
    assert capsys.readouterr().err == (
        f"verify published: {candidate}: the digest the stack exported no longer exists in the "
        "registry (deleted by hand or by a cleanup). Repair: pulumi up --refresh\n"
    )


def test_an_index_with_other_children_is_not_the_verified_image(published: Published) -> None:
    wrong = {**published.platforms, "linux/arm64": "sha256:" + "1" * 64}
    line = tool_command(
        published_check_request(
            f"{published.tag_ref}@{published.digest}", wrong, INDEX_URN, [], False
        ),
        sys.executable,
    )
    result = run(line)
    assert result.returncode == 1
    assert f"not the verified linux/amd64={published.platforms['linux/amd64']}" in result.stderr
    assert "it is not the image this stack verified" in result.stderr


def test_an_existing_immutable_tag_fails_before_any_build(published: Published) -> None:
    result = run(
        tool_command(immutable_tag_request(published.tag_ref, None, False), sys.executable)
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"verify published: {published.tag_ref} exists already (digest {published.digest}) in a "
        "repository with immutable tags, and this run builds new images for it (strategy, "
        "source.commit, patches or platforms changed): the Index would be refused after every "
        "build. Bump the tag: pulumi config set tag <new tag>\n"
    )
    fresh = published.tag_ref.replace(":v1", ":v2")
    assert (
        run(tool_command(immutable_tag_request(fresh, None, False), sys.executable)).returncode == 0
    )


def test_after_verification_an_immutable_tag_may_hold_exactly_the_verified_images(
    published: Published,
) -> None:
    same = run(
        tool_command(
            immutable_tag_request(published.tag_ref, published.platforms, False), sys.executable
        )
    )
    assert same.returncode == 0, same.stderr
    rebuilt = {**published.platforms, "linux/arm64": "sha256:" + "2" * 64}
    result = run(
        tool_command(immutable_tag_request(published.tag_ref, rebuilt, False), sys.executable)
    )
    assert result.returncode == 1
    assert f"{published.tag_ref} exists already (digest {published.digest})" in result.stderr
    assert f"not the verified linux/amd64={published.platforms['linux/amd64']}" in result.stderr
    assert "the Index would be refused after every build. Bump the tag" in result.stderr


def test_a_registry_that_does_not_answer_is_an_error_not_a_difference(
    published: Published,
) -> None:
    unreachable = f"127.0.0.1:1/{published.repository}:v1@{published.digest}"
    result = run(tool_command(candidate_check_request(unreachable, [], False), sys.executable))
    assert result.returncode == 2, result.stderr
    assert "connection failed" in result.stderr
