"""The GKE consumer's configuration, parsed once into a frozen object (pure Python, no Pulumi).

`parse` takes the values as `pulumi.Config` returns them (strings, and JSON-decoded arrays
and objects) and raises one ConfigError naming the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from manifest_render import RenderOptions

STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
SERVICE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A DNS-1123 label, as Deployment and Service names are."""
IMAGE = re.compile(
    r"[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?"
)
"""An image reference: [registry[:port]/]path[:tag][@sha256:digest]."""
MAX_REPLICAS = 1000
KEYS = (
    "imagesStack",
    "manifests",
    "excludeServices",
    "thirdPartyImages",
    "spreadAcrossArchitectures",
    "replicas",
)
"""Every key of the consumer's namespace, as Pulumi.yaml declares them."""


class ConfigError(ValueError):
    """A config value the consumer cannot use."""


@dataclass(frozen=True)
class ConsumerSettings:
    """The validated configuration."""

    images_stack: str
    """Fully qualified name of the boutique-multiarch stack whose outputs are deployed."""
    manifests: str | None
    """A local file or an http(s) URL of the manifests; None: upstream's at the stack's commit."""
    render: RenderOptions
    """Exclusions, pins, spreading and replica overrides."""


def parse(values: dict[str, Any]) -> ConsumerSettings:
    """The settings from config values (absent keys missing from `values`)."""
    stack = values.get("imagesStack")
    if not isinstance(stack, str) or not STACK_NAME.fullmatch(stack):
        raise ConfigError(
            f"config imagesStack={stack!r} is not a fully qualified stack name; "
            "allowed: <organization>/<project>/<stack>, e.g. organization/boutique-multiarch/dev"
        )
    manifests = values.get("manifests")
    if manifests is not None and (not isinstance(manifests, str) or not manifests.strip()):
        raise ConfigError(
            f"config manifests={manifests!r} is not a local file path or an http(s) URL"
        )
    return ConsumerSettings(
        images_stack=stack,
        manifests=manifests,
        render=RenderOptions(
            exclude=frozenset(_services(values.get("excludeServices", []))),
            third_party_images=_pins(values.get("thirdPartyImages", {})),
            spread_across_architectures=_bool(
                "spreadAcrossArchitectures", values.get("spreadAcrossArchitectures", True)
            ),
            replicas=_replicas(values.get("replicas", {})),
        ),
    )


def _services(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"config excludeServices={value!r} is not a list of service names")
    for name in value:
        if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
            raise ConfigError(
                f"config excludeServices contains {name!r}; allowed: service names such as "
                "'loadgenerator' (lowercase DNS labels)"
            )
    return list(value)


def _pins(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"config thirdPartyImages={value!r} is not an object mapping the manifest's image "
            'to the one to run, e.g. {"redis:alpine": "redis:7.4-alpine@sha256:…"}'
        )
    for image, pin in value.items():
        if not isinstance(pin, str) or not IMAGE.fullmatch(pin):
            raise ConfigError(
                f"config thirdPartyImages.{image}={pin!r} is not an image reference; allowed: "
                "[registry/]name[:tag][@sha256:<64 hex digits>], e.g. redis:7.4-alpine"
            )
    return dict(value)


def _bool(key: str, value: Any) -> bool:
    # Pulumi hands a boolean to the program as the string "true" or "false".
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise ConfigError(f"config {key}={value!r} is not a boolean; allowed: true or false")


def _replicas(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ConfigError(f"config replicas={value!r} is not an object of service -> replica count")
    for service, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPLICAS:
            raise ConfigError(
                f"config replicas.{service}={count!r} is not an integer from 0 to {MAX_REPLICAS}"
            )
    return dict(value)
