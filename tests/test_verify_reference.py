"""Reference and platform parsing: accepted forms, HTTP vs HTTPS choice, and rejected input."""

import pytest

from verify.platforms import Platform, PlatformError, parse_platform
from verify.reference import ReferenceError, is_loopback, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "scheme"),
    [
        ("127.0.0.1:5000/base/busybox:1", "127.0.0.1:5000", "base/busybox", "1", None, "http"),
        ("localhost:5000/app:v1.2", "localhost:5000", "app", "v1.2", None, "http"),
        ("localhost/app:1", "localhost", "app", "1", None, "http"),
        ("LocalHost/app:1", "LocalHost", "app", "1", None, "http"),
        ("127.1.2.3/a/b/c:t", "127.1.2.3", "a/b/c", "t", None, "http"),
        (f"[::1]:5000/x/y@{DIGEST}", "[::1]:5000", "x/y", None, DIGEST, "http"),
        (
            "us-docker.pkg.dev/proj/repo/frontend:v0",
            "us-docker.pkg.dev",
            "proj/repo/frontend",
            "v0",
            None,
            "https",
        ),
        (
            f"europe-west1-docker.pkg.dev/p/r/cart:1@{DIGEST}",
            "europe-west1-docker.pkg.dev",
            "p/r/cart",
            "1",
            DIGEST,
            "https",
        ),
        (
            "registry.example:443/a_b/c-d__e.f:latest",
            "registry.example:443",
            "a_b/c-d__e.f",
            "latest",
            None,
            "https",
        ),
        ("128.0.0.1:5000/a:1", "128.0.0.1:5000", "a", "1", None, "https"),
    ],
)
def test_valid_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None, scheme: str
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert ref.scheme == scheme
    assert str(ref) == text
    assert ref.manifest_reference == (digest or tag)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("busybox:1", "no registry host"),
        (
            "library/busybox:1",
            "'library' is not a registry host (needs a dot, a port or 'localhost')",
        ),
        (
            "127.0.0.1:5000/Upper/case:1",
            "repository 'Upper/case' is not valid (lowercase components separated by '/')",
        ),
        ("127.0.0.1:5000/a:", "tag '' is not valid (letters, digits, '_', '.', '-'; max 128)"),
        (
            "127.0.0.1:5000/a:" + "t" * 129,
            f"tag '{'t' * 129}' is not valid (letters, digits, '_', '.', '-'; max 128)",
        ),
        (
            "127.0.0.1:5000/a:bad/tag",
            "repository 'a:bad/tag' is not valid (lowercase components separated by '/')",
        ),
        ("127.0.0.1:5000/a", "neither a tag nor a digest"),
        (
            "127.0.0.1:5000/a@sha256:abc",
            "digest 'sha256:abc' is not sha256: followed by 64 lowercase hex digits",
        ),
        (
            "127.0.0.1:5000/a@md5:" + "0" * 32,
            f"digest 'md5:{'0' * 32}' is not sha256: followed by 64 lowercase hex digits",
        ),
        (
            f"127.0.0.1:5000/a@{DIGEST.upper()}",
            f"digest '{DIGEST.upper()}' is not sha256: followed by 64 lowercase hex digits",
        ),
        (
            "127.0.0.1:5000//a:1",
            "repository '/a' is not valid (lowercase components separated by '/')",
        ),
        (
            f"127.0.0.1:5000/a@{DIGEST}@x",
            f"digest '{DIGEST}@x' is not sha256: followed by 64 lowercase hex digits",
        ),
        (
            "127.0.0.1:5000/x/a:b/c",
            "repository 'x/a:b/c' is not valid (lowercase components separated by '/')",
        ),
        (
            "127.0.0.1:5000/a/:1",
            "repository 'a/' is not valid (lowercase components separated by '/')",
        ),
        (
            "127.0.0.1:5000/a:b:c",
            "repository 'a:b' is not valid (lowercase components separated by '/')",
        ),
        (
            "localhost.:1/a:1",
            "'localhost.:1' is not a registry host (needs a dot, a port or 'localhost')",
        ),
    ],
)
def test_invalid_references_name_the_problem(text: str, complaint: str) -> None:
    with pytest.raises(ReferenceError) as raised:
        parse_reference(text)
    assert str(raised.value) == (
        f"image reference {text!r}: {complaint}; expected host[:port]/repository[:tag] or "
        "host[:port]/repository[:tag]@sha256:<64 hex>"
    )


def test_a_tag_of_128_characters_is_the_longest_accepted() -> None:
    assert parse_reference("127.0.0.1:5000/a:" + "t" * 128).tag == "t" * 128


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("localhost.example", False),
        ("gcr.io", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("Linux/ARM64", Platform("linux", "arm64")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
    ],
)
def test_platforms_are_normalised(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


def test_arm64_matches_arm64_v8_but_arm_variants_differ() -> None:
    assert Platform.of("linux", "arm64", "v8") == Platform.of("linux", "arm64")
    assert Platform.of("linux", "arm", "v7") != Platform.of("linux", "arm", "v6")
    assert str(Platform.of("linux", "arm64", "v8")) == "linux/arm64"


@pytest.mark.parametrize("text", ["linux", "linux/", "linux/arm64/v8/x", "linux amd64", ""])
def test_invalid_platforms(text: str) -> None:
    with pytest.raises(PlatformError, match="expected os/architecture"):
        parse_platform(text)


def test_a_variant_is_part_of_a_platform_name() -> None:
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"
    assert str(Platform("linux", "arm64")) == "linux/arm64"
