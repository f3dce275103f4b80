"""`python tests/mutation/launch.py run ...`: mutmut's command line, without a redundant clean run.

Before the first mutant, mutmut runs the whole test selection twice: once to collect which tests
reach which function (the stats), then once more unmutated (the clean run), to stop before
mutating anything if a test already fails. A stats pass that this process has just made ran the
same tests, unmutated, and mutmut stops when one of them fails, so the clean run after it proves
nothing more; for verify it costs 22 minutes. It still runs when the stats were loaded from an
earlier run (`--resume`, `--survivors`) or collected for some tests only: the tests may have
changed since.
"""

import os
import sys
from collections.abc import Iterable

from mutmut.__main__ import cli
from mutmut.workers.isolation import ForkServerRunner

_collect_stats = ForkServerRunner.collect_stats
_run_clean_tests = ForkServerRunner.run_clean_tests
# Whether this process ran every selected test green while collecting the stats.
_all_passed_unmutated = False


def collect_stats(runner: ForkServerRunner, tests: Iterable[str] | None) -> int:
    global _all_passed_unmutated
    selected = list(tests) if tests is not None else []
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
    return _run_clean_tests(runner, tests)


if __name__ == "__main__":
    # Where `python -m mutmut` starts: the package's directory, not this one. Run as a script, this
    # file imports nothing of tests/, whose modules the tests then import from mutmut's copy.
    sys.path[0] = os.getcwd()
    ForkServerRunner.collect_stats = collect_stats  # type: ignore[method-assign,assignment]
    ForkServerRunner.run_clean_tests = run_clean_tests  # type: ignore[method-assign,assignment]
    sys.exit(cli())
