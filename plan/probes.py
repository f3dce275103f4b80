"""How each Online Boutique service proves it starts (`verify --run`): its probe and start env.

Read from upstream (GoogleCloudPlatform/microservices-demo) at both supported revisions, tag v0
= 5f4ccc7d and v0.10.6 = 5b3a712a, where ports, health checks and required env are the same:
- ports and probes: each Deployment's `readinessProbe`/`livenessProbe` in
  `kubernetes-manifests/<service>.yaml` (`grpc: port`, or frontend's `httpGet /_healthz`);
- env: the Deployment's `env`, checked against what the source requires at start-up
  (`mustMapEnv` in the Go services' `main.go`, `os.environ[...]` / `raise` in the Python
  servers, `process.env.PORT` in the Node servers, `Configuration[...]` in cartservice's
  `Startup.cs`, the `locust` ENTRYPOINT of loadgenerator's Dockerfile).

Defaults chosen here, and why:
- Addresses of the services a service calls are `127.0.0.1:<that service's upstream port>`:
  inside the container nothing listens there, so a call fails at once and no DNS query leaves
  the host; every gRPC client upstream connects lazily (Go `DialContext` without `WithBlock` at
  v0, `NewClient` at v0.10.6, Python `insecure_channel`), so start-up and health never need them.
- `DISABLE_PROFILER=1` where the manifest sets it, `ENABLE_PROFILER=0` for frontend: the
  profiler would call Google Cloud.
- cartservice gets no `REDIS_ADDR`: without it upstream uses its in-memory store, whose health
  check answers SERVING; with a dummy Redis address the health check would answer NOT_SERVING.
- loadgenerator serves nothing: `up:45`, long enough for Python to import gevent, locust and
  their native modules under QEMU (where a missing or foreign `.so` fails), and FRONTEND_ADDR
  points at a closed port (locust logs connection errors and keeps running).
- shoppingassistantservice has no probe: at import it reads six required variables, then calls
  Secret Manager and AlloyDB, so it cannot start without Google Cloud; the program records it as
  skipped with that reason unless `verify.probes.shoppingassistantservice` gives one.
"""

from dataclasses import dataclass

from plan.settings import UPSTREAM_COMMIT

UPSTREAM_V0_10_6 = "5b3a712ab85ccb8f6f7cd5b720d36ba9a8d041eb"


@dataclass(frozen=True)
class ServiceProbe:
    """How one service's container is started and judged."""

    probe: str | None
    """A `verify --probe` value; None when the service cannot start without Google Cloud."""
    env: tuple[tuple[str, str], ...] = ()
    """`verify --env` pairs the service needs to start."""
    unprobed: str = ""
    """Why there is no probe (recorded as the skip reason)."""


def _loopback(port: int) -> str:
    return f"127.0.0.1:{port}"


PORTS = {
    "adservice": 9555,
    "cartservice": 7070,
    "checkoutservice": 5050,
    "currencyservice": 7000,
    "emailservice": 8080,
    "frontend": 8080,
    "paymentservice": 50051,
    "productcatalogservice": 3550,
    "recommendationservice": 8080,
    "shippingservice": 50051,
}
"""Each service's container port in upstream's manifests."""

_CALLEES = {
    "PRODUCT_CATALOG_SERVICE_ADDR": "productcatalogservice",
    "CURRENCY_SERVICE_ADDR": "currencyservice",
    "CART_SERVICE_ADDR": "cartservice",
    "RECOMMENDATION_SERVICE_ADDR": "recommendationservice",
    "SHIPPING_SERVICE_ADDR": "shippingservice",
    "CHECKOUT_SERVICE_ADDR": "checkoutservice",
    "AD_SERVICE_ADDR": "adservice",
    "PAYMENT_SERVICE_ADDR": "paymentservice",
}


def _callees(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, _loopback(PORTS[_CALLEES[name]])) for name in names)


_TABLE: dict[str, ServiceProbe] = {
    "adservice": ServiceProbe("grpc:9555", (("PORT", "9555"),)),
    "cartservice": ServiceProbe("grpc:7070"),
    "checkoutservice": ServiceProbe(
        "grpc:5050",
        (
            ("PORT", "5050"),
            *_callees(
                "PRODUCT_CATALOG_SERVICE_ADDR",
                "SHIPPING_SERVICE_ADDR",
                "PAYMENT_SERVICE_ADDR",
            ),
            # emailservice's Service listens on 5000 (its container on 8080).
            ("EMAIL_SERVICE_ADDR", _loopback(5000)),
            *_callees("CURRENCY_SERVICE_ADDR", "CART_SERVICE_ADDR"),
        ),
    ),
    "currencyservice": ServiceProbe("grpc:7000", (("PORT", "7000"), ("DISABLE_PROFILER", "1"))),
    "emailservice": ServiceProbe("grpc:8080", (("PORT", "8080"), ("DISABLE_PROFILER", "1"))),
    "frontend": ServiceProbe(
        "http:8080/_healthz",
        (
            ("PORT", "8080"),
            *_callees(
                "PRODUCT_CATALOG_SERVICE_ADDR",
                "CURRENCY_SERVICE_ADDR",
                "CART_SERVICE_ADDR",
                "RECOMMENDATION_SERVICE_ADDR",
                "SHIPPING_SERVICE_ADDR",
                "CHECKOUT_SERVICE_ADDR",
                "AD_SERVICE_ADDR",
            ),
            # shoppingassistantservice's Service listens on 80.
            ("SHOPPING_ASSISTANT_SERVICE_ADDR", _loopback(80)),
            ("ENABLE_PROFILER", "0"),
        ),
    ),
    "paymentservice": ServiceProbe("grpc:50051", (("PORT", "50051"), ("DISABLE_PROFILER", "1"))),
    "productcatalogservice": ServiceProbe(
        "grpc:3550", (("PORT", "3550"), ("DISABLE_PROFILER", "1"))
    ),
    "recommendationservice": ServiceProbe(
        "grpc:8080",
        (
            ("PORT", "8080"),
            *_callees("PRODUCT_CATALOG_SERVICE_ADDR"),
            ("DISABLE_PROFILER", "1"),
        ),
    ),
    "shippingservice": ServiceProbe("grpc:50051", (("PORT", "50051"), ("DISABLE_PROFILER", "1"))),
    "loadgenerator": ServiceProbe(
        "up:45", (("FRONTEND_ADDR", _loopback(8080)), ("USERS", "10"), ("RATE", "1"))
    ),
    "shoppingassistantservice": ServiceProbe(
        None,
        unprobed="needs Google Cloud to start (reads Secret Manager and connects to AlloyDB "
        "at import)",
    ),
}

PROBES: dict[str, dict[str, ServiceProbe]] = {
    UPSTREAM_COMMIT: _TABLE,
    UPSTREAM_V0_10_6: _TABLE,
}
"""Per supported upstream commit, each service's probe (the two revisions agree)."""


def service_probe(service: str, commit: str | None) -> ServiceProbe:
    """The probe of `service` at `commit`; a checkout of another or unknown revision (a
    `source.path`) gets the pinned revision's, which `verify.probes` can override."""
    return PROBES.get(commit or UPSTREAM_COMMIT, PROBES[UPSTREAM_COMMIT])[service]
