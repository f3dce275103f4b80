"""Stack configuration: parse the raw values once into frozen, typed settings, or refuse them.

`__main__.py` reads the raw strings Pulumi hands the program (arrays and objects arrive as JSON
text) and passes them to `parse_settings`; nothing here imports Pulumi. Every invalid value raises
one `ConfigError` naming the key, the value and what is allowed, before any resource is declared.
"""

import ipaddress
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from plan.naming import CACHE_REPOSITORY_SUFFIX
from plan.services import CATALOG, DEFAULT_SERVICES, Service
from verify.probe import MAX_TIMEOUT, PROBE_FORMS, ProbeError, parse_env, parse_probe

PROJECT = "boutique-multiarch"
"""The project name, which is also the namespace of every key below."""

CONFIG_KEYS: tuple[str, ...] = (
    "services",
    "platforms",
    "tag",
    "writers",
    "readers",
    "repository",
    "builder",
    "source",
    "registry",
    "cache",
    "verify",
    "strategy",
    "ephemeralTagPrefixes",
    "attest",
)
"""Plain keys of the project namespace; `registryPassword` (a secret) is read on its own."""

PLATFORMS: tuple[str, ...] = ("linux/amd64", "linux/arm64")
"""The platforms the verification can prove, in the order images list them."""

UPSTREAM_URL = "https://github.com/GoogleCloudPlatform/microservices-demo.git"
UPSTREAM_COMMIT = "5f4ccc7d1c4312c72e97cba777c4f6a586026e59"
"""Tag v0 at the time of pinning: the only upstream revision with restored arm64 support."""

STRATEGIES: tuple[str, ...] = ("multiPlatform", "perPlatform")
"""One multi-platform Image per service, or one single-platform Image per (service, platform)
joined by an Index (each platform with its own cache and, optionally, its own builder)."""

BUILDER_DRIVERS: tuple[str, ...] = ("docker-container", "kubernetes", "remote")
"""Drivers pulumi-docker-build accepts for a named builder (it refuses the legacy `docker`)."""

IAM_MEMBER_PREFIXES: tuple[str, ...] = (
    "user:",
    "serviceAccount:",
    "group:",
    "principal://",
    "principalSet://",
)

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPOSITORY_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_LOCATION = re.compile(r"^[a-z]+(-[a-z0-9]+)*$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_BUILDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REGISTRY_ADDRESS = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]+(:[0-9]{1,5})?)(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)
_GIT_URL = re.compile(r"^((https?|ssh|git|file)://\S+|[\w.-]+@[\w.-]+:\S+)$")

_UNSET = object()

_OPTION_LIKE = "a command would read it as an option"


class ConfigError(ValueError):
    """One invalid configuration value: which key, what value, and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        shown = "<unset>" if value is _UNSET or value is None else json.dumps(value)
        super().__init__(f"config {key} = {shown} is not valid; allowed: {allowed}")
        self.key = key
        self.value = value
        self.allowed = allowed


@dataclass(frozen=True)
class CleanupSettings:
    """Artifact Registry cleanup (`plan.cleanup`): tagged versions are kept, except old tags with
    an ephemeral prefix; untagged versions are left to `python -m verify gc`."""

    keep_count: int
    """The most recent versions kept whatever their age (each multi-arch push adds several)."""
    older_than_days: int
    """Age after which an ephemeral tag (and a superseded cache version) is deleted."""
    ephemeral_tag_prefixes: tuple[str, ...]
    """`ephemeralTagPrefixes`: tags with these prefixes are deleted once old; empty: no tag is."""
    dry_run: bool
    """Only log what would be deleted."""


@dataclass(frozen=True)
class RepositorySettings:
    """The Artifact Registry repository the images are pushed to."""

    id: str
    """Repository id (lowercase letters, digits, hyphens)."""
    location: str
    """Region or multi-region; defaults to `gcp:region`."""
    description: str
    """Human-readable description shown in the console."""
    labels: Mapping[str, str]
    """GCP labels on the repository."""
    immutable_tags: bool
    """Refuse moving a tag once pushed; the build cache then lives in a separate repository."""
    cleanup: CleanupSettings | None
    """Cleanup policies, or None for none."""
    protect: bool
    """Protect the repository from `pulumi destroy` (Pulumi's `protect` option)."""


@dataclass(frozen=True)
class BuilderNode:
    """A native build node appended to the builder (`docker buildx create --append`)."""

    name: str
    """Node name, unique within the builder."""
    platforms: tuple[str, ...]
    """Platforms this node builds natively."""
    endpoint: str
    """Docker context, `ssh://`/`tcp://` endpoint or Kubernetes context of the node."""


@dataclass(frozen=True)
class BuilderSettings:
    """The buildx builder every Image names."""

    name: str
    """Builder name."""
    driver: str
    """One of BUILDER_DRIVERS."""
    driver_opts: Mapping[str, str]
    """`--driver-opt` values, applied to every node (e.g. `network=host`)."""
    endpoint: str | None
    """Endpoint of the first node; required by the `remote` driver, else the current context."""
    nodes: tuple[BuilderNode, ...]
    """Native nodes appended after the first node."""
    platform_builders: Mapping[str, "BuilderSettings"] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """`perPlatform` only: a builder of its own for a platform (e.g. a native arm64 host); the
    other platforms use this builder. Each has no nodes and no platform builders."""


@dataclass(frozen=True)
class GitSource:
    """Upstream fetched at exactly one commit into a cache directory keyed by that commit."""

    url: str
    """Git URL of the repository."""
    commit: str
    """Full 40-character commit SHA (never a tag: tags move)."""


@dataclass(frozen=True)
class PathSource:
    """An existing checkout on disk, used as it is."""

    path: str
    """Directory of the checkout, absolute or relative to the project directory."""
    url: str | None
    """Where the checkout came from, for the images' `org.opencontainers.image.source` label."""


@dataclass(frozen=True)
class ExternalRegistry:
    """An existing registry used instead of Artifact Registry."""

    address: str
    """Registry path the images go under: `host[:port][/path]`."""
    username: str | None
    """User name for `registryPassword`; None for an anonymous registry."""
    start: bool
    """Start a registry at `address` on this host (a loopback address) for the stack."""

    @property
    def host(self) -> str:
        """The registry host (and port) that credentials apply to."""
        return self.address.split("/", 1)[0]


@dataclass(frozen=True)
class ArtifactRegistry:
    """Push to an Artifact Registry repository this program declares, with repository IAM."""

    project: str
    """`gcp:project`, where the repository lives."""
    repository: RepositorySettings
    """The repository's id, location, labels, tag mutability, cleanup and protection."""
    writers: tuple[str, ...]
    """Members granted `roles/artifactregistry.writer` on the repository."""
    readers: tuple[str, ...]
    """Members granted `roles/artifactregistry.reader` on the repository."""


@dataclass(frozen=True)
class AllowedPath:
    """A file that may legitimately be an ELF binary for another architecture."""

    path: str
    """Absolute-path glob (`fnmatch`, `*` also crosses `/`), as `verify --allow` takes it."""
    reason: str
    """Why the foreign binary is fine; stays in config, never reaches a command line."""


@dataclass(frozen=True)
class ProbeOverride:
    """`verify.probes.<service>`: replaces the probe table's entry (plan/probes.py) in part."""

    probe: str | None
    """A `verify --probe` value, or None to keep the table's."""
    env: Mapping[str, str]
    """Variables added to (or replacing those of) the table's start env."""
    timeout: int | None = None
    """`verify --run-timeout` in seconds, or None for the tool's default (180)."""


@dataclass(frozen=True)
class VerifySettings:
    """How each pushed image is verified before its tag moves."""

    deep: bool
    """Also check the ELF machine of every file in every layer (`verify --deep`)."""
    allow: Mapping[str, tuple[AllowedPath, ...]]
    """Per service, the paths `--deep` accepts for another architecture."""
    run: bool = True
    """Also start each platform's image and probe it (`verify --run`)."""
    probes: Mapping[str, ProbeOverride] = field(default_factory=lambda: MappingProxyType({}))
    """Per service, overrides of its probe or start env."""
    skip_run: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    """Per service and platform, why its image is not started (e.g. a runtime QEMU cannot
    run); shown in the stack output and the log."""


@dataclass(frozen=True)
class AttestSettings:
    """Signed SBOM and verification attestations pushed beside each verified digest."""

    key: str | None = None
    """ECDSA P-256 private key (PEM path, created on first use); None: no referrers pushed."""
    binary_authorization: bool = False
    """Declare a KMS key, a note and an attestor, and attest each published digest for
    Binary Authorization (Artifact Registry stacks only)."""
    enforce: bool = False
    """Also declare the project's Binary Authorization policy requiring the attestor."""


@dataclass(frozen=True)
class Settings:
    """Everything the program needs from the stack configuration, validated."""

    services: tuple[Service, ...]
    """The services to build, in the configured order."""
    platforms: tuple[str, ...]
    """Platforms of every image, each at most once."""
    tag: str
    """The tag every service's Index publishes."""
    destination: ArtifactRegistry | ExternalRegistry
    """Artifact Registry, or an existing registry (then no GCP resource is declared)."""
    builder: BuilderSettings
    """The buildx builder (with native nodes and per-platform builders)."""
    source: GitSource | PathSource
    """Where the upstream source comes from."""
    cache: bool
    """Whether builds read and write a registry cache."""
    verify: VerifySettings
    """How each pushed digest is verified before its tag moves."""
    strategy: str
    """One of STRATEGIES."""
    attest: AttestSettings = AttestSettings()
    """Whether (and with which key) verified digests get signed attestations."""


def check_known_keys(config: Mapping[str, object], secret_keys: Collection[str]) -> None:
    """Refuse a key of this project's namespace that the program does not read: a misspelt key
    (`registy`, `platform`) would otherwise be ignored and the stack built with the default."""
    known = (*CONFIG_KEYS, "registryPassword")
    for key in sorted(config):
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name not in known:
            shown = "[secret]" if key in secret_keys else config[key]
            raise ConfigError(key, shown, "one of the keys " + ", ".join(known))


def parse_settings(
    raw: Mapping[str, str],
    gcp: Mapping[str, str],
    registry_password_set: bool,
) -> Settings:
    """Parse the raw config strings of the `boutique-multiarch:` namespace (keys without it),
    the `gcp:` namespace (`project`, `region`) and whether `registryPassword` is set."""
    platforms = _parse_platforms(_decode(raw, "platforms", list(PLATFORMS)))
    services = _parse_services(_decode(raw, "services", list(DEFAULT_SERVICES)))
    strategy = _decode(raw, "strategy", STRATEGIES[0], json_text=False)
    if strategy not in STRATEGIES:
        raise ConfigError(_key("strategy"), strategy, " or ".join(STRATEGIES))
    builder = _parse_builder(_decode(raw, "builder", {}), platforms)
    if builder.platform_builders and strategy != "perPlatform":
        raise ConfigError(
            f"{_key('builder')}.platformBuilders",
            _decode(raw, "builder", {})["platformBuilders"],
            "only with strategy perPlatform (a multi-platform build uses one builder; "
            "use builder.nodes for native nodes)",
        )
    cache = _parse_bool(_key("cache"), _decode(raw, "cache", True))
    tag = _parse_tag(_decode(raw, "tag", "v1", json_text=False))
    return Settings(
        services=services,
        platforms=platforms,
        tag=tag,
        destination=_parse_destination(raw, gcp, registry_password_set, cache, tag),
        builder=builder,
        source=_parse_source(_decode(raw, "source", {})),
        cache=cache,
        verify=_parse_verify(_decode(raw, "verify", {}), services, platforms),
        strategy=strategy,
        attest=_parse_attest(
            _decode(raw, "attest", {}), raw, strategy, _decode(raw, "registry", None) is None
        ),
    )


def _parse_destination(
    raw: Mapping[str, str],
    gcp: Mapping[str, str],
    registry_password_set: bool,
    cache: bool,
    tag: str,
) -> ArtifactRegistry | ExternalRegistry:
    registry = _decode(raw, "registry", None)
    if registry is None:
        if registry_password_set:
            raise ConfigError(_key("registryPassword"), "[secret]", "only together with `registry`")
        project = gcp.get("project")
        if not project:
            raise ConfigError("gcp:project", _UNSET, "a GCP project id (or configure `registry`)")
        ephemeral = _parse_ephemeral_prefixes(_decode(raw, "ephemeralTagPrefixes", []), tag)
        return ArtifactRegistry(
            project=project,
            repository=_parse_repository(
                _decode(raw, "repository", {}), gcp.get("region"), cache, ephemeral
            ),
            writers=_parse_members("writers", _decode(raw, "writers", [])),
            readers=_parse_members("readers", _decode(raw, "readers", [])),
        )
    if raw.get("repository") is not None:
        raise ConfigError(
            _key("repository"), _decode(raw, "repository", None), "unset when `registry` is set"
        )
    # The CLI hands the program Pulumi.yaml's default `[]` for an unset key: empty is unset.
    for key in ("writers", "readers", "ephemeralTagPrefixes"):
        if _decode(raw, key, []) != []:
            raise ConfigError(
                _key(key), _decode(raw, key, None), "unset or [] when `registry` is set"
            )
    external = _parse_registry(registry)
    if external.username is not None and not registry_password_set:
        raise ConfigError(
            _key("registryPassword"), _UNSET, "a secret when `registry.username` is set"
        )
    if external.username is None and registry_password_set:
        raise ConfigError(
            _key("registryPassword"), "[secret]", "only together with `registry.username`"
        )
    return external


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _decode(raw: Mapping[str, str], name: str, default: Any, json_text: bool = True) -> Any:
    """The raw value of `name` (JSON-decoded where Pulumi passes JSON), or `default`."""
    text = raw.get(name)
    if text is None:
        return default
    if not json_text:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # Plain strings (e.g. `cache: yes`) are reported as they are by the key's parser.
        return text


def _parse_bool(key: str, value: Any) -> bool:
    # `pulumi config set --path` may store nested booleans as strings.
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise ConfigError(key, value, "true or false")


def _parse_int(key: str, value: Any, minimum: int) -> int:
    # `pulumi config set --path` may store nested integers as strings; ASCII digits only
    # (str.isdigit also accepts digits int() refuses, such as '²').
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, value, f"an integer >= {minimum}")
    return value


def _parse_str(key: str, value: Any, pattern: re.Pattern[str], allowed: str) -> str:
    # fullmatch: `$` would also accept a trailing newline, which then reaches tags and commands.
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(key, value, allowed)
    return value


def _parse_argument(
    key: str, value: Any, pattern: re.Pattern[str], allowed: str, shown: Any = _UNSET
) -> str:
    """A value that reaches a command line as an argument (an endpoint, an address, a path,
    a name): one starting with `-` is refused, since a command would read it as an option (an
    endpoint `--driver-opt=image=evil/buildkit` would choose the image `docker buildx create`
    runs). Errors show `shown` (a redacted value) when given."""
    if not isinstance(value, str) or value.startswith("-") or not pattern.fullmatch(value):
        shown = value if shown is _UNSET else shown
        raise ConfigError(key, shown, f"{allowed}, not starting with '-' ({_OPTION_LIKE})")
    return value


def _parse_list(key: str, value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(key, value, f"a list of {what}")
    return value


def _parse_object(key: str, value: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key, value, f"an object with the fields {', '.join(fields)}")
    for name in value:
        if name not in fields:
            raise ConfigError(
                f"{key}.{name}", value[name], f"one of the fields {', '.join(fields)}"
            )
    return value


def _parse_unique(
    key: str, values: list[Any], allowed: tuple[str, ...], what: str
) -> tuple[str, ...]:
    seen: list[str] = []
    for index, value in enumerate(values):
        item_key = f"{key}[{index}]"
        if value not in allowed:
            raise ConfigError(item_key, value, f"{what}: {', '.join(allowed)}")
        if value in seen:
            raise ConfigError(item_key, value, f"each {what.rstrip('s')} at most once")
        seen.append(value)
    if not seen:
        raise ConfigError(key, values, f"at least one of {', '.join(allowed)}")
    return tuple(seen)


def _parse_services(value: Any) -> tuple[Service, ...]:
    key = _key("services")
    names = _parse_unique(key, _parse_list(key, value, "service names"), tuple(CATALOG), "services")
    return tuple(CATALOG[name] for name in names)


def _parse_platforms(value: Any) -> tuple[str, ...]:
    key = _key("platforms")
    return _parse_unique(key, _parse_list(key, value, "platforms"), PLATFORMS, "platforms")


def _parse_tag(value: Any) -> str:
    return _parse_str(
        _key("tag"),
        value,
        _TAG,
        "a Docker tag: letters, digits, '_', '.', '-', at most 128 characters, "
        "not starting with '.' or '-'",
    )


def _parse_members(name: str, value: Any) -> tuple[str, ...]:
    key = _key(name)
    members: list[str] = []
    allowed = "an IAM member starting with " + ", ".join(IAM_MEMBER_PREFIXES)
    for index, member in enumerate(_parse_list(key, value, "IAM members")):
        item_key = f"{key}[{index}]"
        valid = isinstance(member, str) and any(
            member.startswith(prefix)
            and len(member) > len(prefix)
            and not any(character.isspace() for character in member)
            for prefix in IAM_MEMBER_PREFIXES
        )
        if not valid:
            raise ConfigError(item_key, member, allowed)
        if member in members:
            raise ConfigError(item_key, member, "each member at most once")
        members.append(member)
    return tuple(members)


def _parse_string_map(
    key: str, value: Any, key_pattern: re.Pattern[str], value_pattern: re.Pattern[str], rule: str
) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(key, value, "an object of string values")
    for name, item in value.items():
        if (
            not key_pattern.fullmatch(name)
            or not isinstance(item, str)
            or not value_pattern.fullmatch(item)
        ):
            raise ConfigError(f"{key}.{name}", item, rule)
    return MappingProxyType(dict(sorted(value.items())))


def _parse_repository(
    value: Any, region: str | None, cache: bool, ephemeral: tuple[str, ...]
) -> RepositorySettings:
    key = _key("repository")
    fields = ("id", "location", "description", "labels", "immutableTags", "cleanup", "protect")
    repository = _parse_object(key, value, fields)
    location = repository.get("location", region)
    if location is None:
        raise ConfigError(
            f"{key}.location", _UNSET, "a region such as europe-west1 (or gcp:region)"
        )
    cleanup = repository.get("cleanup")
    if cleanup is None and ephemeral:
        raise ConfigError(
            _key("ephemeralTagPrefixes"),
            list(ephemeral),
            "[] unless repository.cleanup is set (its olderThanDays is the age at which "
            "ephemeral tags are deleted)",
        )
    settings = RepositorySettings(
        id=_parse_str(
            f"{key}.id",
            repository.get("id", "online-boutique"),
            _REPOSITORY_ID,
            "lowercase letters, digits and hyphens, starting with a letter, at most 63 characters",
        ),
        location=_parse_str(
            f"{key}.location", location, _LOCATION, "a region or multi-region such as us-central1"
        ),
        description=_parse_description(
            f"{key}.description", repository.get("description", "Online Boutique multi-arch images")
        ),
        labels=_parse_string_map(
            f"{key}.labels",
            repository.get("labels", {}),
            _LABEL_KEY,
            _LABEL_VALUE,
            "GCP labels: lowercase keys starting with a letter, lowercase values, "
            "letters, digits, '_' and '-', at most 63 characters",
        ),
        immutable_tags=_parse_bool(f"{key}.immutableTags", repository.get("immutableTags", False)),
        cleanup=None if cleanup is None else _parse_cleanup(f"{key}.cleanup", cleanup, ephemeral),
        protect=_parse_bool(f"{key}.protect", repository.get("protect", True)),
    )
    cache_id = f"{settings.id}{CACHE_REPOSITORY_SUFFIX}"
    if settings.immutable_tags and cache and not _REPOSITORY_ID.fullmatch(cache_id):
        raise ConfigError(
            f"{key}.id",
            settings.id,
            f"at most {63 - len(CACHE_REPOSITORY_SUFFIX)} characters with immutableTags and the "
            f"cache on (the build cache goes to the repository `<id>{CACHE_REPOSITORY_SUFFIX}`)",
        )
    return settings


def _parse_description(key: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise ConfigError(key, value, "a string of at most 2048 characters")
    return value


def _parse_cleanup(key: str, value: Any, ephemeral: tuple[str, ...]) -> CleanupSettings:
    if isinstance(value, dict) and "tagPrefixes" in value:
        # Its empty default meant "delete every old tag", the tags clusters pull included.
        raise ConfigError(
            f"{key}.tagPrefixes",
            value["tagPrefixes"],
            f"unset: tagged versions are never deleted, except tags with a prefix listed in "
            f'{_key("ephemeralTagPrefixes")} (e.g. ["pr-"])',
        )
    cleanup = _parse_object(key, value, ("keepCount", "olderThanDays", "dryRun"))
    return CleanupSettings(
        keep_count=_parse_int(f"{key}.keepCount", cleanup.get("keepCount", 10), minimum=1),
        older_than_days=_parse_int(f"{key}.olderThanDays", cleanup.get("olderThanDays", 30), 1),
        ephemeral_tag_prefixes=ephemeral,
        dry_run=_parse_bool(f"{key}.dryRun", cleanup.get("dryRun", True)),
    )


def _parse_ephemeral_prefixes(value: Any, tag: str) -> tuple[str, ...]:
    key = _key("ephemeralTagPrefixes")
    prefixes = _parse_list(key, value, "tag prefixes")
    for index, prefix in enumerate(prefixes):
        item_key = f"{key}[{index}]"
        _parse_str(item_key, prefix, _TAG, "a Docker tag prefix such as pr- (letters, digits, _.-)")
        if prefix in prefixes[:index]:
            raise ConfigError(item_key, prefix, "each prefix at most once")
        if tag.startswith(prefix):
            raise ConfigError(
                item_key,
                prefix,
                f"a prefix the stack's own tag {tag!r} does not start with (cleanup would "
                "delete the images this stack publishes)",
            )
    return tuple(prefixes)


def _parse_builder(value: Any, platforms: tuple[str, ...]) -> BuilderSettings:
    key = _key("builder")
    fields = ("name", "driver", "driverOpts", "endpoint", "nodes", "platformBuilders")
    builder = _parse_object(key, value, fields)
    name, driver, endpoint, driver_opts = _parse_builder_basics(
        key, builder, builder.get("name", "multiarch-builder")
    )
    nodes: list[BuilderNode] = []
    for index, node in enumerate(_parse_list(f"{key}.nodes", builder.get("nodes", []), "nodes")):
        parsed = _parse_node(f"{key}.nodes[{index}]", node, platforms)
        if parsed.name == f"{name}0" or parsed.name in (other.name for other in nodes):
            raise ConfigError(f"{key}.nodes[{index}].name", parsed.name, "a unique node name")
        nodes.append(parsed)
    platform_builders = _parse_platform_builders(
        f"{key}.platformBuilders", builder.get("platformBuilders", {}), platforms, name
    )
    return BuilderSettings(
        name=name,
        driver=driver,
        driver_opts=driver_opts,
        endpoint=endpoint,
        nodes=tuple(nodes),
        platform_builders=platform_builders,
    )


def _parse_builder_basics(
    key: str, builder: dict[str, Any], name: Any
) -> tuple[str, str, str | None, Mapping[str, str]]:
    """Name, driver, endpoint and driver options of a builder object."""
    name = _parse_argument(f"{key}.name", name, _BUILDER_NAME, "letters, digits, '_', '.', '-'")
    driver = builder.get("driver", "docker-container")
    if driver not in BUILDER_DRIVERS:
        raise ConfigError(f"{key}.driver", driver, ", ".join(BUILDER_DRIVERS))
    endpoint = builder.get("endpoint")
    if endpoint is not None:
        endpoint = _parse_endpoint(f"{key}.endpoint", endpoint)
    elif driver == "remote":
        raise ConfigError(f"{key}.endpoint", _UNSET, "the BuildKit address the remote driver uses")
    driver_opts = _parse_string_map(
        f"{key}.driverOpts",
        builder.get("driverOpts", {}),
        # buildx's own options are lowercase; `env.NAME` passes an environment variable to
        # BuildKit, and those names are usually uppercase (e.g. env.BUILDKIT_STEP_LOG_MAX_SIZE).
        re.compile(r"^([a-z][a-z0-9_.-]*|env\.[A-Za-z_][A-Za-z0-9_]*)$"),
        re.compile(r"^[^,\s]*$"),
        "lowercase option names or env.NAME, and values without commas or whitespace",
    )
    return name, driver, endpoint, driver_opts


def _parse_platform_builders(
    key: str, value: Any, platforms: tuple[str, ...], main_name: str
) -> Mapping[str, BuilderSettings]:
    if not isinstance(value, dict):
        raise ConfigError(key, value, "an object keyed by configured platform")
    builders: dict[str, BuilderSettings] = {}
    for platform, entry in value.items():
        item_key = f"{key}.{platform}"
        if platform not in platforms:
            raise ConfigError(item_key, entry, f"a configured platform: {', '.join(platforms)}")
        fields = ("name", "driver", "driverOpts", "endpoint")
        builder = _parse_object(item_key, entry, fields)
        if "name" not in builder:
            raise ConfigError(f"{item_key}.name", _UNSET, "the name of this platform's builder")
        name, driver, endpoint, driver_opts = _parse_builder_basics(
            item_key, builder, builder["name"]
        )
        taken = [main_name, *(other.name for other in builders.values())]
        if name in taken:
            raise ConfigError(
                f"{item_key}.name", name, f"a builder name not used already ({', '.join(taken)})"
            )
        builders[platform] = BuilderSettings(
            name=name,
            driver=driver,
            driver_opts=driver_opts,
            endpoint=endpoint,
            nodes=(),
        )
    return MappingProxyType(dict(sorted(builders.items())))


def _parse_endpoint(key: str, value: Any) -> str:
    return _parse_argument(
        key, value, re.compile(r"^\S+$"), "a non-empty endpoint without whitespace"
    )


def _parse_node(key: str, value: Any, platforms: tuple[str, ...]) -> BuilderNode:
    node = _parse_object(key, value, ("name", "platforms", "endpoint"))
    node_platforms = _parse_list(f"{key}.platforms", node.get("platforms"), "platforms")
    return BuilderNode(
        name=_parse_argument(
            f"{key}.name", node.get("name"), _BUILDER_NAME, "a node name (letters, digits, '_.-')"
        ),
        platforms=_parse_unique(
            f"{key}.platforms", node_platforms, platforms, "configured platforms"
        ),
        endpoint=_parse_endpoint(f"{key}.endpoint", node.get("endpoint")),
    )


def _parse_source(value: Any) -> GitSource | PathSource:
    key = _key("source")
    source = _parse_object(key, value, ("url", "commit", "path"))
    url = source.get("url")
    if url is not None:
        url = _parse_source_url(f"{key}.url", url)
    if "path" in source:
        if "commit" in source:
            raise ConfigError(f"{key}.commit", source["commit"], "unset when `source.path` is set")
        path = _parse_argument(
            f"{key}.path",
            source["path"],
            re.compile(r"^.*\S.*$", re.DOTALL),
            "the directory of an existing checkout",
        )
        return PathSource(path=path, url=url)
    commit = source.get("commit", UPSTREAM_COMMIT)
    return GitSource(
        url=url or UPSTREAM_URL,
        commit=_parse_str(
            f"{key}.commit", commit, _COMMIT, "a full 40-character lowercase commit SHA, not a tag"
        ),
    )


def _parse_source_url(key: str, value: Any) -> str:
    """A git URL that carries no secret: it reaches the checkout command line, the state and
    every image's `org.opencontainers.image.source` label. Errors show it redacted, since
    `pulumi up` prints them."""
    shown = _redacted_url(value) if isinstance(value, str) else value
    url = _parse_argument(key, value, _GIT_URL, "a git URL (https://, ssh://, file://, …)", shown)
    scheme, rest = _split_scheme(url)
    user_info, at, _ = _authority(rest).rpartition("@")
    # ssh (`ssh://` or `user@host:path`) authenticates with keys; its user name (`git@`) is a
    # login name, not a secret.
    ssh_user = scheme in ("", "ssh://") and ":" not in user_info
    if (at and not ssh_user) or "?" in url or "#" in url:
        raise ConfigError(
            key,
            shown,
            "a git URL without user-info (except an ssh user name), query or fragment: a token "
            "there would reach command lines, the state and the images' source label; fetch a "
            "private fork with a git credential helper in the environment that runs Pulumi",
        )
    return url


def _authority(text: str) -> str:
    """The part of a URL after `scheme://` up to its path, query or fragment."""
    return re.split(r"[/?#]", text, maxsplit=1)[0]


def _redacted_url(url: str) -> str:
    """`url` with any user-info, query and fragment replaced by `***`."""
    scheme, rest = _split_scheme(url)
    authority = _authority(rest)
    _, at, host = authority.rpartition("@")
    path = rest[len(authority) :]
    cut = re.search(r"[?#]", path)
    if cut:
        path = path[: cut.start() + 1] + "***"
    return f"{scheme}{'***@' if at else ''}{host}{path}"


def _split_scheme(url: str) -> tuple[str, str]:
    """(`scheme://`, the rest), or ("", url) for the scp-like `user@host:path`."""
    head, separator, rest = url.partition("://")
    return (head + separator, rest) if separator else ("", url)


def _parse_registry(value: Any) -> ExternalRegistry:
    key = _key("registry")
    registry = _parse_object(key, value, ("address", "username", "start"))
    address = _parse_argument(
        f"{key}.address",
        registry.get("address"),
        _REGISTRY_ADDRESS,
        "host[:port][/path] in lowercase, e.g. registry.example.com/boutique",
    )
    username = registry.get("username")
    if username is not None and (not isinstance(username, str) or not username.strip()):
        raise ConfigError(f"{key}.username", username, "a non-empty user name")
    start = _parse_bool(f"{key}.start", registry.get("start", False))
    external = ExternalRegistry(address=address, username=username, start=start)
    port = external.host.partition(":")[2]
    if port and not 0 < int(port) < 65536:
        raise ConfigError(f"{key}.address", address, "a port from 1 to 65535")
    # The registry the stack starts listens on this port: it must be given (host registry
    # ensure refuses an address without one).
    if start and not (port and _is_loopback(external.host)):
        raise ConfigError(
            f"{key}.start",
            True,
            f"true only with a loopback registry.address with a port (127.0.0.1:PORT or "
            f"localhost:PORT), not {external.host}",
        )
    return external


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if ":" in host else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _parse_verify(
    value: Any, services: tuple[Service, ...], platforms: tuple[str, ...]
) -> VerifySettings:
    key = _key("verify")
    verify = _parse_object(key, value, ("deep", "allow", "run", "probes", "skipRun"))
    configured_services = [service.name for service in services]
    parsed: dict[str, tuple[AllowedPath, ...]] = {}
    for service, service_key, entries in _per_service(
        f"{key}.allow", verify.get("allow", {}), configured_services
    ):
        paths = _parse_list(service_key, entries, "{path, reason} objects")
        parsed[service] = tuple(
            _parse_allowed_path(f"{service_key}[{index}]", entry)
            for index, entry in enumerate(paths)
        )
    return VerifySettings(
        deep=_parse_bool(f"{key}.deep", verify.get("deep", True)),
        allow=MappingProxyType(parsed),
        run=_parse_bool(f"{key}.run", verify.get("run", True)),
        probes=_parse_probes(f"{key}.probes", verify.get("probes", {}), configured_services),
        skip_run=_parse_skip_run(
            f"{key}.skipRun", verify.get("skipRun", {}), configured_services, platforms
        ),
    )


def _per_service(key: str, value: Any, services: list[str]) -> list[tuple[str, str, Any]]:
    """`(service, key of its entry, entry)` of an object keyed by configured service."""
    if not isinstance(value, dict):
        raise ConfigError(key, value, "an object keyed by configured service")
    for service, entry in value.items():
        if service not in services:
            allowed = f"a configured service: {', '.join(services)}"
            raise ConfigError(f"{key}.{service}", entry, allowed)
    return [(service, f"{key}.{service}", entry) for service, entry in value.items()]


def _parse_probes(key: str, value: Any, services: list[str]) -> Mapping[str, ProbeOverride]:
    overrides: dict[str, ProbeOverride] = {}
    for service, service_key, entry in _per_service(key, value, services):
        override = _parse_object(service_key, entry, ("probe", "env", "timeout"))
        probe = override.get("probe")
        if probe is not None:
            try:
                parse_probe(probe if isinstance(probe, str) else "")
            except ProbeError:
                raise ConfigError(f"{service_key}.probe", probe, PROBE_FORMS) from None
        env = override.get("env", {})
        if not isinstance(env, dict):
            raise ConfigError(f"{service_key}.env", env, "an object of NAME: value strings")
        for name, item in env.items():
            if not isinstance(item, str):
                raise ConfigError(f"{service_key}.env.{name}", item, "a string value")
            try:
                parse_env(f"{name}={item}")
            except ProbeError as error:
                raise ConfigError(f"{service_key}.env.{name}", item, str(error)) from None
        timeout = override.get("timeout")
        if timeout is not None:
            timeout = _parse_int(f"{service_key}.timeout", timeout, minimum=1)
            # plan.probes reads UPSTREAM_COMMIT from this module, hence imported here.
            from plan.probes import service_probe

            effective = parse_probe(probe or service_probe(service, None).probe or "tcp:1")
            least = effective.number + 1 if effective.kind == "up" else 1
            if not least <= timeout <= MAX_TIMEOUT:
                raise ConfigError(
                    f"{service_key}.timeout",
                    timeout,
                    f"{least} to {MAX_TIMEOUT} seconds (the probe is {effective})",
                )
        overrides[service] = ProbeOverride(
            probe=probe, env=MappingProxyType(dict(env)), timeout=timeout
        )
    return MappingProxyType(overrides)


def _parse_skip_run(
    key: str, value: Any, services: list[str], platforms: tuple[str, ...]
) -> Mapping[str, Mapping[str, str]]:
    skips: dict[str, Mapping[str, str]] = {}
    for service, service_key, entry in _per_service(key, value, services):
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(service_key, entry, "an object of platform: reason")
        for platform, reason in entry.items():
            if platform not in platforms:
                raise ConfigError(
                    f"{service_key}.{platform}",
                    reason,
                    f"a configured platform: {', '.join(platforms)}",
                )
            if not isinstance(reason, str) or not reason.strip():
                raise ConfigError(
                    f"{service_key}.{platform}",
                    reason,
                    "why this platform's image is not started (a reason is required)",
                )
        skips[service] = MappingProxyType(dict(sorted(entry.items())))
    return MappingProxyType(skips)


_KEY_PATH = re.compile(r"[^\s\x00-\x1f][^\x00-\x1f]*[^\s\x00-\x1f]|[^\s\x00-\x1f]")


def _parse_attest(
    value: Any, raw: Mapping[str, str], strategy: str, artifact_registry: bool
) -> AttestSettings:
    key = _key("attest")
    attest = _parse_object(key, value, ("key", "binaryAuthorization", "enforce"))
    binary_authorization = _parse_bool(
        f"{key}.binaryAuthorization", attest.get("binaryAuthorization", False)
    )
    enforce = _parse_bool(f"{key}.enforce", attest.get("enforce", False))
    if enforce and not binary_authorization:
        raise ConfigError(f"{key}.enforce", True, "only with attest.binaryAuthorization true")
    if binary_authorization and not artifact_registry:
        raise ConfigError(
            f"{key}.binaryAuthorization", True, "only on Artifact Registry stacks (no `registry`)"
        )
    if "key" not in attest and not binary_authorization:
        return AttestSettings()
    path = None
    if "key" in attest:
        path = _parse_str(
            f"{key}.key",
            attest["key"],
            _KEY_PATH,
            "a path to the PEM key file, e.g. .pulumi-local/attest-key.pem (no outer spaces)",
        )
    verify = _decode(raw, "verify", {})
    if isinstance(verify, dict) and verify.get("deep", True) in (False, "false"):
        raise ConfigError(key, attest, "only with verify.deep true (the SBOM is read from layers)")
    if strategy != STRATEGIES[0]:
        # perPlatform verifies single-platform manifests; the Index joining them is not
        # verified itself, so there is no verified index to attest.
        raise ConfigError(key, attest, f"only with strategy {STRATEGIES[0]}")
    return AttestSettings(path, binary_authorization, enforce)


def _parse_allowed_path(key: str, value: Any) -> AllowedPath:
    entry = _parse_object(key, value, ("path", "reason"))
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/") or path.strip() != path:
        raise ConfigError(
            f"{key}.path", path, "an absolute path glob such as /usr/lib/*.node (no outer spaces)"
        )
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(
            f"{key}.reason", reason, "why this file may be built for another architecture"
        )
    return AllowedPath(path=path, reason=reason)
