"""`python -m verify gc` against a loopback fake of Artifact Registry's versions/tags API and the
real local registry for manifests (deletes go through the fake to the registry)."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.dockerenv import Registry
from tests.integration.fakeartifacts import FakeArtifactRegistry
from tests.integration.registrypush import (
    manifest_exists,
    push_image,
    push_multiarch,
    push_referrer,
)
from tests.program_mocks import ROOT
from verify import cli

NOW = datetime.now(UTC)


def created(days_ago: float) -> str:
    """An API createTime, with nanoseconds as Artifact Registry writes them."""
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


@dataclass
class Repository:
    """One made-up repository: which versions must survive and which gc must delete."""

    fake: FakeArtifactRegistry
    registry: Registry
    root: str
    survivors: dict[str, str]
    """`{what: package@digest}` that every run must leave."""
    garbage: list[str]
    """`package@digest` unreachable and older than 30 days, parents before children."""

    @property
    def name(self) -> str:
        return f"{self.registry.address}/{self.root}"

    def exists(self, versioned: str) -> bool:
        package, digest = versioned.split("@")
        return manifest_exists(self.registry, f"{self.root}/{package}", digest)

    def gc(self, *options: str, process: bool = False) -> subprocess.CompletedProcess[str]:
        """`verify gc` on this repository: in this process (fast: mutation testing runs these
        tests for every mutant of gc), or as the `python -m verify gc` a Command runs."""
        argv = ["gc", self.name, "--older-than", "30"]
        argv += ["--location", "europe-west1", "--api-url", self.fake.url, *options]
        if process:
            command = [sys.executable, "-m", "verify", *argv]
            return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(argv)
            except SystemExit as exit:  # argparse's usage errors
                code = exit.code if isinstance(exit.code, int) else 2
        return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def repository(registry: Registry) -> Iterator[Repository]:
    root = f"gc-{uuid.uuid4().hex[:8]}/images"
    frontend, cart = f"{root}/frontend", f"{root}/cartservice"
    live, live_entries = push_multiarch(registry, frontend, "live", tag="v2")
    signature = push_referrer(registry, frontend, live, "live")
    superseded, superseded_entries = push_multiarch(registry, frontend, "superseded")
    failed_candidate = push_image(registry, frontend, "arm64", "failed")
    in_flight = push_image(registry, frontend, "amd64", "in-flight")
    cart_live = push_image(registry, cart, "amd64", "cart")

    def at(package: str, descriptor: dict[str, object]) -> str:
        return f"{package}@{descriptor['digest']}"

    fake = FakeArtifactRegistry(registry, root)
    fake.versions = {
        "frontend": {
            **{str(d["digest"]): created(90) for d in (live, *live_entries, signature)},
            **{str(d["digest"]): created(60) for d in (superseded, *superseded_entries)},
            str(failed_candidate["digest"]): created(45),
            str(in_flight["digest"]): created(0.1),
        },
        "cartservice": {str(cart_live["digest"]): created(200)},
    }
    fake.tags = {
        "frontend": {"v2": str(live["digest"])},
        "cartservice": {"v2": str(cart_live["digest"])},
    }
    survivors = {
        "tagged index": at("frontend", live),
        "its referrer": at("frontend", signature),
        "a build in flight": at("frontend", in_flight),
        "another package's tag": at("cartservice", cart_live),
        **{f"entry {i}": at("frontend", entry) for i, entry in enumerate(live_entries)},
    }
    garbage = [
        at("frontend", superseded),
        *[at("frontend", entry) for entry in superseded_entries],
        at("frontend", failed_candidate),
    ]
    fake.start()
    yield Repository(fake, registry, root, survivors, garbage)
    fake.stop()


def listed(stdout: str, verb: str) -> list[str]:
    """The `package@digest` of every `<verb> ...` line, in order."""
    return re.findall(rf"^{verb} (\S+@sha256:[0-9a-f]{{64}}) \(created ", stdout, re.MULTILINE)


def test_dry_run_lists_what_no_tag_reaches_and_deletes_nothing(repository: Repository) -> None:
    result = repository.gc()
    assert result.returncode == 0, result.stderr
    assert sorted(listed(result.stdout, "would delete")) == sorted(repository.garbage)
    assert "7 reachable from a tag, 1 unreachable but newer than 30 days" in result.stdout
    assert "dry run: nothing deleted; pass --delete" in result.stdout
    assert repository.fake.deletes() == []
    assert all(repository.exists(v) for v in [*repository.survivors.values(), *repository.garbage])
    # An overridden API URL never receives Google credentials.
    assert {auth for _, _, auth in repository.fake.requests} == {None}


def test_delete_removes_only_unreachable_old_versions_parents_first(
    repository: Repository,
) -> None:
    result = repository.gc("--delete", process=True)
    assert result.returncode == 0, result.stderr
    deleted = listed(result.stdout, "deleted")
    assert sorted(deleted) == sorted(repository.garbage)
    superseded_index, *entries = repository.garbage[:5]
    assert all(deleted.index(superseded_index) < deleted.index(entry) for entry in entries)
    assert not any(repository.exists(v) for v in repository.garbage)
    for what, version in repository.survivors.items():
        assert repository.exists(version), what
    again = repository.gc("--delete")
    assert listed(again.stdout, "deleted") == [], again.stdout


def test_an_api_error_stops_the_run_and_reports_only_finished_deletes(
    repository: Repository,
) -> None:
    order = listed(repository.gc().stdout, "would delete")
    repository.fake.fail_deletes = {order[1].split("@")[1]}
    result = repository.gc("--delete")
    assert result.returncode == 2
    assert listed(result.stdout, "deleted") == order[:1]
    assert "stopped:" in result.stderr and "HTTP 500: INTERNAL backend unavailable" in result.stderr
    assert f"deleted 1, not deleted {len(order) - 1}" in result.stderr
    assert not repository.exists(order[0])
    assert all(repository.exists(v) for v in order[1:])


def test_an_unreadable_tagged_manifest_stops_before_any_delete(repository: Repository) -> None:
    repository.fake.tags["frontend"]["gone"] = "sha256:" + "0" * 64
    result = repository.gc("--delete")
    assert result.returncode == 2
    assert "not found (HTTP 404" in result.stderr and "nothing was deleted" in result.stderr
    assert repository.fake.deletes() == []
    assert all(repository.exists(v) for v in repository.garbage)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--older-than", "0"], "--older-than 0: at least 1 day"),
        (["--api-url", "http://registry.example.com"], "plain HTTP off this machine"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    repository: Repository, options: list[str], message: str
) -> None:
    result = repository.gc(*options)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert repository.fake.requests == []
