"""What ``--sbom`` adds to ``python -m verify --deep`` (plain and ``--sbom`` runs alternate), on
the deep data set and on a Go-heavy image; also the deep and shallow timings it was built with.
(``benchmarks/verify_throughput.py`` times the verifier against zlib and ISA-L on the 400 MB
two-layer image of the hardening work.)

    python benchmarks/verify_sbom.py [--repeat N]

Needs Debian's ``docker-registry`` and the busybox binaries that ``scripts/install-docker``
unpacks under ``.cache/busybox/{amd64,arm64}``; no Docker Engine. The data set is fixed and
built by this script (deterministic, seeded), then pushed to a registry it starts on 127.0.0.1:

- ``bench/deep:1``: an OCI index of linux/amd64 + linux/arm64. Each platform has 5 gzip layers
  (level 6, as BuildKit); each layer holds 11 MiB of seeded random bytes (incompressible) and 11
  copies of that platform's busybox (an ~1.9 MB ELF binary that compresses about 2:1), so about
  half of the compressed bytes are random data and half are ELF files. About 225 MB of
  compressed layers in all, 10 distinct layers.
- ``bench/svc-01:1`` ... ``bench/svc-22:1``: 22 small two-platform indexes (the size of the
  Online Boutique fleet twice over), each with its own configs, for the shallow timing.

Figures printed (medians over --repeat runs):

- deep: wall time of ``python -m verify bench/deep:1 --deep`` as a subprocess,
  process start included, and its throughput in MB/s of compressed layer bytes; also the same
  with one layer scanned at a time (the gain of layer parallelism);
- baselines: single-stream decompression of the same blobs, in memory, same run, with Python's
  ``zlib`` (the reference of the target) and with ISA-L (``isal``, what the verifier inflates
  with), so the share of the faster inflater is visible;
- ratio deep/zlib (target: at least 1.0) and deep/isal (what the whole pipeline, process
  start, HTTP, sha256 and tar parsing included, costs over bare inflation);
- the same deep run with ``--sbom DIR`` (SPDX documents from the same pass) and its overhead
  over the plain deep run (target: at most +10 %), and the rate at which a real Go binary is
  read for its build information (the SBOM's costliest per-byte work), and the plain and
  ``--sbom`` deep runs of ``bench/go:1`` (the host's platform; 2 layers of 3 copies each of
  Debian's ``docker-registry``, a 20 MB Go binary), where that work is all there is;
- peak RSS of the verifier process (it streams: no layer is held whole);
- shallow: 22 images in one process, and as 22 sequential processes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from isal import isal_zlib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.dockerenv import BUSYBOX_CACHE, start_registry  # noqa: E402
from tests.integration.registrypush import Pusher  # noqa: E402

SEED = 20261127
PLATFORMS = ("amd64", "arm64")
LAYERS_PER_PLATFORM = 5
RANDOM_BYTES_PER_LAYER = 11 << 20
ELF_COPIES_PER_LAYER = 11
SHALLOW_IMAGES = 22
GO_LAYERS = 2
GO_COPIES_PER_LAYER = 3


def layer_blob(arch: str, number: int, busybox: bytes) -> bytes:
    """One gzip layer: seeded random bytes plus copies of the platform's busybox."""
    noise = random.Random(f"{SEED}-{arch}-{number}").randbytes(RANDOM_BYTES_PER_LAYER)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        entries = [(f"data/random-{number}.bin", noise)] + [
            (f"usr/bin/tool-{number}-{copy}", busybox) for copy in range(ELF_COPIES_PER_LAYER)
        ]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)


def build_data_set(pusher: Pusher) -> dict[str, list[bytes]]:
    busybox = {arch: (BUSYBOX_CACHE / arch / "bin" / "busybox").read_bytes() for arch in PLATFORMS}
    jobs = [(arch, number) for arch in PLATFORMS for number in range(LAYERS_PER_PLATFORM)]
    with ThreadPoolExecutor(2) as pool:  # zlib releases the GIL: use both cores
        blobs = list(pool.map(lambda job: layer_blob(job[0], job[1], busybox[job[0]]), jobs))
    layers = {
        arch: [b for (a, _), b in zip(jobs, blobs, strict=True) if a == arch] for arch in PLATFORMS
    }
    pusher.image("bench/deep", "1", layers, "deep")
    tiny = {arch: [gzip.compress(b"", mtime=0)] for arch in PLATFORMS}
    for number in range(1, SHALLOW_IMAGES + 1):
        pusher.image(f"bench/svc-{number:02d}", "1", tiny, f"svc-{number}")
    return layers


def go_image(pusher: Pusher) -> tuple[str, float]:
    """``bench/go:1``: the host's platform only, layers of copies of a real Go binary (Debian's
    ``docker-registry``), where the SBOM reads every Go byte rather than headers. Returns the
    platform and the compressed megabytes."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    binary = Path(shutil.which("docker-registry") or "docker-registry").read_bytes()
    blobs = []
    for number in range(GO_LAYERS):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for copy in range(GO_COPIES_PER_LAYER):
                info = tarfile.TarInfo(f"app/registry-{number}-{copy}")
                info.size, info.mode, info.mtime = len(binary), 0o755, 0
                archive.addfile(info, io.BytesIO(binary))
        blobs.append(gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0))
    pusher.image("bench/go", "1", {arch: blobs}, "go")
    return f"linux/{arch}", sum(len(blob) for blob in blobs) / 1e6


def go_buildinfo_rate() -> tuple[str, float, float]:
    """MB/s of reading a real Go binary for its build information (in memory, one stream).

    The binary is Debian's ``docker-registry`` (needed here anyway); the deep data set holds no
    Go binary, and in a Go binary the SBOM reads every byte rather than a header.
    """
    from verify.sbom.binaries import BinaryReader

    path = Path(shutil.which("docker-registry") or "docker-registry")
    data = path.read_bytes()
    started = time.perf_counter()
    findings = BinaryReader(len(data)).read(io.BytesIO(data))
    elapsed = time.perf_counter() - started
    if findings.go is None:
        raise SystemExit(f"no Go build information found in {path}")
    return str(path), len(data) / 1e6, len(data) / 1e6 / elapsed


def inflate_seconds(blobs: list[bytes], module: Any = zlib) -> float:
    """Single-stream decompression of every blob, 1 MiB input chunks, timed alone."""
    started = time.perf_counter()
    for blob in blobs:
        inflater = module.decompressobj(16 + zlib.MAX_WBITS)
        for offset in range(0, len(blob), 1 << 20):
            inflater.decompress(blob[offset : offset + (1 << 20)])
    return time.perf_counter() - started


# Runs the verifier and reports its wall time and peak RSS. A small launcher process is used
# because a child forked straight from this script (which holds the data set in memory) would
# report this script's resident pages as its own peak.
LAUNCHER = """
import resource, subprocess, sys, time
workers, args = sys.argv[1], sys.argv[2:]
entry = ["-m", "verify"] if workers == "default" else [
    "-c",
    "import sys, verify.cli as cli; cli.LAYER_WORKERS = " + workers
    + "; sys.exit(cli.main(sys.argv[1:]))",
]
started = time.perf_counter()
code = subprocess.run([sys.executable, *entry, *args], stdout=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(code, elapsed, peak)
"""


def verify_run(*args: str, layer_workers: int | None = None) -> tuple[float, float]:
    """Wall seconds (process start included) and peak RSS (MB) of one ``python -m verify``.

    ``layer_workers`` overrides the number of layers scanned at once (for the comparison only;
    the CLI has no such option).
    """
    workers = "default" if layer_workers is None else str(layer_workers)
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, workers, *args], cwd=REPO, capture_output=True, text=True
    )
    code, elapsed, peak_kb = result.stdout.split()
    if code != "0":
        raise SystemExit(f"verify {' '.join(args)} exited {code}:\n{result.stderr}")
    return float(elapsed), int(peak_kb) / 1024


def verify_seconds(*args: str) -> float:
    return verify_run(*args)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    repeat = parser.parse_args().repeat

    with tempfile.TemporaryDirectory(prefix="verify-bench-") as scratch:
        registry = start_registry(Path(scratch))
        try:
            started = time.perf_counter()
            layers = build_data_set(Pusher(registry))
            blobs = [blob for arch in PLATFORMS for blob in layers[arch]]
            total_mb = sum(len(blob) for blob in blobs) / 1e6
            print(
                f"data set: {len(blobs)} layers, {total_mb:.1f} MB compressed "
                f"(built and pushed in {time.perf_counter() - started:.1f} s)"
            )

            deep_ref = f"{registry.address}/bench/deep:1"
            # Plain and --sbom runs alternate, so load from other work weighs on both alike.
            sbom_dir = str(Path(scratch) / "sbom")
            runs, sbom = [], []
            for _ in range(repeat):
                runs.append(verify_run(deep_ref, "--deep"))
                sbom.append(verify_run(deep_ref, "--deep", "--sbom", sbom_dir)[0])
            deep = [seconds for seconds, _ in runs]
            serial = [verify_run(deep_ref, "--deep", layer_workers=1)[0] for _ in range(repeat)]
            baseline = [inflate_seconds(blobs) for _ in range(repeat)]
            isal = [inflate_seconds(blobs, isal_zlib) for _ in range(repeat)]
            for label, times in (
                ("deep verify (process)", deep),
                ("  same, 1 layer at once", serial),
                ("  same, with --sbom", sbom),
                ("zlib, single stream", baseline),
                ("isal, single stream", isal),
            ):
                print(
                    f"{label:<23} {statistics.median(times):6.2f} s "
                    f"{total_mb / statistics.median(times):7.1f} MB/s   "
                    f"runs: {', '.join(f'{t:.2f}' for t in times)}"
                )
            deep_rate = total_mb / statistics.median(deep)
            print(
                f"ratio deep/zlib:        {deep_rate * statistics.median(baseline) / total_mb:.2f}x"
                " (target >= 1.0x)"
            )
            print(
                f"ratio deep/isal:        {deep_rate * statistics.median(isal) / total_mb:.2f}x"
                " (whole process vs bare in-memory inflation with the same library)"
            )
            overhead = statistics.median(sbom) / statistics.median(deep) - 1
            print(f"--sbom overhead:        {overhead * 100:+.1f} % (target <= +10 %)")
            go_platform, go_total_mb = go_image(Pusher(registry))
            go_ref = f"{registry.address}/bench/go:1"
            go_plain, go_sbom = [], []
            for _ in range(repeat):
                go_plain.append(verify_run(go_ref, "--deep", "--platform", go_platform)[0])
                go_sbom.append(
                    verify_run(go_ref, "--deep", "--platform", go_platform, "--sbom", sbom_dir)[0]
                )
            go_overhead = statistics.median(go_sbom) / statistics.median(go_plain) - 1
            print(
                f"Go-heavy image ({go_total_mb:.1f} MB): deep {statistics.median(go_plain):.2f} s, "
                f"with --sbom {statistics.median(go_sbom):.2f} s ({go_overhead * 100:+.1f} %)"
            )
            go_path, go_mb, go_rate = max(
                (go_buildinfo_rate() for _ in range(repeat)), key=lambda run: run[2]
            )
            print(f"Go build info read:     {go_rate:.0f} MB/s ({go_path}, {go_mb:.1f} MB, best)")
            print(f"verifier peak RSS:      {max(rss for _, rss in runs):.0f} MB")

            refs = [f"{registry.address}/bench/svc-{n:02d}:1" for n in range(1, SHALLOW_IMAGES + 1)]
            together = [verify_seconds(*refs) for _ in range(repeat)]
            one_by_one = [sum(verify_seconds(ref) for ref in refs) for _ in range(repeat)]
            print(
                f"shallow, {SHALLOW_IMAGES} images, one process:      "
                f"{statistics.median(together):.2f} s"
            )
            print(
                f"shallow, {SHALLOW_IMAGES} images, {SHALLOW_IMAGES} processes (serial): "
                f"{statistics.median(one_by_one):.2f} s"
            )
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
