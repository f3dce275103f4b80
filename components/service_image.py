"""ServiceImage: one service built for every configured platform and pushed as one tag.

Creates:
- `pulumi_docker_build.Image` `<name>-image`: a multi-platform build with the named buildx
  builder, pushed to `<registry>/<service>:<tag>`, OCI labels tying it to the upstream commit,
  and a per-service registry cache (mode max, errors ignored).

The provider exports the cache of one platform per multi-platform build (multi-platform registry
caches are unreliable: docker/buildx #1044, moby/buildkit #2822); full per-platform caching needs
one Image per platform, which `_image` is shaped for.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build

from plan.naming import CACHE_REF, IMAGE_REF


@dataclass(frozen=True)
class RegistryLogin:
    """Credentials for pushing (and reading the cache); kept in memory by the provider."""

    address: pulumi.Input[str]
    """Registry host the credentials apply to."""
    username: pulumi.Input[str]
    """User name (`oauth2accesstoken` for Artifact Registry)."""
    password: pulumi.Input[str]
    """Password or access token; must be a secret Output."""


@dataclass(frozen=True)
class ServiceImageArgs:
    """How to build and where to push one service."""

    service: str
    """Service name; the image name under the registry path."""
    platforms: Sequence[str]
    """Platforms of the image (`linux/amd64`, `linux/arm64`)."""
    registry: pulumi.Input[str]
    """Registry path the image is pushed under."""
    tag: str
    """Tag pushed (`tag` config)."""
    context: pulumi.Input[str]
    """Build context directory."""
    dockerfile: pulumi.Input[str]
    """Dockerfile to build (the patch component passes the patched one)."""
    labels: pulumi.Input[Mapping[str, str]]
    """Image labels: the OCI source labels plus any a caller adds (e.g. the applied patch id)."""
    builder: pulumi.Input[str]
    """Name of the buildx builder."""
    login: RegistryLogin | None
    """Credentials, or None for an anonymous registry."""
    cache_registry: pulumi.Input[str] | None
    """Registry path of the build cache; None builds without a cache."""


class ServiceImage(pulumi.ComponentResource):
    """A multi-platform image of one Online Boutique service."""

    digest: pulumi.Output[str]
    """Digest of the pushed index (`sha256:…`)."""
    ref: pulumi.Output[str]
    """`<registry>/<service>:<tag>@<digest>`: what a cluster should pull."""
    tag_ref: pulumi.Output[str]
    """`<registry>/<service>:<tag>`."""
    image: docker_build.Image
    """The Image resource, for resources that must follow the push (verification, an Index)."""

    def __init__(
        self, name: str, args: ServiceImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("boutique:service_image:ServiceImage", name, None, opts)
        self.tag_ref = pulumi.Output.format(
            IMAGE_REF, registry=args.registry, service=args.service, tag=args.tag
        )
        cache_ref = (
            None
            if args.cache_registry is None
            else pulumi.Output.format(CACHE_REF, registry=args.cache_registry, service=args.service)
        )
        self.image = self._image(f"{name}-image", args, args.platforms, self.tag_ref, cache_ref)
        self.digest = self.image.digest
        self.ref = pulumi.Output.concat(self.tag_ref, "@", self.image.digest)
        self.register_outputs({"digest": self.digest, "ref": self.ref, "tag_ref": self.tag_ref})

    def _image(
        self,
        name: str,
        args: ServiceImageArgs,
        platforms: Sequence[str],
        tag_ref: pulumi.Input[str],
        cache_ref: pulumi.Input[str] | None,
    ) -> docker_build.Image:
        """One Image of `platforms` pushed to `tag_ref`, with its own cache ref."""
        login = args.login
        return docker_build.Image(
            name,
            push=True,
            platforms=[docker_build.Platform(platform) for platform in platforms],
            tags=[tag_ref],
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=args.dockerfile),
            labels=args.labels,
            builder=docker_build.BuilderConfigArgs(name=args.builder),
            registries=[]
            if login is None
            else [
                docker_build.RegistryArgs(
                    address=login.address, username=login.username, password=login.password
                )
            ],
            cache_from=[]
            if cache_ref is None
            else [
                docker_build.CacheFromArgs(
                    registry=docker_build.CacheFromRegistryArgs(ref=cache_ref)
                )
            ],
            cache_to=[]
            if cache_ref is None
            else [
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=cache_ref,
                        mode=docker_build.CacheMode.MAX,
                        # A failed cache export must not fail a build that pushed fine.
                        ignore_error=True,
                    )
                )
            ],
            # Previews (pull requests) neither build nor write the cache deployments read; the
            # provider still checks every Dockerfile's syntax in preview, and CI builds the
            # patched Dockerfiles for real before merge.
            build_on_preview=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Deleting an Image deletes its tag in the registry; after a replacement caused by
                # a non-content change the new push is a no-op with the same digest, so the delete
                # would remove the live tag (pulumi-docker-build #581, #606). Images therefore
                # stay in the registry when their resource goes; the repository's cleanup
                # policies (or deleting the repository) remove them.
                retain_on_delete=True,
            ),
        )
