"""pytest plugin for mutation runs only (scripts/mutation adds `-p tests.mutation.childstats`).

Many tests run the tools as processes (`python -m host`, `python -m patches`), as Pulumi does.
While mutmut learns which tests reach which function ("stats"), it only sees calls made in its
own process, so every function those processes run would count as reached by no test, and its
mutants as surviving. This plugin points the processes at a directory where they record the
functions they reach (the `sitecustomize.py` scripts/mutation writes, imported by each Python
process at startup through PYTHONPATH) and adds those to the test that started them.
"""

import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HITS_VARIABLE = "MUTATION_CHILD_HITS"

CHILD_STARTUP = """\
# Written by scripts/mutation (tests/mutation/childstats.py): record, in a test's child process,
# the mutated functions it reaches while mutmut collects stats.
import os

_directory = os.environ.get("MUTATION_CHILD_HITS")
if os.environ.get("MUTANT_UNDER_TEST") == "stats" and _directory:
    import mutmut.mutation.trampoline as _trampoline

    _hits = set()
    _file = []

    def _record(name, caller=None):
        # Each function is written as it is first reached, not at exit: a child that ends with
        # os._exit (verify's --timeout) runs no atexit handler.
        if name in _hits:
            return
        _hits.add(name)
        if not _file:
            path = os.path.join(_directory, f"{os.getpid()}.hits")
            _file.append(open(path, "a", buffering=1, encoding="utf-8"))
        _file[0].write(name + "\\n")

    _trampoline.record_trampoline_hit = _record
elif os.environ.get("MUTANT_UNDER_TEST") == "stats":
    # Not started by a test of this run: record nothing (mutmut's config is not found here).
    os.environ["MUTANT_UNDER_TEST"] = ""
"""


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    os.environ[HITS_VARIABLE] = tempfile.mkdtemp(prefix="mutation-hits-")
    # mutmut runs pytest in mutants/, which holds the mutated code and sitecustomize.py.
    search = [str(Path.cwd()), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(part for part in search if part)


# Functions the mutated packages run while they are imported (the settings model's validator
# factories, module-level tables). scripts/mutation runs each mutant in a child of a fork server
# that has imported none of the project, so the child imports them with the mutant active and
# every test sees the mutant's version: they count as reached by every test. A test module's own
# import-time calls (a constant built by the code under test, a parameter list) count only for
# that module's tests: counted for every test, they put ~1,000 tests that never call the
# function in front of the few that do, and the test budget cut those off.
_import_hits: set[str] = set()
_module_hits: dict[str, set[str]] = {}


def mutated_modules(directory: Path) -> list[str]:
    """The modules of the packages mutmut mutates here (`source_paths` of its config; none
    where there is no such config, as for a plain pytest run with this plugin)."""
    import tomllib

    try:
        with (directory / "pyproject.toml").open("rb") as file:
            paths = tomllib.load(file)["tool"]["mutmut"]["source_paths"]
    except (FileNotFoundError, KeyError):
        return []
    names = []
    for path in paths:
        for source in sorted((directory / path).rglob("*.py")):
            parts = source.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # running it is the command's job, not an import's
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _take_hits() -> set[str]:
    from mutmut.state import state

    hits = set(state()._stats)
    state()._stats.clear()
    return hits


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    import importlib

    for name in mutated_modules(Path.cwd()):
        importlib.import_module(name)
    _import_hits.update(_take_hits())


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """What ran while a test module was imported (and its classes collected) is its own."""
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    hits = _take_hits()
    module = report.nodeid.split("::")[0]
    if module.endswith(".py"):
        _module_hits.setdefault(module, set()).update(hits)
    else:  # a directory's conftest.py: every test under it may use what it built
        _import_hits.update(hits)


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    _import_hits.update(_take_hits())


# Memoized functions hide their reach: a parser `cli_contract.built` keeps, or a
# `functools.cache`, runs once per process, so only the first test that calls it would count as
# reaching it (host.contract.parser's mutants then ran against one parse test and the process
# tests). While mutmut collects, each test starts with those caches empty.
MEMOIZING_MODULES = ("cli_contract", "verify", "host", "patches", "plan")


def clear_memoized() -> None:
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in MEMOIZING_MODULES:
            continue
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
    if "cli_contract" in sys.modules:
        sys.modules["cli_contract"]._BUILT.clear()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        clear_memoized()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Before mutmut's own teardown hook files the test's hits, add its children's, and the
    functions run while the packages were imported."""
    directory = os.environ.get(HITS_VARIABLE)
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not directory:
        return
    from mutmut.state import state

    state()._stats.update(_import_hits)
    state()._stats.update(_module_hits.get(item.nodeid.split("::")[0], ()))
    for hits in Path(directory).glob("*.hits"):
        state()._stats.update(hits.read_text(encoding="utf-8").split())
        hits.unlink()


# mutmut runs a mutant's tests with `-x`; its fork-server runner passes them in no particular
# order. Most mutants are killed by a fast unit test, so running the tests fastest first (by the
# durations mutmut measured during "stats") ends most runs after a fraction of a second instead
# of after the slow process-starting tests.
# Read once, in the fork server, so each forked mutant run inherits it.
_durations: dict[str, float] | None = None


def recorded_durations(stats: Path) -> dict[str, float]:
    """mutmut's per-test durations ({} before its first "stats" phase has written them)."""
    global _durations
    if _durations is None:
        try:
            _durations = dict(json.loads(stats.read_text())["duration_by_test"])
        except (OSError, ValueError, KeyError):
            return {}
    return _durations


def fastest_first(items: list[pytest.Item], durations: dict[str, float]) -> None:
    """Order items by recorded duration (unknown ones last), keeping file order among equals."""
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))


# A surviving mutant runs every test that reaches its function: 168 tests and about 14 minutes
# of measured time for verify.cli.main. scripts/mutation can set a budget per package: the
# fastest test always runs, then each next one while the measured total stays within the
# budget. A mutant that only a later test would kill counts as surviving, so the score is a
# lower bound of the one without a budget, never above it.
BUDGET_VARIABLE = "MUTATION_TEST_BUDGET"


def within_budget(items: list[pytest.Item], durations: dict[str, float], budget: float) -> int:
    """How many of `items` (ordered fastest first) a mutant runs."""
    total = 0.0
    for count, item in enumerate(items):
        total += durations.get(item.nodeid, float("inf"))
        if count and total > budget:
            return count
    return len(items)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") in (None, "", "stats"):
        return
    durations = recorded_durations(Path.cwd() / "mutmut-stats.json")
    fastest_first(items, durations)
    budget = os.environ.get(BUDGET_VARIABLE)
    # Only a mutant's own run: mutmut's listing of the tests ("list_all_tests") must see them all.
    if budget and "__mutmut_" in os.environ["MUTANT_UNDER_TEST"]:
        kept = within_budget(items, durations, float(budget))
        config.hook.pytest_deselected(items=items[kept:])
        del items[kept:]


class MutantTimeout(Exception):
    """A test ran far longer than mutmut measured it on the unmutated code."""


def time_limit(duration: float) -> float:
    """Wall-clock seconds a test may take under a mutant: ten times its measured time, plus 10 s."""
    return 10 * duration + 10


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test of a mutant that runs past its time limit (a loop the mutant made endless).

    mutmut's own limit is CPU time for the whole run, sized on every test that reaches the
    function: a looping mutant of a function every test calls spent a quarter of an hour.
    """
    durations = recorded_durations(Path.cwd() / "mutmut-stats.json")
    if os.environ.get("MUTANT_UNDER_TEST") in (None, "", "stats") or item.nodeid not in durations:
        yield
        return
    limit = time_limit(durations[item.nodeid])

    def expire(signum: int, frame: object) -> None:
        raise MutantTimeout(f"{item.nodeid} ran over its limit of {limit:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
