"""`python -m tests.mutation [PACKAGE ...]`: mutation-test packages, print a score each.

Each package runs in its own directory, .cache/mutation/<package>/, which links to the
repository's files and holds a pyproject.toml whose [tool.mutmut] mutates only that package
against its test selection ([tool.mutation.tests]). mutmut then runs, for each mutant, only the
tests that called the mutated function. The report (scores, and the diff of every surviving
mutant) is printed and written to .cache/mutation/report.md. Exit status 0 when every package
meets its target ([tool.mutation.targets]) with no stale equivalent-mutant entry, 1 otherwise.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from tests.mutation.childstats import BUDGET_VARIABLE, CHILD_STARTUP
from tests.mutation.results import (
    MutationError,
    PackageScore,
    package_score,
    parse_equivalents,
    read_exit_codes,
    remove_stale_results,
    summary_line,
    to_run_again,
)

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".cache" / "mutation"
EQUIVALENTS = Path(__file__).with_name("equivalent.txt")
# mutmut's command line, run as a script: as `python -m mutmut` would, it imports none of tests/.
LAUNCH = Path(__file__).with_name("launch.py")
# Third-party modules the fork server imports once (never the project's own packages).
PRELOAD = Path(__file__).with_name("preload.txt")
# Not linked into a package's directory: its own config, mutmut's output, caches.
NOT_LINKED = {".cache", ".git", ".venv", "mutants", "pyproject.toml", ".mypy_cache", ".ruff_cache"}


def project_config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def package_config(config: dict[str, Any], package: str) -> dict[str, Any]:
    """The project's pyproject.toml with [tool.mutmut] narrowed to one package."""
    tool = dict(config["tool"])
    mutmut = dict(tool["mutmut"])
    mutmut["source_paths"] = [f"{package}/"]
    others = [name for name in tool["mutation"]["tests"] if name != package]
    mutmut["pytest_add_cli_args"] = [
        *mutmut["pytest_add_cli_args"],
        "-p",
        "tests.mutation.childstats",
    ]
    mutmut["also_copy"] = [
        *mutmut["also_copy"],
        *(f"{name}/" for name in others),
        "sitecustomize.py",
        # The integration tests' busybox (scripts/install-docker), found beside the tests.
        ".cache/busybox/",
    ]
    mutmut["pytest_add_cli_args_test_selection"] = list(tool["mutation"]["tests"][package])
    # Each mutant runs in a child of a fork server. For a package that runs its own functions
    # while it is imported (plan's settings validators are built by factories), the server has
    # imported the libraries but none of the project, so the child imports the package with the
    # mutant active; mutmut's default, forking the process that ran every test, never mutated
    # that code. The others' server has already collected the tests (saves each mutant the
    # project's imports, about 0.45 s).
    mutmut["process_isolation"] = "forkserver"
    if package in tool["mutation"]["import_per_mutant"]:
        mutmut["forkserver_warmup"] = "import"
        mutmut["preload_modules_file"] = str(PRELOAD)
    else:
        mutmut["forkserver_warmup"] = "collect"
    tool["mutmut"] = mutmut
    return {**config, "tool": tool}


def prepare(config: dict[str, Any], package: str, fresh: bool) -> Path:
    """.cache/mutation/<package>/ with links to the repository and the narrowed config."""
    directory = WORK / package
    if fresh and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        link = directory / entry.name
        if entry.name not in NOT_LINKED and not link.is_symlink():
            link.symlink_to(entry)
    (directory / "pyproject.toml").write_text(tomli_w.dumps(package_config(config, package)))
    (directory / "sitecustomize.py").write_text(CHILD_STARTUP)
    busybox = directory / ".cache" / "busybox"
    if not busybox.is_symlink():
        busybox.parent.mkdir(exist_ok=True)
        busybox.symlink_to(ROOT / ".cache" / "busybox", target_is_directory=True)
    return directory


def run_mutmut(directory: Path, mutants: list[str], workers: int, budget: float | None) -> None:
    command = [
        sys.executable,
        *(str(LAUNCH), "run"),
        *("--max-children", str(workers), *mutants),
    ]
    print(f"mutation: {' '.join(command[1:])} (in {directory.relative_to(ROOT)})", flush=True)
    environment = {**os.environ, "CI": "true"}
    environment.pop(BUDGET_VARIABLE, None)
    if budget is not None:
        print(f"mutation: each mutant's tests stop after {budget:g} s of measured time", flush=True)
        environment[BUDGET_VARIABLE] = str(budget)
    # mutmut's own exit status says nothing about the score; its result files do.
    subprocess.run(command, cwd=directory, check=False, env=environment)


# mutmut's own diff of each named mutant, in one process (`mutmut show` costs one per mutant).
SHOW_DIFFS = """\
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
diffs = {name: get_diff_for_mutant(name, path=path) for name, path in json.load(sys.stdin)}
print(json.dumps(diffs))
"""


def source_of(directory: Path, mutant: str) -> str:
    """`verify/checks.py` for `verify.checks.x_f__mutmut_3` (a package's `__init__.py` too)."""
    module = mutant.split(".x_")[0].split(".x\u01c1")[0]
    path = module.replace(".", "/") + ".py"
    return path if (directory / path).exists() else module.replace(".", "/") + "/__init__.py"


def diffs_of(directory: Path, mutants: tuple[str, ...]) -> dict[str, str]:
    if not mutants:
        return {}
    shown = subprocess.run(
        [sys.executable, "-c", SHOW_DIFFS],
        cwd=directory,
        input=json.dumps([(name, source_of(directory, name)) for name in mutants]),
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        return {name: f"(no diff: {shown.stderr.strip()[-300:]})" for name in mutants}
    found: dict[str, str] = json.loads(shown.stdout)
    return found


def report(results: list[tuple[PackageScore, float, Path]], budgets: dict[str, float]) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [f"# Mutation scores ({date})", ""]
    lines += [f"- {summary_line(result, target)}" for result, target, _ in results]
    lines += [
        f"- {result.package}: each mutant's tests stopped after {budgets[result.package]:g} s "
        "of measured time, so its score is a lower bound (docs/mutation.md#test-budget)"
        for result, _, _ in results
        if result.package in budgets
    ]
    for result, _, directory in results:
        for name in result.stale:
            lines.append(f"- {result.package}: stale equivalent.txt entry (not a survivor): {name}")
        if result.survivors:
            lines += ["", f"## Surviving mutants of {result.package}", ""]
            for name, diff in diffs_of(directory, result.survivors).items():
                lines += [f"### {name}", "", "```diff", diff.strip(), "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    config = project_config()
    packages = list(config["tool"]["mutation"]["tests"])
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__)
    parser.add_argument("packages", nargs="*", metavar="PACKAGE", help=f"one of {packages}")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="keep the previous results and run again the mutants not killed (or not run) yet, "
        "except the reviewed equivalents",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the previous results and run only the mutants that have none yet",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel mutmut workers")
    arguments = parser.parse_args(argv)
    unknown = [name for name in arguments.packages if name not in packages]
    if unknown or arguments.workers < 1:
        parser.error(
            f"unknown package {unknown} (allowed: {packages})"
            if unknown
            else f"--workers {arguments.workers}: must be 1 or more"
        )
    budgets = {
        name: float(seconds) for name, seconds in config["tool"]["mutation"]["test_budget"].items()
    }
    try:
        equivalents = parse_equivalents(EQUIVALENTS.read_text(), EQUIVALENTS.name)
        results = []
        for package in arguments.packages or packages:
            keep = arguments.survivors or arguments.resume
            directory = prepare(config, package, fresh=not keep)
            for source in remove_stale_results(directory / "mutants", package, ROOT):
                print(f"mutation: removed the results of {source} (no such module any more)")
            rerun: list[str] = []
            if arguments.survivors:
                previous = read_exit_codes(directory / "mutants", package)
                rerun = to_run_again(previous, equivalents)
            if rerun or not arguments.survivors:
                # No names: mutmut runs every mutant without a result (all of them when fresh).
                run_mutmut(directory, rerun, arguments.workers, budgets.get(package))
            excluded = config["tool"]["mutmut"].get("do_not_mutate", [])
            codes = read_exit_codes(directory / "mutants", package, excluded)
            if not codes:
                raise MutationError(f"{package}: mutmut produced no results (see its output)")
            target = float(config["tool"]["mutation"]["targets"][package])
            results.append((package_score(package, codes, equivalents), target, directory))
    except MutationError as error:
        print(f"mutation: error: {error}", file=sys.stderr)
        return 1
    text = report(results, budgets)
    (WORK / "report.md").write_text(text)
    print(text)
    return 0 if all(result.meets(target) for result, target, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
