"""Scores from mutmut's result files and the reviewed list of equivalent mutants.

mutmut 3 writes one `<source>.py.meta` JSON file per mutated module under `mutants/`, mapping
each mutant's name (`verify.checks.x_exit_code__mutmut_3`) to the exit code of its test run.
A mutant counts as killed when a test failed, timed out or the mutant crashed the interpreter;
it survives when the tests passed or no test reached it. Equivalent mutants (a change no
behaviour can tell apart) are listed with a reason in `equivalent.txt` and left out of the
score; an entry whose mutant is no longer a survivor is stale and must be removed.
"""

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# mutmut's exit codes (mutmut/stats.py); a code not listed is "suspicious" (survived).
KILLED_CODES = frozenset({1, 3, 24, -24, 36, 37, 152, 255, -9, -11})
SURVIVED_CODES = frozenset({0, 5, 33})
UNFINISHED_CODES = frozenset({None, 2, 34})


class MutationError(Exception):
    """Bad input to the mutation report: one message naming the input and what is allowed."""


@dataclass(frozen=True)
class PackageScore:
    """The outcome of one package's mutation run."""

    package: str
    """Top-level package name, e.g. "verify"."""
    killed: tuple[str, ...]
    """Mutants some test detected."""
    survivors: tuple[str, ...]
    """Mutants no test detected and not listed as equivalent."""
    equivalent: tuple[str, ...]
    """Surviving mutants listed in equivalent.txt (left out of the score)."""
    stale: tuple[str, ...]
    """equivalent.txt entries of this package that are not surviving mutants (any more)."""

    @property
    def score(self) -> float:
        """Killed share of the mutants that can change behaviour (1.0 when there are none)."""
        counted = len(self.killed) + len(self.survivors)
        return len(self.killed) / counted if counted else 1.0

    def meets(self, target: float) -> bool:
        return self.score >= target and not self.stale


def parse_equivalents(text: str, source: str = "equivalent.txt") -> dict[str, str]:
    """`mutant name: reason` per line (blank lines and `#` comments ignored) -> {name: reason}."""
    equivalents: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, separator, reason = stripped.partition(":")
        name, reason = name.strip(), reason.strip()
        where = f"{source}:{number}"
        if not separator or not reason or "__mutmut_" not in name or " " in name:
            raise MutationError(
                f"{where}: {stripped!r} is not `<mutant name>: <reason>` "
                "(a mutmut mutant name such as verify.checks.x_f__mutmut_3, then a reason)"
            )
        if name in equivalents:
            raise MutationError(f"{where}: {name} is listed twice; one entry, one reason")
        equivalents[name] = reason
    return equivalents


def read_exit_codes(
    mutants_dir: Path, package: str, excluded: Sequence[str] = ()
) -> dict[str, int | None]:
    """Every mutant of `package` found in mutmut's `.meta` files, with its exit code; sources
    matching an `excluded` glob (mutmut's `do_not_mutate`) are left out."""
    codes: dict[str, int | None] = {}
    for meta in sorted((mutants_dir / package).rglob("*.py.meta")):
        source = meta.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        if any(fnmatch.fnmatch(source, glob) for glob in excluded):
            continue
        try:
            document = json.loads(meta.read_text())
            by_key = document["exit_code_by_key"]
        except (ValueError, KeyError, TypeError) as error:
            raise MutationError(f"{meta}: not a mutmut result file ({error})") from error
        codes.update(by_key)
    return codes


def remove_stale_results(mutants_dir: Path, package: str, project: Path) -> list[str]:
    """Remove the mutated copies and result files of modules `project` no longer has (renamed or
    deleted since the results were written); returns their sources. mutmut keeps them on a
    resumed run, and their results would otherwise be counted as the package's."""
    removed = []
    for meta in sorted((mutants_dir / package).rglob("*.py.meta")):
        source = meta.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        if not (project / source).is_file():
            meta.unlink()
            (mutants_dir / source).unlink(missing_ok=True)
            removed.append(source)
    return removed


def package_score(
    package: str, exit_codes: Mapping[str, int | None], equivalents: Mapping[str, str]
) -> PackageScore:
    """Sort the mutants of `package` into killed, surviving and equivalent; find stale entries."""
    unfinished = sorted(name for name, code in exit_codes.items() if code in UNFINISHED_CODES)
    if unfinished:
        raise MutationError(
            f"{package}: {len(unfinished)} mutants were not run to the end "
            f"(first: {unfinished[0]}); run the package again"
        )
    killed = sorted(name for name, code in exit_codes.items() if code in KILLED_CODES)
    surviving = sorted(name for name in exit_codes if name not in set(killed))
    ours = {name for name in equivalents if name.startswith(f"{package}.")}
    return PackageScore(
        package=package,
        killed=tuple(killed),
        survivors=tuple(name for name in surviving if name not in ours),
        equivalent=tuple(name for name in surviving if name in ours),
        stale=tuple(sorted(ours - set(surviving))),
    )


def summary_line(result: PackageScore, target: float) -> str:
    verdict = "ok" if result.meets(target) else "BELOW TARGET"
    counted = len(result.killed) + len(result.survivors)
    return (
        f"{result.package}: {result.score:.1%} killed ({len(result.killed)}/{counted}; "
        f"{len(result.equivalent)} equivalent, {len(result.survivors)} surviving) "
        f"target {target:.0%}: {verdict}"
    )


def to_run_again(exit_codes: dict[str, int | None], equivalents: dict[str, str]) -> list[str]:
    """The mutants `--survivors` runs again: neither killed nor a reviewed equivalent (no test
    can kill one of those; a complete run checks each is still a survivor)."""
    return sorted(
        name
        for name, code in exit_codes.items()
        if code not in KILLED_CODES and name not in equivalents
    )
