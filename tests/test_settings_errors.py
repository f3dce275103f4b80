"""Every refusal of the settings parser names the exact key and shows the value that was wrong
(a secret as "[secret]", an unset value as <unset>), before anything is declared; and the
defaults an unset nested key gets. The allowed-values wording is test_settings.py's."""

import json
from typing import Any

import pytest

from plan.settings import (
    CONFIG_KEYS,
    UPSTREAM_URL,
    ConfigError,
    ExternalRegistry,
    GitSource,
    PathSource,
    check_known_keys,
)
from tests.test_settings import COMMIT, P, parse

REGISTRY = {"registry": {"address": "127.0.0.1:5000"}}
ARM = {"name": "arm", "platforms": ["linux/arm64"], "endpoint": "ssh://arm"}
PER_PLATFORM = {"strategy": "perPlatform"}
UNSET = "<unset>"

REFUSED: list[tuple[str, dict[str, Any], str, object]] = [
    ("platforms not a list", {"platforms": "linux/amd64"}, "platforms", "linux/amd64"),
    ("no platform", {"platforms": []}, "platforms", []),
    ("platform twice", {"platforms": ["linux/amd64"] * 2}, "platforms[1]", "linux/amd64"),
    ("unknown platform", {"platforms": ["linux/s390x"]}, "platforms[0]", "linux/s390x"),
    ("service twice", {"services": ["frontend"] * 2}, "services[1]", "frontend"),
    ("registry not an object", {"registry": "127.0.0.1:5000"}, "registry", "127.0.0.1:5000"),
    (
        "registry field misspelt",
        {"registry": {"address": "127.0.0.1:5000", "user": "me"}},
        "registry.user",
        "me",
    ),
    (
        "blank registry user",
        {"registry": {"address": "127.0.0.1:5000", "username": " "}},
        "registry.username",
        " ",
    ),
    (
        "repository with registry",
        {**REGISTRY, "repository": {"id": "x"}},
        "repository",
        {"id": "x"},
    ),
    ("writers with registry", {**REGISTRY, "writers": ["user:a@b.c"]}, "writers", ["user:a@b.c"]),
    ("member without a kind", {"writers": ["a@b.c"]}, "writers[0]", "a@b.c"),
    ("member twice", {"writers": ["user:a@b.c"] * 2}, "writers[1]", "user:a@b.c"),
    (
        "driver options not an object",
        {"builder": {"driverOpts": "network=host"}},
        "builder.driverOpts",
        "network=host",
    ),
    (
        "driver option not a string",
        {"builder": {"driverOpts": {"network": 1}}},
        "builder.driverOpts.network",
        1,
    ),
    ("nodes not a list", {"builder": {"nodes": ARM}}, "builder.nodes", ARM),
    ("node not an object", {"builder": {"nodes": ["arm"]}}, "builder.nodes[0]", "arm"),
    (
        "node platforms not a list",
        {"builder": {"nodes": [{**ARM, "platforms": "linux/arm64"}]}},
        "builder.nodes[0].platforms",
        "linux/arm64",
    ),
    (
        "node name with a space",
        {"builder": {"nodes": [{**ARM, "name": "a b"}]}},
        "builder.nodes[0].name",
        "a b",
    ),
    (
        "platform builders not an object",
        {**PER_PLATFORM, "builder": {"platformBuilders": ["linux/arm64"]}},
        "builder.platformBuilders",
        ["linux/arm64"],
    ),
    (
        "platform builder of an unbuilt platform",
        {**PER_PLATFORM, "builder": {"platformBuilders": {"linux/s390x": {"name": "s"}}}},
        "builder.platformBuilders.linux/s390x",
        {"name": "s"},
    ),
    (
        "platform builder without a name",
        {**PER_PLATFORM, "builder": {"platformBuilders": {"linux/arm64": {"driver": "remote"}}}},
        "builder.platformBuilders.linux/arm64.name",
        UNSET,
    ),
    (
        "platform builder named like the main builder",
        {
            **PER_PLATFORM,
            "builder": {"platformBuilders": {"linux/arm64": {"name": "multiarch-builder"}}},
        },
        "builder.platformBuilders.linux/arm64.name",
        "multiarch-builder",
    ),
    (
        "platform builders without perPlatform",
        {"builder": {"platformBuilders": {"linux/arm64": {"name": "arm"}}}},
        "builder.platformBuilders",
        {"linux/arm64": {"name": "arm"}},
    ),
    (
        "tag prefix with a space",
        {"repository": {"cleanup": {}}, "ephemeralTagPrefixes": ["a b"]},
        "ephemeralTagPrefixes[0]",
        "a b",
    ),
    (
        "tag prefixes not a list",
        {"repository": {"cleanup": {"tagPrefixes": "sha-"}}},
        "repository.cleanup.tagPrefixes",
        "sha-",
    ),
    (
        "keep nothing",
        {"repository": {"cleanup": {"keepCount": 0}}},
        "repository.cleanup.keepCount",
        0,
    ),
    (
        "delete at age 0",
        {"repository": {"cleanup": {"olderThanDays": 0}}},
        "repository.cleanup.olderThanDays",
        0,
    ),
    (
        "dry run not a boolean",
        {"repository": {"cleanup": {"dryRun": "no"}}},
        "repository.cleanup.dryRun",
        "no",
    ),
    (
        "description too long",
        {"repository": {"description": "d" * 2049}},
        "repository.description",
        "d" * 2049,
    ),
    ("description not text", {"repository": {"description": 5}}, "repository.description", 5),
    (
        "commit with a path",
        {"source": {"path": "/tmp", "commit": COMMIT}},
        "source.commit",
        COMMIT,
    ),
    ("allow not an object", {"verify": {"allow": ["x"]}}, "verify.allow", ["x"]),
    (
        "allowed path not an object",
        {"verify": {"allow": {"frontend": ["/x"]}}},
        "verify.allow.frontend[0]",
        "/x",
    ),
    (
        "allowed paths not a list",
        {"verify": {"allow": {"frontend": {"path": "/x", "reason": "r"}}}},
        "verify.allow.frontend",
        {"path": "/x", "reason": "r"},
    ),
    (
        "allowed path with a space",
        {"verify": {"allow": {"frontend": [{"path": " /x", "reason": "r"}]}}},
        "verify.allow.frontend[0].path",
        " /x",
    ),
    (
        "allowed path without a reason",
        {"verify": {"allow": {"frontend": [{"path": "/x", "reason": ""}]}}},
        "verify.allow.frontend[0].reason",
        "",
    ),
    ("deep not a boolean", {"verify": {"deep": "yes"}}, "verify.deep", "yes"),
    ("cache not a boolean", {"cache": "yes"}, "cache", "yes"),
]


@pytest.mark.parametrize(
    ("values", "key", "value"),
    [pytest.param(values, key, value, id=name) for name, values, key, value in REFUSED],
)
def test_a_refusal_names_the_exact_key_and_shows_the_value(
    values: dict[str, Any], key: str, value: object
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**values)
    error = raised.value
    assert error.key == f"{P}:{key}", str(error)
    shown = UNSET if value == UNSET else json.dumps(value)
    assert str(error).startswith(f"config {P}:{key} = {shown} is not valid; allowed: "), str(error)
    assert error.allowed.strip(), str(error)


@pytest.mark.parametrize(
    ("gcp", "registry", "password", "key", "shown"),
    [
        ({}, None, False, "gcp:project", UNSET),
        ({"project": "p"}, None, True, f"{P}:registryPassword", '"[secret]"'),
        ({}, {"address": "127.0.0.1:5000", "username": "u"}, False, f"{P}:registryPassword", UNSET),
        ({}, {"address": "127.0.0.1:5000"}, True, f"{P}:registryPassword", '"[secret]"'),
    ],
)
def test_credentials_and_project_refusals_never_show_a_secret(
    gcp: dict[str, str], registry: dict[str, str] | None, password: bool, key: str, shown: str
) -> None:
    values = {} if registry is None else {"registry": registry}
    with pytest.raises(ConfigError) as raised:
        parse(gcp=gcp, password=password, **values)
    assert raised.value.key == key
    assert str(raised.value).startswith(f"config {key} = {shown} is not valid"), str(raised.value)


def test_unset_nested_keys_take_their_documented_defaults() -> None:
    settings = parse(repository={"cleanup": {}})
    repository = settings.destination.repository  # type: ignore[union-attr]
    assert repository.description == "Online Boutique multi-arch images"
    cleanup = repository.cleanup
    assert cleanup is not None
    assert (cleanup.keep_count, cleanup.older_than_days) == (10, 30)
    assert (cleanup.dry_run, cleanup.ephemeral_tag_prefixes) == (True, ())
    kept = parse(repository={"cleanup": {"dryRun": False}}, ephemeralTagPrefixes=["sha-", "pr-"])
    cleanup = kept.destination.repository.cleanup  # type: ignore[union-attr]
    assert cleanup is not None and (cleanup.ephemeral_tag_prefixes, cleanup.dry_run) == (
        ("sha-", "pr-"),
        False,
    )
    registry = parse(gcp={}, registry={"address": "127.0.0.1:5000"}).destination
    assert registry == ExternalRegistry(address="127.0.0.1:5000", username=None)
    assert parse(tag="2024.1").tag == "2024.1"
    # The smallest allowed counts are allowed.
    least = parse(repository={"cleanup": {"keepCount": 1, "olderThanDays": 1}})
    cleanup = least.destination.repository.cleanup  # type: ignore[union-attr]
    assert cleanup is not None and (cleanup.keep_count, cleanup.older_than_days) == (1, 1)


def test_a_path_source_keeps_its_url_for_the_labels() -> None:
    url = "https://example.com/microservices-demo.git"
    assert parse(source={"path": "/tmp", "url": url}).source == PathSource(path="/tmp", url=url)
    assert parse(source={"commit": COMMIT}).source == GitSource(url=UPSTREAM_URL, commit=COMMIT)


def test_an_unknown_key_of_the_project_is_refused_and_a_secret_one_hidden() -> None:
    known = {f"{P}:tag": "v1", "gcp:project": "p", "other:anything": "x"}
    check_known_keys(known, secret_keys=())
    check_known_keys({f"{P}:registryPassword": "s3cret"}, {f"{P}:registryPassword"})
    with pytest.raises(ConfigError) as raised:
        check_known_keys({**known, f"{P}:platform": "linux/arm64"}, secret_keys=())
    assert (raised.value.key, raised.value.value) == (f"{P}:platform", "linux/arm64")
    assert ", ".join((*CONFIG_KEYS, "registryPassword")) in raised.value.allowed
    with pytest.raises(ConfigError) as raised:
        check_known_keys({**known, f"{P}:registyPassword": "s3cret"}, {f"{P}:registyPassword"})
    assert raised.value.value == "[secret]" and "s3cret" not in str(raised.value)
    # Keys are checked in sorted order: the first unknown one is named.
    with pytest.raises(ConfigError) as raised:
        check_known_keys({f"{P}:zz": 1, f"{P}:aa": 2, f"{P}:tag": "v1"}, secret_keys=())
    assert raised.value.key == f"{P}:aa"
