"""Stack configuration: parse the raw values once into frozen, typed settings, or refuse them.

The settings are frozen dataclasses; pydantic validates the configuration into them (`extra`
keys forbidden, `Literal` for fixed sets, constrained strings, one `model_validator` per rule
that spans fields). Nothing here imports Pulumi: `__main__.py` reads the raw strings Pulumi hands
the program (arrays and objects arrive as JSON text) and passes them to `parse_settings`.

Every invalid value raises one `ConfigError` naming the key path, the value and what is allowed,
before any resource is declared. Each rule raises `_refuse(allowed)`; `_config_error` is the one
place that turns pydantic's first error into that message (a secret's value is never shown).
"""

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, NoReturn, get_args, get_type_hints

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
    with_config,
)
from pydantic.fields import FieldInfo
from pydantic_core import ArgsKwargs, PydanticCustomError

from plan.naming import CACHE_REPOSITORY_SUFFIX
from plan.services import CATALOG, DEFAULT_SERVICES, Service
from verify.attest.names import KEY_VERSION, KEY_VERSION_FORM
from verify.probe import MAX_TIMEOUT, PROBE_FORMS, ProbeError, parse_env, parse_probe
from verify.reference import is_loopback, split_host

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

Platform = Literal["linux/amd64", "linux/arm64"]
PLATFORMS: tuple[Platform, ...] = get_args(Platform)
"""The platforms the verification can prove, in the order images list them."""

UPSTREAM_URL = "https://github.com/GoogleCloudPlatform/microservices-demo.git"
UPSTREAM_COMMIT = "5f4ccc7d1c4312c72e97cba777c4f6a586026e59"
"""Tag v0 at the time of pinning: the only upstream revision with restored arm64 support."""

Strategy = Literal["multiPlatform", "perPlatform"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
"""One multi-platform Image per service, or one single-platform Image per (service, platform)
joined by an Index (each platform with its own cache and, optionally, its own builder)."""

Driver = Literal["docker-container", "kubernetes", "remote"]
BUILDER_DRIVERS: tuple[Driver, ...] = get_args(Driver)
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
    r"^(?P<host>([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?)(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
)
_GIT_URL = re.compile(r"^((https?|ssh|git|file)://\S+|[\w.-]+@[\w.-]+:\S+)$")
# buildx's own options are lowercase; `env.NAME` passes an environment variable to BuildKit,
# and those names are usually uppercase (e.g. env.BUILDKIT_STEP_LOG_MAX_SIZE).
_DRIVER_OPT_NAME = re.compile(r"^([a-z][a-z0-9_.-]*|env\.[A-Za-z_][A-Za-z0-9_]*)$")
_DRIVER_OPT_VALUE = re.compile(r"^[^,\s]*$")
_KEY_PATH = re.compile(r"[^\s\x00-\x1f][^\x00-\x1f]*[^\s\x00-\x1f]|[^\s\x00-\x1f]")

_UNSET = object()

_OPTION_LIKE = "a command would read it as an option"

_NOT_A_KEY = MappingProxyType({"configKey": False})
"""Field metadata of a settings field filled in from another key, not set in its own object."""

_SCHEMA = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)
"""How every settings dataclass is validated: unknown keys refused, fields by config key."""


class ConfigError(ValueError):
    """One invalid configuration value: which key, what value, and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        shown = "<unset>" if value is _UNSET or value is None else json.dumps(value)
        super().__init__(f"config {key} = {shown} is not valid; allowed: {allowed}")
        self.key = key
        self.value = value
        self.allowed = allowed


def _refuse(allowed: str, *, at: str = "", value: object = _UNSET, key: str = "") -> NoReturn:
    """Refuse the value being validated: `at` extends its key path (`.name`, `[0]`), `value`
    replaces the value shown (default: the value validated there), `key` replaces the path."""
    context: dict[str, object] = {"allowed": allowed, "at": at, "key": key}
    if value is not _UNSET:
        context["value"] = value
    raise PydanticCustomError("config", "{allowed}", context)


def _config_error(error: ValidationError, at: str = "") -> ConfigError:
    """The first error pydantic found (in a value validated under the key `at`), as the
    ConfigError a user reads."""
    details = error.errors(include_url=False)[0]
    context = details.get("ctx") or {}
    path = at + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in details["loc"]
    )
    key = context.get("key") or f"{PROJECT}:{path.removeprefix('.')}{context.get('at', '')}"
    value = context.get("value", details["input"])
    return ConfigError(key, value, context.get("allowed") or details["msg"])


# Field rules: each validates a raw config value and returns the typed value, or refuses it.


_READ_ONLY = AfterValidator(lambda mapping: MappingProxyType(dict(mapping)))
"""Mappings in the settings are read-only, as the dataclasses holding them are frozen."""


def _rule(check: Callable[[Any], Any]) -> Any:
    """A field rule, run on the raw value before pydantic's own type check."""
    return BeforeValidator(check)


def _text(pattern: re.Pattern[str], allowed: str) -> Any:
    def check(value: Any) -> str:
        # fullmatch: `$` would also accept a trailing newline, which then reaches tags and
        # commands.
        if not isinstance(value, str) or not pattern.fullmatch(value):
            _refuse(allowed)
        return value

    return _rule(check)


def _argument(
    pattern: re.Pattern[str], allowed: str, shown: Callable[[Any], Any] | None = None
) -> Any:
    """A value that reaches a command line as an argument (an endpoint, an address, a path,
    a name): one starting with `-` is refused, since a command would read it as an option (an
    endpoint `--driver-opt=image=evil/buildkit` would choose the image `docker buildx create`
    runs). Errors show `shown(value)` (a redacted value) when given."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value.startswith("-") or not pattern.fullmatch(value):
            refused = value if shown is None else shown(value)
            _refuse(f"{allowed}, not starting with '-' ({_OPTION_LIKE})", value=refused)
        return value

    return _rule(check)


def _flag(value: Any) -> bool:
    # `pulumi config set --path` may store nested booleans as strings.
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    _refuse("true or false")


def _at_least(minimum: int) -> Any:
    def check(value: Any) -> int:
        # `pulumi config set --path` may store nested integers as strings; ASCII digits only
        # (str.isdigit also accepts digits int() refuses, such as '²').
        if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _refuse(f"an integer >= {minimum}")
        return value

    return _rule(check)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        _refuse(f"a list of {what}")
    return value


def _object(value: Any, what: str, at: str = "") -> dict[str, Any]:
    """`value` if it is an object; else refused, under the key extended by `at` if given."""
    if not isinstance(value, dict):
        if at:
            _refuse(what, at=at, value=value)
        _refuse(what)
    return value


def _unique(values: list[Any], allowed: Collection[str], what: str) -> tuple[str, ...]:
    """Each of `values` is one of `allowed` and appears once; at least one."""
    seen: list[str] = []
    for index, value in enumerate(values):
        if value not in allowed:
            _refuse(f"{what}: {', '.join(allowed)}", at=f"[{index}]", value=value)
        if value in seen:
            _refuse(f"each {what.rstrip('s')} at most once", at=f"[{index}]", value=value)
        seen.append(value)
    if not seen:
        _refuse(f"at least one of {', '.join(allowed)}")
    return tuple(seen)


def _string_map(key_pattern: re.Pattern[str], value_pattern: re.Pattern[str], allowed: str) -> Any:
    def check(value: Any) -> Mapping[str, str]:
        for name, item in _object(value, "an object of string values").items():
            if (
                not key_pattern.fullmatch(name)
                or not isinstance(item, str)
                or not value_pattern.fullmatch(item)
            ):
                _refuse(allowed, at=f".{name}", value=item)
        return MappingProxyType(dict(sorted(value.items())))

    return _rule(check)


def _one_of(values: tuple[str, ...], joined: str) -> Any:
    def check(value: Any) -> str:
        if value not in values:
            _refuse(joined)
        return str(value)

    return _rule(check)


def _configured(context: Any, name: str) -> tuple[str, ...]:
    """The configured `platforms` or `services` (validated first, handed on as context), or
    every supported one when a settings object is validated on its own."""
    if isinstance(context, dict) and name in context:
        return tuple(context[name])
    return PLATFORMS if name == "platforms" else tuple(CATALOG)


def _tag_prefixes(value: Any) -> tuple[str, ...]:
    prefixes = _list(value, "tag prefixes")
    for index, prefix in enumerate(prefixes):
        if not isinstance(prefix, str) or not _TAG.fullmatch(prefix):
            allowed = "a Docker tag prefix such as pr- (letters, digits, _.-)"
            _refuse(allowed, at=f"[{index}]", value=prefix)
        if prefix in prefixes[:index]:
            _refuse("each prefix at most once", at=f"[{index}]", value=prefix)
    return tuple(prefixes)


def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        _refuse("a string of at most 2048 characters")
    return value


def _node_platforms(value: Any, info: ValidationInfo) -> tuple[str, ...]:
    platforms = _configured(info.context, "platforms")
    return _unique(_list(value, "platforms"), platforms, "configured platforms")


def _platform_builders(value: Any, info: ValidationInfo) -> Mapping[str, Any]:
    """Each entry keyed by a configured platform, a builder with a name and no nodes."""
    platforms = _configured(info.context, "platforms")
    fields = ("name", "driver", "driverOpts", "endpoint")
    for platform, entry in _object(value, "an object keyed by configured platform").items():
        if platform not in platforms:
            _refuse(
                f"a configured platform: {', '.join(platforms)}", at=f".{platform}", value=entry
            )
        _object(entry, f"an object with the fields {', '.join(fields)}", at=f".{platform}")
        for name in entry:
            if name not in fields:
                _refuse(
                    f"one of the fields {', '.join(fields)}",
                    at=f".{platform}.{name}",
                    value=entry[name],
                )
        if "name" not in entry:
            _refuse("the name of this platform's builder", at=f".{platform}.name", value=None)
    # The builders' own checks (name, driver, endpoint) run as pydantic validates each entry;
    # sorted so the order of the config object does not matter.
    return dict(sorted(value.items()))


def _source_url(url: str) -> str:
    """A git URL that carries no secret: it reaches the checkout command line, the state and
    every image's `org.opencontainers.image.source` label. Errors show it redacted, since
    `pulumi up` prints them."""
    scheme, rest = _split_scheme(url)
    user_info, at, _ = _authority(rest).rpartition("@")
    # ssh (`ssh://` or `user@host:path`) authenticates with keys; its user name (`git@`) is a
    # login name, not a secret.
    ssh_user = scheme in ("", "ssh://") and ":" not in user_info
    if (at and not ssh_user) or "?" in url or "#" in url:
        _refuse(
            "a git URL without user-info (except an ssh user name), query or fragment: a token "
            "there would reach command lines, the state and the images' source label; fetch a "
            "private fork with a git credential helper in the environment that runs Pulumi",
            value=_redacted_url(url),
        )
    return url


def _shown(value: Any) -> Any:
    return _redacted_url(value) if isinstance(value, str) else value


def _username(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _refuse("a non-empty user name")
    return value


def _allowed_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value.strip() != value:
        _refuse("an absolute path glob such as /usr/lib/*.node (no outer spaces)")
    return value


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _refuse("why this file may be built for another architecture")
    return value


def _per_service(value: Any, info: ValidationInfo) -> dict[str, Any]:
    """An object keyed by configured service."""
    configured = _configured(info.context, "services")
    for service, entry in _object(value, "an object keyed by configured service").items():
        if service not in configured:
            _refuse(f"a configured service: {', '.join(configured)}", at=f".{service}", value=entry)
    return value


def _allow(value: Any, info: ValidationInfo) -> Mapping[str, Any]:
    for service, entries in _per_service(value, info).items():
        if not isinstance(entries, list):
            _refuse("a list of {path, reason} objects", at=f".{service}", value=entries)
    return value


def _probe(value: Any) -> str | None:
    if value is not None:
        try:
            parse_probe(value if isinstance(value, str) else "")
        except ProbeError:
            _refuse(PROBE_FORMS)
    return value


def _start_env(value: Any) -> Mapping[str, str]:
    for name, item in _object(value, "an object of NAME: value strings").items():
        if not isinstance(item, str):
            _refuse("a string value", at=f".{name}", value=item)
        try:
            parse_env(f"{name}={item}")
        except ProbeError as error:
            _refuse(str(error), at=f".{name}", value=item)
    return value


def _skip_run(value: Any, info: ValidationInfo) -> Mapping[str, Any]:
    platforms = _configured(info.context, "platforms")
    for service, entry in _per_service(value, info).items():
        if not isinstance(entry, dict) or not entry:
            _refuse("an object of platform: reason", at=f".{service}", value=entry)
        for platform, reason in entry.items():
            if platform not in platforms:
                _refuse(
                    f"a configured platform: {', '.join(platforms)}",
                    at=f".{service}.{platform}",
                    value=reason,
                )
            if not isinstance(reason, str) or not reason.strip():
                _refuse(
                    "why this platform's image is not started (a reason is required)",
                    at=f".{service}.{platform}",
                    value=reason,
                )
    return {service: dict(sorted(entry.items())) for service, entry in value.items()}


def _nodes(value: Any) -> tuple[Any, ...]:
    return tuple(_list(value, "nodes"))


class _ConfigObject:
    """A settings object given as a config object: only its own fields, by their config keys."""

    @model_validator(mode="before")
    @classmethod
    def _only_known_fields(cls, data: Any) -> Any:
        if isinstance(data, ArgsKwargs):
            return data
        settings_class: object = cls  # a class is hashable; mypy's view of `type[Self]` is not
        keys = _config_keys(settings_class)
        allowed = ", ".join(keys.values())
        _object(data, f"an object with the fields {allowed}")
        for name, retired in getattr(cls, "_RETIRED", {}).items():
            if name in data:
                _refuse(retired, at=f".{name}", value=data[name])
        for name in data:
            if name not in keys.values():
                _refuse(f"one of the fields {allowed}", at=f".{name}", value=data[name])
        # A required key left out is checked as unset by its own rule (`<unset>` and what the
        # key allows), not reported as pydantic's generic "missing".
        return {**{keys[name]: None for name in _required(settings_class)}, **data}


@cache
def _config_keys(cls: Any) -> dict[str, str]:
    """{field name: config key} of a settings dataclass (the key is the field's alias)."""
    hints = get_type_hints(cls, include_extras=True)
    keys = {}
    for item in fields(cls):
        if item.metadata.get("configKey", True) is False:
            continue
        metadata = getattr(hints[item.name], "__metadata__", ())
        aliases = [info.alias for info in metadata if isinstance(info, FieldInfo) and info.alias]
        keys[item.name] = aliases[0] if aliases else item.name
    return keys


@cache
def _required(cls: Any) -> tuple[str, ...]:
    """Fields of a settings dataclass without a default."""
    return tuple(
        item.name
        for item in fields(cls)
        if item.default is MISSING and item.default_factory is MISSING
    )


Tag = Annotated[
    str,
    _text(
        _TAG,
        "a Docker tag: letters, digits, '_', '.', '-', at most 128 characters, "
        "not starting with '.' or '-'",
    ),
]
Endpoint = Annotated[
    str, _argument(re.compile(r"^\S+$"), "a non-empty endpoint without whitespace")
]
Flag = Annotated[bool, _rule(_flag)]


@with_config(_SCHEMA)
@dataclass(frozen=True)
class CleanupSettings(_ConfigObject):
    """Artifact Registry cleanup (`plan.cleanup`): tagged versions are kept, except old tags with
    an ephemeral prefix; untagged versions are left to `python -m verify gc`."""

    _RETIRED: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            # Its empty default meant "delete every old tag", the tags clusters pull included.
            "tagPrefixes": "unset: tagged versions are never deleted, except tags with a prefix "
            f'listed in {PROJECT}:ephemeralTagPrefixes (e.g. ["pr-"])',
        }
    )

    keep_count: Annotated[int, _at_least(1), Field(alias="keepCount")] = 10
    """The most recent versions kept whatever their age (each multi-arch push adds several)."""
    older_than_days: Annotated[int, _at_least(1), Field(alias="olderThanDays")] = 30
    """Age after which an ephemeral tag (and a superseded cache version) is deleted."""
    ephemeral_tag_prefixes: tuple[str, ...] = field(default=(), metadata=_NOT_A_KEY)
    """`ephemeralTagPrefixes`: tags with these prefixes are deleted once old; empty: no tag is."""
    dry_run: Annotated[Flag, Field(alias="dryRun")] = True
    """Only log what would be deleted."""


@with_config(_SCHEMA)
@dataclass(frozen=True)
class RepositorySettings(_ConfigObject):
    """The Artifact Registry repository the images are pushed to."""

    id: Annotated[
        str,
        _text(
            _REPOSITORY_ID,
            "lowercase letters, digits and hyphens, starting with a letter, at most 63 characters",
        ),
    ] = "online-boutique"
    """Repository id (lowercase letters, digits, hyphens)."""
    location: Annotated[str, _text(_LOCATION, "a region or multi-region such as us-central1")] = ""
    """Region or multi-region; defaults to `gcp:region` (empty until then)."""
    description: Annotated[str, _rule(_description)] = "Online Boutique multi-arch images"
    """Human-readable description shown in the console."""
    labels: Annotated[
        Mapping[str, str],
        _READ_ONLY,
        _string_map(
            _LABEL_KEY,
            _LABEL_VALUE,
            "GCP labels: lowercase keys starting with a letter, lowercase values, "
            "letters, digits, '_' and '-', at most 63 characters",
        ),
    ] = field(default_factory=lambda: MappingProxyType({}))
    """GCP labels on the repository."""
    immutable_tags: Annotated[Flag, Field(alias="immutableTags")] = False
    """Refuse moving a tag once pushed; the build cache then lives in a separate repository."""
    cleanup: CleanupSettings | None = None
    """Cleanup policies, or None for none."""
    protect: Flag = True
    """Protect the repository from `pulumi destroy` (Pulumi's `protect` option)."""


@with_config(_SCHEMA)
@dataclass(frozen=True)
class BuilderNode(_ConfigObject):
    """A native build node appended to the builder (`docker buildx create --append`)."""

    name: Annotated[str, _argument(_BUILDER_NAME, "a node name (letters, digits, '_.-')")]
    """Node name, unique within the builder."""
    platforms: Annotated[tuple[Platform, ...], _rule(_node_platforms)]
    """Platforms this node builds natively."""
    endpoint: Endpoint
    """Docker context, `ssh://`/`tcp://` endpoint or Kubernetes context of the node."""


_DRIVER_OPTS = _string_map(
    _DRIVER_OPT_NAME,
    _DRIVER_OPT_VALUE,
    "lowercase option names or env.NAME, and values without commas or whitespace",
)


@with_config(_SCHEMA)
@dataclass(frozen=True)
class BuilderSettings(_ConfigObject):
    """The buildx builder every Image names."""

    name: Annotated[str, _argument(_BUILDER_NAME, "letters, digits, '_', '.', '-'")] = (
        "multiarch-builder"
    )
    """Builder name."""
    driver: Annotated[Driver, _one_of(BUILDER_DRIVERS, ", ".join(BUILDER_DRIVERS))] = (
        "docker-container"
    )
    """How buildx runs BuildKit."""
    driver_opts: Annotated[
        Mapping[str, str], _READ_ONLY, _DRIVER_OPTS, Field(alias="driverOpts")
    ] = field(default_factory=lambda: MappingProxyType({}))
    """`--driver-opt` values, applied to every node (e.g. `network=host`)."""
    endpoint: Endpoint | None = None
    """Endpoint of the first node; required by the `remote` driver, else the current context."""
    nodes: Annotated[tuple[BuilderNode, ...], _rule(_nodes)] = ()
    """Native nodes appended after the first node."""
    platform_builders: Annotated[
        Mapping[str, "BuilderSettings"],
        _READ_ONLY,
        _rule(_platform_builders),
        Field(alias="platformBuilders"),
    ] = field(default_factory=lambda: MappingProxyType({}))
    """`perPlatform` only: a builder of its own for a platform (e.g. a native arm64 host); the
    other platforms use this builder. Each has no nodes and no platform builders."""

    @model_validator(mode="after")
    def _remote_needs_an_endpoint(self) -> "BuilderSettings":
        if self.driver == "remote" and self.endpoint is None:
            _refuse("the BuildKit address the remote driver uses", at=".endpoint", value=None)
        return self

    @model_validator(mode="after")
    def _node_names_are_unique(self) -> "BuilderSettings":
        names = [f"{self.name}0"]
        for index, node in enumerate(self.nodes):
            if node.name in names:
                _refuse("a unique node name", at=f".nodes[{index}].name", value=node.name)
            names.append(node.name)
        return self

    @model_validator(mode="after")
    def _builder_names_are_unique(self) -> "BuilderSettings":
        taken = [self.name]
        for platform, builder in self.platform_builders.items():
            if builder.name in taken:
                _refuse(
                    f"a builder name not used already ({', '.join(taken)})",
                    at=f".platformBuilders.{platform}.name",
                    value=builder.name,
                )
            taken.append(builder.name)
        return self


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


@with_config(_SCHEMA)
@dataclass(frozen=True)
class SourceConfig(_ConfigObject):
    """The `source` key: a git URL and commit, or an existing checkout's path."""

    url: (
        Annotated[
            str,
            # Before-validators run last to first: the URL's shape is checked (a string, a git
            # URL) before `_source_url` looks for a secret in it.
            _rule(_source_url),
            _argument(_GIT_URL, "a git URL (https://, ssh://, file://, …)", shown=_shown),
        ]
        | None
    ) = None
    """Where the upstream comes from; the pinned upstream when unset (and no path)."""
    commit: (
        Annotated[str, _text(_COMMIT, "a full 40-character lowercase commit SHA, not a tag")] | None
    ) = None
    """The commit to check out; the pinned upstream commit when unset."""
    path: (
        Annotated[
            str,
            _argument(re.compile(r"^.*\S.*$", re.DOTALL), "the directory of an existing checkout"),
        ]
        | None
    ) = None
    """An existing checkout, used as it is (then no commit)."""

    @model_validator(mode="after")
    def _path_or_commit(self) -> "SourceConfig":
        if self.path is not None and self.commit is not None:
            _refuse("unset when `source.path` is set", at=".commit", value=self.commit)
        return self

    def source(self) -> GitSource | PathSource:
        """The source these values name."""
        if self.path is not None:
            return PathSource(path=self.path, url=self.url)
        return GitSource(url=self.url or UPSTREAM_URL, commit=self.commit or UPSTREAM_COMMIT)


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


@dataclass(frozen=True)
class ExternalRegistry:
    """An existing registry used instead of Artifact Registry."""

    address: str
    """Registry path the images go under: `host[:port][/path]`."""
    username: str | None = None
    """User name for `registryPassword`; None for an anonymous registry."""

    @property
    def host(self) -> str:
        """The registry host (and port) that credentials apply to."""
        return self.address.split("/", 1)[0]


@dataclass(frozen=True)
class StartedRegistry(ExternalRegistry):
    """A registry this stack starts on this host (`registry.start`) at a loopback address with a
    port, and stops on destroy; used like an existing registry once it serves."""


@with_config(_SCHEMA)
@dataclass(frozen=True)
class RegistrySettings(_ConfigObject):
    """The `registry` key: an existing registry, or one this stack starts."""

    address: Annotated[
        str,
        _argument(
            _REGISTRY_ADDRESS,
            "host[:port][/path] in lowercase, e.g. registry.example.com/boutique",
        ),
    ]
    """Registry path the images go under: `host[:port][/path]`."""
    username: Annotated[str, _rule(_username)] | None = None
    """User name for `registryPassword`; None for an anonymous registry."""
    start: Flag = False
    """Start a registry at `address` on this host (a loopback address) for the stack."""

    def destination(self) -> ExternalRegistry:
        """The registry these values name."""
        kind = StartedRegistry if self.start else ExternalRegistry
        return kind(address=self.address, username=self.username)

    @model_validator(mode="after")
    def _port_in_range(self) -> "RegistrySettings":
        port = split_host(self.address.split("/", 1)[0])[1]
        if port and not 0 < int(port) < 65536:
            _refuse("a port from 1 to 65535", at=".address", value=self.address)
        return self

    @model_validator(mode="after")
    def _started_on_loopback_with_a_port(self) -> "RegistrySettings":
        # The registry the stack starts listens on this port: it must be given (host registry
        # ensure refuses an address without one).
        host = self.address.split("/", 1)[0]
        hostname, port = split_host(host)
        if self.start and not (port and is_loopback(hostname)):
            _refuse(
                f"true only with a loopback registry.address with a port (127.0.0.1:PORT, "
                f"localhost:PORT or [::1]:PORT), not {host}",
                at=".start",
                value=True,
            )
        return self


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


@with_config(_SCHEMA)
@dataclass(frozen=True)
class AllowedPath(_ConfigObject):
    """A file that may legitimately be an ELF binary for another architecture."""

    path: Annotated[str, _rule(_allowed_path)]
    """Absolute-path glob (`fnmatch`, `*` also crosses `/`), as `verify --allow` takes it."""
    reason: Annotated[str, _rule(_reason)]
    """Why the foreign binary is fine; stays in config, never reaches a command line."""


@with_config(_SCHEMA)
@dataclass(frozen=True)
class ProbeOverride(_ConfigObject):
    """`verify.probes.<service>`: replaces the probe table's entry (plan/probes.py) in part."""

    probe: Annotated[str | None, _rule(_probe)]
    """A `verify --probe` value, or None to keep the table's."""
    env: Annotated[Mapping[str, str], _READ_ONLY, _rule(_start_env)] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Variables added to (or replacing those of) the table's start env."""
    timeout: Annotated[int, _at_least(1)] | None = None
    """`verify --run-timeout` in seconds, or None for the tool's default (180)."""


@with_config(_SCHEMA)
@dataclass(frozen=True)
class VerifySettings(_ConfigObject):
    """How each pushed image is verified before its tag moves."""

    deep: Flag = True
    """Also check the ELF machine of every file in every layer (`verify --deep`)."""
    allow: Annotated[Mapping[str, tuple[AllowedPath, ...]], _READ_ONLY, _rule(_allow)] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per service, the paths `--deep` accepts for another architecture."""
    run: Flag = True
    """Also start each platform's image and probe it (`verify --run`)."""
    probes: Annotated[Mapping[str, ProbeOverride], _READ_ONLY, _rule(_per_service)] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per service, overrides of its probe or start env."""
    skip_run: Annotated[
        Mapping[str, Mapping[str, str]], _READ_ONLY, _rule(_skip_run), Field(alias="skipRun")
    ] = field(default_factory=lambda: MappingProxyType({}))
    """Per service and platform, why its image is not started (e.g. a runtime QEMU cannot
    run); shown in the stack output and the log."""

    @model_validator(mode="after")
    def _timeouts_outlast_their_probes(self) -> "VerifySettings":
        # plan.probes reads UPSTREAM_COMMIT from this module, hence imported here.
        from plan.probes import service_probe

        for service, override in self.probes.items():
            if override.timeout is None:
                continue
            probe = override.probe or service_probe(service, None).probe
            # Without a probe (a service the table does not start) no wait is to be outlasted.
            effective = None if probe is None else parse_probe(probe)
            least = effective.number + 1 if effective is not None and effective.kind == "up" else 1
            if not least <= override.timeout <= MAX_TIMEOUT:
                shown = "" if effective is None else f" (the probe is {effective})"
                _refuse(
                    f"{least} to {MAX_TIMEOUT} seconds{shown}",
                    at=f".probes.{service}.timeout",
                    value=override.timeout,
                )
        return self


@with_config(_SCHEMA)
@dataclass(frozen=True)
class AttestSettings(_ConfigObject):
    """Signed SBOM and verification attestations pushed beside each verified digest."""

    key: Annotated[
        str | None,
        _text(
            _KEY_PATH,
            "a path to the PEM key file, e.g. .pulumi-local/attest-key.pem (no outer spaces)",
        ),
    ] = None
    """ECDSA P-256 private key (PEM path, created on first use); None: no referrers pushed."""
    kms: Annotated[
        str | None,
        _text(KEY_VERSION, f"a Cloud KMS key version, {KEY_VERSION_FORM} (EC_SIGN_P256_SHA256)"),
    ] = None
    """Cloud KMS key version that signs the referrers instead of a local key."""
    binary_authorization: Annotated[Flag, Field(alias="binaryAuthorization")] = False
    """Declare a KMS key, a note and an attestor, and attest each published digest for
    Binary Authorization (Artifact Registry stacks only)."""
    enforce: Flag = False
    """Also declare the project's Binary Authorization policy requiring the attestor."""

    @model_validator(mode="after")
    def _enforce_with_binary_authorization(self) -> "AttestSettings":
        if self.enforce and not self.binary_authorization:
            _refuse("only with attest.binaryAuthorization true", at=".enforce", value=True)
        if self.key is not None and self.kms is not None:
            _refuse(
                "one signer: attest.key (a local PEM key) or attest.kms (a KMS key version), "
                "not both",
                at=".kms",
                value=self.kms,
            )
        return self


@dataclass(frozen=True)
class Settings:
    """Everything the program needs from the stack configuration, validated."""

    services: tuple[Service, ...]
    """The services to build, in the configured order."""
    platforms: tuple[Platform, ...]
    """Platforms of every image, each at most once."""
    tag: str
    """The tag every service's Index publishes."""
    destination: ArtifactRegistry | ExternalRegistry
    """Artifact Registry, or an existing registry (then no GCP resource is declared), which may
    be a StartedRegistry."""
    builder: BuilderSettings
    """The buildx builder (with native nodes and per-platform builders)."""
    source: GitSource | PathSource
    """Where the upstream source comes from."""
    cache: bool
    """Whether builds read and write a registry cache."""
    verify: VerifySettings
    """How each pushed digest is verified before its tag moves."""
    strategy: Strategy
    """One image per service, or one per service and platform joined by an Index."""

    attest: AttestSettings = AttestSettings()
    """Whether (and with which key) verified digests get signed attestations."""

    @property
    def commit(self) -> str | None:
        """The upstream commit when the source is fetched at one, None for an existing checkout."""
        return self.source.commit if isinstance(self.source, GitSource) else None


def _members(value: Any) -> tuple[str, ...]:
    members: list[str] = []
    allowed = "an IAM member starting with " + ", ".join(IAM_MEMBER_PREFIXES)
    for index, member in enumerate(_list(value, "IAM members")):
        valid = isinstance(member, str) and any(
            member.startswith(prefix)
            and len(member) > len(prefix)
            and not any(character.isspace() for character in member)
            for prefix in IAM_MEMBER_PREFIXES
        )
        if not valid:
            _refuse(allowed, at=f"[{index}]", value=member)
        if member in members:
            _refuse("each member at most once", at=f"[{index}]", value=member)
        members.append(member)
    return tuple(members)


def _platforms(value: Any) -> tuple[str, ...]:
    return _unique(_list(value, "platforms"), PLATFORMS, "platforms")


def _services(value: Any) -> tuple[Service, ...]:
    names = _unique(_list(value, "service names"), tuple(CATALOG), "services")
    return tuple(CATALOG[name] for name in names)


Members = Annotated[tuple[str, ...], _rule(_members)]


@with_config(_SCHEMA)
@dataclass(frozen=True)
class StackConfig:
    """The project's config namespace as the stack sets it (Pulumi.yaml's defaults included).
    Fields are validated in this order, then the rules spanning fields."""

    platforms: Annotated[tuple[Platform, ...], _rule(_platforms)] = PLATFORMS
    services: Annotated[tuple[Service, ...], _rule(_services)] = tuple(
        CATALOG[name] for name in DEFAULT_SERVICES
    )
    strategy: Annotated[Strategy, _one_of(STRATEGIES, " or ".join(STRATEGIES))] = STRATEGIES[0]
    builder: BuilderSettings = field(default_factory=BuilderSettings)
    cache: Flag = True
    tag: Tag = "v1"
    registry: RegistrySettings | None = None
    repository: RepositorySettings | None = None
    writers: Members = ()
    readers: Members = ()
    ephemeral_tag_prefixes: Annotated[
        tuple[str, ...], _rule(_tag_prefixes), Field(alias="ephemeralTagPrefixes")
    ] = ()
    source: SourceConfig = field(default_factory=SourceConfig)
    verify: VerifySettings = field(default_factory=VerifySettings)
    attest: AttestSettings = field(default_factory=AttestSettings)

    @field_validator("attest", mode="wrap")
    @classmethod
    def _attest_a_deeply_verified_index_on_its_registry(
        cls, value: Any, validate: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> AttestSettings:
        attest: AttestSettings = validate(value)
        if attest.binary_authorization and info.data.get("registry") is not None:
            _refuse(
                "only on Artifact Registry stacks (no `registry`)",
                at=".binaryAuthorization",
                value=True,
            )
        if attest.key is None and attest.kms is None and not attest.binary_authorization:
            return attest
        verify = info.data.get("verify")
        if verify is not None and not verify.deep:
            _refuse("only with verify.deep true (the SBOM is read from layers)", value=value)
        return attest

    @model_validator(mode="before")
    @classmethod
    def _platform_builders_only_per_platform(cls, data: dict[str, Any]) -> dict[str, Any]:
        builder = data.get("builder")
        if (
            isinstance(builder, dict)
            and builder.get("platformBuilders")
            and data.get("strategy", STRATEGIES[0]) != "perPlatform"
        ):
            _refuse(
                "only with strategy perPlatform (a multi-platform build uses one builder; "
                "use builder.nodes for native nodes)",
                key=f"{PROJECT}:builder.platformBuilders",
                value=builder["platformBuilders"],
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def _registry_excludes_artifact_registry_keys(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("registry") is None:
            # An unset `repository` (or one set to null, like `registry`) is the default one.
            repository = data.get("repository")
            return {**data, "repository": {} if repository is None else repository}
        if data.get("repository") is not None:
            _refuse(
                "unset when `registry` is set",
                key=f"{PROJECT}:repository",
                value=data["repository"],
            )
        # The CLI hands the program Pulumi.yaml's default `[]` for an unset key: empty is unset.
        for key in ("writers", "readers", "ephemeralTagPrefixes"):
            if data.get(key, []) != []:
                _refuse(
                    "unset or [] when `registry` is set", key=f"{PROJECT}:{key}", value=data[key]
                )
        return data

    @model_validator(mode="after")
    def _password_with_a_username_only(self, info: ValidationInfo) -> "StackConfig":
        password_set = bool(info.context and info.context.get("registryPassword"))
        key = f"{PROJECT}:registryPassword"
        if self.registry is None and password_set:
            _refuse("only together with `registry`", key=key, value="[secret]")
        if self.registry is not None and self.registry.username is None and password_set:
            _refuse("only together with `registry.username`", key=key, value="[secret]")
        if self.registry is not None and self.registry.username is not None and not password_set:
            _refuse("a secret when `registry.username` is set", key=key, value=None)
        return self

    @model_validator(mode="after")
    def _artifact_registry_in_a_project_and_region(self, info: ValidationInfo) -> "StackConfig":
        gcp = (info.context or {}).get("gcp", {})
        if self.repository is None:
            return self
        if not gcp.get("project"):
            _refuse("a GCP project id (or configure `registry`)", key="gcp:project", value=None)
        location = self.repository.location or gcp.get("region")
        key = f"{PROJECT}:repository.location"
        if location is None:
            _refuse("a region such as europe-west1 (or gcp:region)", key=key, value=None)
        if not _LOCATION.fullmatch(location):
            _refuse("a region or multi-region such as us-central1", key=key, value=location)
        return self

    @model_validator(mode="after")
    def _ephemeral_tags_need_a_cleanup_and_spare_the_stack_tag(self) -> "StackConfig":
        key = f"{PROJECT}:ephemeralTagPrefixes"
        for index, prefix in enumerate(self.ephemeral_tag_prefixes):
            if self.tag.startswith(prefix):
                _refuse(
                    f"a prefix the stack's own tag {self.tag!r} does not start with (cleanup "
                    "would delete the images this stack publishes)",
                    key=f"{key}[{index}]",
                    value=prefix,
                )
        repository = self.repository
        if repository and repository.cleanup is None and self.ephemeral_tag_prefixes:
            _refuse(
                "[] unless repository.cleanup is set (its olderThanDays is the age at which "
                "ephemeral tags are deleted)",
                key=key,
                value=list(self.ephemeral_tag_prefixes),
            )
        return self

    @model_validator(mode="after")
    def _room_for_the_cache_repository(self) -> "StackConfig":
        repository = self.repository
        cache_id = f"{repository.id}{CACHE_REPOSITORY_SUFFIX}" if repository else ""
        if (
            repository
            and repository.immutable_tags
            and self.cache
            and not _REPOSITORY_ID.fullmatch(cache_id)
        ):
            _refuse(
                f"at most {63 - len(CACHE_REPOSITORY_SUFFIX)} characters with immutableTags "
                f"and the cache on (the build cache goes to the repository "
                f"`<id>{CACHE_REPOSITORY_SUFFIX}`)",
                key=f"{PROJECT}:repository.id",
                value=repository.id,
            )
        return self

    def settings(self, gcp: Mapping[str, str]) -> Settings:
        """The settings of this (validated) configuration."""
        destination: ArtifactRegistry | ExternalRegistry
        if self.registry is not None:
            destination = self.registry.destination()
        else:
            assert self.repository is not None  # filled in for Artifact Registry
            cleanup = self.repository.cleanup
            destination = ArtifactRegistry(
                project=gcp["project"],
                repository=replace(
                    self.repository,
                    location=self.repository.location or gcp["region"],
                    cleanup=cleanup
                    and replace(cleanup, ephemeral_tag_prefixes=self.ephemeral_tag_prefixes),
                ),
                writers=self.writers,
                readers=self.readers,
            )
        return Settings(
            services=self.services,
            platforms=self.platforms,
            tag=self.tag,
            destination=destination,
            builder=self.builder,
            source=self.source.source(),
            cache=self.cache,
            verify=self.verify,
            strategy=self.strategy,
            attest=self.attest,
        )


_STACK_CONFIG = TypeAdapter(StackConfig)
_PLATFORM_LIST = TypeAdapter(Annotated[tuple[Platform, ...], _rule(_platforms)])
_SERVICE_LIST = TypeAdapter(Annotated[tuple[Service, ...], _rule(_services)])


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
    data = {key: _decode(raw, key) for key in CONFIG_KEYS if raw.get(key) is not None}
    # The configured platforms and services decide what nested keys allow (a node's platforms,
    # `verify.allow`): validated first, they are the context of the rest.
    platforms = _validated(_PLATFORM_LIST, data.get("platforms", list(PLATFORMS)), "platforms")
    services = _validated(_SERVICE_LIST, data.get("services", list(DEFAULT_SERVICES)), "services")
    context = {
        "platforms": platforms,
        "services": [service.name for service in services],
        "gcp": gcp,
        "registryPassword": registry_password_set,
    }
    config: StackConfig = _validated(_STACK_CONFIG, data, "", context)
    return config.settings(gcp)


def _validated(
    adapter: TypeAdapter[Any], value: Any, key: str, context: dict[str, Any] | None = None
) -> Any:
    """`value` validated by `adapter`, or the ConfigError of its first error (under `key`)."""
    failure: ConfigError
    try:
        return adapter.validate_python(value, context=context)
    except ValidationError as error:
        failure = _config_error(error, f".{key}" if key else "")
    # Raised outside the `except`, so the error carries no context: pydantic's error holds the
    # unredacted input.
    raise failure


def _decode(raw: Mapping[str, str], name: str) -> Any:
    """The raw value of `name`, JSON-decoded where Pulumi passes JSON (not `tag`, `strategy`)."""
    text = raw[name]
    if name in ("tag", "strategy"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # Plain strings (e.g. `cache: yes`) are reported as they are by the key's rule.
        return text
