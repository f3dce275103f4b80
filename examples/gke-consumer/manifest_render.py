"""Online Boutique's Kubernetes manifests rewritten to run the images an images stack exports.

Pure Python (no Pulumi): `render` takes the parsed objects of upstream's
`release/kubernetes-manifests.yaml` (or a fork's) and returns the objects to declare, each a
deep copy changed only by these transformations, every one refusing what it cannot do:

- every container and init container whose image is one of upstream's service images (its name's
  last path element is a service name) runs `images[service]["ref"]` of the images stack instead;
  a service image the stack does not export is an error, unless the service is excluded, and
  then its Deployment, the Services selecting its pods and its own ServiceAccount are left out;
- third-party images (redis, busybox) are kept, or replaced by the configured pin;
- every pod template requires a node of an architecture the images were verified for and
  tolerates the taint GKE puts on Arm nodes;
- Deployments with 2 or more replicas (after `replicas` overrides) spread over architectures.

Ports, environment, probes, resources, security contexts and Services stay as they are.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCH_LABEL = "kubernetes.io/arch"
"""The node label the kubelet sets from the node's own architecture."""
ARCHITECTURES = ("amd64", "arm64")
"""The architectures the images are built and verified for; no pod may land elsewhere."""
ARM64_TOLERATION = {
    "key": ARCH_LABEL,
    "operator": "Equal",
    "value": "arm64",
    "effect": "NoSchedule",
}
"""GKE taints Arm node pools with kubernetes.io/arch=arm64:NoSchedule."""


def _program_catalog() -> tuple[str, ...]:
    """The service names of the images program's catalogue (`plan/services.py` of the
    repository this example lives in), so the two never drift apart. Loaded by path: that
    module is plain Python, and this project's virtualenv does not hold the program's."""
    path = Path(__file__).resolve().parents[2] / "plan" / "services.py"
    spec = importlib.util.spec_from_file_location("boutique_multiarch_services", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"the images program's service catalogue is not at {path}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return tuple(module.CATALOG)


UPSTREAM_SERVICES = _program_catalog()
"""Upstream's published service images: every service the images program can build."""
UPSTREAM_REGISTRIES = (
    "us-central1-docker.pkg.dev/google-samples/microservices-demo",
    "gcr.io/google-samples/microservices-demo",
)
"""Where upstream publishes those images (today, and before v0.9)."""
FRONTEND_EXTERNAL = "frontend-external"
"""Upstream's LoadBalancer Service in front of the frontend."""

SUPPORTED_KINDS: Mapping[tuple[str, str], frozenset[str]] = {
    ("apps/v1", "Deployment"): frozenset({"apiVersion", "kind", "metadata", "spec"}),
    ("v1", "Service"): frozenset({"apiVersion", "kind", "metadata", "spec"}),
    ("v1", "ServiceAccount"): frozenset(
        {"apiVersion", "kind", "metadata", "automountServiceAccountToken", "imagePullSecrets"}
    ),
}
"""The kinds upstream's manifest holds, with the top-level fields each may carry."""


class RenderError(ValueError):
    """The manifest, the images stack's output or the config cannot be rendered as asked."""


@dataclass(frozen=True)
class RenderOptions:
    """What the consumer's config asks of the rendering."""

    exclude: frozenset[str] = frozenset()
    """Services left out with their Deployment, Services and ServiceAccount."""
    third_party_images: Mapping[str, str] = field(default_factory=dict)
    """Third-party image as the manifest names it -> the image to run instead."""
    spread_across_architectures: bool = True
    """Give Deployments with 2 or more replicas a topology spread constraint on the arch."""
    replicas: Mapping[str, int] = field(default_factory=dict)
    """Service -> replica count of its Deployment."""


@dataclass(frozen=True)
class Rendering:
    """The objects to declare, in manifest order, and what the consumer reports."""

    objects: list[dict[str, Any]]
    deployed: dict[str, str]
    """Service -> the image ref its containers run."""
    frontend_external: str | None
    """`Service/frontend-external` when it is kept and of type LoadBalancer, else None."""
    warnings: list[str]
    """One per excluded service, naming the objects left out."""


def image_name(image: str) -> str:
    """The image's last path element without tag or digest: `…/frontend:v1@sha256:…` -> frontend."""
    name = image.partition("@")[0].rsplit("/", 1)[-1]
    return name.partition(":")[0]


def service_of(image: str) -> str | None:
    """The upstream service an image is, or None for a third-party image."""
    name = image_name(image)
    return name if name in UPSTREAM_SERVICES else None


def render(
    documents: Iterable[Any],
    images: Any,
    options: RenderOptions,
    stack: str,
) -> Rendering:
    """Rewrite the manifest's objects; one RenderError naming what is wrong, before any output."""
    objects = [
        obj
        for index, document in enumerate(documents)
        if (obj := _checked(index, document)) is not None
    ]
    _refuse_duplicates(objects)
    refs = _image_refs(images, stack)
    workloads = {_key(obj): _services_of(obj) for obj in objects if obj["kind"] == "Deployment"}
    in_manifest = set().union(*workloads.values())
    _refuse_unknown(options, objects, in_manifest)
    dropped = _excluded(objects, workloads, options.exclude)
    missing = sorted(in_manifest - options.exclude - set(refs))
    if missing:
        raise RenderError(
            f"the manifest runs upstream service image(s) of {', '.join(missing)}, but stack "
            f"{stack} exports no image for them (exported: {', '.join(sorted(refs)) or 'none'}); "
            "add them to that stack's services, or list them in config excludeServices"
        )
    left_out = {key for keys in dropped.values() for key in keys}
    kept = [copy.deepcopy(obj) for obj in objects if _key(obj) not in left_out]
    deployed: dict[str, str] = {}
    for obj in kept:
        if obj["kind"] == "Deployment":
            deployed.update(_transform_deployment(obj, refs, options))
    warnings = [
        f"excluded service {service}: left out {', '.join(sorted(dropped[service]))}"
        for service in sorted(dropped)
    ]
    frontend = next(
        (
            _key(obj)
            for obj in kept
            if (obj["kind"], obj["metadata"]["name"]) == ("Service", FRONTEND_EXTERNAL)
            and (obj.get("spec") or {}).get("type") == "LoadBalancer"
        ),
        None,
    )
    return Rendering(kept, deployed, frontend, warnings)


def _key(obj: Mapping[str, Any]) -> str:
    """`Kind/name`, unique among the manifest's objects (they carry no namespace)."""
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _checked(index: int, document: Any) -> dict[str, Any] | None:
    """The object, if it is one this rendering understands; None for an empty document."""
    if document is None:
        return None
    where = f"manifest document {index + 1}"
    if not isinstance(document, dict):
        raise RenderError(f"{where} is a {type(document).__name__}, not a Kubernetes object")
    kind = (document.get("apiVersion"), document.get("kind"))
    fields = SUPPORTED_KINDS.get(kind)  # type: ignore[arg-type]
    if fields is None:
        supported = ", ".join(f"{api} {name}" for api, name in SUPPORTED_KINDS)
        raise RenderError(f"{where} is {kind[0]} {kind[1]}; supported kinds: {supported}")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise RenderError(f"{where} ({kind[1]}) has no metadata.name")
    if "namespace" in metadata:
        raise RenderError(
            f"{where} ({kind[1]} {metadata['name']}) sets metadata.namespace; upstream's objects "
            "carry none (they go to the kubeconfig context's namespace)"
        )
    unexpected = sorted(set(document) - fields)
    if unexpected:
        raise RenderError(
            f"{where} ({kind[1]} {metadata['name']}) has field(s) {', '.join(unexpected)}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    if kind[1] == "Deployment":
        _pod_spec(document, f"{where} (Deployment {metadata['name']})")
    return document


def _pod_spec(deployment: Mapping[str, Any], where: str) -> dict[str, Any]:
    template = (deployment.get("spec") or {}).get("template") or {}
    pod = template.get("spec")
    if not isinstance(pod, dict) or not isinstance(pod.get("containers"), list):
        raise RenderError(f"{where} has no spec.template.spec.containers")
    for container in _containers(pod):
        if not isinstance(container, dict) or not isinstance(container.get("image"), str):
            raise RenderError(f"{where} has a container without an image")
    return pod


def _containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _refuse_duplicates(objects: Sequence[Mapping[str, Any]]) -> None:
    keys = [_key(obj) for obj in objects]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise RenderError(f"the manifest declares {', '.join(repeated)} more than once")


def _image_refs(images: Any, stack: str) -> dict[str, str]:
    """Service -> ref from the stack's `images` output, refusing an entry without a ref."""
    if not isinstance(images, Mapping):
        raise RenderError(
            f"stack {stack} has no `images` output; is it a boutique-multiarch stack?"
        )
    refs: dict[str, str] = {}
    for service, entry in images.items():
        ref = entry.get("ref") if isinstance(entry, Mapping) else None
        if not isinstance(ref, str) or "@sha256:" not in ref:
            raise RenderError(
                f"stack {stack} exports images[{service!r}] without a digest-pinned `ref` "
                f"({entry!r}); is it a boutique-multiarch stack?"
            )
        refs[str(service)] = ref
    return refs


def _services_of(deployment: Mapping[str, Any]) -> set[str]:
    pod = deployment["spec"]["template"]["spec"]
    return {s for c in _containers(pod) if (s := service_of(c["image"])) is not None}


def _third_party_images(objects: Sequence[Mapping[str, Any]]) -> set[str]:
    return {
        container["image"]
        for obj in objects
        if obj["kind"] == "Deployment"
        for container in _containers(obj["spec"]["template"]["spec"])
        if service_of(container["image"]) is None
    }


def _refuse_unknown(
    options: RenderOptions, objects: Sequence[Mapping[str, Any]], in_manifest: set[str]
) -> None:
    """Config naming a service or image the manifest does not have is a mistake: refuse it."""
    deployable = in_manifest - options.exclude
    third_party = _third_party_images(objects)
    for key, named, known, what in (
        ("excludeServices", options.exclude, in_manifest, "services in the manifest"),
        ("replicas", set(options.replicas), deployable, "services deployed"),
        ("thirdPartyImages", set(options.third_party_images), third_party, "third-party images"),
    ):
        unknown = sorted(named - known)
        if unknown:
            raise RenderError(
                f"config {key} names {', '.join(map(repr, unknown))}, which the manifest does not "
                f"have ({what}: {', '.join(sorted(known)) or 'none'})"
            )


def _excluded(
    objects: Sequence[Mapping[str, Any]],
    workloads: Mapping[str, set[str]],
    exclude: frozenset[str],
) -> dict[str, list[str]]:
    """Excluded service -> keys of the objects left out with it: its Deployment, the Services
    selecting its pods, and its ServiceAccount unless a kept Deployment uses it too."""
    deployments = {_key(obj): obj for obj in objects if obj["kind"] == "Deployment"}
    kept_accounts = {
        _service_account(obj) for key, obj in deployments.items() if not workloads[key] & exclude
    }
    dropped: dict[str, list[str]] = {}
    for key, services in workloads.items():
        excluded = services & exclude
        if not excluded:
            continue
        if excluded != services:
            raise RenderError(
                f"{key} runs {', '.join(sorted(services))}; config excludeServices must name "
                "all of them or none"
            )
        template = deployments[key]["spec"]["template"]
        labels = (template.get("metadata") or {}).get("labels") or {}
        account = _service_account(deployments[key])
        own_account = None if account in kept_accounts else f"ServiceAccount/{account}"
        left_out = [key]
        left_out += [
            _key(obj)
            for obj in objects
            if (obj["kind"] == "Service" and _selects(obj, labels)) or _key(obj) == own_account
        ]
        for service in excluded:
            dropped.setdefault(service, []).extend(left_out)
    return dropped


def _selects(service: Mapping[str, Any], pod_labels: Mapping[str, Any]) -> bool:
    """Whether a Service's selector selects pods with these labels (no selector: none)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())


def _service_account(deployment: Mapping[str, Any]) -> str | None:
    name = deployment["spec"]["template"]["spec"].get("serviceAccountName")
    return name if isinstance(name, str) else None


def _transform_deployment(
    deployment: dict[str, Any], refs: Mapping[str, str], options: RenderOptions
) -> dict[str, str]:
    """Rewrite one Deployment in place; return service -> ref of the images it now runs."""
    name = deployment["metadata"]["name"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    deployed: dict[str, str] = {}
    for container in _containers(pod):
        service = service_of(container["image"])
        if service is not None:
            container["image"] = deployed[service] = refs[service]
        else:
            container["image"] = options.third_party_images.get(
                container["image"], container["image"]
            )
    for service in deployed:
        if service in options.replicas:
            spec["replicas"] = options.replicas[service]
    _require_supported_architectures(pod, name)
    tolerations = pod.setdefault("tolerations", [])
    if ARM64_TOLERATION not in tolerations:
        tolerations.append(dict(ARM64_TOLERATION))
    if options.spread_across_architectures and spec.get("replicas", 1) >= 2:
        _spread_over_architectures(pod, spec.get("selector"), name)
    return deployed


def _require_supported_architectures(pod: dict[str, Any], deployment: str) -> None:
    if ARCH_LABEL in (pod.get("nodeSelector") or {}):
        raise RenderError(
            f"Deployment {deployment} pins {ARCH_LABEL} in its nodeSelector; remove it, the "
            f"consumer requires {' or '.join(ARCHITECTURES)} itself"
        )
    node_affinity = pod.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    if required in node_affinity:
        raise RenderError(
            f"Deployment {deployment} already has required node affinity; the consumer cannot "
            f"merge its {ARCH_LABEL} requirement into it"
        )
    node_affinity[required] = {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": ARCH_LABEL, "operator": "In", "values": list(ARCHITECTURES)}
                ]
            }
        ]
    }


def _spread_over_architectures(pod: dict[str, Any], selector: Any, deployment: str) -> None:
    constraints = pod.setdefault("topologySpreadConstraints", [])
    if any(c.get("topologyKey") == ARCH_LABEL for c in constraints):
        raise RenderError(
            f"Deployment {deployment} already spreads over {ARCH_LABEL}; set config "
            "spreadAcrossArchitectures to false to keep its own constraint"
        )
    if not isinstance(selector, dict):
        raise RenderError(f"Deployment {deployment} has no spec.selector to spread its pods by")
    constraints.append(
        {
            "maxSkew": 1,
            "topologyKey": ARCH_LABEL,
            # Never pile every replica onto one architecture: a pod waits instead.
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": copy.deepcopy(selector),
        }
    )
