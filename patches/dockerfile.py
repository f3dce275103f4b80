"""A small Dockerfile reader that keeps every byte and knows where each instruction lives.

Patches edit physical lines, so the parse keeps the file as a sequence of lines with their own
endings (LF or CRLF) and maps each instruction to the lines it spans and to its build stage.
It follows BuildKit's rules where they decide what an instruction is: parser directives at the
top (only `escape` changes parsing), comment lines, `\\` (or the directive's escape character)
line continuations, with comment and empty lines inside a continuation skipped, and heredocs of
RUN/COPY/ADD, whose bodies are not instructions.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_LINE = re.compile(r"([^\n]*?)(\r?\n|\Z)")
_DIRECTIVE = re.compile(r"^\s*#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_ESCAPES = ("\\", "`")


class DockerfileSyntaxError(ValueError):
    """The file cannot be read as a Dockerfile (e.g. an unsupported escape directive)."""


@dataclass(frozen=True)
class Line:
    """One physical line: its text and the ending that followed it ("\\n", "\\r\\n" or "")."""

    text: str
    ending: str


@dataclass(frozen=True)
class Instruction:
    """One instruction, with the physical lines it occupies."""

    keyword: str
    """Upper-cased instruction name, e.g. "FROM"."""
    arguments: str
    """Everything after the keyword, continuation lines joined as BuildKit joins them."""
    start: int
    """0-based index of its first physical line."""
    end: int
    """0-based index one past its last physical line (heredoc bodies included)."""
    stage: int | None
    """Index of the build stage it belongs to; None before the first FROM (global scope)."""

    @property
    def line_number(self) -> int:
        """1-based number of the first line, as editors and error messages count."""
        return self.start + 1

    @property
    def text(self) -> str:
        """The logical instruction, one line, for messages."""
        return f"{self.keyword} {self.arguments}".rstrip()


@dataclass(frozen=True)
class ArgDeclaration:
    """One name declared by an ARG instruction, with its default if it has one."""

    name: str
    default: str | None


@dataclass(frozen=True)
class FromClause:
    """The parts of a FROM instruction."""

    platform: str | None
    """The value of `--platform=`, as written (e.g. "$BUILDPLATFORM"), or None."""
    image: str
    """The image reference or earlier stage name, as written."""
    name: str | None
    """The stage name after AS, lower-cased as BuildKit compares it, or None."""


@dataclass(frozen=True)
class Stage:
    """A build stage: the FROM that opens it and its position."""

    index: int
    instruction: Instruction
    clause: FromClause

    @property
    def label(self) -> str:
        """How messages name the stage."""
        return f'"{self.clause.name}"' if self.clause.name else f"#{self.index} (unnamed)"


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile that can render itself back byte for byte."""

    lines: tuple[Line, ...]
    escape: str
    instructions: tuple[Instruction, ...]
    stages: tuple[Stage, ...]

    def render(self) -> str:
        """The file's text, identical to the parsed input when no line was changed."""
        return "".join(line.text + line.ending for line in self.lines)

    def stage(self, name: str) -> Stage | None:
        """The stage called `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((s for s in self.stages if s.clause.name == wanted), None)

    def stage_instructions(self, stage: Stage) -> tuple[Instruction, ...]:
        """The instructions of `stage`, its FROM included."""
        return tuple(i for i in self.instructions if i.stage == stage.index)

    def global_instructions(self) -> tuple[Instruction, ...]:
        """The instructions before the first FROM (only ARG is allowed there)."""
        return tuple(i for i in self.instructions if i.stage is None)


def split_lines(text: str) -> tuple[Line, ...]:
    """Split on LF only (keeping a CR before it as part of the ending); other bytes stay text."""
    lines: list[Line] = []
    for match in _LINE.finditer(text):
        body, ending = match.group(1), match.group(2)
        if not body and not ending:
            break
        lines.append(Line(body, ending))
    return tuple(lines)


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile text; raises DockerfileSyntaxError on an unsupported escape directive."""
    lines = split_lines(text)
    escape, first = _read_directives(lines)
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    instructions: list[Instruction] = []
    stage: int | None = None
    index = first
    while index < len(lines):
        if _is_blank_or_comment(lines[index].text):
            index += 1
            continue
        start = index
        parts: list[str] = []
        while True:
            body = lines[index].text
            joined = continuation.search(body)
            index += 1
            parts.append(body[: joined.start()] if joined else body)
            if not joined:
                break
            while index < len(lines) and _is_blank_or_comment(lines[index].text):
                index += 1
            if index >= len(lines):
                break
        logical = "".join(parts).strip()
        keyword, _, arguments = logical.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword in _HEREDOC_KEYWORDS:
            index = _skip_heredocs(lines, index, arguments)
        if keyword == "FROM":
            stage = 0 if stage is None else stage + 1
        instructions.append(Instruction(keyword, arguments, start, index, stage))
    stages = tuple(
        Stage(i.stage, i, parse_from(i.arguments))
        for i in instructions
        if i.keyword == "FROM" and i.stage is not None
    )
    return Dockerfile(lines, escape, tuple(instructions), stages)


def parse_from(arguments: str) -> FromClause:
    """Split FROM arguments into platform flag, image and stage name."""
    tokens = arguments.split()
    platform: str | None = None
    while tokens and tokens[0].startswith("--"):
        flag, _, value = tokens.pop(0).partition("=")
        if flag.lower() == "--platform":
            platform = value
    name: str | None = None
    if len(tokens) >= 3 and tokens[-2].lower() == "as":
        name = tokens[-1].lower()
        tokens = tokens[:-2]
    return FromClause(platform, tokens[0] if tokens else "", name)


def parse_arg(arguments: str) -> tuple[ArgDeclaration, ...]:
    """The names an ARG instruction declares (one ARG may declare several)."""
    try:
        words = shlex.split(arguments, comments=False, posix=True)
    except ValueError:
        words = arguments.split()
    declarations = []
    for word in words:
        name, sep, default = word.partition("=")
        declarations.append(ArgDeclaration(name, default if sep else None))
    return tuple(declarations)


def _read_directives(lines: tuple[Line, ...]) -> tuple[str, int]:
    """Return the escape character and the index of the first line after the directives."""
    escape = "\\"
    seen: set[str] = set()
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line.text)
        if not match or match.group(1).lower() in seen:
            return escape, index
        name, value = match.group(1).lower(), match.group(2)
        seen.add(name)
        if name == "escape":
            if value not in _ESCAPES:
                raise DockerfileSyntaxError(
                    f"line {index + 1}: escape directive {value!r} is not allowed; "
                    f"allowed: {' or '.join(repr(e) for e in _ESCAPES)}"
                )
            escape = value
    return escape, len(lines)


def _is_blank_or_comment(text: str) -> bool:
    stripped = text.strip()
    return not stripped or stripped.startswith("#")


def _skip_heredocs(lines: tuple[Line, ...], index: int, arguments: str) -> int:
    """Skip the bodies of the heredocs that `arguments` opens, in order; return the next index."""
    for match in _HEREDOC.finditer(arguments):
        strip_tabs, word = match.group(1) == "-", match.group(3)
        while index < len(lines):
            body = lines[index].text.lstrip("\t") if strip_tabs else lines[index].text
            index += 1
            if body == word:
                break
    return index
