"""Benchmark: what the every-run registry checks cost, per check, against a loopback registry.

Starts Debian's `docker-registry` on 127.0.0.1, pushes a two-platform index with attestation
manifests, then times the exact command lines the program runs on every preview and up
(`plan.verification`): the candidate check, the exported-ref check and the immutable-tag guard.
Each run is a fresh interpreter, as pulumi-command starts one; the wall time includes
interpreter start and imports, and peak RSS is the largest child's. Prints the figures; asserts
nothing.

    .venv/bin/python benchmarks/registry_checks.py [--runs N]
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plan.tools import tool_command  # noqa: E402
from plan.verification import (  # noqa: E402
    candidate_check_request,
    immutable_tag_request,
    published_check_request,
)
from tests.integration.dockerenv import start_registry  # noqa: E402
from tests.integration.registrypush import push_multiarch  # noqa: E402

COMPONENT = "urn:pulumi:bench::boutique-multiarch::boutique:service_image:ServiceImage"
URN = f"{COMPONENT}$docker-build:index:Index::x"


def timed(line: str, runs: int) -> list[float]:
    """Wall times of `runs` runs of `line` under /bin/sh in the project directory; each exits 0."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", line], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="fresh interpreters per check")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        registry = start_registry(Path(scratch))
        try:
            index, entries = push_multiarch(registry, "bench/frontend", "bench", tag="v1")
            platforms = {
                f"linux/{entry['platform']['architecture']}": str(entry["digest"])  # type: ignore[index]
                for entry in entries
                if "annotations" not in entry
            }
            repository, digest = f"{registry.address}/bench/frontend", str(index["digest"])
            lines = {
                "candidate (digest exists)": tool_command(
                    candidate_check_request(f"{repository}@{digest}", [URN], False), sys.executable
                ),
                "exported ref (digest, entries, tag)": tool_command(
                    published_check_request(
                        f"{repository}:v1@{digest}", platforms, URN, [URN], False
                    ),
                    sys.executable,
                ),
                "immutable guard, preview (tag absent)": tool_command(
                    immutable_tag_request(f"{repository}:v2", None, False), sys.executable
                ),
                "immutable guard, up (tag holds the verified)": tool_command(
                    immutable_tag_request(f"{repository}:v1", platforms, False), sys.executable
                ),
            }
            results = {name: timed(line, args.runs) for name, line in lines.items()}
        finally:
            registry.stop()
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"every-run registry checks against a loopback registry, {args.runs} runs each")
    for name, times in results.items():
        print(f"{name}: median {statistics.median(times):.3f} s, max {max(times):.3f} s")
    print(f"peak RSS of a check: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
