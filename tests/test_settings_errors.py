"""Every refusal of the settings parser names the exact key and shows the value that was wrong
(a secret as "[secret]", an unset value as <unset>), before anything is declared; and the
defaults an unset nested key gets. The allowed-values wording is test_settings.py's."""

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from plan.settings import (
    CONFIG_KEYS,
    UPSTREAM_URL,
    ConfigError,
    ExternalRegistry,
    GitSource,
    PathSource,
    _config_error,
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


SOURCE_URL_ALLOWED = (
    "a git URL without user-info (except an ssh user name), query or fragment: a token there "
    "would reach command lines, the state and the images' source label; fetch a private fork "
    "with a git credential helper in the environment that runs Pulumi"
)
NOT_A_GIT_URL = (
    "a git URL (https://, ssh://, file://, …), not starting with '-' "
    "(a command would read it as an option)"
)
BUILDER_FIELDS = "name, driver, driverOpts, endpoint"

# (what is wrong, config values, `key = shown value`, what is allowed): the whole message a user
# reads is `config <key> = <value> is not valid; allowed: <allowed>`.
MESSAGES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "allowed paths not a list",
        {"verify": {"allow": {"frontend": {"path": "/x"}}}},
        f'{P}:verify.allow.frontend = {{"path": "/x"}}',
        "a list of {path, reason} objects",
    ),
    (
        "allowed path not absolute",
        {"verify": {"allow": {"frontend": [{"path": "usr/lib/x", "reason": "r"}]}}},
        f'{P}:verify.allow.frontend[0].path = "usr/lib/x"',
        "an absolute path glob such as /usr/lib/*.node (no outer spaces)",
    ),
    (
        "allowed path with a blank reason",
        {"verify": {"allow": {"frontend": [{"path": "/x", "reason": " "}]}}},
        f'{P}:verify.allow.frontend[0].reason = " "',
        "why this file may be built for another architecture",
    ),
    (
        "node platforms not a list",
        {"builder": {"nodes": [{**ARM, "platforms": "linux/arm64"}]}},
        f'{P}:builder.nodes[0].platforms = "linux/arm64"',
        "a list of platforms",
    ),
    (
        "nodes not a list",
        {"builder": {"nodes": {"name": "arm"}}},
        f'{P}:builder.nodes = {{"name": "arm"}}',
        "a list of nodes",
    ),
    (
        "platform builders not an object",
        {**PER_PLATFORM, "builder": {"platformBuilders": ["linux/arm64"]}},
        f'{P}:builder.platformBuilders = ["linux/arm64"]',
        "an object keyed by configured platform",
    ),
    (
        "platform builder of an unbuilt platform",
        {**PER_PLATFORM, "builder": {"platformBuilders": {"linux/s390x": {"name": "s"}}}},
        f'{P}:builder.platformBuilders.linux/s390x = {{"name": "s"}}',
        "a configured platform: linux/amd64, linux/arm64",
    ),
    (
        "platform builder not an object",
        {**PER_PLATFORM, "builder": {"platformBuilders": {"linux/arm64": "arm"}}},
        f'{P}:builder.platformBuilders.linux/arm64 = "arm"',
        f"an object with the fields {BUILDER_FIELDS}",
    ),
    (
        "platform builder with nodes",
        {
            **PER_PLATFORM,
            "builder": {"platformBuilders": {"linux/arm64": {"name": "arm", "nodes": [ARM]}}},
        },
        f"{P}:builder.platformBuilders.linux/arm64.nodes = {json.dumps([ARM])}",
        f"one of the fields {BUILDER_FIELDS}",
    ),
    (
        "platform builder without a name",
        {**PER_PLATFORM, "builder": {"platformBuilders": {"linux/arm64": {"driver": "remote"}}}},
        f"{P}:builder.platformBuilders.linux/arm64.name = <unset>",
        "the name of this platform's builder",
    ),
    (
        "probe not a string",
        {"verify": {"probes": {"frontend": {"probe": 8080}}}},
        f"{P}:verify.probes.frontend.probe = 8080",
        "grpc:PORT, http:PORT/PATH, tcp:PORT or up:SECONDS",
    ),
    (
        "blank registry user",
        {"registry": {"address": "127.0.0.1:5000", "username": " "}},
        f'{P}:registry.username = " "',
        "a non-empty user name",
    ),
    (
        "a skipped platform that is not built",
        {
            "platforms": ["linux/amd64"],
            "verify": {"skipRun": {"cartservice": {"linux/arm64": "no arm64 runner"}}},
        },
        f'{P}:verify.skipRun.cartservice.linux/arm64 = "no arm64 runner"',
        "a configured platform: linux/amd64",
    ),
    (
        "a skipped platform that is not a platform",
        {"verify": {"skipRun": {"cartservice": {"linux/s390x": "no emulator"}}}},
        f'{P}:verify.skipRun.cartservice.linux/s390x = "no emulator"',
        "a configured platform: linux/amd64, linux/arm64",
    ),
    (
        "skipped platforms not an object",
        {"verify": {"skipRun": {"cartservice": "linux/arm64"}}},
        f'{P}:verify.skipRun.cartservice = "linux/arm64"',
        "an object of platform: reason",
    ),
    (
        "a skipped platform with a blank reason",
        {"verify": {"skipRun": {"cartservice": {"linux/arm64": " "}}}},
        f'{P}:verify.skipRun.cartservice.linux/arm64 = " "',
        "why this platform's image is not started (a reason is required)",
    ),
    (
        "start env not an object",
        {"verify": {"probes": {"frontend": {"env": ["A=1"]}}}},
        f'{P}:verify.probes.frontend.env = ["A=1"]',
        "an object of NAME: value strings",
    ),
    (
        "start env value not a string",
        {"verify": {"probes": {"frontend": {"env": {"PORT": 8080}}}}},
        f"{P}:verify.probes.frontend.env.PORT = 8080",
        "a string value",
    ),
    (
        "start env value with a newline",
        {"verify": {"probes": {"frontend": {"env": {"GREETING": "a\nb"}}}}},
        f'{P}:verify.probes.frontend.env.GREETING = "a\\nb"',
        "env GREETING: the value must not contain a newline or NUL byte",
    ),
    (
        "source URL with a token",
        {"source": {"url": "https://ghp_s3cret@github.com/example/boutique.git"}},
        f'{P}:source.url = "https://***@github.com/example/boutique.git"',
        SOURCE_URL_ALLOWED,
    ),
    (
        # The user name ends at the last `@` of the authority: `git@x:s3cret` holds a password.
        "ssh URL with a password before a second @",
        {"source": {"url": "ssh://git@x:s3cret@github.com/example/boutique.git"}},
        f'{P}:source.url = "ssh://***@github.com/example/boutique.git"',
        SOURCE_URL_ALLOWED,
    ),
    (
        # The scheme ends at the first `://`, not at one in the path.
        "URL with a token and a second ://",
        {"source": {"url": "https://ghp_s3cret@github.com/example/boutique://x"}},
        f'{P}:source.url = "https://***@github.com/example/boutique://x"',
        SOURCE_URL_ALLOWED,
    ),
    (
        "scp-like URL with a query",
        {"source": {"url": "git@github.com:example/boutique.git?token=s3cret"}},
        f'{P}:source.url = "***@github.com:example/boutique.git?***"',
        SOURCE_URL_ALLOWED,
    ),
    (
        "source URL not a string",
        {"source": {"url": ["https://github.com/example/boutique.git"]}},
        f'{P}:source.url = ["https://github.com/example/boutique.git"]',
        NOT_A_GIT_URL,
    ),
    ("source URL a number", {"source": {"url": 5}}, f"{P}:source.url = 5", NOT_A_GIT_URL),
]


@pytest.mark.parametrize(
    ("values", "key_and_value", "allowed"),
    [pytest.param(*case, id=name) for name, *case in MESSAGES],
)
def test_a_refusal_reads_in_full(values: dict[str, Any], key_and_value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**values)
    assert str(raised.value) == f"config {key_and_value} is not valid; allowed: {allowed}"


def test_a_null_repository_is_the_default_one_like_a_null_registry() -> None:
    # It once reached an assertion instead: `null` is how a stack file writes an unset value.
    assert parse(repository=None) == parse() == parse(registry=None)


def test_an_error_pydantic_raised_itself_still_names_the_key_and_the_value() -> None:
    # Every rule refuses with `_refuse`; an error of pydantic's own (none is known to reach a
    # user) would still read as one ConfigError, with pydantic's message as what is allowed.
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(dict[str, int]).validate_python({"keepCount": "many"})
    error = _config_error(raised.value, ".repository.cleanup")
    assert str(error) == (
        f'config {P}:repository.cleanup.keepCount = "many" is not valid; allowed: '
        "Input should be a valid integer, unable to parse string as an integer"
    )
    assert (error.key, error.value) == (f"{P}:repository.cleanup.keepCount", "many")
    assert _config_error(raised.value).key == f"{P}:keepCount"
