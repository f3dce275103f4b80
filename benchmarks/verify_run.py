"""Cost of the runtime proof: ``python -m verify --run`` per platform, and what it adds.

    python benchmarks/verify_run.py [--repeat N]

Needs what the integration tests need (``scripts/install-docker``): a Docker Engine with the
containerd image store, buildx and QEMU for linux/arm64, Debian's ``docker-registry``, and the
busybox binaries under ``.cache/busybox/{amd64,arm64}``. The script starts a registry on
127.0.0.1, builds and pushes one two-platform image (busybox ``httpd`` serving one page, FROM
scratch: the smallest image that serves HTTP), then times, as subprocesses (process start,
registry reads, ``docker pull``, ``docker run``, the probe and the removal of the container and
the pulled image included):

- ``--run --probe http:8080/`` of linux/amd64 alone (native on an amd64 host) and of
  linux/arm64 alone (through QEMU), and the start-to-probe seconds the tool reports for each;
- the verification of both platforms with ``--deep`` (what every stack runs) without and with
  ``--run`` (both platforms started at once), and the difference: the wall time ``--run`` adds
  to each verification Command.

Figures are medians over ``--repeat`` runs (default 5). The image is tiny, so the figures are
the fixed cost of the proof; a real service adds its own pull and start-up time (Java and
Python under QEMU start in tens of seconds).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.dockerenv import (  # noqa: E402
    BUSYBOX_CACHE,
    buildx_build,
    check_docker_engine,
    remove_local_images,
    start_registry,
)

PLATFORMS = ("linux/amd64", "linux/arm64")
DOCKERFILE = """\
FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "sh", "-c", \\
     "/bin/busybox --install -s /bin && mkdir -p /www && echo ok > /www/index.html"]
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""
RUN = ("--run", "--probe", "http:8080/")


def verify(ref: str, *arguments: str) -> tuple[float, dict[str, object]]:
    """Wall seconds of one `python -m verify REF --json ARGS...` and its document."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "verify", ref, "--json", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"verify {ref} {' '.join(arguments)} failed:\n{result.stderr}")
    return elapsed, json.loads(result.stdout)


def probe_seconds(document: dict[str, object], platform: str) -> float:
    platforms = document["platforms"]
    assert isinstance(platforms, dict)
    return float(platforms[platform]["run"]["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    check_docker_engine(PLATFORMS)
    with tempfile.TemporaryDirectory(prefix="bench-run-") as directory:
        work = Path(directory)
        registry = start_registry(work)
        try:
            context = work / "context"
            context.mkdir()
            for arch in ("amd64", "arm64"):
                target = context / f"busybox-{arch}"
                shutil.copyfile(BUSYBOX_CACHE / arch / "bin" / "busybox", target)
                target.chmod(0o755)
            (context / "Dockerfile").write_text(DOCKERFILE)
            tag = f"{registry.address}/bench/httpd:1"
            digest = buildx_build(context, tag, PLATFORMS)
            ref = f"{registry.address}/bench/httpd@{digest}"
            figures: dict[str, list[float]] = {}
            for _ in range(repeat):
                for platform in PLATFORMS:
                    wall, document = verify(ref, "--platform", platform, *RUN)
                    figures.setdefault(f"run {platform} alone: wall", []).append(wall)
                    figures.setdefault(f"run {platform} alone: start to probe", []).append(
                        probe_seconds(document, platform)
                    )
                without, _ = verify(ref, "--deep")
                with_run, _ = verify(ref, "--deep", *RUN)
                figures.setdefault("both platforms --deep: wall", []).append(without)
                figures.setdefault("both platforms --deep --run: wall", []).append(with_run)
                figures.setdefault("added by --run", []).append(with_run - without)
        finally:
            registry.stop()
            remove_local_images(registry.address)
    print(f"verify --run on a two-platform busybox httpd image; medians of {repeat} runs")
    for name, values in figures.items():
        print(f"  {name:<40} {statistics.median(values):6.2f} s")


if __name__ == "__main__":
    main()
