"""Which platform each build stage runs on, and which ARGs break BuildKit's automatic values.

These are the BuildKit rules the patches exist for (see patches/README.md):
- a stage built FROM an earlier stage keeps that stage's platform; its own `--platform` is ignored;
- a stage FROM an image runs on the target platform unless `--platform` says otherwise;
- an ARG default for an automatic platform ARG (global or in a stage) replaces the value BuildKit
  would provide, so `--platform=$BUILDPLATFORM` or `GOARCH=$TARGETARCH` stop following the build;
- a global automatic platform ARG without a value empties it on BuildKit older than v0.17.
"""

from __future__ import annotations

from dataclasses import dataclass

from patches.dockerfile import Dockerfile, Stage, parse_arg

AUTOMATIC_ARGS = (
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
)

TARGET = "target"
BUILD = "build"


@dataclass(frozen=True)
class ArgProblem:
    """An ARG instruction that defeats BuildKit's automatic platform values."""

    line_number: int
    text: str
    reason: str


def stage_platform(dockerfile: Dockerfile, stage: Stage) -> str:
    """ "target", "build", or the fixed platform the stage is pinned to (e.g. "linux/amd64")."""
    parent = _earlier_stage(dockerfile, stage)
    if parent is not None:
        return stage_platform(dockerfile, parent)
    platform = stage.clause.platform
    if platform is None:
        return TARGET
    variable = _variable_name(platform)
    if variable is None:
        return platform
    pinned = _global_default(dockerfile, variable)
    if pinned is not None:
        return pinned
    return {"BUILDPLATFORM": BUILD, "TARGETPLATFORM": TARGET}.get(variable, platform)


def automatic_arg_problems(dockerfile: Dockerfile) -> tuple[ArgProblem, ...]:
    """Every ARG that gives an automatic platform ARG a default, or declares one globally bare."""
    problems = []
    for instruction in dockerfile.instructions:
        if instruction.keyword != "ARG":
            continue
        for declaration in parse_arg(instruction.arguments):
            if declaration.name not in AUTOMATIC_ARGS:
                continue
            if declaration.default is not None:
                reason = f"a default replaces BuildKit's automatic {declaration.name}"
            elif instruction.stage is None:
                reason = (
                    f"a global ARG {declaration.name} without a value empties it "
                    "on BuildKit older than v0.17"
                )
            else:
                continue
            problems.append(ArgProblem(instruction.line_number, instruction.text, reason))
    return tuple(problems)


def _earlier_stage(dockerfile: Dockerfile, stage: Stage) -> Stage | None:
    wanted = stage.clause.image.lower()
    earlier = [s for s in dockerfile.stages[: stage.index] if s.clause.name == wanted]
    return earlier[-1] if earlier else None


def _global_default(dockerfile: Dockerfile, name: str) -> str | None:
    default: str | None = None
    for instruction in dockerfile.global_instructions():
        if instruction.keyword == "ARG":
            for declaration in parse_arg(instruction.arguments):
                if declaration.name == name:
                    default = declaration.default
    return default


def _variable_name(value: str) -> str | None:
    if value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    if value.startswith("$"):
        return value[1:]
    return None
