"""scripts/mutation's bookkeeping: scores from mutmut's result files, the equivalent-mutant list,
and the per-package configuration (the mutation runs themselves are docs/mutation.md's)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mutmut.mutation.data import SourceFileMutationData

from tests.integration.dockerenv import BUSYBOX_CACHE
from tests.mutation.__main__ import (
    EQUIVALENTS,
    WORK,
    package_config,
    project_config,
    report,
)
from tests.mutation.childstats import BUDGET_VARIABLE, CHILD_STARTUP, HITS_VARIABLE
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
from tests.program_mocks import ROOT

M = "verify.checks.x_exit_code__mutmut_"


def write_results(directory: Path, path: str, codes: dict[str, int | None]) -> Path:
    """Result files as mutmut itself writes them (its own writer), under directory/mutants/."""
    (directory / "mutants" / path).parent.mkdir(parents=True, exist_ok=True)
    data = SourceFileMutationData(path=path)
    data.meta_path = directory / "mutants" / f"{path}.meta"
    data.exit_code_by_key = dict(codes)
    data.save()
    return directory / "mutants"


def test_killed_timed_out_and_crashed_mutants_count_as_detected(tmp_path: Path) -> None:
    codes: dict[str, int | None] = {f"{M}1": 1, f"{M}2": 36, f"{M}3": -11, f"{M}4": 0, f"{M}5": 33}
    mutants = write_results(tmp_path, "verify/checks.py", codes)
    write_results(tmp_path, "patches/engine.py", {"patches.engine.x_write__mutmut_1": 0})
    write_results(tmp_path, "verify/__main__.py", {"verify.__main__.x_main__mutmut_1": 0})
    found = read_exit_codes(mutants, "verify", excluded=["*/__main__.py"])
    assert found == codes  # only the package asked for, without the excluded module
    result = package_score("verify", found, {})
    assert result.score == pytest.approx(3 / 5)
    assert result.survivors == (f"{M}4", f"{M}5")  # survived, and reached by no test
    assert result.meets(0.6) and not result.meets(0.61)
    assert summary_line(result, 0.9).startswith("verify: 60.0% killed (3/5;")
    assert "BELOW TARGET" in summary_line(result, 0.9)


def test_results_of_a_module_the_project_no_longer_has_are_removed_not_counted(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "host").mkdir(parents=True)
    (project / "host" / "contract.py").write_text("")
    cache = tmp_path / "cache"
    mutants = write_results(cache, "host/results.py", {"host.results.x_f__mutmut_1": 1})
    write_results(cache, "host/contract.py", {"host.contract.x_f__mutmut_1": 0})
    (mutants / "host" / "results.py").write_text("# mutated copy\n")
    (mutants / "host" / "contract.py").write_text("# mutated copy\n")

    assert remove_stale_results(mutants, "host", project) == ["host/results.py"]
    assert read_exit_codes(mutants, "host") == {"host.contract.x_f__mutmut_1": 0}
    assert not (mutants / "host" / "results.py").exists()
    assert (mutants / "host" / "contract.py").exists()
    assert remove_stale_results(mutants, "host", project) == []


def test_survivors_run_again_are_those_neither_killed_nor_reviewed_equivalent() -> None:
    codes: dict[str, int | None] = {f"{M}1": 1, f"{M}2": 0, f"{M}3": 0, f"{M}4": None, f"{M}5": 33}
    codes |= {f"{M}6": -24, f"{M}7": 36}
    assert to_run_again(codes, {f"{M}3": "why"}) == [f"{M}2", f"{M}4", f"{M}5"]


def test_equivalent_mutants_leave_the_score_and_stale_entries_fail_the_run() -> None:
    codes = {f"{M}1": 1, f"{M}2": 0, f"{M}3": 0}
    equivalents = {f"{M}2": "why", "plan.naming.x_arch_of__mutmut_1": "another package"}
    result = package_score("verify", codes, equivalents)
    assert (result.killed, result.survivors, result.equivalent) == (
        (f"{M}1",),
        (f"{M}3",),
        (f"{M}2",),
    )
    assert result.score == 0.5 and result.stale == () and result.meets(0.5)
    # An entry whose mutant is now killed, or no longer exists, must be removed by a reviewer.
    stale = package_score("verify", codes, {**equivalents, f"{M}1": "now killed", f"{M}9": "gone"})
    assert stale.stale == (f"{M}1", f"{M}9")
    assert not stale.meets(0.0)


def test_mutants_not_run_to_the_end_are_an_error_not_a_score() -> None:
    with pytest.raises(MutationError, match=r"verify: 1 mutants were not run to the end"):
        package_score("verify", {f"{M}1": 1, f"{M}2": None}, {})


def test_equivalents_are_one_name_and_one_reason_per_line() -> None:
    text = f"# comment\n\n{M}1: the branch cannot be reached\n  {M}2:  both spellings equal  \n"
    assert parse_equivalents(text) == {
        f"{M}1": "the branch cannot be reached",
        f"{M}2": "both spellings equal",
    }


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f"{M}1", "is not `<mutant name>: <reason>`"),
        (f"{M}1:   ", "is not `<mutant name>: <reason>`"),
        ("verify.checks: a module, not a mutant", "is not `<mutant name>: <reason>`"),
        (f"{M}1 {M}2: two names", "is not `<mutant name>: <reason>`"),
        (f"{M}1: one\n{M}1: twice", "listed twice"),
    ],
)
def test_a_bad_equivalents_line_is_refused_naming_the_line(line: str, problem: str) -> None:
    with pytest.raises(MutationError, match=r"equivalent\.txt:\d+: ") as raised:
        parse_equivalents(line)
    assert problem in str(raised.value)


def test_the_committed_equivalents_name_mutants_of_configured_packages() -> None:
    packages = project_config()["tool"]["mutation"]["tests"]
    for name in parse_equivalents(EQUIVALENTS.read_text()):
        assert name.split(".")[0] in packages, name


def test_each_package_mutates_itself_against_existing_tests_of_its_own() -> None:
    config = project_config()
    selections = config["tool"]["mutation"]["tests"]
    assert set(selections) == {"verify", "patches", "plan", "host"}
    assert set(config["tool"]["mutation"]["targets"]) == set(selections)
    union = set(config["tool"]["mutmut"]["pytest_add_cli_args_test_selection"])
    for package, tests in selections.items():
        assert all((ROOT / test).is_file() for test in tests), (package, tests)
        assert set(tests) <= union, package
        narrowed = package_config(config, package)["tool"]["mutmut"]
        assert narrowed["source_paths"] == [f"{package}/"]
        assert narrowed["pytest_add_cli_args_test_selection"] == tests
        # The other packages are copied unmutated: the tests import them.
        others = {f"{other}/" for other in selections if other != package}
        assert others <= set(narrowed["also_copy"])
        assert f"{package}/" not in narrowed["also_copy"]
        # The integration tests find busybox beside the tests, so the copy must hold it.
        busybox = BUSYBOX_CACHE.relative_to(ROOT)
        assert f"{busybox}/" in narrowed["also_copy"]
        assert narrowed["process_isolation"] == "forkserver"
        # plan builds its settings validators at import: its mutants need a fresh import each.
        fresh = package in config["tool"]["mutation"]["import_per_mutant"]
        assert narrowed["forkserver_warmup"] == ("import" if fresh else "collect"), package
        assert ("preload_modules_file" in narrowed) is fresh, package
    assert "plan" in config["tool"]["mutation"]["import_per_mutant"]


def test_an_unknown_package_is_refused_before_anything_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.mutation", "verfiy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "verfiy" in result.stderr and "'verify', 'patches', 'plan', 'host'" in result.stderr
    assert not (WORK / "verfiy").exists()


def test_a_test_child_process_reports_the_functions_it_reaches(tmp_path: Path) -> None:
    """What scripts/mutation's sitecustomize.py does in a child while mutmut collects stats."""
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "sitecustomize.py").write_text(CHILD_STARTUP)
    hits = tmp_path / "hits"
    hits.mkdir()
    # Ended by os._exit, as verify ends at its --timeout: no atexit handler runs.
    child = (
        "import os\n"
        "import mutmut.mutation.trampoline as t\n"
        "t.record_trampoline_hit('host.builder.x_matches')\n"
        "t.record_trampoline_hit('host.builder.x_inspect', caller='host.builder.x_ensure')\n"
        "t.record_trampoline_hit('host.builder.x_matches')\n"
        "os._exit(2)\n"
    )
    environ = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "startup"),
        "MUTANT_UNDER_TEST": "stats",
        HITS_VARIABLE: str(hits),
    }
    ended = subprocess.run([sys.executable, "-c", child], env=environ, check=False, cwd=tmp_path)
    assert ended.returncode == 2
    [written] = hits.glob("*.hits")
    assert written.read_text().split() == ["host.builder.x_matches", "host.builder.x_inspect"]
    # Outside a stats run the startup file does nothing.
    environ["MUTANT_UNDER_TEST"] = "host.builder.x_matches__mutmut_1"
    written.unlink()
    subprocess.run([sys.executable, "-c", "pass"], env=environ, check=True, cwd=tmp_path)
    assert list(hits.iterdir()) == []


def test_a_child_in_an_ascii_locale_reports_a_method_it_reaches(tmp_path: Path) -> None:
    """mutmut names a class's methods with 'ǁ'; a test's child may run in the C locale without
    UTF-8 mode (tests/test_verify_auth.py does), where the file's default encoding is ASCII."""
    (tmp_path / "startup").mkdir()
    (tmp_path / "startup" / "sitecustomize.py").write_text(CHILD_STARTUP)
    hits = tmp_path / "hits"
    hits.mkdir()
    method = "verify.auth.x\u01c1Credentials\u01c1__init__"
    child = f"import mutmut.mutation.trampoline as t\nt.record_trampoline_hit({method!a})\n"
    locale = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    environ = {
        **os.environ,
        **locale,
        "PYTHONPATH": str(tmp_path / "startup"),
        "MUTANT_UNDER_TEST": "stats",
        HITS_VARIABLE: str(hits),
    }
    ended = subprocess.run(
        [sys.executable, "-c", child], env=environ, cwd=tmp_path, capture_output=True, check=False
    )
    assert ended.returncode == 0, ended.stderr
    [written] = hits.glob("*.hits")
    assert written.read_text(encoding="utf-8").split() == [method]


PLUGIN = ("-p", "tests.mutation.childstats", "--rootdir=.")


def run_under_plugin(
    directory: Path,
    test_file: str,
    durations: dict[str, float],
    mutant: str,
    budget: float | None = None,
    *options: str,
) -> subprocess.CompletedProcess[str]:
    """pytest on `test_file` with the mutation plugin, as mutmut runs `mutant` (or "stats", "")
    with `durations` as mutmut measured them (and a test budget, as scripts/mutation sets)."""
    (directory / "mutmut-stats.json").write_text(json.dumps({"duration_by_test": durations}))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MUTANT_UNDER_TEST": mutant}
    environment.pop(BUDGET_VARIABLE, None)
    if budget is not None:
        environment[BUDGET_VARIABLE] = str(budget)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *PLUGIN,
            *options,
            test_file,
        ],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


ORDERED_TESTS = """\
import json
import os
import signal

def _ran(name):
    with open("order.txt", "a") as file:
        file.write(name + "\\n")

def test_unmeasured():
    _ran("unmeasured")

def test_slow():
    _ran("slow")

def test_fast():
    _ran("fast")
"""


@pytest.mark.parametrize(
    ("mutant", "order"),
    [
        ("verify.checks.x_exit_code__mutmut_1", ["fast", "slow", "unmeasured"]),
        ("stats", ["unmeasured", "slow", "fast"]),
        ("", ["unmeasured", "slow", "fast"]),
    ],
)
def test_a_mutant_runs_its_fastest_tests_first(
    tmp_path: Path, mutant: str, order: list[str]
) -> None:
    """mutmut stops at a mutant's first failing test: fastest first, by mutmut's durations."""
    (tmp_path / "test_order.py").write_text(ORDERED_TESTS)
    durations = {"test_order.py::test_slow": 2.5, "test_order.py::test_fast": 0.01}
    run = run_under_plugin(tmp_path, "test_order.py", durations, mutant)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "order.txt").read_text().split() == order


@pytest.mark.parametrize(
    ("budget", "order"),
    [
        # The fastest always runs, even past the budget.
        (0.001, ["fast"]),
        (2.5, ["fast"]),
        (2.51, ["fast", "slow"]),
        # A test mutmut did not measure never fits.
        (10_000.0, ["fast", "slow"]),
    ],
)
def test_a_mutants_tests_stop_at_the_budget_of_measured_time(
    tmp_path: Path, budget: float, order: list[str]
) -> None:
    """The tests past the budget are deselected, not run: the mutant survives them."""
    (tmp_path / "test_order.py").write_text(ORDERED_TESTS)
    durations = {"test_order.py::test_slow": 2.5, "test_order.py::test_fast": 0.01}
    run = run_under_plugin(tmp_path, "test_order.py", durations, f"{M}1", budget)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "order.txt").read_text().split() == order
    assert f"{3 - len(order)} deselected" in run.stdout


@pytest.mark.parametrize("mutant", ["stats", "", "list_all_tests", "fail"])
def test_the_budget_leaves_every_run_but_a_mutants_alone(tmp_path: Path, mutant: str) -> None:
    """Collecting stats, the clean run and mutmut's listing of the tests see every test (a
    listing without some would make mutmut forget them)."""
    (tmp_path / "test_order.py").write_text(ORDERED_TESTS)
    durations = {"test_order.py::test_slow": 2.5, "test_order.py::test_fast": 0.01}
    listing = run_under_plugin(
        tmp_path, "test_order.py", durations, mutant, 0.001, "--collect-only"
    )
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "3 tests collected" in listing.stdout, listing.stdout
    run = run_under_plugin(tmp_path, "test_order.py", durations, mutant, 0.001)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted((tmp_path / "order.txt").read_text().split()) == ["fast", "slow", "unmeasured"]


def test_the_report_says_which_scores_are_lower_bounds(tmp_path: Path) -> None:
    killed = tuple(f"verify.checks.x_f__mutmut_{n}" for n in range(1, 10))
    results = [
        (PackageScore("verify", killed, (), (), ()), 0.9, tmp_path),
        (PackageScore("patches", killed[:1], killed[1:2], (), ()), 0.9, tmp_path),
    ]
    text = report(results, {"verify": 10.0, "host": 5.0})
    assert text.splitlines()[2:5] == [
        "- verify: 100.0% killed (9/9; 0 equivalent, 0 surviving) target 90%: ok",
        "- patches: 50.0% killed (1/2; 0 equivalent, 1 surviving) target 90%: BELOW TARGET",
        "- verify: each mutant's tests stopped after 10 s of measured time, so its score is a "
        "lower bound (docs/mutation.md#test-budget)",
    ]
    budget = project_config()["tool"]["mutation"]["test_budget"]
    assert set(budget) <= set(project_config()["tool"]["mutation"]["tests"])


MEMOIZING_TESTS = """\
import cli_contract
from host.contract import parser
from plan.settings import _config_keys
from plan.settings import RepositorySettings as Settings

def _used():
    cli_contract.built(parser, cli_contract.StrictParser)
    _config_keys(Settings)

def test_first():
    assert cli_contract._BUILT == {} and _config_keys.cache_info().currsize == 0
    _used()

def test_second():
    assert cli_contract._BUILT == {} and _config_keys.cache_info().currsize == 0
    _used()
"""


@pytest.mark.parametrize(("mutant", "failed"), [("stats", 0), (f"{M}1", 1), ("", 1)])
def test_while_mutmut_collects_each_test_starts_without_memoized_parsers_or_caches(
    tmp_path: Path, mutant: str, failed: int
) -> None:
    """A memoized function runs once per process: without emptying the caches, only the first
    test calling it would count as reaching it."""
    (tmp_path / "test_memo.py").write_text(MEMOIZING_TESTS)
    run = run_under_plugin(tmp_path, "test_memo.py", {}, mutant)
    assert f"{2 - failed} passed" in run.stdout, run.stdout + run.stderr
    assert run.returncode == failed, run.stdout + run.stderr


LOOPING_TEST = """\
import time

def test_loops():
    while True:
        time.sleep(0.01)
"""


def test_a_mutant_that_makes_a_test_loop_fails_that_test_at_its_time_limit(
    tmp_path: Path,
) -> None:
    """Measured at 0.05 s, the test may take 10.5 s under a mutant, then fails (the mutant is
    killed) instead of using mutmut's limit for the whole run."""
    (tmp_path / "test_loop.py").write_text(LOOPING_TEST)
    durations = {"test_loop.py::test_loops": 0.05}
    run = run_under_plugin(tmp_path, "test_loop.py", durations, f"{M}1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "MutantTimeout: test_loop.py::test_loops ran over its limit of 10 s" in run.stdout


# A project of one function and one test, mutated by mutmut for real through scripts/mutation's
# launcher (tests/mutation/launch.py).
TINY_CONFIG = """\
[tool.mutmut]
source_paths = ["tiny/"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]
process_isolation = "forkserver"
forkserver_warmup = "collect"
"""
TINY_SOURCE = "def bigger(a, b):\n    return a if a > b else b\n"
TINY_TEST = """\
from tiny import bigger


def test_bigger():
    assert bigger(2, 1) == 2
    assert bigger(1, 2) == 2
    assert CLEAN_RUN_MARK
"""
SKIPPED = "mutation: clean run skipped: the stats pass just ran every test green"


def launch(project: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    launcher = ROOT / "tests" / "mutation" / "launch.py"
    return subprocess.run(
        [sys.executable, str(launcher), "run", "--max-children", "1"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environment},
        check=False,
    )


def tiny_project(directory: Path) -> Path:
    (directory / "tiny").mkdir()
    (directory / "tiny" / "__init__.py").write_text(TINY_SOURCE)
    (directory / "tests").mkdir()
    (directory / "tests" / "test_tiny.py").write_text(
        TINY_TEST.replace("CLEAN_RUN_MARK", "__import__('os').environ['TINY_PASSES'] == 'yes'")
    )
    (directory / "pyproject.toml").write_text(TINY_CONFIG)
    return directory


def test_the_launcher_skips_the_clean_run_only_right_after_a_green_stats_pass(
    tmp_path: Path,
) -> None:
    project = tiny_project(tmp_path)
    first = launch(project, {"TINY_PASSES": "yes"})
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert SKIPPED in first.stdout
    codes = read_exit_codes(project / "mutants", "tiny")
    assert len(codes) >= 2 and 1 in codes.values()  # mutants ran, and the test killed some
    # The stats are mutmut's from now on: a test that fails since must stop the next run in
    # its clean run, before any mutant, and the skip must not hide that.
    (project / "mutants" / "tiny" / "__init__.py.meta").unlink()
    again = launch(project, {"TINY_PASSES": "no"})
    assert SKIPPED not in again.stdout
    assert "Failed to run clean test" in again.stdout
    assert again.returncode != 0
    assert not (project / "mutants" / "tiny" / "__init__.py.meta").exists()


def test_the_launcher_stops_when_the_stats_pass_fails(tmp_path: Path) -> None:
    failed = launch(tiny_project(tmp_path), {"TINY_PASSES": "no"})
    assert failed.returncode != 0
    assert SKIPPED not in failed.stdout
    assert "failed to collect stats" in failed.stdout


# Six tests that pass only in the order they are written: each checks which ran before it.
SELECTION_ORDERED_TESTS = "from tiny import bigger\n\nRAN = []\n" + "".join(
    f"""

def test_{n}():
    RAN.append({n})
    assert RAN == list(range(1, {n} + 1))
    assert bigger({n}, 0) == {n} and bigger(0, {n}) == {n}
"""
    for n in range(1, 7)
)


def test_the_launcher_runs_a_functions_tests_in_the_order_of_the_selection(
    tmp_path: Path,
) -> None:
    """mutmut keeps a function's tests in a set, whose order changes with each process: run in
    it, these tests would fail under every mutant (and in the clean run) 719 times in 720."""
    project = tiny_project(tmp_path)
    (project / "tests" / "test_tiny.py").write_text(SELECTION_ORDERED_TESTS)
    first = launch(project, {})
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    codes = read_exit_codes(project / "mutants", "tiny")
    # `a >= b` for `a > b` is the one mutant these tests cannot tell apart: it survives.
    assert list(codes.values()).count(0) == 1 and 1 in codes.values(), codes
    # A later run's clean run gets the tests of the changed function from mutmut's set too.
    (project / "tiny" / "__init__.py").write_text(
        "def bigger(a, b):\n    return a if b < a else b\n"
    )
    again = launch(project, {})
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert SKIPPED not in again.stdout
    codes = read_exit_codes(project / "mutants", "tiny")
    assert list(codes.values()).count(0) == 1 and 1 in codes.values(), codes


def test_a_test_modules_import_time_calls_count_for_its_own_tests_only(tmp_path: Path) -> None:
    """A function the package runs while it is imported is reached by every test; one a test
    module runs while it is imported (a constant, a parameter list) only by that module's
    tests. Counted for every test, 94 of verify's functions had all 1,021 tests in the stats
    pass, and the budget ran none of those that call them."""
    project = tiny_project(tmp_path)
    (project / "tiny" / "__init__.py").write_text(
        TINY_SOURCE
        + "\n\ndef smaller(a, b):\n    return b if a > b else a\n\n\nLEAST = smaller(3, 4)\n"
    )
    (project / "tests" / "test_tiny.py").write_text(
        "from tiny import LEAST, bigger\n\nTOP = bigger(1, 2)\n\n\n"
        "def test_top():\n    assert TOP == 2\n\n\ndef test_least():\n    assert LEAST == 3\n"
    )
    (project / "tests" / "test_other.py").write_text("def test_other():\n    assert 1 + 1 == 2\n")
    config = TINY_CONFIG.replace('"-q"]', '"-q", "-p", "tests.mutation.childstats"]')
    (project / "pyproject.toml").write_text(config)

    ran = launch(project, {"PYTHONPATH": str(ROOT)})

    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    stats = json.loads((project / "mutants" / "mutmut-stats.json").read_text())
    reached = {
        name: sorted(tests) for name, tests in stats["tests_by_mangled_function_name"].items()
    }
    everyone = [
        "tests/test_other.py::test_other",
        *(f"tests/test_tiny.py::test_{n}" for n in ("least", "top")),
    ]
    assert reached == {
        "tiny.x_bigger": ["tests/test_tiny.py::test_least", "tests/test_tiny.py::test_top"],
        "tiny.x_smaller": sorted(everyone),
    }


def test_every_selected_test_can_be_run_by_the_id_a_collection_gives_it() -> None:
    # mutmut lists the tests once, then runs each mutant's tests by node id in later pytest
    # sessions: an id that changes between sessions (gzip's mtime in a parameter, say) makes
    # its whole run fail. The second collection below starts seconds after the first.
    union = project_config()["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    quiet = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]

    def collect(*args: str) -> list[str]:
        result = subprocess.run(
            [*quiet, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return [line for line in result.stdout.splitlines() if "::" in line]

    ids = collect(*union)
    assert len(ids) > 1000
    assert collect(*ids) == ids


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_the_tests_that_send_ctrl_c_pass_under_a_parent_that_ignores_it() -> None:
    """mutmut's fork server ignores SIGINT, and so does `scripts/mutation ... &`; a child that
    inherits that through exec never sees a test's Ctrl-C (verify's resumed clean run failed on
    a test that did not give its child SIGINT's default back)."""
    tests = ["tests/test_verify_hostile.py", "tests/integration/test_verify_run.py"]
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*pytest_command, "-k", "interrupted", *tests],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=_ignore_ctrl_c,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "4 passed" in run.stdout, run.stdout[-3000:]
