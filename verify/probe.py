"""The ``--probe`` and ``--env`` values of ``verify --run``: their syntax, parsed and checked.

Pure (no Docker, no gRPC): the stack configuration (``plan.settings``) validates probe and env
overrides with the same functions the CLI uses, so a value the program accepts is one the tool
accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROBE_FORMS = "grpc:PORT, http:PORT/PATH, tcp:PORT or up:SECONDS"
PROBE_KINDS = ("grpc", "http", "tcp", "up")
MAX_UP_SECONDS = 3600
MAX_TIMEOUT = 3600
"""Longest ``--run-timeout`` in seconds."""

_PROBE = re.compile(r"^(?P<kind>grpc|tcp|up):(?P<number>[0-9]{1,5})$")
_HTTP = re.compile(r"^http:(?P<number>[0-9]{1,5})(?P<path>/[\x21-\x7e]*)$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A portable environment variable name (what POSIX shells and Docker's ``-e NAME`` accept)."""


class ProbeError(ValueError):
    """A probe or env value that does not follow its syntax."""


@dataclass(frozen=True)
class Probe:
    """How a started container proves it runs: a health check, or staying up for a while."""

    kind: str
    """One of :data:`PROBE_KINDS`."""
    number: int
    """The container port (grpc, http, tcp), or the seconds to stay up (up)."""
    path: str = ""
    """The HTTP path (http only), starting with ``/``."""

    def __str__(self) -> str:
        return f"{self.kind}:{self.number}{self.path}"


def parse_probe(text: str) -> Probe:
    """Parse ``grpc:PORT``, ``http:PORT/PATH``, ``tcp:PORT`` or ``up:SECONDS``."""
    match = _PROBE.fullmatch(text) or _HTTP.fullmatch(text)
    if match is None:
        raise ProbeError(f"probe {text!r} is not valid; expected {PROBE_FORMS}")
    kind = text.partition(":")[0]
    number = int(match.group("number"))
    if kind == "up" and not 1 <= number <= MAX_UP_SECONDS:
        raise ProbeError(f"probe {text!r}: SECONDS must be from 1 to {MAX_UP_SECONDS}")
    if kind != "up" and not 1 <= number <= 65535:
        raise ProbeError(f"probe {text!r}: PORT must be from 1 to 65535")
    return Probe(kind, number, match.group("path") if kind == "http" else "")


def parse_env(text: str) -> tuple[str, str]:
    """Parse ``NAME=VALUE`` (the value may be empty, contain ``=``, never a newline or NUL)."""
    name, separator, value = text.partition("=")
    if not separator or not ENV_NAME.fullmatch(name):
        # Never echoed: a mistyped value may be a secret.
        shown = name if ENV_NAME.fullmatch(name) else "(an invalid name)"
        raise ProbeError(
            f"env {shown}: expected NAME=VALUE with NAME of letters, digits and '_', "
            "not starting with a digit"
        )
    if "\n" in value or "\x00" in value:
        raise ProbeError(f"env {name}: the value must not contain a newline or NUL byte")
    return name, value
