"""Deploy Online Boutique as upstream defines it, with the images a boutique-multiarch stack built.

Reads the `source` ({url, commit}) and `images` outputs of the stack named by `imagesStack`,
reads upstream's `release/kubernetes-manifests.yaml` at that commit (or the file or URL config
`manifests` names), rewrites it with `manifest_render` (our digest-pinned images, scheduling on
amd64 and arm64 nodes, spreading over both) and declares every object as a typed resource.

Resources: one `pulumi:pulumi:StackReference`; per manifest object one
`kubernetes:apps/v1:Deployment`, `kubernetes:core/v1:Service` or
`kubernetes:core/v1:ServiceAccount`, named like the object. The Kubernetes provider is the
ambient one (the current kubeconfig context and its namespace).
Outputs: `deployedImages` (service -> image ref) and `frontendAddress` (the external IP or
host name of the `frontend-external` LoadBalancer Service; null without one).
"""

import functools
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# Pulumi runs `main: consumer.py` with runpy.run_path, which does not put the file's directory
# on sys.path; the pure modules beside it are imported from there.
if (here := os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.insert(0, here)

import consumer_config
import manifest_fetch
import manifest_render

RESOURCE_TYPES: Mapping[tuple[str, str], type[pulumi.CustomResource]] = {
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
}
"""The typed resource of each kind `manifest_render` accepts (a test keeps the two equal)."""


@dataclass(frozen=True)
class Declared:
    """The resources declared for the rendered objects."""

    resources: dict[str, pulumi.CustomResource]
    """`Kind/name` -> resource."""
    frontend_external: k8s.core.v1.Service | None
    """The LoadBalancer Service that exposes the frontend, when the manifest has one."""


def read_settings() -> consumer_config.ConsumerSettings:
    """The validated config; one error naming the key before any resource is declared."""
    config = pulumi.Config()
    values: dict[str, Any] = {"imagesStack": config.require("imagesStack")}
    # Declared with the default "" in Pulumi.yaml: empty means upstream's at the stack's commit.
    if manifests := config.get("manifests"):
        values["manifests"] = manifests
    if (spread := config.get("spreadAcrossArchitectures")) is not None:
        values["spreadAcrossArchitectures"] = spread
    for key in ("excludeServices", "thirdPartyImages", "replicas"):
        if (value := config.get_object(key)) is not None:
            values[key] = value
    try:
        return consumer_config.parse(values)
    except consumer_config.ConfigError as error:
        raise pulumi.RunError(str(error)) from error


def render(
    settings: consumer_config.ConsumerSettings, source_and_images: list[Any]
) -> manifest_render.Rendering:
    """Read and rewrite the manifests for the stack's outputs; one error naming what is wrong."""
    source, images = source_and_images
    stack = settings.images_stack
    try:
        where = manifest_fetch.location(settings.manifests, source, stack)
        documents = manifest_fetch.parse(manifest_fetch.read(where), where)
        rendering = manifest_render.render(documents, images, settings.render, stack)
    except (manifest_fetch.ManifestError, manifest_render.RenderError) as error:
        raise pulumi.RunError(str(error)) from error
    for warning in rendering.warnings:
        pulumi.log.warn(warning)
    return rendering


def declare(rendering: manifest_render.Rendering) -> Declared:
    """One typed resource per rendered object.

    Called inside `apply`: which objects exist depends on the manifest at the commit the
    StackReference names. StackReference outputs are known during preview, so the preview
    already lists every object with its final image.
    """
    resources = {}
    for obj in rendering.objects:
        resource_type = RESOURCE_TYPES[(obj["apiVersion"], obj["kind"])]
        # Top-level fields become keyword arguments; nested ones stay in the manifest's
        # camelCase, which the provider receives unchanged.
        fields = {_snake_case(key): value for key, value in obj.items()}
        resources[f"{obj['kind']}/{obj['metadata']['name']}"] = resource_type(
            obj["metadata"]["name"], **fields
        )
    frontend = resources.get(rendering.frontend_external or "")
    return Declared(resources, frontend if isinstance(frontend, k8s.core.v1.Service) else None)


def frontend_address(declared: Declared) -> pulumi.Output[str | None] | None:
    """The frontend's external address, once the cloud load balancer has one."""
    if declared.frontend_external is None:
        return None
    return declared.frontend_external.status.apply(external_address)


def external_address(status: dict[str, Any] | None) -> str | None:
    """The first ingress IP (or host name) of a LoadBalancer Service's status.

    The status is an output type, a dict whose attributes may shadow dict methods: read it
    with `dict.get`.
    """
    ingress = dict.get(dict.get(status or {}, "load_balancer") or {}, "ingress") or []
    first = ingress[0] if ingress else {}
    address = first.get("ip") or first.get("hostname")
    return address if isinstance(address, str) else None


def deployed_images(rendering: manifest_render.Rendering) -> dict[str, str]:
    return rendering.deployed


def _snake_case(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


settings = read_settings()
images_stack = pulumi.StackReference(settings.images_stack)
rendering = pulumi.Output.all(
    images_stack.get_output("source"), images_stack.get_output("images")
).apply(functools.partial(render, settings))
declared = rendering.apply(declare)

pulumi.export("deployedImages", rendering.apply(deployed_images))
pulumi.export("frontendAddress", declared.apply(frontend_address))
