"""Real two-platform builds of the fixture Dockerfiles, patched by `python -m patches apply`.

Each fixture under tests/fixtures/patches/ is shaped like an upstream pattern (Python base
stage on the build platform, Node builder with a native step, Go-style cross-compile with and
without pinned TARGETOS/TARGETARCH defaults and a pinned global BUILDPLATFORM). Their FROM
images are mapped to the busybox test base with `--build-context NAME=docker-image://REF`, so
the files stay byte-identical to the ones the fixture definitions record. A build stage
"compiles" by copying its own /bin/busybox (a binary of the platform the stage runs on) or,
when cross-compiling, /opt/cross/busybox-$TARGETARCH; it also writes the TARGETOS/TARGETARCH it
saw. The evidence is read from the pushed image's layers in the registry: the ELF e_machine of
those files, and that text. Every patched case has its control: the same check on the
unpatched file must fail.
"""

from __future__ import annotations

import gzip
import io
import json
import platform
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import BuildxBuild
from tests.integration.dockerenv import Registry, image_platforms, read_manifest, registry_get

pytestmark = [pytest.mark.docker, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "patches"
PLATFORMS = ("linux/amd64", "linux/arm64")
ELF_MACHINES = {0x3E: "linux/amd64", 0xB7: "linux/arm64"}
BUILD_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}[platform.machine()]
# The images the fixtures name, all served by the busybox test base.
BASE_IMAGES = (
    "python:3.12-alpine",
    "python:3.14-alpine",
    "node:20-alpine",
    "alpine:3.20",
    "golang:1.23-alpine",
)

ImageFiles = dict[str, bytes]
Check = Callable[[str, ImageFiles], list[str]]


def elf_platform(content: bytes) -> str:
    """The platform an ELF file was built for, from its e_machine field."""
    if content[:4] != b"\x7fELF":
        return "not ELF"
    machine = int.from_bytes(content[18:20], "little")
    return ELF_MACHINES.get(machine, f"e_machine {machine:#x}")


def expect_elf(files: ImageFiles, path: str, expected: str, why: str) -> list[str]:
    if path not in files:
        return [f"/{path} is missing"]
    found = elf_platform(files[path])
    return [] if found == expected else [f"/{path} ({why}) is {found}, expected {expected}"]


def python_check(site_packages: str) -> Check:
    def check(target: str, files: ImageFiles) -> list[str]:
        return expect_elf(files, "bin/busybox", target, "interpreter from base") + expect_elf(
            files, f"{site_packages}/_native.so", target, "extension built in builder"
        )

    return check


def node_check(target: str, files: ImageFiles) -> list[str]:
    addon = "usr/src/app/node_modules/pprof/build/Release/pprof.node"
    return expect_elf(files, addon, target, "native addon built in builder") + expect_elf(
        files, "bin/busybox", target, "runtime"
    )


def go_check(target: str, files: ImageFiles) -> list[str]:
    seen = files.get("app/target", b"").decode().strip()
    problems = [] if seen == target else [f"the builder saw TARGETOS/TARGETARCH {seen!r}"]
    return (
        problems
        + expect_elf(files, "app/server", target, "cross-compiled binary")
        + expect_elf(files, "app/build-tool", BUILD_PLATFORM, "builder stays on build platform")
    )


WANTED = {
    "pysvc": (
        "bin/busybox",
        "usr/local/lib/python3.12/site-packages/_native.so",
        "usr/local/lib/python3.14/site-packages/_native.so",
    ),
    "nodesvc": ("bin/busybox", "usr/src/app/node_modules/pprof/build/Release/pprof.node"),
    "gosvc": ("app/server", "app/build-tool", "app/target"),
}

# (fixture tree, service, check, what `apply` reports for the file)
CASES = [
    ("old", "pysvc", python_check("usr/local/lib/python3.12/site-packages"), "patched"),
    ("old", "nodesvc", node_check, "patched"),
    ("old", "gosvc", go_check, "untouched"),
    ("new", "pysvc", python_check("usr/local/lib/python3.14/site-packages"), "patched"),
    ("new", "nodesvc", node_check, "patched"),
    ("new", "gosvc", go_check, "patched"),
]
IDS = [f"{tree}-{service}" for tree, service, _, _ in CASES]


def patch_with_cli(root: Path, service: str) -> str:
    """Run the project's CLI on the tree; return the status it reports for the service."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "patches", "apply", str(root), "--service", service),
            *("--json", "--definitions", str(FIXTURES / "definitions.toml")),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["files"]
    return str(entry["status"])


def build(
    buildx_build: BuildxBuild, busybox_base: str, context: Path, repository: str, base: str
) -> None:
    aliases = [f"--build-context={name}=docker-image://{busybox_base}" for name in BASE_IMAGES]
    buildx_build(context, f"{base}/{repository}:1", PLATFORMS, aliases)


def read_files(
    registry: Registry, repository: str, wanted: tuple[str, ...]
) -> dict[str, ImageFiles]:
    """Per platform, the wanted files as the image's layers leave them (later layers win)."""
    _, index = read_manifest(registry, repository, "1")
    images = image_platforms(index)
    assert sorted(images) == sorted(PLATFORMS), f"index platforms: {sorted(images)}"
    result: dict[str, ImageFiles] = {}
    for name, digest in images.items():
        _, manifest = read_manifest(registry, repository, digest)
        files: ImageFiles = {}
        for layer in manifest["layers"]:
            blob, _ = registry_get(
                registry, f"{repository}/blobs/{layer['digest']}", credentials=registry.credentials
            )
            if blob[:2] == b"\x1f\x8b":
                blob = gzip.decompress(blob)
            with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
                for member in archive.getmembers():
                    path = member.name.removeprefix("./")
                    if path in wanted and member.isfile():
                        extracted = archive.extractfile(member)
                        assert extracted is not None
                        files[path] = extracted.read()
        result[name] = files
    return result


def build_and_check(
    tree: str,
    service: str,
    check: Check,
    patched: bool,
    tmp_path: Path,
    buildx_build: BuildxBuild,
    busybox_base: str,
    registry: Registry,
) -> tuple[str | None, dict[str, list[str]]]:
    root = tmp_path / tree
    shutil.copytree(FIXTURES / tree, root)
    status = patch_with_cli(root, service) if patched else None
    variant = "patched" if patched else "pristine"
    repository = f"patches/{tree}-{service}-{variant}"
    build(buildx_build, busybox_base, root / "src" / service, repository, registry.address)
    files = read_files(registry, repository, WANTED[service])
    return status, {target: check(target, files[target]) for target in PLATFORMS}


@pytest.mark.parametrize(("tree", "service", "check", "status"), CASES, ids=IDS)
def test_patched_build_holds_target_platform_binaries(
    tree: str,
    service: str,
    check: Check,
    status: str,
    tmp_path: Path,
    buildx_build: BuildxBuild,
    busybox_base: str,
    registry: Registry,
) -> None:
    reported, problems = build_and_check(
        tree, service, check, True, tmp_path, buildx_build, busybox_base, registry
    )
    assert reported == status
    assert problems == {"linux/amd64": [], "linux/arm64": []}


@pytest.mark.parametrize(
    ("tree", "service", "check", "status"),
    [case for case in CASES if case[3] == "patched"],
    ids=[i for i, case in zip(IDS, CASES, strict=True) if case[3] == "patched"],
)
def test_control_unpatched_build_fails_the_same_check(
    tree: str,
    service: str,
    check: Check,
    status: str,
    tmp_path: Path,
    buildx_build: BuildxBuild,
    busybox_base: str,
    registry: Registry,
) -> None:
    _, problems = build_and_check(
        tree, service, check, False, tmp_path, buildx_build, busybox_base, registry
    )
    wrong_image, expected = control_failures(tree, service)
    assert set(expected) <= set(problems[wrong_image]), problems


def control_failures(tree: str, service: str) -> tuple[str, list[str]]:
    """Which image of the unpatched build is wrong, and what the check must report for it."""
    other = next(p for p in PLATFORMS if p != BUILD_PLATFORM)
    if service == "gosvc":
        # The pinned defaults make every image an amd64 build, whatever the build host.
        return "linux/arm64", [
            "the builder saw TARGETOS/TARGETARCH 'linux/amd64'",
            "/app/server (cross-compiled binary) is linux/amd64, expected linux/arm64",
        ]
    if service == "nodesvc":
        addon = "usr/src/app/node_modules/pprof/build/Release/pprof.node"
        return other, [
            f"/{addon} (native addon built in builder) is {BUILD_PLATFORM}, expected {other}"
        ]
    version = "3.12" if tree == "old" else "3.14"
    native = f"usr/local/lib/python{version}/site-packages/_native.so"
    return other, [
        f"/bin/busybox (interpreter from base) is {BUILD_PLATFORM}, expected {other}",
        f"/{native} (extension built in builder) is {BUILD_PLATFORM}, expected {other}",
    ]


def test_untouched_cross_compile_stays_byte_identical_and_correct(tmp_path: Path) -> None:
    """The v0-shaped Go cross-compile needs no patch; its build is checked in the test above."""
    root = tmp_path / "old"
    shutil.copytree(FIXTURES / "old", root)
    assert patch_with_cli(root, "gosvc") == "untouched"
    dockerfile = "src/gosvc/Dockerfile"
    assert (root / dockerfile).read_bytes() == (FIXTURES / "old" / dockerfile).read_bytes()
