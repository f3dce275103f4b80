"""The Online Boutique service catalog: where each service's build context and Dockerfile live.

Paths are relative to the root of an upstream checkout (GoogleCloudPlatform/microservices-demo).
cartservice is the odd one out: its Dockerfile and build context are `src/cartservice/src`.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """One buildable service of the upstream repository."""

    name: str
    """Service name; also the image name under the registry path."""
    context: str
    """Build context directory, relative to the checkout root."""
    dockerfile: str
    """Dockerfile path, relative to the checkout root."""


def _service(name: str, context: str | None = None) -> Service:
    directory = context or f"src/{name}"
    return Service(name=name, context=directory, dockerfile=f"{directory}/Dockerfile")


CATALOG: dict[str, Service] = {
    service.name: service
    for service in (
        _service("adservice"),
        _service("cartservice", context="src/cartservice/src"),
        _service("checkoutservice"),
        _service("currencyservice"),
        _service("emailservice"),
        _service("frontend"),
        _service("paymentservice"),
        _service("productcatalogservice"),
        _service("recommendationservice"),
        _service("shippingservice"),
        _service("loadgenerator"),
        _service("shoppingassistantservice"),
    )
}
"""Every service this program knows how to build, in upstream's order."""

DEFAULT_SERVICES: tuple[str, ...] = tuple(
    name for name in CATALOG if name != "shoppingassistantservice"
)
"""The eleven services the multi-arch tutorial builds; shoppingassistantservice is opt-in."""
