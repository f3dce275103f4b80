"""plan.settings: defaults, accepted variants, and one clear error for every invalid value."""

import json
from typing import Any

import pytest
import yaml

from plan.services import CATALOG, DEFAULT_SERVICES
from plan.settings import (
    PLATFORMS,
    UPSTREAM_COMMIT,
    UPSTREAM_URL,
    AllowedPath,
    ArtifactRegistry,
    ConfigError,
    ExternalRegistry,
    GitSource,
    PathSource,
    ProbeOverride,
    Settings,
    StartedRegistry,
    VerifySettings,
    parse_settings,
)
from tests.program_mocks import ROOT, stack_config

GCP = {"project": "boutique-dev-123456", "region": "europe-west1"}
P = "boutique-multiarch"
COMMIT = "5f4ccc7d1c4312c72e97cba777c4f6a586026e59"


def parse(gcp: dict[str, str] | None = None, password: bool = False, **values: Any) -> Settings:
    raw = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }
    return parse_settings(raw, GCP if gcp is None else gcp, password)


def test_defaults_are_the_tutorial_build_to_artifact_registry() -> None:
    settings = parse()
    assert [service.name for service in settings.services] == list(DEFAULT_SERVICES)
    assert len(settings.services) == 11
    assert "shoppingassistantservice" not in DEFAULT_SERVICES
    assert settings.platforms == ("linux/amd64", "linux/arm64")
    assert settings.tag == "v1"
    assert settings.cache is True
    assert settings.source == GitSource(url=UPSTREAM_URL, commit=UPSTREAM_COMMIT)
    assert isinstance(settings.destination, ArtifactRegistry)
    repository = settings.destination.repository
    assert (repository.id, repository.location) == ("online-boutique", "europe-west1")
    assert repository.protect is True
    assert repository.immutable_tags is False
    assert repository.cleanup is None
    assert settings.destination.writers == settings.destination.readers == ()
    builder = settings.builder
    assert (builder.name, builder.driver, builder.nodes) == (
        "multiarch-builder",
        "docker-container",
        (),
    )


def test_cartservice_builds_from_its_src_directory() -> None:
    assert CATALOG["cartservice"].context == "src/cartservice/src"
    assert CATALOG["cartservice"].dockerfile == "src/cartservice/src/Dockerfile"
    assert CATALOG["emailservice"].dockerfile == "src/emailservice/Dockerfile"


def test_pulumi_yaml_is_a_python_project_with_pip_and_a_virtualenv() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "boutique-multiarch"
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }


def test_stack_files_parse_into_valid_settings() -> None:
    for stack in ("dev", "prod"):
        # With the defaults of Pulumi.yaml, as the CLI hands the stack's config to the program.
        config = stack_config(stack)
        raw = {
            key.split(":", 1)[1]: value if isinstance(value, str) else json.dumps(value)
            for key, value in config.items()
            if key.startswith(f"{P}:")
        }
        gcp = {
            key.split(":", 1)[1]: str(value)
            for key, value in config.items()
            if key.startswith("gcp:")
        }
        settings = parse_settings(raw, gcp, registry_password_set=False)
        assert isinstance(settings.destination, ArtifactRegistry), stack
        assert settings.destination.writers and settings.destination.readers, stack


def test_pulumi_yaml_declares_the_parser_defaults() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert declared["services"]["default"] == list(DEFAULT_SERVICES)
    assert declared["platforms"]["default"] == list(PLATFORMS)
    assert declared["tag"]["default"] == parse().tag
    assert declared["cache"]["default"] is parse().cache
    assert declared["strategy"]["default"] == parse().strategy
    assert declared["writers"]["default"] == declared["readers"]["default"] == []
    for key, schema in declared.items():
        assert schema["type"] in ("string", "integer", "boolean", "array"), key
        assert schema["description"], key


def test_variants_are_parsed_into_typed_settings() -> None:
    settings = parse(
        services=["emailservice", "shoppingassistantservice"],
        platforms=["linux/arm64"],
        tag="2024.11-rc.1",
        cache="false",
        writers=["group:ci@example.com", "principalSet://iam.googleapis.com/projects/1/x"],
        readers=["serviceAccount:nodes@p.iam.gserviceaccount.com", "principal://x/y"],
        repository={
            "id": "boutique",
            "location": "us",
            "labels": {"team": "platform"},
            "immutableTags": True,
            "cleanup": {
                "keepCount": 5,
                "olderThanDays": "7",
                "dryRun": False,
            },
            "protect": "false",
        },
        builder={
            "name": "native",
            "driver": "remote",
            "endpoint": "tcp://buildkit:1234",
            "driverOpts": {"cacert": "/certs/ca.pem", "env.BUILDKIT_STEP_LOG_MAX_SIZE": "-1"},
            "nodes": [{"name": "arm", "platforms": ["linux/arm64"], "endpoint": "tcp://arm:1234"}],
        },
    )
    assert [service.name for service in settings.services] == [
        "emailservice",
        "shoppingassistantservice",
    ]
    assert settings.platforms == ("linux/arm64",)
    assert dict(settings.builder.driver_opts) == {
        "cacert": "/certs/ca.pem",
        "env.BUILDKIT_STEP_LOG_MAX_SIZE": "-1",
    }
    assert settings.cache is False
    assert isinstance(settings.destination, ArtifactRegistry)
    repository = settings.destination.repository
    assert repository.location == "us" and repository.immutable_tags and not repository.protect
    assert dict(repository.labels) == {"team": "platform"}
    assert repository.cleanup is not None
    assert repository.cleanup.older_than_days == 7
    assert settings.builder.endpoint == "tcp://buildkit:1234"
    assert settings.builder.nodes[0].platforms == ("linux/arm64",)


def test_a_long_repository_id_needs_room_for_the_cache_repository_only_when_it_exists() -> None:
    longest = "r" * 57
    with_cache = parse(repository={"id": longest, "immutableTags": True})
    assert isinstance(with_cache.destination, ArtifactRegistry)
    assert with_cache.destination.repository.id == longest
    # No cache, no `<id>-cache` repository: the full 63 characters are allowed.
    no_cache = parse(cache=False, repository={"id": "r" * 63, "immutableTags": True})
    assert isinstance(no_cache.destination, ArtifactRegistry)
    assert no_cache.destination.repository.id == "r" * 63


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://ci:ghp_s3cret@github.com/example/microservices-demo.git",
            "https://***@github.com/example/microservices-demo.git",
        ),
        # A token alone is user-info too (GitHub accepts `https://TOKEN@github.com/...`).
        (
            "https://ghp_s3cret@github.com/example/microservices-demo.git",
            "https://***@github.com/example/microservices-demo.git",
        ),
        (
            "https://github.com/example/microservices-demo.git?access_token=ghp_s3cret",
            "https://github.com/example/microservices-demo.git?***",
        ),
        (
            "https://github.com/example/boutique.git#ghp_s3cret",
            "https://github.com/example/boutique.git#***",
        ),
        (
            "ssh://git:ghp_s3cret@github.com/example/boutique.git",
            "ssh://***@github.com/example/boutique.git",
        ),
        ("git://ghp_s3cret@example.com/boutique.git", "git://***@example.com/boutique.git"),
        # Not a git URL at all: still shown redacted.
        (
            "https://ghp s3cret@github.com/example/boutique.git",
            "https://***@github.com/example/boutique.git",
        ),
    ],
)
def test_a_source_url_with_a_secret_is_refused_showing_it_redacted(url: str, shown: str) -> None:
    for source in ({"url": url}, {"url": url, "path": "upstream"}):
        with pytest.raises(ConfigError) as raised:
            parse(source=source)
        message = str(raised.value)
        assert raised.value.key == f"{P}:source.url", message
        assert raised.value.value == shown, message
        assert f'"{shown}"' in message
        assert "s3cret" not in message and "s3cret" not in repr(raised.value.value)
        assert raised.value.__cause__ is None and raised.value.__context__ is None


@pytest.mark.parametrize(
    "url",
    [
        # ssh authenticates with keys: a user name there is a login name, not a secret.
        "ssh://git@github.com/example/microservices-demo.git",
        "git@github.com:example/microservices-demo.git",
        "https://github.com/example/microservices-demo.git",
        "https://example.com/git/boutique@v1.git",
        "file:///srv/git/boutique.git",
    ],
)
def test_a_source_url_without_a_secret_is_accepted(url: str) -> None:
    assert parse(source={"url": url}).source == GitSource(url=url, commit=UPSTREAM_COMMIT)


def test_a_refused_source_url_names_the_credential_helper() -> None:
    with pytest.raises(ConfigError, match="git credential helper"):
        parse(source={"url": "https://ghp_s3cret@github.com/example/boutique.git"})


OPTION_LIKE = "--driver-opt=image=evil/buildkit:latest"
PER_PLATFORM = {"strategy": "perPlatform"}


@pytest.mark.parametrize(
    ("values", "gcp", "key"),
    [
        ({"builder": {"endpoint": OPTION_LIKE}}, None, "builder.endpoint"),
        (
            {
                "builder": {
                    "nodes": [
                        {"name": "arm", "platforms": ["linux/arm64"], "endpoint": OPTION_LIKE}
                    ]
                }
            },
            None,
            "builder.nodes[0].endpoint",
        ),
        (
            {
                **PER_PLATFORM,
                "builder": {
                    "platformBuilders": {"linux/arm64": {"name": "arm", "endpoint": OPTION_LIKE}}
                },
            },
            None,
            "builder.platformBuilders.linux/arm64.endpoint",
        ),
        ({"builder": {"name": "-x"}}, None, "builder.name"),
        (
            {
                "builder": {
                    "nodes": [{"name": "-x", "platforms": ["linux/arm64"], "endpoint": "ssh://h"}]
                }
            },
            None,
            "builder.nodes[0].name",
        ),
        (
            {**PER_PLATFORM, "builder": {"platformBuilders": {"linux/arm64": {"name": "--help"}}}},
            None,
            "builder.platformBuilders.linux/arm64.name",
        ),
        ({"registry": {"address": "--gcp"}}, {}, "registry.address"),
        ({"registry": {"address": "-registry.example.com:5000/boutique"}}, {}, "registry.address"),
        ({"source": {"path": "--definitions=/tmp/evil.toml"}}, None, "source.path"),
        ({"source": {"url": "-oProxyCommand@example.com:x"}}, None, "source.url"),
        ({"tag": "--push"}, None, "tag"),
    ],
)
def test_a_value_that_reaches_a_command_line_may_not_start_with_a_dash(
    values: dict[str, Any], gcp: dict[str, str] | None, key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(gcp=gcp, **values)
    assert raised.value.key == f"{P}:{key}", str(raised.value)
    assert "not starting with" in str(raised.value)


def test_a_checkout_path_starting_with_a_dash_is_written_relative() -> None:
    assert parse(source={"path": "./-upstream"}).source == PathSource(path="./-upstream", url=None)


def test_registry_alternative_accepts_the_empty_member_lists_pulumi_yaml_defaults_to() -> None:
    # The CLI passes every key Pulumi.yaml declares with a default, `writers: []` included.
    settings = parse(gcp={}, registry={"address": "127.0.0.1:5000"}, writers=[], readers=[])
    assert settings.destination == ExternalRegistry("127.0.0.1:5000", username=None)


def test_registry_alternative_needs_no_gcp_project() -> None:
    settings = parse(
        gcp={}, password=True, registry={"address": "127.0.0.1:5000/boutique", "username": "ci"}
    )
    assert settings.destination == ExternalRegistry(
        address="127.0.0.1:5000/boutique", username="ci"
    )
    assert settings.destination.host == "127.0.0.1:5000"
    anonymous = parse(gcp={}, registry={"address": "registry.example.com"})
    assert anonymous.destination == ExternalRegistry("registry.example.com", None)


def test_existing_checkout_path() -> None:
    assert parse(source={"path": "../microservices-demo"}).source == PathSource(
        "../microservices-demo", None
    )
    assert parse(source={"url": "file:///srv/git/boutique.git"}).source == GitSource(
        "file:///srv/git/boutique.git", UPSTREAM_COMMIT
    )


# (config values, gcp or None for the default, registryPassword set, key, allowed fragment)
BAD_CONFIG: list[tuple[dict[str, Any], dict[str, str] | None, bool, str, str]] = [
    ({"services": ["nosuch"]}, None, False, f"{P}:services[0]", "adservice, cartservice"),
    ({"services": ["adservice", "adservice"]}, None, False, f"{P}:services[1]", "at most once"),
    ({"services": []}, None, False, f"{P}:services", "at least one"),
    ({"services": "adservice"}, None, False, f"{P}:services", "a list of service names"),
    ({"platforms": ["linux/s390x"]}, None, False, f"{P}:platforms[0]", "linux/amd64, linux/arm64"),
    (
        {"platforms": ["linux/arm64", "linux/arm64"]},
        None,
        False,
        f"{P}:platforms[1]",
        "at most once",
    ),
    ({"platforms": []}, None, False, f"{P}:platforms", "at least one"),
    ({"tag": "-v1"}, None, False, f"{P}:tag", "a Docker tag"),
    ({"tag": "v" * 129}, None, False, f"{P}:tag", "at most 128"),
    ({"tag": "v1:latest"}, None, False, f"{P}:tag", "a Docker tag"),
    # A trailing newline once passed every `^...$` pattern and reached tags and command lines.
    ({"tag": "v1\n"}, None, False, f"{P}:tag", "a Docker tag"),
    ({"writers": ["user:a@b.c\n"]}, None, False, f"{P}:writers[0]", "an IAM member"),
    (
        {"source": {"commit": "5f4ccc7d1c4312c72e97cba777c4f6a586026e59\n"}},
        None,
        False,
        f"{P}:source.commit",
        "a full 40-character",
    ),
    (
        {"repository": {"labels": {"env": "dev\n"}}},
        None,
        False,
        f"{P}:repository.labels.env",
        "GCP labels",
    ),
    (
        {"builder": {"driverOpts": {"network": "host\n"}}},
        None,
        False,
        f"{P}:builder.driverOpts.network",
        "without commas or whitespace",
    ),
    # The cache repository `<id>-cache` must be a valid repository id too.
    (
        {"repository": {"id": "r" * 58, "immutableTags": True}},
        None,
        False,
        f"{P}:repository.id",
        "at most 57 characters with immutableTags",
    ),
    # int() refuses '²' although str.isdigit() accepts it: one ConfigError, not a ValueError.
    (
        {"repository": {"cleanup": {"keepCount": "²"}}},
        None,
        False,
        f"{P}:repository.cleanup.keepCount",
        "an integer >= 1",
    ),
    ({"writers": ["alice@example.com"]}, None, False, f"{P}:writers[0]", "user:, serviceAccount:"),
    ({"readers": ["domain:example.com"]}, None, False, f"{P}:readers[0]", "principalSet://"),
    ({"writers": ["user:a@b.c", "user:a@b.c"]}, None, False, f"{P}:writers[1]", "at most once"),
    ({"readers": "user:a@b.c"}, None, False, f"{P}:readers", "a list of IAM members"),
    ({"repository": {"id": "Online_Boutique"}}, None, False, f"{P}:repository.id", "lowercase"),
    (
        {"repository": {"location": "Europe West"}},
        None,
        False,
        f"{P}:repository.location",
        "region",
    ),
    ({}, {"project": "p"}, False, f"{P}:repository.location", "gcp:region"),
    (
        {"repository": {"labels": {"Env": "dev"}}},
        None,
        False,
        f"{P}:repository.labels.Env",
        "GCP labels",
    ),
    (
        {"repository": {"labels": {"env": "Dev"}}},
        None,
        False,
        f"{P}:repository.labels.env",
        "GCP labels",
    ),
    (
        {"repository": {"immutableTags": "yes"}},
        None,
        False,
        f"{P}:repository.immutableTags",
        "true or false",
    ),
    ({"repository": {"protect": 0}}, None, False, f"{P}:repository.protect", "true or false"),
    (
        {"repository": {"cleanup": {"keepCount": 0}}},
        None,
        False,
        f"{P}:repository.cleanup.keepCount",
        ">= 1",
    ),
    (
        {"repository": {"cleanup": {"olderThanDays": "soon"}}},
        None,
        False,
        f"{P}:repository.cleanup.olderThanDays",
        "an integer",
    ),
    (
        {"repository": {"cleanup": {"deleteUntagged": True}}},
        None,
        False,
        f"{P}:repository.cleanup.deleteUntagged",
        "keepCount, olderThanDays, dryRun",
    ),
    ({"repository": {"name": "x"}}, None, False, f"{P}:repository.name", "one of the fields id"),
    ({"repository": ["x"]}, None, False, f"{P}:repository", "an object with the fields"),
    (
        {"builder": {"driver": "docker"}},
        None,
        False,
        f"{P}:builder.driver",
        "docker-container, kubernetes, remote",
    ),
    ({"builder": {"driver": "remote"}}, None, False, f"{P}:builder.endpoint", "BuildKit address"),
    ({"builder": {"name": "my builder"}}, None, False, f"{P}:builder.name", "letters, digits"),
    (
        {"builder": {"driverOpts": {"Network": "host"}}},
        None,
        False,
        f"{P}:builder.driverOpts.Network",
        "lowercase option names or env.NAME",
    ),
    (
        {"builder": {"driverOpts": {"network": "host,bad"}}},
        None,
        False,
        f"{P}:builder.driverOpts.network",
        "without commas",
    ),
    (
        {"builder": {"nodes": [{"name": "arm", "platforms": ["linux/arm64"]}]}},
        None,
        False,
        f"{P}:builder.nodes[0].endpoint",
        "non-empty endpoint",
    ),
    (
        {
            "platforms": ["linux/amd64"],
            "builder": {
                "nodes": [{"name": "arm", "platforms": ["linux/arm64"], "endpoint": "ssh://h"}]
            },
        },
        None,
        False,
        f"{P}:builder.nodes[0].platforms[0]",
        "configured platforms: linux/amd64",
    ),
    (
        {
            "builder": {
                "nodes": [
                    {"name": "n", "platforms": ["linux/arm64"], "endpoint": "ssh://a"},
                    {"name": "n", "platforms": ["linux/amd64"], "endpoint": "ssh://b"},
                ]
            }
        },
        None,
        False,
        f"{P}:builder.nodes[1].name",
        "a unique node name",
    ),
    ({"source": {"commit": "v0"}}, None, False, f"{P}:source.commit", "40-character"),
    ({"source": {"commit": COMMIT.upper()}}, None, False, f"{P}:source.commit", "not a tag"),
    (
        {"source": {"path": "/src", "commit": COMMIT}},
        None,
        False,
        f"{P}:source.commit",
        "unset when",
    ),
    ({"source": {"path": " "}}, None, False, f"{P}:source.path", "existing checkout"),
    ({"source": {"url": "github.com/x/y"}}, None, False, f"{P}:source.url", "a git URL"),
    ({"source": {"ref": "main"}}, None, False, f"{P}:source.ref", "url, commit, path"),
    (
        {"registry": {"address": "https://registry.example.com"}},
        {},
        False,
        f"{P}:registry.address",
        "host[:port][/path]",
    ),
    (
        {"registry": {"address": "r.example.com", "username": "ci"}},
        {},
        False,
        f"{P}:registryPassword",
        "a secret when",
    ),
    (
        {"registry": {"address": "r.example.com", "username": ""}},
        {},
        True,
        f"{P}:registry.username",
        "non-empty",
    ),
    (
        {"registry": {"address": "r.example.com"}},
        {},
        True,
        f"{P}:registryPassword",
        "registry.username",
    ),
    (
        {"registry": {"address": "r.example.com"}, "writers": ["user:a@b.c"]},
        {},
        False,
        f"{P}:writers",
        "unset or [] when `registry`",
    ),
    (
        {"registry": {"address": "r.example.com"}, "readers": "user:a@b.c"},
        {},
        False,
        f"{P}:readers",
        "unset or [] when `registry`",
    ),
    (
        {"registry": {"address": "r.example.com"}, "repository": {"id": "x"}},
        {},
        False,
        f"{P}:repository",
        "unset when `registry`",
    ),
    ({}, None, True, f"{P}:registryPassword", "only together with `registry`"),
    ({}, {}, False, "gcp:project", "a GCP project id"),
    ({"cache": "maybe"}, None, False, f"{P}:cache", "true or false"),
    ({"strategy": "perService"}, None, False, f"{P}:strategy", "multiPlatform or perPlatform"),
    ({"verify": {"deep": "sometimes"}}, None, False, f"{P}:verify.deep", "true or false"),
    ({"verify": {"shallow": True}}, None, False, f"{P}:verify.shallow", "deep, allow"),
    ({"verify": ["deep"]}, None, False, f"{P}:verify", "an object with the fields deep, allow"),
    ({"verify": {"allow": ["/x"]}}, None, False, f"{P}:verify.allow", "keyed by configured"),
    (
        {
            "services": ["frontend"],
            "verify": {"allow": {"emailservice": [{"path": "/x", "reason": "r"}]}},
        },
        None,
        False,
        f"{P}:verify.allow.emailservice",
        "a configured service: frontend",
    ),
    (
        {"verify": {"allow": {"frontend": [{"path": "/opt/cross/*"}]}}},
        None,
        False,
        f"{P}:verify.allow.frontend[0].reason",
        "why this file may be built for another architecture",
    ),
    (
        {"verify": {"allow": {"frontend": [{"path": "opt/*", "reason": "cross toolchain"}]}}},
        None,
        False,
        f"{P}:verify.allow.frontend[0].path",
        "an absolute path glob",
    ),
    (
        {"verify": {"allow": {"frontend": {"path": "/opt/*", "reason": "cross toolchain"}}}},
        None,
        False,
        f"{P}:verify.allow.frontend",
        "a list of {path, reason} objects",
    ),
    (
        {"builder": {"platformBuilders": {"linux/arm64": {"name": "arm"}}}},
        None,
        False,
        f"{P}:builder.platformBuilders",
        "only with strategy perPlatform",
    ),
    (
        {
            "strategy": "perPlatform",
            "platforms": ["linux/amd64"],
            "builder": {"platformBuilders": {"linux/arm64": {"name": "arm"}}},
        },
        None,
        False,
        f"{P}:builder.platformBuilders.linux/arm64",
        "a configured platform: linux/amd64",
    ),
    (
        {
            "strategy": "perPlatform",
            "builder": {"platformBuilders": {"linux/arm64": {"driver": "remote"}}},
        },
        None,
        False,
        f"{P}:builder.platformBuilders.linux/arm64.name",
        "the name of this platform's builder",
    ),
    (
        {
            "strategy": "perPlatform",
            "builder": {"platformBuilders": {"linux/arm64": {"name": "multiarch-builder"}}},
        },
        None,
        False,
        f"{P}:builder.platformBuilders.linux/arm64.name",
        "a builder name not used already",
    ),
    (
        {
            "strategy": "perPlatform",
            "builder": {"platformBuilders": {"linux/arm64": {"name": "arm", "driver": "remote"}}},
        },
        None,
        False,
        f"{P}:builder.platformBuilders.linux/arm64.endpoint",
        "BuildKit address",
    ),
    (
        {
            "strategy": "perPlatform",
            "builder": {"platformBuilders": {"linux/arm64": {"name": "arm", "nodes": []}}},
        },
        None,
        False,
        f"{P}:builder.platformBuilders.linux/arm64.nodes",
        "name, driver, driverOpts, endpoint",
    ),
    (
        {"registry": {"address": "registry.example.com:5000/boutique", "start": True}},
        {},
        False,
        f"{P}:registry.start",
        "only with a loopback registry.address",
    ),
    # `python -m host registry ensure` needs a port to listen on.
    (
        {"registry": {"address": "127.0.0.2", "start": True}},
        {},
        False,
        f"{P}:registry.start",
        "only with a loopback registry.address with a port",
    ),
    (
        {"registry": {"address": "127.0.0.1:99999"}},
        {},
        False,
        f"{P}:registry.address",
        "a port from 1 to 65535",
    ),
    (
        {"registry": {"address": "127.0.0.1:5000", "start": "yes"}},
        {},
        False,
        f"{P}:registry.start",
        "true or false",
    ),
    # Option injection: `docker buildx create` would read it as the BuildKit image to run.
    (
        {"builder": {"endpoint": "--driver-opt=image=evil/buildkit:latest"}},
        None,
        False,
        f"{P}:builder.endpoint",
        "not starting with '-' (a command would read it as an option)",
    ),
    (
        {
            "builder": {
                "nodes": [
                    {
                        "name": "arm",
                        "platforms": ["linux/arm64"],
                        "endpoint": "--driver-opt=image=evil/buildkit:latest",
                    }
                ]
            }
        },
        None,
        False,
        f"{P}:builder.nodes[0].endpoint",
        "not starting with '-' (a command would read it as an option)",
    ),
    (
        {"source": {"url": "https://ghp_s3cret@github.com/example/boutique.git"}},
        None,
        False,
        f"{P}:source.url",
        "git credential helper",
    ),
]


def test_verification_defaults_to_deep_with_nothing_allowed() -> None:
    settings = parse()
    assert settings.verify == VerifySettings(deep=True, allow={})
    assert settings.strategy == "multiPlatform"
    assert settings.builder.platform_builders == {}


def test_allowed_paths_keep_their_reasons_per_service() -> None:
    allow = {
        "currencyservice": [
            {"path": "/usr/src/app/node_modules/*.node", "reason": "profiler addon, disabled"}
        ]
    }
    settings = parse(verify={"deep": False, "allow": allow})
    assert settings.verify.deep is False
    assert settings.verify.allow == {
        "currencyservice": (
            AllowedPath("/usr/src/app/node_modules/*.node", "profiler addon, disabled"),
        )
    }


def test_per_platform_builders_are_builders_of_their_own() -> None:
    settings = parse(
        strategy="perPlatform",
        builder={
            "platformBuilders": {
                "linux/arm64": {
                    "name": "arm64-native",
                    "driver": "remote",
                    "endpoint": "tcp://arm64-buildkitd:1234",
                }
            }
        },
    )
    assert settings.strategy == "perPlatform"
    (arm64,) = settings.builder.platform_builders.values()
    assert (arm64.name, arm64.driver, arm64.endpoint) == (
        "arm64-native",
        "remote",
        "tcp://arm64-buildkitd:1234",
    )
    assert (arm64.nodes, dict(arm64.driver_opts), dict(arm64.platform_builders)) == ((), {}, {})
    assert list(settings.builder.platform_builders) == ["linux/arm64"]


@pytest.mark.parametrize(
    "address", ["127.0.0.1:5000", "localhost:5000/boutique", "127.0.0.2:65535"]
)
def test_a_registry_is_started_only_on_loopback(address: str) -> None:
    settings = parse(gcp={}, registry={"address": address, "start": True})
    # A registry started here is its own destination type (LocalRegistry declares it).
    assert settings.destination == StartedRegistry(address, username=None)


@pytest.mark.parametrize(("values", "gcp", "password", "key", "allowed"), BAD_CONFIG)
def test_invalid_value_is_refused_naming_key_value_and_what_is_allowed(
    values: dict[str, Any], gcp: dict[str, str] | None, password: bool, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(gcp=gcp, password=password, **values)
    message = str(raised.value)
    assert raised.value.key == key, message
    assert message.startswith(f"config {key} = "), message
    assert allowed in message, message
    shown = message.removeprefix(f"config {key} = ").split(" is not valid; allowed: ")[0]
    assert shown == "<unset>" or json.loads(shown) == raised.value.value, message


def test_runtime_proof_is_on_by_default_with_overrides_and_skips_parsed() -> None:
    assert parse().verify.run is True
    settings = parse(
        verify={
            "run": "false",
            "probes": {
                "frontend": {"probe": "tcp:8080"},
                "adservice": {"env": {"JAVA_TOOL_OPTIONS": "-Xmx256m"}, "timeout": 600},
            },
            "skipRun": {"cartservice": {"linux/arm64": ".NET is unsupported under QEMU"}},
        }
    )
    assert settings.verify.run is False
    assert settings.verify.probes == {
        "frontend": ProbeOverride(probe="tcp:8080", env={}),
        "adservice": ProbeOverride(probe=None, env={"JAVA_TOOL_OPTIONS": "-Xmx256m"}, timeout=600),
    }
    assert settings.verify.skip_run == {
        "cartservice": {"linux/arm64": ".NET is unsupported under QEMU"}
    }


@pytest.mark.parametrize(
    ("verify", "key", "allowed"),
    [
        ({"run": "yes"}, "verify.run", "true or false"),
        ({"probes": ["frontend"]}, "verify.probes", "an object keyed by configured service"),
        (
            {"probes": {"shoppingassistantservice": {"probe": "up:5"}}},
            "verify.probes.shoppingassistantservice",
            "a configured service: adservice",
        ),
        (
            {"probes": {"frontend": {"probe": "http:8080"}}},
            "verify.probes.frontend.probe",
            "grpc:PORT, http:PORT/PATH, tcp:PORT or up:SECONDS",
        ),
        (
            {"probes": {"frontend": {"retries": 5}}},
            "verify.probes.frontend.retries",
            "one of the fields probe, env, timeout",
        ),
        ({"probes": {"frontend": {"env": ["A=1"]}}}, "verify.probes.frontend.env", "NAME: value"),
        (
            {"probes": {"frontend": {"env": {"PORT": 8080}}}},
            "verify.probes.frontend.env.PORT",
            "a string",
        ),
        (
            {"probes": {"frontend": {"env": {"1PORT": "8080"}}}},
            "verify.probes.frontend.env.1PORT",
            "NAME=VALUE with NAME of letters",
        ),
        (
            {"probes": {"loadgenerator": {"timeout": 45}}},
            "verify.probes.loadgenerator.timeout",
            "46 to 3600 seconds (the probe is up:45)",
        ),
        (
            {"probes": {"adservice": {"timeout": 3601}}},
            "verify.probes.adservice.timeout",
            "1 to 3600 seconds (the probe is grpc:9555)",
        ),
        (
            {"probes": {"adservice": {"timeout": "soon"}}},
            "verify.probes.adservice.timeout",
            "an integer >= 1",
        ),
        (
            {"skipRun": {"cartservice": {"linux/arm64": ""}}},
            "verify.skipRun.cartservice.linux/arm64",
            "a reason is required",
        ),
        (
            {"skipRun": {"cartservice": {"linux/arm64": None}}},
            "verify.skipRun.cartservice.linux/arm64",
            "a reason is required",
        ),
        (
            {"skipRun": {"cartservice": {"linux/s390x": "no emulator"}}},
            "verify.skipRun.cartservice.linux/s390x",
            "a configured platform: linux/amd64, linux/arm64",
        ),
        ({"skipRun": {"cartservice": {}}}, "verify.skipRun.cartservice", "platform: reason"),
        (
            {"skipRun": {"cartservice": "linux/arm64"}},
            "verify.skipRun.cartservice",
            "an object of platform: reason",
        ),
    ],
)
def test_bad_runtime_proof_settings_are_one_error_naming_the_key(
    verify: dict[str, Any], key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse(verify=verify)
    assert error.value.key == f"{P}:{key}"
    assert allowed in error.value.allowed, error.value.allowed


@pytest.mark.parametrize(
    ("port", "valid"), [("0", False), ("1", True), ("65535", True), ("65536", False)]
)
def test_registry_ports_are_1_to_65535_inclusive(port: str, valid: bool) -> None:
    address = f"127.0.0.1:{port}"
    if valid:
        destination = parse(gcp={}, registry={"address": address}).destination
        assert isinstance(destination, ExternalRegistry) and destination.host == address
        return
    with pytest.raises(ConfigError) as raised:
        parse(gcp={}, registry={"address": address})
    assert (raised.value.key, raised.value.value) == (f"{P}:registry.address", address)
