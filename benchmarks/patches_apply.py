"""How long `python -m patches apply` takes: the cost it adds to every preview and up.

    python benchmarks/patches_apply.py [SOURCE_DIR] [--definitions FILE] [--repeat N]

Copies SOURCE_DIR (default: the v0-shaped test fixtures) to a temporary directory, then prints
the wall time of the CLI as a process (interpreter start included, as pulumi-command runs it)
for a first run that patches and a second run that finds everything patched, and the time of
planning alone in-process. Figures are medians over --repeat runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from patches.definitions import DEFAULT_DEFINITIONS, load  # noqa: E402
from patches.engine import plan  # noqa: E402

FIXTURE_TREE = REPO / "tests" / "fixtures" / "patches" / "old"
FIXTURE_DEFINITIONS = REPO / "tests" / "fixtures" / "patches" / "definitions.toml"


def cli_seconds(root: Path, definitions: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "patches", "apply", str(root), "--definitions", str(definitions)],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source_dir", type=Path, nargs="?", default=FIXTURE_TREE)
    parser.add_argument("--definitions", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    default = FIXTURE_DEFINITIONS if arguments.source_dir == FIXTURE_TREE else DEFAULT_DEFINITIONS
    definitions = arguments.definitions or default
    first: list[float] = []
    second: list[float] = []
    planning: list[float] = []
    files = 0
    for _ in range(arguments.repeat):
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch) / "tree"
            shutil.copytree(arguments.source_dir, root, symlinks=True)
            started = time.perf_counter()
            files = len(plan(root, load(definitions)).files)
            planning.append(time.perf_counter() - started)
            first.append(cli_seconds(root, definitions))
            second.append(cli_seconds(root, definitions))
    print(f"source: {arguments.source_dir} ({files} Dockerfiles), runs: {arguments.repeat}")
    print(f"apply, first run (patches), process:  {statistics.median(first) * 1000:7.1f} ms")
    print(f"apply, second run (no-op), process:   {statistics.median(second) * 1000:7.1f} ms")
    print(f"plan only, in-process:                {statistics.median(planning) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
