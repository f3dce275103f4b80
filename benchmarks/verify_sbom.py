"""What ``--sbom`` adds to ``python -m verify --deep``: plain and ``--sbom`` runs alternate, back
to back, on the deep data set of ``benchmarks/verify_throughput.py`` and on a Go-heavy image.

    python benchmarks/verify_sbom.py [--repeat N]

Needs Debian's ``docker-registry`` (a registry to push to, and the real Go binary of the Go-heavy
image) and the busybox binaries that ``scripts/install-docker`` unpacks under
``.cache/busybox/{amd64,arm64}``; no Docker Engine. The images, pushed to a registry the script
starts on 127.0.0.1:

- ``bench/deep:1``: ``verify_throughput``'s deep image (two platforms, 5 gzip layers of seeded
  random bytes and busybox copies, about 225 MB compressed): ELF files that cost the SBOM
  their headers only;
- ``bench/go:1``: the host's platform only, 2 layers of 3 copies each of Debian's
  ``docker-registry`` (a stripped, externally linked 20 MB Go binary, Go 1.18 or later), where
  the SBOM reads every Go binary for its build information.

Figures printed (medians over --repeat pairs of runs):

- for each image: wall time and CPU seconds (user + system, all threads, process start
  included) of the plain and the ``--sbom`` run, and the overhead of ``--sbom`` on both
  (target: at most +10 %). CPU seconds hold better than wall time when other work loads the
  machine; the runs of each pair follow each other, so load weighs on both alike;
- the verifier's peak RSS, plain and with ``--sbom``;
- the CPU time of scanning one uncompressed Go layer in memory with and without the SBOM's
  capture (the per-byte work alone, without inflation, hashing and HTTP).
"""

from __future__ import annotations

import argparse
import io
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from verify_throughput import (  # noqa: E402  (this directory, next to the script)
    PUSH_TIMEOUT,
    build_data_set,
    tar_bytes,
    tar_gzip,
    verify_run,
)

from tests.integration.dockerenv import start_registry  # noqa: E402
from tests.integration.registrypush import Pusher  # noqa: E402

GO_LAYERS = 2
GO_COPIES_PER_LAYER = 3


def go_binary_path() -> Path:
    return Path(shutil.which("docker-registry") or "docker-registry")


def go_image(pusher: Pusher) -> tuple[str, float]:
    """Push ``bench/go:1``; returns its platform and its compressed megabytes."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    binary = go_binary_path().read_bytes()
    blobs = [
        tar_gzip([(f"app/registry-{number}-{copy}", binary) for copy in range(GO_COPIES_PER_LAYER)])
        for number in range(GO_LAYERS)
    ]
    pusher.image("bench/go", "1", {arch: blobs}, "go")
    return f"linux/{arch}", sum(len(blob) for blob in blobs) / 1e6


def go_scan_cost(repeat: int) -> tuple[float, float]:
    """CPU milliseconds of scanning an uncompressed in-memory layer of 3 copies of the Go
    binary without and with the SBOM's capture (medians): the per-byte work the SBOM adds,
    without inflation, hashing or HTTP around it."""
    from verify.sbom.capture import LayerCapture
    from verify.tarscan import scan_tar

    binary = go_binary_path().read_bytes()
    layer = tar_bytes([(f"app/registry-{copy}", binary) for copy in range(GO_COPIES_PER_LAYER)])

    def scan(capture: bool) -> float:
        started = time.thread_time()
        result = scan_tar(io.BytesIO(layer), capture=LayerCapture() if capture else None)
        elapsed = time.thread_time() - started
        if capture and (result.inventory is None or len(result.inventory.binaries) != 3):
            raise SystemExit(f"no Go build information read from {go_binary_path()}")
        return elapsed * 1000

    plain, captured = [], []
    for _ in range(repeat):
        plain.append(scan(False))
        captured.append(scan(True))
    return statistics.median(plain), statistics.median(captured)


def sbom_overhead(label: str, repeat: int, sbom_dir: str, *args: str) -> None:
    """Alternate plain and ``--sbom`` runs of ``verify *args --deep`` and print the figures."""
    plain, sbom = [], []
    for _ in range(repeat):
        plain.append(verify_run(*args, "--deep"))
        sbom.append(verify_run(*args, "--deep", "--sbom", sbom_dir))
    print(label)
    for name, runs in (("  plain --deep", plain), ("  with --sbom", sbom)):
        wall = [seconds for seconds, _, _ in runs]
        cpu = [seconds for _, _, seconds in runs]
        print(
            f"{name:<15} wall {statistics.median(wall):5.2f} s  CPU {statistics.median(cpu):5.2f} s"
            f"  peak RSS {max(rss for _, rss, _ in runs):4.0f} MB"
            f"   wall runs: {', '.join(f'{t:.2f}' for t in wall)}"
        )
    for what, position in (("wall", 0), ("CPU", 2)):
        ratio = statistics.median(run[position] for run in sbom) / statistics.median(
            run[position] for run in plain
        )
        print(f"  --sbom overhead ({what}): {(ratio - 1) * 100:+.1f} % (target <= +10 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5, help="pairs of runs per figure (median)")
    repeat = parser.parse_args().repeat

    with tempfile.TemporaryDirectory(prefix="verify-bench-") as scratch:
        registry = start_registry(Path(scratch), on_disk=True)
        try:
            pusher = Pusher(registry, PUSH_TIMEOUT)
            layers = build_data_set(pusher)
            total_mb = sum(len(blob) for blobs in layers.values() for blob in blobs) / 1e6
            sbom_dir = str(Path(scratch) / "sbom")
            deep_ref = f"{registry.address}/bench/deep:1"
            sbom_overhead(f"deep image ({total_mb:.1f} MB compressed)", repeat, sbom_dir, deep_ref)

            go_platform, go_mb = go_image(pusher)
            go_ref = f"{registry.address}/bench/go:1"
            sbom_overhead(
                f"Go-heavy image ({go_mb:.1f} MB compressed, {go_platform})",
                repeat,
                sbom_dir,
                go_ref,
                "--platform",
                go_platform,
            )
            plain_ms, captured_ms = go_scan_cost(repeat)
            print(
                f"Go layer scan in memory ({GO_COPIES_PER_LAYER} copies, uncompressed): "
                f"CPU {plain_ms:.0f} ms plain, {captured_ms:.0f} ms with the SBOM capture"
            )
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
