"""Every refusal of the settings parser names the exact key and shows the value that was wrong
(a secret as "[secret]", an unset value as <unset>), before anything is declared; and the
defaults an unset nested key gets. The allowed-values wording is test_settings.py's."""

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from plan.services import CATALOG
from plan.settings import (
    CONFIG_KEYS,
    UPSTREAM_URL,
    ArtifactRegistry,
    BuilderNode,
    ConfigError,
    ExternalRegistry,
    GitSource,
    PathSource,
    VerifySettings,
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
NOT_AN_OPTION = "not starting with '-' (a command would read it as an option)"
NOT_A_GIT_URL = f"a git URL (https://, ssh://, file://, …), {NOT_AN_OPTION}"
BUILDER_FIELDS = "name, driver, driverOpts, endpoint"
KMS = "projects/shop-123/locations/europe-west1/keyRings/ci/cryptoKeys/attest/cryptoKeyVersions/2"

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
    (
        "tag with a space",
        {"tag": "a b"},
        f'{P}:tag = "a b"',
        "a Docker tag: letters, digits, '_', '.', '-', at most 128 characters, "
        "not starting with '.' or '-'",
    ),
    (
        "repository id with a capital",
        {"repository": {"id": "Shop"}},
        f'{P}:repository.id = "Shop"',
        "lowercase letters, digits and hyphens, starting with a letter, at most 63 characters",
    ),
    (
        "repository location with a capital",
        {"repository": {"location": "Europe"}},
        f'{P}:repository.location = "Europe"',
        "a region or multi-region such as us-central1",
    ),
    (
        "commit a branch",
        {"source": {"commit": "main"}},
        f'{P}:source.commit = "main"',
        "a full 40-character lowercase commit SHA, not a tag",
    ),
    (
        "attest key with an outer space",
        {"attest": {"key": " k.pem"}},
        f'{P}:attest.key = " k.pem"',
        "a path to the PEM key file, e.g. .pulumi-local/attest-key.pem (no outer spaces)",
    ),
    (
        "attest kms not a key version",
        {"attest": {"kms": "projects/p/keys/k"}},
        f'{P}:attest.kms = "projects/p/keys/k"',
        "a Cloud KMS key version, "
        "projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N (EC_SIGN_P256_SHA256)",
    ),
    (
        "attest with a key and a KMS key version",
        {"attest": {"kms": KMS, "key": "k.pem"}},
        f'{P}:attest.kms = "{KMS}"',
        "one signer: attest.key (a local PEM key) or attest.kms (a KMS key version), not both",
    ),
    (
        "attest enforce without Binary Authorization",
        {"attest": {"enforce": True}},
        f"{P}:attest.enforce = true",
        "only with attest.binaryAuthorization true",
    ),
    (
        "Binary Authorization on an existing registry",
        {"attest": {"binaryAuthorization": True}, **REGISTRY},
        f"{P}:attest.binaryAuthorization = true",
        "only on Artifact Registry stacks (no `registry`)",
    ),
    (
        "attest without deep verification",
        {"attest": {"key": "k.pem"}, "verify": {"deep": False}},
        f'{P}:attest = {{"key": "k.pem"}}',
        "only with verify.deep true (the SBOM is read from layers)",
    ),
    (
        "builder name like an option",
        {"builder": {"name": "-x"}},
        f'{P}:builder.name = "-x"',
        f"letters, digits, '_', '.', '-', {NOT_AN_OPTION}",
    ),
    (
        "endpoint with a space",
        {"builder": {"endpoint": "tcp://a b"}},
        f'{P}:builder.endpoint = "tcp://a b"',
        f"a non-empty endpoint without whitespace, {NOT_AN_OPTION}",
    ),
    (
        "node name with a space",
        {"builder": {"nodes": [{**ARM, "name": "a b"}]}},
        f'{P}:builder.nodes[0].name = "a b"',
        f"a node name (letters, digits, '_.-'), {NOT_AN_OPTION}",
    ),
    (
        "registry path with a capital",
        {"registry": {"address": "registry.example.com/Boutique"}},
        f'{P}:registry.address = "registry.example.com/Boutique"',
        f"host[:port][/path] in lowercase, e.g. registry.example.com/boutique, {NOT_AN_OPTION}",
    ),
    (
        "blank checkout path",
        {"source": {"path": " "}},
        f'{P}:source.path = " "',
        f"the directory of an existing checkout, {NOT_AN_OPTION}",
    ),
    ("cache not a boolean", {"cache": "yes"}, f'{P}:cache = "yes"', "true or false"),
    (
        "keep nothing",
        {"repository": {"cleanup": {"keepCount": 0}}},
        f"{P}:repository.cleanup.keepCount = 0",
        "an integer >= 1",
    ),
    (
        "platforms not a list",
        {"platforms": "linux/amd64"},
        f'{P}:platforms = "linux/amd64"',
        "a list of platforms",
    ),
    (
        "services not a list",
        {"services": "frontend"},
        f'{P}:services = "frontend"',
        "a list of service names",
    ),
    (
        "writers not a list",
        {"writers": "user:a@b.c"},
        f'{P}:writers = "user:a@b.c"',
        "a list of IAM members",
    ),
    (
        "tag prefixes not a list",
        {"ephemeralTagPrefixes": "pr-", "repository": {"cleanup": {}}},
        f'{P}:ephemeralTagPrefixes = "pr-"',
        "a list of tag prefixes",
    ),
    (
        "unknown platform",
        {"platforms": ["linux/s390x"]},
        f'{P}:platforms[0] = "linux/s390x"',
        "platforms: linux/amd64, linux/arm64",
    ),
    (
        "platform twice",
        {"platforms": ["linux/arm64", "linux/arm64"]},
        f'{P}:platforms[1] = "linux/arm64"',
        "each platform at most once",
    ),
    (
        "no platform",
        {"platforms": []},
        f"{P}:platforms = []",
        "at least one of linux/amd64, linux/arm64",
    ),
    (
        "unknown service",
        {"services": ["nosuch"]},
        f'{P}:services[0] = "nosuch"',
        f"services: {', '.join(CATALOG)}",
    ),
    (
        "service twice",
        {"services": ["frontend", "frontend"]},
        f'{P}:services[1] = "frontend"',
        "each service at most once",
    ),
    (
        "node platform twice",
        {"builder": {"nodes": [{**ARM, "platforms": ["linux/arm64", "linux/arm64"]}]}},
        f'{P}:builder.nodes[0].platforms[1] = "linux/arm64"',
        "each configured platform at most once",
    ),
    (
        "node platform not built",
        {"platforms": ["linux/amd64"], "builder": {"nodes": [ARM]}},
        f'{P}:builder.nodes[0].platforms[0] = "linux/arm64"',
        "configured platforms: linux/amd64",
    ),
    (
        "labels not an object",
        {"repository": {"labels": ["team"]}},
        f'{P}:repository.labels = ["team"]',
        "an object of string values",
    ),
    (
        "label key with a capital",
        {"repository": {"labels": {"Team": "x"}}},
        f'{P}:repository.labels.Team = "x"',
        "GCP labels: lowercase keys starting with a letter, lowercase values, letters, digits, "
        "'_' and '-', at most 63 characters",
    ),
    (
        "driver option with a comma",
        {"builder": {"driverOpts": {"network": "host,x"}}},
        f'{P}:builder.driverOpts.network = "host,x"',
        "lowercase option names or env.NAME, and values without commas or whitespace",
    ),
    (
        "unknown strategy",
        {"strategy": "fast"},
        f'{P}:strategy = "fast"',
        "multiPlatform or perPlatform",
    ),
    (
        "legacy docker driver",
        {"builder": {"driver": "docker"}},
        f'{P}:builder.driver = "docker"',
        "docker-container, kubernetes, remote",
    ),
    (
        "tag prefix like an option",
        {"ephemeralTagPrefixes": ["-x"], "repository": {"cleanup": {}}},
        f'{P}:ephemeralTagPrefixes[0] = "-x"',
        "a Docker tag prefix such as pr- (letters, digits, _.-)",
    ),
    (
        "tag prefix twice",
        {"ephemeralTagPrefixes": ["pr-", "pr-"], "repository": {"cleanup": {}}},
        f'{P}:ephemeralTagPrefixes[1] = "pr-"',
        "each prefix at most once",
    ),
    (
        "tag prefix of the stack's own tag",
        {"tag": "pr-1", "ephemeralTagPrefixes": ["pr-"], "repository": {"cleanup": {}}},
        f'{P}:ephemeralTagPrefixes[0] = "pr-"',
        "a prefix the stack's own tag 'pr-1' does not start with (cleanup would delete the "
        "images this stack publishes)",
    ),
    (
        "tag prefixes without a cleanup",
        {"ephemeralTagPrefixes": ["pr-"]},
        f'{P}:ephemeralTagPrefixes = ["pr-"]',
        "[] unless repository.cleanup is set (its olderThanDays is the age at which ephemeral "
        "tags are deleted)",
    ),
    (
        "description not text",
        {"repository": {"description": 5}},
        f"{P}:repository.description = 5",
        "a string of at most 2048 characters",
    ),
    (
        "allowed paths of a service not built",
        {"services": ["frontend", "adservice"], "verify": {"allow": {"cartservice": []}}},
        f"{P}:verify.allow.cartservice = []",
        "a configured service: frontend, adservice",
    ),
    (
        "allow not an object",
        {"verify": {"allow": ["x"]}},
        f'{P}:verify.allow = ["x"]',
        "an object keyed by configured service",
    ),
    (
        "verify not an object",
        {"verify": "deep"},
        f'{P}:verify = "deep"',
        "an object with the fields deep, allow, run, probes, skipRun",
    ),
    (
        "verify field misspelt",
        {"verify": {"deeep": True}},
        f"{P}:verify.deeep = true",
        "one of the fields deep, allow, run, probes, skipRun",
    ),
    (
        "retired cleanup key",
        {"repository": {"cleanup": {"tagPrefixes": []}}},
        f"{P}:repository.cleanup.tagPrefixes = []",
        "unset: tagged versions are never deleted, except tags with a prefix listed in "
        f'{P}:ephemeralTagPrefixes (e.g. ["pr-"])',
    ),
    (
        "remote driver without an endpoint",
        {"builder": {"driver": "remote"}},
        f"{P}:builder.endpoint = <unset>",
        "the BuildKit address the remote driver uses",
    ),
    (
        "node name twice",
        {"builder": {"nodes": [ARM, ARM]}},
        f'{P}:builder.nodes[1].name = "arm"',
        "a unique node name",
    ),
    (
        # buildx names the builder's own first node `<builder>0`.
        "node named like the builder's first node",
        {"builder": {"nodes": [{**ARM, "name": "multiarch-builder0"}]}},
        f'{P}:builder.nodes[0].name = "multiarch-builder0"',
        "a unique node name",
    ),
    (
        "two platform builders with one name",
        {
            **PER_PLATFORM,
            "builder": {
                "platformBuilders": {"linux/amd64": {"name": "b"}, "linux/arm64": {"name": "b"}}
            },
        },
        f'{P}:builder.platformBuilders.linux/arm64.name = "b"',
        "a builder name not used already (multiarch-builder, b)",
    ),
    (
        "platform builders without perPlatform",
        {"builder": {"platformBuilders": {"linux/arm64": {"name": "arm"}}}},
        f'{P}:builder.platformBuilders = {{"linux/arm64": {{"name": "arm"}}}}',
        "only with strategy perPlatform (a multi-platform build uses one builder; "
        "use builder.nodes for native nodes)",
    ),
    (
        "commit with a checkout path",
        {"source": {"path": "/tmp", "commit": COMMIT}},
        f'{P}:source.commit = "{COMMIT}"',
        "unset when `source.path` is set",
    ),
    (
        "registry port 0",
        {"registry": {"address": "127.0.0.1:0"}},
        f'{P}:registry.address = "127.0.0.1:0"',
        "a port from 1 to 65535",
    ),
    (
        "registry started off loopback",
        {"registry": {"address": "registry.example.com:5000", "start": True}},
        f"{P}:registry.start = true",
        "true only with a loopback registry.address with a port (127.0.0.1:PORT, "
        "localhost:PORT or [::1]:PORT), not registry.example.com:5000",
    ),
    (
        "run timeout within the probe's wait",
        {"verify": {"probes": {"loadgenerator": {"timeout": 45}}}},
        f"{P}:verify.probes.loadgenerator.timeout = 45",
        "46 to 3600 seconds (the probe is up:45)",
    ),
    (
        # The stack's own registry listens on the host and port; the path is no part of them.
        "registry with a path started off loopback",
        {"registry": {"address": "registry.example.com:5000/boutique", "start": True}},
        f"{P}:registry.start = true",
        "true only with a loopback registry.address with a port (127.0.0.1:PORT, "
        "localhost:PORT or [::1]:PORT), not registry.example.com:5000",
    ),
    (
        # Its image is never started (the probe table has no probe for it): no wait to outlast.
        "run timeout of a service without a probe",
        {
            "services": ["frontend", "shoppingassistantservice"],
            "verify": {"probes": {"shoppingassistantservice": {"timeout": 3601}}},
        },
        f"{P}:verify.probes.shoppingassistantservice.timeout = 3601",
        "1 to 3600 seconds",
    ),
    (
        # `strategy` is taken as the text given, never decoded as JSON (a number stays text).
        "strategy a number",
        {"strategy": "1"},
        f'{P}:strategy = "1"',
        "multiPlatform or perPlatform",
    ),
    (
        "IAM member without a kind",
        {"writers": ["a@b.c"]},
        f'{P}:writers[0] = "a@b.c"',
        "an IAM member starting with user:, serviceAccount:, group:, principal://, principalSet://",
    ),
    (
        "IAM member of a kind alone",
        {"readers": ["user:"]},
        f'{P}:readers[0] = "user:"',
        "an IAM member starting with user:, serviceAccount:, group:, principal://, principalSet://",
    ),
    (
        "IAM member twice",
        {"writers": ["user:a@b.c", "user:a@b.c"]},
        f'{P}:writers[1] = "user:a@b.c"',
        "each member at most once",
    ),
    (
        "repository with a registry",
        {**REGISTRY, "repository": {"id": "x"}},
        f'{P}:repository = {{"id": "x"}}',
        "unset when `registry` is set",
    ),
    (
        "readers with a registry",
        {**REGISTRY, "readers": ["user:a@b.c"]},
        f'{P}:readers = ["user:a@b.c"]',
        "unset or [] when `registry` is set",
    ),
    (
        "no room for the cache repository",
        {"repository": {"id": "r" * 58, "immutableTags": True}},
        f'{P}:repository.id = "{"r" * 58}"',
        "at most 57 characters with immutableTags and the cache on (the build cache goes to the "
        "repository `<id>-cache`)",
    ),
]


@pytest.mark.parametrize(
    ("values", "key_and_value", "allowed"),
    [pytest.param(*case, id=name) for name, *case in MESSAGES],
)
def test_a_refusal_reads_in_full(values: dict[str, Any], key_and_value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**values)
    assert str(raised.value) == f"config {key_and_value} is not valid; allowed: {allowed}"


@pytest.mark.parametrize(
    ("gcp", "registry", "password", "message"),
    [
        (
            {},
            None,
            False,
            "config gcp:project = <unset> is not valid; allowed: a GCP project id (or configure "
            "`registry`)",
        ),
        (
            {"project": "p"},
            None,
            False,
            f"config {P}:repository.location = <unset> is not valid; allowed: a region such as "
            "europe-west1 (or gcp:region)",
        ),
        (
            {"project": "p", "region": "Europe"},
            None,
            False,
            f'config {P}:repository.location = "Europe" is not valid; allowed: a region or '
            "multi-region such as us-central1",
        ),
        (
            {"project": "p", "region": "europe-west1"},
            None,
            True,
            f'config {P}:registryPassword = "[secret]" is not valid; allowed: only together with '
            "`registry`",
        ),
        (
            {},
            {"address": "127.0.0.1:5000"},
            True,
            f'config {P}:registryPassword = "[secret]" is not valid; allowed: only together with '
            "`registry.username`",
        ),
        (
            {},
            {"address": "127.0.0.1:5000", "username": "u"},
            False,
            f"config {P}:registryPassword = <unset> is not valid; allowed: a secret when "
            "`registry.username` is set",
        ),
    ],
)
def test_a_refusal_of_the_project_region_or_password_reads_in_full(
    gcp: dict[str, str], registry: dict[str, str] | None, password: bool, message: str
) -> None:
    values = {} if registry is None else {"registry": registry}
    with pytest.raises(ConfigError) as raised:
        parse(gcp=gcp, password=password, **values)
    assert str(raised.value) == message


def test_an_unknown_key_reads_in_full() -> None:
    with pytest.raises(ConfigError) as raised:
        check_known_keys({f"{P}:platform": "linux/arm64"}, secret_keys=())
    assert str(raised.value) == (
        f'config {P}:platform = "linux/arm64" is not valid; allowed: one of the keys '
        "services, platforms, tag, writers, readers, repository, builder, source, registry, "
        "cache, verify, strategy, ephemeralTagPrefixes, attest, registryPassword"
    )


def test_a_settings_object_validated_on_its_own_allows_every_supported_platform_and_service() -> (
    None
):
    # Without the stack's context (its platforms and services), nested keys allow all of them.
    verify = TypeAdapter(VerifySettings).validate_python(
        {"skipRun": {"shoppingassistantservice": {"linux/arm64": "needs Google Cloud"}}}
    )
    assert verify.skip_run == {"shoppingassistantservice": {"linux/arm64": "needs Google Cloud"}}
    node = TypeAdapter(BuilderNode).validate_python(
        {"name": "arm", "platforms": ["linux/amd64", "linux/arm64"], "endpoint": "ssh://arm"}
    )
    assert node.platforms == ("linux/amd64", "linux/arm64")


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


def test_a_description_of_2048_characters_is_the_longest_accepted() -> None:
    settings = parse(repository={"description": "d" * 2048})
    assert isinstance(settings.destination, ArtifactRegistry)
    assert settings.destination.repository.description == "d" * 2048
