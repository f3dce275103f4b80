"""Deploy the images a boutique-multiarch stack exports to a GKE (or any Kubernetes) cluster.

Reads the `images` output of the stack named by the `imagesStack` config key through a
StackReference and declares, per service, one `apps/v1` Deployment whose container image is that
service's `ref` (`<registry>/<service>:<tag>@sha256:…`, so every node pulls the same index) and
whose pods may run on amd64 and arm64 nodes.

Resources: one `pulumi:pulumi:StackReference`, one `kubernetes:apps/v1:Deployment` per service.
The Kubernetes provider is the ambient one (the current kubeconfig context).
"""

import functools
import re
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# The services the boutique-multiarch program builds by default (Pulumi.yaml repeats this list
# as the `services` default; a test keeps the two equal).
DEFAULT_SERVICES = (
    "adservice",
    "cartservice",
    "checkoutservice",
    "currencyservice",
    "emailservice",
    "frontend",
    "paymentservice",
    "productcatalogservice",
    "recommendationservice",
    "shippingservice",
    "loadgenerator",
)

# The node label the kubelet sets from the node's own architecture.
ARCH_LABEL = "kubernetes.io/arch"
# The images are verified for exactly these architectures: pods must never land on a node pool of
# another architecture, where the image has no manifest to run.
ARCHITECTURES = ["amd64", "arm64"]
# GKE taints Arm node pools with kubernetes.io/arch=arm64:NoSchedule; without this toleration
# the pods would never be scheduled there even though the image runs natively.
ARM64_TOLERATION = k8s.core.v1.TolerationArgs(
    key=ARCH_LABEL, operator="Equal", value="arm64", effect="NoSchedule"
)

STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# Service names become label values and Deployment name prefixes: DNS-1123 labels, with room
# left for the random suffix Pulumi appends to auto-named resources.
SERVICE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,53}[a-z0-9])?")


def parse_images_stack(value: str) -> str:
    """Return the fully qualified stack name, or refuse it naming the key and the format."""
    if not STACK_NAME.fullmatch(value):
        raise pulumi.RunError(
            f"config imagesStack={value!r} is not a fully qualified stack name; "
            "allowed: <organization>/<project>/<stack>, e.g. organization/boutique-multiarch/dev"
        )
    return value


def parse_services(value: object) -> list[str]:
    """Return the service names, or refuse them naming the key and what is allowed."""
    if not isinstance(value, list) or not value:
        raise pulumi.RunError(f"config services={value!r} is not a non-empty list of service names")
    for name in value:
        if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
            raise pulumi.RunError(
                f"config services contains {name!r}; allowed: lowercase DNS labels "
                "(a-z, 0-9, '-'; at most 55 characters) such as 'frontend'"
            )
    duplicates = sorted({name for name in value if value.count(name) > 1})
    if duplicates:
        raise pulumi.RunError(f"config services lists {', '.join(duplicates)} more than once")
    return list(value)


def image_ref(images: Mapping[str, Any] | None, service: str, stack: str) -> str:
    """Return `images[service]["ref"]` of the referenced stack, or one error naming what lacks."""
    if not isinstance(images, Mapping):
        raise pulumi.RunError(
            f"stack {stack} has no `images` output; is it a boutique-multiarch stack?"
        )
    entry = images.get(service)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("ref"), str):
        exported = ", ".join(sorted(images)) or "none"
        raise pulumi.RunError(
            f"stack {stack} exports no image ref for service {service!r} (exported: {exported}); "
            "remove it from config services or add it to that stack"
        )
    ref: str = entry["ref"]
    return ref


def deployment(service: str, image: pulumi.Input[str]) -> k8s.apps.v1.Deployment:
    """One Deployment running `image`, schedulable on amd64 and arm64 nodes."""
    labels = {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "online-boutique"}
    any_supported_arch = k8s.core.v1.NodeSelectorTermArgs(
        match_expressions=[
            k8s.core.v1.NodeSelectorRequirementArgs(
                key=ARCH_LABEL, operator="In", values=ARCHITECTURES
            )
        ]
    )
    return k8s.apps.v1.Deployment(
        service,
        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=k8s.core.v1.PodSpecArgs(
                    containers=[k8s.core.v1.ContainerArgs(name=service, image=image)],
                    affinity=k8s.core.v1.AffinityArgs(
                        node_affinity=k8s.core.v1.NodeAffinityArgs(
                            required_during_scheduling_ignored_during_execution=(
                                k8s.core.v1.NodeSelectorArgs(
                                    node_selector_terms=[any_supported_arch]
                                )
                            )
                        )
                    ),
                    tolerations=[ARM64_TOLERATION],
                ),
            ),
        ),
    )


config = pulumi.Config()
images_stack = parse_images_stack(config.require("imagesStack"))
services = parse_services(config.get_object("services", list(DEFAULT_SERVICES)))

images = pulumi.StackReference(images_stack).get_output("images")
deployments = {
    service: deployment(
        service, images.apply(functools.partial(image_ref, service=service, stack=images_stack))
    )
    for service in services
}

pulumi.export("deployments", {service: d.metadata.name for service, d in deployments.items()})
