"""What the Pulumi CLI step of `scripts/local-up` costs: a first install and a reuse.

    python benchmarks/pulumi_install.py [--size-mb N] [--repeat N]

Serves a release-shaped archive from 127.0.0.1 (the tests' stub `pulumi` plus N MB of
incompressible data beside it; default 100, about the unpacked size of a Pulumi 3.2xx release:
Alpine's pulumi 3.243.0 package installs 105.9 MiB) and runs `python -m host.local_up pulumi`
as a process, as scripts/local-up does: download, SHA-256, unpack, `pulumi version`, rename.
Prints the median wall time of a first install and of a second run (which finds the install
and downloads nothing), the throughput of the first, and the peak RSS of the installer
(measured from a small parent process, whose start the wall times include).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.pulumi_release import (  # noqa: E402
    ReleaseServer,
    archive_bytes,
    path_without_pulumi,
    stub_executable,
    this_release,
    write_project_files,
)

VERSION = "3.272.0"


def release(size_mb: int) -> dict[str, bytes]:
    item = this_release(VERSION)
    archive = archive_bytes(
        {
            "pulumi/pulumi": stub_executable(VERSION),
            "pulumi/pulumi-filler": os.urandom(size_mb << 20),
        }
    )
    checksums = f"{hashlib.sha256(archive).hexdigest()}  {item.archive}\n".encode()
    return {item.archive: archive, item.checksums: checksums}


PEAK_RSS_OF_CHILD = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
"""Runs the installer from a small process, so that its peak RSS is not the benchmark's own
(a forked child starts with the parent's resident pages, here hundreds of MB of test data)."""


def run_installer(project: Path, base_url: str) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one installer run, `pulumi version` child included."""
    env = {
        **os.environ,
        "PATH": path_without_pulumi(),
        "PULUMI_DOWNLOAD_URL": base_url,
        "no_proxy": "127.0.0.1",
        "STUB_PULUMI_LOG": os.devnull,
    }
    started = time.perf_counter()
    measured = subprocess.run(
        [
            *(sys.executable, "-c", PEAK_RSS_OF_CHILD),
            *(sys.executable, "-m", "host.local_up", "pulumi"),
            *("--version-file", str(project / ".pulumi-version")),
            *("--requirements", str(project / "requirements.txt")),
            *("--tools-dir", str(project / ".tools")),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, int(measured.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    files = release(arguments.size_mb)
    archive_mb = max(len(body) for body in files.values()) / 1e6
    server = ReleaseServer(files).start()
    first: list[float] = []
    second: list[float] = []
    peaks: list[int] = []
    try:
        for _ in range(arguments.repeat):
            with tempfile.TemporaryDirectory() as scratch:
                project = Path(scratch)
                write_project_files(project, VERSION)
                for runs in (first, second):
                    seconds, peak = run_installer(project, server.base_url)
                    runs.append(seconds)
                    peaks.append(peak)
    finally:
        server.stop()
    peak_mib = max(peaks) / 1024
    install = statistics.median(first)
    print(f"archive: {archive_mb:.1f} MB, {arguments.repeat} runs each")
    print(
        f"first install: median {install:.2f} s (max {max(first):.2f} s), "
        f"{archive_mb / install:.0f} MB/s download+verify+unpack"
    )
    print(
        f"second run (reused, nothing downloaded): median {statistics.median(second) * 1000:.0f} ms"
    )
    print(f"peak RSS of the installer (or its `pulumi version` child): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
