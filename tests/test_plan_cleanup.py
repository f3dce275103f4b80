"""plan.cleanup and the `ephemeralTagPrefixes` key: no policy deletes a tagged version unless its
tag has a configured ephemeral prefix, none selects an untagged image version, and the cache
repository has rules of its own."""

import json
from typing import Any

import pytest

from plan.cleanup import CleanupPolicy, cache_cleanup_policies, image_cleanup_policies
from plan.settings import PROJECT, ArtifactRegistry, ConfigError, Settings, parse_settings
from tests.program_mocks import REPOSITORY, ProgramRunner, stack_config

GCP = {"project": "boutique-dev-123456", "region": "europe-west1"}
P = PROJECT
CLEANUP = {"keepCount": 3, "olderThanDays": 2}


def parse(**values: Any) -> Settings:
    raw = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }
    return parse_settings(raw, GCP, False)


def committed(stack: str) -> Settings:
    """The settings of Pulumi.<stack>.yaml as the program parses them."""
    config = stack_config(stack)
    raw = {
        key.removeprefix(f"{P}:"): value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
        if key.startswith(f"{P}:")
    }
    gcp = {
        key.removeprefix("gcp:"): str(value)
        for key, value in config.items()
        if key.startswith("gcp:")
    }
    return parse_settings(raw, gcp, False)


def image_policies(settings: Settings) -> tuple[CleanupPolicy, ...]:
    assert isinstance(settings.destination, ArtifactRegistry)
    cleanup = settings.destination.repository.cleanup
    assert cleanup is not None
    return image_cleanup_policies(cleanup, settings.tag)


def deletes(policies: tuple[CleanupPolicy, ...]) -> list[CleanupPolicy]:
    return [policy for policy in policies if policy.action == "DELETE"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_delete_no_image_version(stack: str) -> None:
    policies = image_policies(committed(stack))
    assert deletes(policies) == [], stack
    keep_tagged = [p for p in policies if p.action == "KEEP" and p.tag_state == "TAGGED"]
    assert keep_tagged and not keep_tagged[0].tag_prefixes, stack


def test_prod_cache_repository_deletes_only_superseded_cache_versions() -> None:
    settings = committed("prod")
    assert isinstance(settings.destination, ArtifactRegistry)
    cleanup = settings.destination.repository.cleanup
    assert cleanup is not None and settings.destination.repository.immutable_tags
    (delete,) = deletes(cache_cleanup_policies(cleanup))
    assert (delete.tag_state, delete.older_than) == ("UNTAGGED", f"{180 * 86_400}s")
    assert [p.tag_state for p in cache_cleanup_policies(cleanup) if p.action == "KEEP"] == [
        "TAGGED"
    ]


def test_ephemeral_prefixes_delete_only_their_tags_and_never_untagged_versions() -> None:
    settings = parse(
        tag="1.4.0", ephemeralTagPrefixes=["pr-", "dev-"], repository={"cleanup": CLEANUP}
    )
    policies = image_policies(settings)
    (delete,) = deletes(policies)
    assert (delete.tag_state, delete.tag_prefixes, delete.older_than) == (
        "TAGGED",
        ("pr-", "dev-"),
        "172800s",
    )
    # Keep wins over delete: a version tagged both `pr-9` and the stack's tag stays.
    assert any(p.action == "KEEP" and p.tag_prefixes == ("1.4.0",) for p in policies)
    assert all(p.tag_state != "UNTAGGED" for p in policies)


def test_image_policies_are_exactly_the_documented_ones() -> None:
    # The ids are how the repository (and its console page) names each policy.
    kept = image_policies(parse(repository={"cleanup": CLEANUP}))
    assert kept == (
        CleanupPolicy(id="keep-most-recent", action="KEEP", keep_count=3),
        CleanupPolicy(id="keep-tagged", action="KEEP", tag_state="TAGGED"),
    )
    ephemeral = parse(tag="1.4.0", ephemeralTagPrefixes=["pr-"], repository={"cleanup": CLEANUP})
    assert image_policies(ephemeral) == (
        CleanupPolicy(id="keep-most-recent", action="KEEP", keep_count=3),
        CleanupPolicy(
            id="keep-stack-tag", action="KEEP", tag_state="TAGGED", tag_prefixes=("1.4.0",)
        ),
        CleanupPolicy(
            id="delete-old-ephemeral-tags",
            action="DELETE",
            tag_state="TAGGED",
            older_than="172800s",
            tag_prefixes=("pr-",),
        ),
    )


@pytest.mark.parametrize(
    ("values", "key", "allowed"),
    [
        (
            {"tag": "pr-12", "ephemeralTagPrefixes": ["pr-"], "repository": {"cleanup": CLEANUP}},
            f"{P}:ephemeralTagPrefixes[0]",
            "does not start with",
        ),
        (
            {"ephemeralTagPrefixes": ["pr-"]},
            f"{P}:ephemeralTagPrefixes",
            "unless repository.cleanup is set",
        ),
        (
            {"ephemeralTagPrefixes": ["pr-", "pr-"], "repository": {"cleanup": CLEANUP}},
            f"{P}:ephemeralTagPrefixes[1]",
            "at most once",
        ),
        (
            {"ephemeralTagPrefixes": ["-x"], "repository": {"cleanup": CLEANUP}},
            f"{P}:ephemeralTagPrefixes[0]",
            "a Docker tag prefix",
        ),
        (
            {"ephemeralTagPrefixes": "pr-", "repository": {"cleanup": CLEANUP}},
            f"{P}:ephemeralTagPrefixes",
            "a list of tag prefixes",
        ),
        (
            {"ephemeralTagPrefixes": ["pr-"], "registry": {"address": "127.0.0.1:5000"}},
            f"{P}:ephemeralTagPrefixes",
            "unset or [] when `registry` is set",
        ),
        (
            {"repository": {"cleanup": {**CLEANUP, "tagPrefixes": []}}},
            f"{P}:repository.cleanup.tagPrefixes",
            "tagged versions are never deleted",
        ),
    ],
)
def test_bad_ephemeral_configuration_is_one_error(
    values: dict[str, Any], key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**values)
    assert raised.value.key == key
    assert allowed in raised.value.allowed


def test_prod_program_declares_both_repositories_with_rules(program: ProgramRunner) -> None:
    run = program(stack_config("prod"))
    policies = {r.name: r.inputs["cleanupPolicies"] for r in run.of_type(REPOSITORY)}
    assert [p["action"] for p in policies["artifacts-repository"]] == ["KEEP", "KEEP"]
    assert policies["artifacts-cache-repository"] == [
        {"id": "keep-cache-tags", "action": "KEEP", "condition": {"tagState": "TAGGED"}},
        {
            "id": "delete-old-untagged-cache",
            "action": "DELETE",
            "condition": {"tagState": "UNTAGGED", "olderThan": f"{180 * 86_400}s"},
        },
    ]
    dry_runs = {r.name: r.inputs.get("cleanupPolicyDryRun") for r in run.of_type(REPOSITORY)}
    assert dry_runs == {"artifacts-repository": True, "artifacts-cache-repository": True}
