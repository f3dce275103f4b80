"""`python tests/mutation/launch.py run ...`: mutmut's command line, without a redundant clean run.

Before the first mutant, mutmut runs the whole test selection twice: once to collect which tests
reach which function (the stats), then once more unmutated (the clean run), to stop before
mutating anything if a test already fails. A stats pass that this process has just made ran the
same tests, unmutated, and mutmut stops when one of them fails, so the clean run after it proves
nothing more; for verify it costs 22 minutes. It still runs when the stats were loaded from an
earlier run (`--resume`, `--survivors`) or collected for some tests only: the tests may have
changed since.

mutmut keeps the tests of a function in a set and runs them in its order, which changes with
every process (string hashes are salted). Here they run in the order of the selection, as
`scripts/test` runs them, which the stats pass records: a test that passes only after or before
another then fails (or passes) in every run alike, not in one run of ten.
"""

import os
import sys
from collections.abc import Iterable

from mutmut.__main__ import cli
from mutmut.state import state
from mutmut.workers.isolation import ForkServerRunner

_collect_stats = ForkServerRunner.collect_stats
_run_clean_tests = ForkServerRunner.run_clean_tests
_submit = ForkServerRunner.submit
# Whether this process ran every selected test green while collecting the stats.
_all_passed_unmutated = False


def in_selection_order(tests: Iterable[str]) -> list[str]:
    """`tests` in the order the stats pass ran them (the selection's), then new ones by name."""
    ran = {name: index for index, name in enumerate(state().duration_by_test)}
    return sorted(tests, key=lambda name: (ran.get(name, len(ran)), name))


def collect_stats(runner: ForkServerRunner, tests: Iterable[str] | None) -> int:
    global _all_passed_unmutated
    selected = in_selection_order(tests) if tests is not None else []
    code = _collect_stats(runner, selected)
    if code == 0 and not selected:  # no names: mutmut's "every selected test"
        _all_passed_unmutated = True
    return code


def run_clean_tests(runner: ForkServerRunner, tests: Iterable[str]) -> int:
    if _all_passed_unmutated:
        # mutmut catches sys.stdout while its spinner turns; this line is for the person watching.
        print(
            "\nmutation: clean run skipped: the stats pass just ran every test green",
            file=sys.__stdout__,
            flush=True,
        )
        return 0
    return _run_clean_tests(runner, in_selection_order(tests))


def submit(
    self: ForkServerRunner,
    mutant_name: str,
    tests: list[str],
    cpu_time_limit: int,
    estimated_time: float,
) -> None:
    _submit(self, mutant_name, in_selection_order(tests), cpu_time_limit, estimated_time)


if __name__ == "__main__":
    # Where `python -m mutmut` starts: the package's directory, not this one. Run as a script, this
    # file imports nothing of tests/, whose modules the tests then import from mutmut's copy.
    sys.path[0] = os.getcwd()
    ForkServerRunner.collect_stats = collect_stats  # type: ignore[method-assign,assignment]
    ForkServerRunner.run_clean_tests = run_clean_tests  # type: ignore[method-assign,assignment]
    ForkServerRunner.submit = submit  # type: ignore[method-assign]
    sys.exit(cli())
