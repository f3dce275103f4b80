"""Benchmark: evaluating the whole program under mocks for the dev stack (11 services).

Each run is a fresh interpreter (`python benchmarks/program.py --evaluate`), so the wall time
includes interpreter start and imports, the CPU time is the child's user + system time (less
sensitive to other work on the machine than the wall time), and peak RSS is the child's maximum
resident set. The
runs' declared resources are compared with each other: a resource whose inputs differ between
two runs would show as a change in every preview (and a new interpreter per run also catches
hash-order effects). Prints the figures; asserts nothing.

    .venv/bin/python benchmarks/program.py [--runs N] [--strategy perPlatform]

Targets (issue 2): <= 1.5 s, <= 150 MB, longest chain <= 5, 0 differing resources.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def evaluate(strategy: str) -> None:
    """In the child: evaluate the program once and print what it declared, as JSON."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from tests.program_mocks import PROJECT, evaluate_program, longest_chain, stack_config

    run = evaluate_program({**stack_config("dev"), f"{PROJECT}:strategy": strategy})
    declared = {
        registration.urn: {
            "inputs": registration.inputs,
            "dependencies": registration.dependencies,
            "propertyDependencies": registration.property_dependencies,
        }
        for registration in run.registrations
    }
    chain = longest_chain(run.registrations)
    custom = [registration.urn for registration in run.registrations if registration.custom]
    print(json.dumps({"declared": declared, "chain": chain, "custom": custom}, default=str))


def measure_once(strategy: str) -> tuple[float, float, dict[str, Any]]:
    """Wall time and CPU time of one child evaluation, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--evaluate", "--strategy", strategy],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(child.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters to time")
    parser.add_argument(
        "--strategy",
        choices=("multiPlatform", "perPlatform"),
        default="multiPlatform",
        help="the `strategy` config of the evaluated dev stack",
    )
    parser.add_argument("--evaluate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evaluate:
        evaluate(args.strategy)
        return

    times, cpu_times, results = [], [], []
    for _ in range(args.runs):
        elapsed, cpu, result = measure_once(args.strategy)
        times.append(elapsed)
        cpu_times.append(cpu)
        results.append(result)
    # ru_maxrss of the children is the largest peak RSS among them, in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    first = results[0]["declared"]
    differing = {
        urn
        for result in results[1:]
        for urn in set(first) | set(result["declared"])
        if first.get(urn) != result["declared"].get(urn)
    }
    custom = results[0]["custom"]
    chain = results[0]["chain"]
    print(
        f"program evaluation under mocks, dev stack, strategy {args.strategy}: "
        f"{len(custom)} custom resources "
        f"({len(first)} with components), {args.runs} runs"
    )
    print(
        f"wall time (interpreter start included): median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s"
    )
    print(
        f"CPU time (user + system): median {statistics.median(cpu_times):.2f} s, "
        f"max {max(cpu_times):.2f} s"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"peak RSS: {peak_mib:.0f} MiB")
    print(f"longest chain of custom resources: {len(chain)}")
    for urn in chain:
        print(f"  {urn.rsplit('::', 1)[-1]}")
    print(f"resources whose inputs differ between runs: {len(differing)}")
    for urn in sorted(differing):
        print(f"  {urn}")


if __name__ == "__main__":
    main()
