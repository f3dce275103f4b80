"""Throughput of ``python -m verify --deep`` and the time to shallow-verify 22 images.

    python benchmarks/verify_throughput.py [--repeat N]

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
- ``bench/two-layer:1``: a linux/arm64 image of two gzip layers, about 400 MB compressed: one of
  about 280 MB that mixes seeded random files (incompressible) with copies of arm64 busybox
  (ELF files), and one of about 120 MB of 1 MiB random files. Few, large layers: the case where
  layer parallelism helps least and every per-byte check (sha256, descriptor size, tar
  checksums, the ``--max-layer-bytes`` count) shows most.

Figures printed (medians over --repeat runs):

- deep: wall time of ``python -m verify bench/deep:1 --deep`` as a subprocess,
  process start included, and its throughput in MB/s of compressed layer bytes; also the same
  with one layer scanned at a time (the gain of layer parallelism);
- baselines: single-stream decompression of the same blobs, in memory, same run, with Python's
  ``zlib`` (the reference of the target) and with ISA-L (``isal``, what the verifier inflates
  with), so the share of the faster inflater is visible;
- ratio deep/zlib (target: at least 1.0) and deep/isal (what the whole pipeline, process
  start, HTTP, sha256 and tar parsing included, costs over bare inflation), for ``bench/deep``
  and for ``bench/two-layer`` (each against zlib and ISA-L on its own blobs);
- peak RSS of the verifier process (it streams: no layer is held whole);
- CPU seconds of the verifier process (all threads) and of single-stream zlib: a figure that
  holds when other work loads the machine and the wall-time ratios do not;
- shallow: 22 images in one process, and as 22 sequential processes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
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
BIG_LAYER_RANDOM_FILES = 20
BIG_LAYER_RANDOM_BYTES = 9 << 20
"""Per random file of the ~280 MB layer (with the busybox copies below)."""
BIG_LAYER_ELF_COPIES = 110
SMALL_LAYER_FILES = 115
SMALL_LAYER_FILE_BYTES = 1 << 20
PUSH_TIMEOUT = 600.0
"""Seconds one upload may take (the 280 MB layer on a loaded machine)."""


def layer_blob(arch: str, number: int, busybox: bytes) -> bytes:
    """One gzip layer: seeded random bytes plus copies of the platform's busybox."""
    noise = random.Random(f"{SEED}-{arch}-{number}").randbytes(RANDOM_BYTES_PER_LAYER)
    entries = [(f"data/random-{number}.bin", noise)] + [
        (f"usr/bin/tool-{number}-{copy}", busybox) for copy in range(ELF_COPIES_PER_LAYER)
    ]
    return tar_gzip(entries)


def tar_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    """An uncompressed tar archive of ``(name, data)`` files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gzip(entries: list[tuple[str, bytes]]) -> bytes:
    """A gzip (level 6, as BuildKit) tar layer of ``(name, data)`` files."""
    return gzip.compress(tar_bytes(entries), compresslevel=6, mtime=0)


def two_layer_blobs(busybox: bytes) -> list[bytes]:
    """The ~280 MB layer (random files and ELF files interleaved) and the ~120 MB layer."""
    rng = random.Random(f"{SEED}-two-layer")
    big: list[tuple[str, bytes]] = []
    per_file = BIG_LAYER_ELF_COPIES // BIG_LAYER_RANDOM_FILES
    for number in range(BIG_LAYER_RANDOM_FILES):
        big.append((f"opt/data/random-{number}.bin", rng.randbytes(BIG_LAYER_RANDOM_BYTES)))
        big += [(f"usr/lib/tool-{number}-{copy}", busybox) for copy in range(per_file)]
    small = [
        (f"srv/assets/file-{number}.bin", rng.randbytes(SMALL_LAYER_FILE_BYTES))
        for number in range(SMALL_LAYER_FILES)
    ]
    with ThreadPoolExecutor(2) as pool:  # zlib releases the GIL: use both cores
        return list(pool.map(tar_gzip, [big, small]))


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


def build_two_layer_image(pusher: Pusher) -> list[bytes]:
    busybox = (BUSYBOX_CACHE / "arm64" / "bin" / "busybox").read_bytes()
    blobs = two_layer_blobs(busybox)
    pusher.image("bench/two-layer", "1", {"arm64": blobs}, "two-layer")
    return blobs


def compare(label: str, ref: str, blobs: list[bytes], repeat: int, *args: str) -> None:
    """Time deep verification of ``ref`` against single-stream zlib and ISA-L on ``blobs``,
    in the same run, and print the figures, the two ratios and the verifier's peak RSS."""
    total_mb = sum(len(blob) for blob in blobs) / 1e6
    runs = [verify_run(ref, "--deep", *args) for _ in range(repeat)]
    deep = [seconds for seconds, _, _ in runs]
    zlib_runs = [inflate_run(blobs) for _ in range(repeat)]
    baseline = [seconds for seconds, _ in zlib_runs]
    isal = [inflate_seconds(blobs, isal_zlib) for _ in range(repeat)]
    print(f"{label}: {len(blobs)} layers, {total_mb:.1f} MB compressed")
    for name, times in (
        ("  deep verify (process)", deep),
        ("  zlib, single stream", baseline),
        ("  isal, single stream", isal),
    ):
        print(
            f"{name:<25} {statistics.median(times):6.2f} s "
            f"{total_mb / statistics.median(times):7.1f} MB/s   "
            f"runs: {', '.join(f'{t:.2f}' for t in times)}"
        )
    deep_rate = total_mb / statistics.median(deep)
    print(
        f"  ratio deep/zlib:        {deep_rate * statistics.median(baseline) / total_mb:.2f}x"
        " (target >= 1.0x)"
    )
    print(
        f"  ratio deep/isal:        {deep_rate * statistics.median(isal) / total_mb:.2f}x"
        " (whole process vs bare in-memory inflation with the same library)"
    )
    print(f"  verifier peak RSS:      {max(rss for _, rss, _ in runs):.0f} MB")
    # CPU seconds do not depend on how many other processes share the cores; the verifier's
    # include process start, HTTP and sha256 (the registry's own CPU is not counted).
    verifier_cpu = statistics.median(cpu for _, _, cpu in runs)
    zlib_cpu = statistics.median(cpu for _, cpu in zlib_runs)
    print(
        f"  CPU seconds:            verifier {verifier_cpu:.2f}, zlib {zlib_cpu:.2f} "
        f"(zlib/verifier {zlib_cpu / verifier_cpu:.2f}x)"
    )


def inflate_seconds(blobs: list[bytes], module: Any = zlib) -> float:
    """Single-stream decompression of every blob, 1 MiB input chunks, timed alone."""
    return inflate_run(blobs, module)[0]


def inflate_run(blobs: list[bytes], module: Any = zlib) -> tuple[float, float]:
    """Wall and CPU seconds of :func:`inflate_seconds`' work (one thread: CPU = its own)."""
    started, cpu = time.perf_counter(), time.process_time()
    for blob in blobs:
        inflater = module.decompressobj(16 + zlib.MAX_WBITS)
        for offset in range(0, len(blob), 1 << 20):
            inflater.decompress(blob[offset : offset + (1 << 20)])
    return time.perf_counter() - started, time.process_time() - cpu


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
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(code, elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def verify_run(*args: str, layer_workers: int | None = None) -> tuple[float, float, float]:
    """Wall seconds (process start included), peak RSS (MB) and CPU seconds (user + system,
    all threads) of one ``python -m verify``.

    ``layer_workers`` overrides the number of layers scanned at once (for the comparison only;
    the CLI has no such option).
    """
    workers = "default" if layer_workers is None else str(layer_workers)
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, workers, *args], cwd=REPO, capture_output=True, text=True
    )
    code, elapsed, peak_kb, cpu = result.stdout.split()
    if code != "0":
        raise SystemExit(f"verify {' '.join(args)} exited {code}:\n{result.stderr}")
    return float(elapsed), int(peak_kb) / 1024, float(cpu)


def verify_seconds(*args: str) -> float:
    return verify_run(*args)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    repeat = parser.parse_args().repeat

    with tempfile.TemporaryDirectory(prefix="verify-bench-") as scratch:
        registry = start_registry(Path(scratch), on_disk=True)
        try:
            started = time.perf_counter()
            layers = build_data_set(Pusher(registry, PUSH_TIMEOUT))
            blobs = [blob for arch in PLATFORMS for blob in layers[arch]]
            total_mb = sum(len(blob) for blob in blobs) / 1e6
            print(
                f"data set: {len(blobs)} layers, {total_mb:.1f} MB compressed "
                f"(built and pushed in {time.perf_counter() - started:.1f} s)"
            )

            deep_ref = f"{registry.address}/bench/deep:1"
            compare("deep image", deep_ref, blobs, repeat)
            serial = [verify_run(deep_ref, "--deep", layer_workers=1)[0] for _ in range(repeat)]
            print(
                f"  same, 1 layer at once   {statistics.median(serial):6.2f} s "
                f"{total_mb / statistics.median(serial):7.1f} MB/s   "
                f"runs: {', '.join(f'{t:.2f}' for t in serial)}"
            )

            started = time.perf_counter()
            two_layer = build_two_layer_image(Pusher(registry, PUSH_TIMEOUT))
            print(f"two-layer image built and pushed in {time.perf_counter() - started:.1f} s")
            two_layer_ref = f"{registry.address}/bench/two-layer:1"
            compare(
                "two-layer image", two_layer_ref, two_layer, repeat, "--platform", "linux/arm64"
            )

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
