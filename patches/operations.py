"""The structural edits a patch set is made of, each with its precondition and postcondition.

An operation names an instruction by structure (stage, image, ARG name), checks that it finds
exactly what the definitions expect (precondition), edits only the physical line(s) of that
instruction, and then checks on the re-parsed result that the intended property holds
(postcondition). Every other byte of the file is kept, line endings included.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import ClassVar

from patches.dockerfile import Dockerfile, Instruction, Line, Stage, parse_arg
from patches.platforms import TARGET, stage_platform


@dataclass(frozen=True)
class Mismatch:
    """A condition that does not hold: where, what was expected, what was found."""

    line_number: int
    expected: str
    found: str


class Operation(ABC):
    """One structural edit. Subclasses are frozen dataclasses whose fields are the definition."""

    op: ClassVar[str]

    @abstractmethod
    def describe(self) -> str:
        """One line saying what the edit does, for listings and messages."""

    @abstractmethod
    def precondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        """None when the file holds exactly what this edit expects to change."""

    @abstractmethod
    def edit(self, dockerfile: Dockerfile) -> tuple[Line, ...]:
        """The file's lines after the edit; call only when the precondition holds."""

    @abstractmethod
    def postcondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        """None when the edited file has the property this edit exists for."""

    def as_data(self) -> dict[str, object]:
        """The definition as plain data (what patch ids are computed from)."""
        return {"op": self.op, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class DropFromPlatform(Operation):
    """Make a stage follow the target platform by dropping the `--platform` flag of its FROM."""

    op: ClassVar[str] = "drop-from-platform"
    stage: str
    """Name of the stage whose FROM names the image."""
    image: str
    """How the image reference starts, e.g. "python:"."""
    platform: str = "$BUILDPLATFORM"
    """The `--platform` value expected before the edit, as written."""

    def describe(self) -> str:
        return f"drop --platform={self.platform} from FROM {self.image}… AS {self.stage}"

    def _expected(self) -> str:
        return f"FROM --platform={self.platform} {self.image}… AS {self.stage}"

    def precondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        stage = dockerfile.stage(self.stage)
        if stage is None:
            return _missing_stage(dockerfile, self.stage, self._expected())
        clause = stage.clause
        if not clause.image.startswith(self.image) or clause.platform != self.platform:
            return Mismatch(stage.instruction.line_number, self._expected(), stage.instruction.text)
        return None

    def edit(self, dockerfile: Dockerfile) -> tuple[Line, ...]:
        stage = _require_stage(dockerfile, self.stage)
        token = re.compile(r"(?<!\S)--platform=" + re.escape(self.platform) + r"(?!\S)[ \t]*")
        return _replace_in_instruction(dockerfile, stage.instruction, token, "")

    def postcondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        expected = f"FROM {self.image}… AS {self.stage} (stage on the target platform)"
        stage = dockerfile.stage(self.stage)
        if stage is None:
            return _missing_stage(dockerfile, self.stage, expected)
        clause = stage.clause
        if (
            clause.platform is not None
            or not clause.image.startswith(self.image)
            or stage_platform(dockerfile, stage) != TARGET
        ):
            return Mismatch(stage.instruction.line_number, expected, stage.instruction.text)
        return None


@dataclass(frozen=True)
class RemoveArgDefault(Operation):
    """Let a stage see BuildKit's automatic value of an ARG by removing the ARG's default."""

    op: ClassVar[str] = "remove-arg-default"
    stage: str
    """Name of the stage that declares the ARG."""
    name: str
    """The ARG, e.g. "TARGETARCH"."""
    default: str
    """The default expected before the edit, e.g. "amd64"."""

    def describe(self) -> str:
        return f"remove the default of ARG {self.name}={self.default} in stage {self.stage}"

    def precondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        expected = f"ARG {self.name}={self.default} in stage {self.stage}"
        stage = dockerfile.stage(self.stage)
        if stage is None:
            return _missing_stage(dockerfile, self.stage, expected)
        instruction = _declaring_arg(dockerfile.stage_instructions(stage), self.name)
        if instruction is None:
            return Mismatch(
                stage.instruction.line_number,
                expected,
                f"no ARG {self.name} in stage {self.stage}",
            )
        if _arg_default(instruction, self.name) != self.default:
            return Mismatch(instruction.line_number, expected, instruction.text)
        return None

    def edit(self, dockerfile: Dockerfile) -> tuple[Line, ...]:
        stage = _require_stage(dockerfile, self.stage)
        instruction = _declaring_arg(dockerfile.stage_instructions(stage), self.name)
        if instruction is None:
            raise ValueError(f"edit called without its precondition: {self.describe()}")
        token = re.compile(r"(?<!\S)" + re.escape(self.name) + r"""=("[^"]*"|'[^']*'|\S*)""")
        return _replace_in_instruction(dockerfile, instruction, token, self.name)

    def postcondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        expected = f"ARG {self.name} without a default in stage {self.stage}"
        stage = dockerfile.stage(self.stage)
        if stage is None:
            return _missing_stage(dockerfile, self.stage, expected)
        instruction = _declaring_arg(dockerfile.stage_instructions(stage), self.name)
        if instruction is None:
            return Mismatch(stage.instruction.line_number, expected, "no such ARG")
        if _arg_default(instruction, self.name) is not None:
            return Mismatch(instruction.line_number, expected, instruction.text)
        return None


@dataclass(frozen=True)
class RemoveGlobalArg(Operation):
    """Remove a global ARG whose default pins an automatic platform value.

    Removing the whole instruction (not just its default) matters: a global ARG left without a
    value empties the automatic value on BuildKit older than v0.17. The comment line directly
    above, when the definition names it, explains only this ARG and goes with it; a blank line
    left doubled by the removal is dropped too.
    """

    op: ClassVar[str] = "remove-global-arg"
    name: str
    """The ARG, e.g. "BUILDPLATFORM"."""
    default: str
    """The default expected before the edit, e.g. "linux/amd64"."""
    comment: str = ""
    """Text of the comment line directly above the ARG (without "# "), removed with it."""

    def describe(self) -> str:
        return f"remove the global ARG {self.name}={self.default}"

    def _expected(self) -> str:
        return f"global ARG {self.name}={self.default}"

    def precondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        instruction = _declaring_arg(dockerfile.global_instructions(), self.name)
        if instruction is None:
            first = dockerfile.instructions[0].line_number if dockerfile.instructions else 1
            return Mismatch(first, self._expected(), f"no global ARG {self.name}")
        if instruction.arguments != f"{self.name}={self.default}":
            expected = f"ARG {self.name}={self.default}"
            return Mismatch(instruction.line_number, expected, instruction.text)
        if self.comment:
            above = dockerfile.lines[instruction.start - 1].text if instruction.start else ""
            if above.strip() != f"# {self.comment}":
                return Mismatch(
                    max(instruction.start, 1), f"# {self.comment}", above or "(start of file)"
                )
        return None

    def edit(self, dockerfile: Dockerfile) -> tuple[Line, ...]:
        instruction = _declaring_arg(dockerfile.global_instructions(), self.name)
        if instruction is None:
            raise ValueError(f"edit called without its precondition: {self.describe()}")
        first = instruction.start - 1 if self.comment else instruction.start
        last = instruction.end
        lines = dockerfile.lines
        blank_before = first == 0 or not lines[first - 1].text.strip()
        if blank_before and last < len(lines) and not lines[last].text.strip():
            last += 1
        return lines[:first] + lines[last:]

    def postcondition(self, dockerfile: Dockerfile) -> Mismatch | None:
        instruction = _declaring_arg(dockerfile.global_instructions(), self.name)
        if instruction is not None:
            return Mismatch(instruction.line_number, f"no global ARG {self.name}", instruction.text)
        return None


OPERATIONS: dict[str, type[Operation]] = {
    cls.op: cls for cls in (DropFromPlatform, RemoveArgDefault, RemoveGlobalArg)
}


def _missing_stage(dockerfile: Dockerfile, name: str, expected: str) -> Mismatch:
    found = ", ".join(f"{s.label} at line {s.instruction.line_number}" for s in dockerfile.stages)
    line = dockerfile.stages[0].instruction.line_number if dockerfile.stages else 1
    return Mismatch(line, expected, f"no stage {name!r}; stages: {found or 'none'}")


def _require_stage(dockerfile: Dockerfile, name: str) -> Stage:
    stage = dockerfile.stage(name)
    if stage is None:
        raise ValueError(f"edit called without its precondition: no stage {name!r}")
    return stage


def _declaring_arg(instructions: tuple[Instruction, ...], name: str) -> Instruction | None:
    for instruction in instructions:
        if instruction.keyword == "ARG" and any(
            d.name == name for d in parse_arg(instruction.arguments)
        ):
            return instruction
    return None


def _arg_default(instruction: Instruction, name: str) -> str | None:
    return next(d.default for d in parse_arg(instruction.arguments) if d.name == name)


def _replace_in_instruction(
    dockerfile: Dockerfile, instruction: Instruction, token: re.Pattern[str], replacement: str
) -> tuple[Line, ...]:
    """Replace the first match of `token` on the instruction's lines, keeping line endings."""
    lines = list(dockerfile.lines)
    for index in range(instruction.start, instruction.end):
        if lines[index].text.lstrip().startswith("#"):
            continue
        text, count = token.subn(replacement, lines[index].text, count=1)
        if count:
            lines[index] = Line(text, lines[index].ending)
            return tuple(lines)
    raise ValueError(f"{token.pattern!r} not found in line {instruction.line_number}")
