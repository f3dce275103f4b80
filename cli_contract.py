"""The argv plumbing the tools' contracts share (`host/contract.py`, `patches/contract.py`,
`verify/contract.py`): a parser that raises instead of exiting, and how an option is rendered.

Standard library only, no Pulumi: the tools import it as they run.
"""

import argparse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

ParserClass = type[argparse.ArgumentParser]
ParserBuilder = Callable[[ParserClass], argparse.ArgumentParser]
R = TypeVar("R")

_BUILT: dict[tuple[ParserBuilder, ParserClass], argparse.ArgumentParser] = {}


class ArgvError(ValueError):
    """Arguments a tool's parser refuses (its CLI prints its usage and exits 2 instead)."""


class StrictParser(argparse.ArgumentParser):
    """A tool's parser, raising `ArgvError` with the message its CLI would print."""

    def error(self, message: str) -> Any:
        raise ArgvError(f"{self.prog}: error: {message}")


def built(build: ParserBuilder, parser_class: ParserClass) -> argparse.ArgumentParser:
    """`build(parser_class)`, built once: parsing leaves a parser as it was, and building one
    takes milliseconds (the program's test mocks parse every Command they answer)."""
    key = (build, parser_class)
    if key not in _BUILT:
        _BUILT[key] = build(parser_class)
    return _BUILT[key]


def option(flag: str, value: str | None) -> list[str]:
    """`flag value`, or `flag=value` for a value argparse would read as an option (`-x`);
    nothing for None."""
    if value is None:
        return []
    return [f"{flag}={value}"] if value.startswith("-") else [flag, value]


def repeated(flag: str, values: Sequence[str]) -> list[str]:
    """`option` for each value of a repeatable flag."""
    return [argument for value in values for argument in option(flag, value)]


def expect(kind: type[R], request: object) -> R:
    """`request` if it is a `kind`; `ArgvError` when the arguments were another subcommand's."""
    if not isinstance(request, kind):
        raise ArgvError(f"not a {kind.__name__}: {type(request).__name__}")
    return request
