"""Each structural edit: exact result, every precondition's mismatch, postconditions, platforms."""

from __future__ import annotations

import pytest

from patches.dockerfile import Line, parse
from patches.engine import PatchError, apply_operations
from patches.operations import (
    DropFromPlatform,
    Mismatch,
    Operation,
    RemoveArgDefault,
    RemoveGlobalArg,
)
from patches.platforms import BUILD, TARGET, automatic_arg_problems, stage_platform

PYTHON = (
    "# license header\n"
    "\n"
    "# why the default\n"
    "ARG BUILDPLATFORM=linux/amd64\n"
    "\n"
    "FROM --platform=$BUILDPLATFORM python:3.12-alpine AS base\n"
    "\n"
    "FROM base AS builder\n"
    "RUN pip install \\\n"
    "    grpcio\n"
    "FROM base\n"
)

GO = (
    "FROM --platform=$BUILDPLATFORM golang:1.23 AS builder\n"
    "ARG TARGETOS=linux\n"
    "ARG TARGETARCH=amd64\n"
    "RUN GOARCH=${TARGETARCH} go build\n"
    "FROM scratch\n"
)

DROP_BASE = DropFromPlatform(stage="base", image="python:")
REMOVE_GLOBAL = RemoveGlobalArg(
    name="BUILDPLATFORM", default="linux/amd64", comment="why the default"
)


def _edit(operation: Operation, text: str) -> str:
    dockerfile = parse(text)
    assert operation.precondition(dockerfile) is None
    return "".join(line.text + line.ending for line in operation.edit(dockerfile))


def test_drop_from_platform_removes_only_the_flag() -> None:
    after = _edit(DROP_BASE, PYTHON)
    assert after == PYTHON.replace("FROM --platform=$BUILDPLATFORM python", "FROM python")
    patched = parse(after)
    assert DROP_BASE.postcondition(patched) is None
    assert [stage_platform(patched, s) for s in patched.stages] == [TARGET] * 3


def test_drop_from_platform_edits_the_continuation_line_that_holds_the_flag() -> None:
    text = "FROM \\\r\n    --platform=$BUILDPLATFORM \\\r\n    node:20 AS builder\r\n"
    after = _edit(DropFromPlatform(stage="builder", image="node:"), text)
    assert after == "FROM \\\r\n    \\\r\n    node:20 AS builder\r\n"
    assert parse(after).stages[0].clause.platform is None


def test_drop_from_platform_edits_only_the_from_of_its_stage() -> None:
    text = (
        "FROM --platform=$BUILDPLATFORM golang:1.23 AS builder\n"
        "FROM --platform=$BUILDPLATFORM python:3 AS base\n"
    )
    assert _edit(DROP_BASE, text) == (
        "FROM --platform=$BUILDPLATFORM golang:1.23 AS builder\nFROM python:3 AS base\n"
    )


def test_drop_from_platform_leaves_a_comment_inside_the_instruction_alone() -> None:
    """BuildKit skips comment lines inside a continuation; so does the edit, even when the
    comment (indented, as it sits among the continued lines) mentions the flag."""
    text = (
        "FROM \\\n"
        "    # --platform=$BUILDPLATFORM is dropped for arm64\n"
        "    --platform=$BUILDPLATFORM python:3 AS base\n"
    )
    assert _edit(DROP_BASE, text) == (
        "FROM \\\n    # --platform=$BUILDPLATFORM is dropped for arm64\n    python:3 AS base\n"
    )


def test_an_edit_whose_text_is_not_in_its_instruction_names_the_pattern_and_line() -> None:
    with pytest.raises(ValueError) as raised:
        DROP_BASE.edit(parse("# c\nFROM python:3 AS base\n"))
    pattern = r"'(?<!\\S)--platform=\\$BUILDPLATFORM(?!\\S)[ \\t]*'"
    assert str(raised.value) == f"{pattern} not found in line 2"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # Still pinned, even if to the value that is the default anyway.
        (
            "FROM --platform=$TARGETPLATFORM python:3 AS base\n",
            "FROM --platform=$TARGETPLATFORM python:3 AS base",
        ),
        # On the target platform, but no longer the image the definition names.
        ("FROM pypy:3 AS base\n", "FROM pypy:3 AS base"),
        ("FROM python:3 AS other\n", "no stage 'base'; stages: \"other\" at line 1"),
    ],
)
def test_drop_from_platform_postcondition_wants_the_image_without_any_flag(
    text: str, found: str
) -> None:
    mismatch = DROP_BASE.postcondition(parse(text))
    assert mismatch is not None
    assert (mismatch.line_number, mismatch.expected) == (
        1,
        "FROM python:… AS base (stage on the target platform)",
    )
    assert mismatch.found == found


@pytest.mark.parametrize(
    ("text", "expected_line", "found"),
    [
        ("FROM python:3 AS other\n", 1, "no stage 'base'; stages: \"other\" at line 1"),
        (
            "# c\nFROM python:3 AS other\nFROM other\n",
            2,
            "no stage 'base'; stages: \"other\" at line 2, #1 (unnamed) at line 3",
        ),
        ("# c\nFROM --platform=$BUILDPLATFORM node:20 AS base\n", 2, "FROM --platform"),
        ("FROM --platform=linux/arm64 python:3 AS base\n", 1, "--platform=linux/arm64"),
        ("FROM python:3 AS base\n", 1, "FROM python:3 AS base"),
        ("", 1, "stages: none"),
    ],
)
def test_drop_from_platform_precondition_names_line_expected_and_found(
    text: str, expected_line: int, found: str
) -> None:
    mismatch = DROP_BASE.precondition(parse(text))
    assert mismatch is not None
    assert mismatch.line_number == expected_line
    assert mismatch.expected == "FROM --platform=$BUILDPLATFORM python:… AS base"
    assert found in mismatch.found


def test_drop_from_platform_postcondition_fails_while_the_flag_is_there() -> None:
    mismatch = DROP_BASE.postcondition(parse(PYTHON))
    assert mismatch == Mismatch(
        6,
        "FROM python:… AS base (stage on the target platform)",
        "FROM --platform=$BUILDPLATFORM python:3.12-alpine AS base",
    )


def test_remove_arg_default_keeps_the_declaration() -> None:
    operation = RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64")
    after = _edit(operation, GO)
    assert after == GO.replace("ARG TARGETARCH=amd64", "ARG TARGETARCH")
    assert operation.postcondition(parse(after)) is None
    assert operation.postcondition(parse(GO)) == Mismatch(
        3, "ARG TARGETARCH without a default in stage builder", "ARG TARGETARCH=amd64"
    )


def test_remove_arg_default_handles_quoted_defaults_among_other_declarations() -> None:
    text = 'FROM g AS builder\nARG A=1 TARGETARCH="amd64" B\n'
    operation = RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64")
    assert _edit(operation, text) == "FROM g AS builder\nARG A=1 TARGETARCH B\n"


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        (GO.replace("AS builder", "AS build"), 1, "no stage 'builder'"),
        (GO.replace("ARG TARGETARCH=amd64\n", ""), 1, "no ARG TARGETARCH in stage builder"),
        (GO.replace("TARGETARCH=amd64", "TARGETARCH=arm64"), 3, "ARG TARGETARCH=arm64"),
        (GO.replace("TARGETARCH=amd64", "TARGETARCH"), 3, "ARG TARGETARCH"),
    ],
)
def test_remove_arg_default_precondition_mismatches(text: str, line: int, found: str) -> None:
    operation = RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64")
    mismatch = operation.precondition(parse(text))
    assert mismatch is not None
    assert (mismatch.line_number, mismatch.expected) == (
        line,
        "ARG TARGETARCH=amd64 in stage builder",
    )
    assert found in mismatch.found


def test_remove_global_arg_takes_its_comment_and_one_blank_line() -> None:
    after = _edit(REMOVE_GLOBAL, PYTHON)
    assert after == PYTHON.replace("# why the default\nARG BUILDPLATFORM=linux/amd64\n\n", "")
    assert REMOVE_GLOBAL.postcondition(parse(after)) is None
    assert REMOVE_GLOBAL.postcondition(parse(PYTHON)) == Mismatch(
        4, "no global ARG BUILDPLATFORM", "ARG BUILDPLATFORM=linux/amd64"
    )


def test_remove_global_arg_without_comment_keeps_the_comment_and_crlf() -> None:
    text = PYTHON.replace("\n", "\r\n")
    after = _edit(RemoveGlobalArg(name="BUILDPLATFORM", default="linux/amd64"), text)
    assert after == text.replace("ARG BUILDPLATFORM=linux/amd64\r\n", "")


@pytest.mark.parametrize(
    ("text", "line", "expected", "found"),
    [
        (PYTHON.replace("ARG BUILDPLATFORM=linux/amd64\n", ""), 5, "global ARG", "no global"),
        ("# only a comment\n", 1, "global ARG BUILDPLATFORM=linux/amd64", "no global ARG"),
        (
            PYTHON.replace("=linux/amd64", "=linux/arm64"),
            4,
            "ARG BUILDPLATFORM=linux/amd64",
            "arm64",
        ),
        (
            PYTHON.replace("=linux/amd64", ""),
            4,
            "ARG BUILDPLATFORM=linux/amd64",
            "ARG BUILDPLATFORM",
        ),
        (PYTHON.replace("# why the default", "# other"), 3, "# why the default", "# other"),
        ("ARG BUILDPLATFORM=linux/amd64\nFROM a\n", 1, "# why the default", "(start of file)"),
    ],
)
def test_remove_global_arg_precondition_mismatches(
    text: str, line: int, expected: str, found: str
) -> None:
    mismatch = REMOVE_GLOBAL.precondition(parse(text))
    assert mismatch is not None
    assert mismatch.line_number == line
    assert expected in mismatch.expected
    assert found in mismatch.found


def test_apply_operations_runs_in_order_and_checks_the_platform_args() -> None:
    go = "# h\nARG BUILDPLATFORM=linux/amd64\n\n" + GO
    operations: tuple[Operation, ...] = (
        RemoveGlobalArg(name="BUILDPLATFORM", default="linux/amd64"),
        RemoveArgDefault(stage="builder", name="TARGETOS", default="linux"),
        RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64"),
    )
    after = apply_operations(go, operations)
    assert after == "# h\n\n" + GO.replace("=linux", "").replace("=amd64", "")
    assert automatic_arg_problems(parse(after)) == ()
    builder = parse(after).stages[0]
    assert stage_platform(parse(after), builder) == BUILD


def test_apply_operations_refuses_a_result_that_still_pins_a_platform_arg() -> None:
    with pytest.raises(PatchError, match=r"line 2: .*ARG TARGETOS=linux.*replaces BuildKit"):
        apply_operations(
            GO, (RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64"),)
        )


def test_apply_operations_reports_the_failed_precondition() -> None:
    with pytest.raises(PatchError, match=r"precondition of drop --platform.*line 1: expected"):
        apply_operations("FROM python:3 AS base\n", (DROP_BASE,))


def test_apply_operations_names_the_platform_arg_that_is_left_and_why() -> None:
    only_arch = (RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64"),)
    with pytest.raises(PatchError) as raised:
        apply_operations(GO, only_arch)
    assert str(raised.value) == (
        "platform ARG check: line 2: expected no ARG that pins or empties it; "
        "found ARG TARGETOS=linux (a default replaces BuildKit's automatic TARGETOS)"
    )
    with pytest.raises(PatchError) as raised:
        apply_operations("ARG TARGETPLATFORM\n" + PYTHON, (DROP_BASE, REMOVE_GLOBAL))
    assert str(raised.value) == (
        "platform ARG check: line 1: expected no ARG that pins or empties it; "
        "found ARG TARGETPLATFORM (a global ARG TARGETPLATFORM without a value empties it "
        "on BuildKit older than v0.17)"
    )


def test_an_operation_listed_twice_fails_its_precondition_after_the_first_edit() -> None:
    """Both preconditions hold on the file as it is; the second is checked again after the
    first edit, and the flag it expects is gone."""
    with pytest.raises(PatchError) as raised:
        apply_operations(PYTHON, (DROP_BASE, DROP_BASE))
    assert str(raised.value) == (
        "precondition of drop --platform=$BUILDPLATFORM from FROM python:… AS base, "
        "after the edits before it: line 6: expected FROM --platform=$BUILDPLATFORM python:… "
        "AS base; found FROM python:3.12-alpine AS base"
    )


@pytest.mark.parametrize(
    ("text", "operation", "message"),
    [
        # A stage FROM an earlier stage keeps that stage's platform: its own flag is ignored,
        # so dropping it does not put the stage on the target platform.
        (
            "FROM --platform=$BUILDPLATFORM python:3 AS base\n"
            "FROM --platform=$BUILDPLATFORM base AS app\n",
            DropFromPlatform(stage="app", image="base"),
            "postcondition of drop --platform=$BUILDPLATFORM from FROM base… AS app: line 2: "
            "expected FROM base… AS app (stage on the target platform); found FROM base AS app",
        ),
        # The edit removes one flag; the one left still pins the stage.
        (
            "FROM --platform=$BUILDPLATFORM --platform=$BUILDPLATFORM python:3 AS base\n",
            DROP_BASE,
            "postcondition of drop --platform=$BUILDPLATFORM from FROM python:… AS base: line 1: "
            "expected FROM python:… AS base (stage on the target platform); "
            "found FROM --platform=$BUILDPLATFORM python:3 AS base",
        ),
    ],
    ids=["stage-from-an-earlier-stage", "flag-repeated"],
)
def test_apply_operations_refuses_an_edit_whose_postcondition_fails(
    text: str, operation: Operation, message: str
) -> None:
    with pytest.raises(PatchError) as raised:
        apply_operations(text, (operation,))
    assert str(raised.value) == message


def test_apply_operations_refuses_an_edit_undone_by_a_later_one() -> None:
    """Removing the global ARG also removes the escape directive above it (the definition names
    it as the ARG's comment): `\\` becomes the escape character again, RUN's trailing `\\`
    now continues onto the ARG line, and the stage no longer declares TARGETARCH."""
    text = (
        "# escape=`\n"
        "ARG BUILDPLATFORM=linux/amd64\n"
        "FROM golang AS builder\n"
        "RUN echo C:\\\n"
        "ARG TARGETARCH=amd64\n"
    )
    operations: tuple[Operation, ...] = (
        RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64"),
        RemoveGlobalArg(name="BUILDPLATFORM", default="linux/amd64", comment="escape=`"),
    )
    with pytest.raises(PatchError) as raised:
        apply_operations(text, operations)
    assert str(raised.value) == (
        "remove the default of ARG TARGETARCH=amd64 in stage builder undone by a later edit: "
        "line 1: expected ARG TARGETARCH without a default in stage builder; found no such ARG"
    )


def test_stage_platform_follows_parents_and_pinned_global_defaults() -> None:
    dockerfile = parse(PYTHON)
    assert [stage_platform(dockerfile, s) for s in dockerfile.stages] == ["linux/amd64"] * 3
    unpinned = parse(PYTHON.replace("ARG BUILDPLATFORM=linux/amd64\n", ""))
    assert [stage_platform(unpinned, s) for s in unpinned.stages] == [BUILD] * 3
    ignored = parse("FROM --platform=$BUILDPLATFORM a AS x\nFROM --platform=$TARGETPLATFORM x\n")
    assert stage_platform(ignored, ignored.stages[1]) == BUILD


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("${BUILDPLATFORM}", BUILD),
        ("$BUILDPLATFORM", BUILD),
        ("${TARGETPLATFORM}", TARGET),
        ("${PINNED}", "linux/arm64"),
        # A variable no global ARG declares cannot be resolved here: kept as written.
        ("$UNDECLARED", "$UNDECLARED"),
        # Only $NAME and ${NAME} are references; anything else is a platform as written.
        ("{{BUILDPLATFORM}", "{{BUILDPLATFORM}"),
        ("linux/amd64", "linux/amd64"),
    ],
)
def test_stage_platform_reads_both_forms_of_a_variable_reference(
    platform: str, expected: str
) -> None:
    dockerfile = parse(f"ARG PINNED=linux/arm64\nFROM --platform={platform} python:3 AS base\n")
    assert stage_platform(dockerfile, dockerfile.stages[0]) == expected


def test_automatic_arg_problems_flags_defaults_and_bare_global_args() -> None:
    text = "ARG TARGETPLATFORM\nARG OTHER\nFROM a\nARG TARGETARCH\nARG BUILDARCH=x86\n"
    problems = automatic_arg_problems(parse(text))
    assert [(p.line_number, p.text) for p in problems] == [
        (1, "ARG TARGETPLATFORM"),
        (5, "ARG BUILDARCH=x86"),
    ]
    assert "older than v0.17" in problems[0].reason


def test_automatic_arg_problems_reads_every_name_an_arg_declares() -> None:
    """One ARG may declare several names: a harmless name before an automatic one, or a stage
    ARG without a default (fine), does not hide the next declaration."""
    text = "ARG OTHER=1 BUILDARCH=x86\nFROM a\nARG TARGETARCH TARGETOS=linux\n"
    problems = automatic_arg_problems(parse(text))
    assert [(p.line_number, p.reason) for p in problems] == [
        (1, "a default replaces BuildKit's automatic BUILDARCH"),
        (3, "a default replaces BuildKit's automatic TARGETOS"),
    ]


def test_as_data_lists_the_op_and_its_fields() -> None:
    assert REMOVE_GLOBAL.as_data() == {
        "op": "remove-global-arg",
        "name": "BUILDPLATFORM",
        "default": "linux/amd64",
        "comment": "why the default",
    }


def test_edit_keeps_lines_outside_the_instruction_as_the_same_objects() -> None:
    dockerfile = parse(PYTHON)
    edited = DROP_BASE.edit(dockerfile)
    unchanged = [i for i, (a, b) in enumerate(zip(dockerfile.lines, edited, strict=True)) if a == b]
    assert len(unchanged) == len(edited) - 1
    assert edited[5] == Line("FROM python:3.12-alpine AS base", "\n")


def test_remove_global_arg_takes_only_the_comment_directly_above_it() -> None:
    text = "# license header\n# why the default\nARG BUILDPLATFORM=linux/amd64\n\nFROM a\n"
    assert _edit(REMOVE_GLOBAL, text) == "# license header\n\nFROM a\n"


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (REMOVE_GLOBAL, "remove the global ARG BUILDPLATFORM=linux/amd64"),
        (
            RemoveArgDefault(stage="base", name="TARGETARCH", default="amd64"),
            "remove the default of ARG TARGETARCH=amd64 in stage base",
        ),
        (DropFromPlatform(stage="builder", image="golang"), "no stage 'builder'"),
    ],
)
def test_edit_without_its_precondition_names_the_operation(
    operation: Operation, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^edit called without its precondition: {message}$"):
        operation.edit(parse("FROM python:3 AS base\nRUN true\n"))


def test_remove_arg_default_postcondition_names_the_missing_stage() -> None:
    operation = RemoveArgDefault(stage="builder", name="TARGETARCH", default="amd64")
    assert operation.postcondition(parse("# c\nFROM golang AS compile\n")) == Mismatch(
        2,
        "ARG TARGETARCH without a default in stage builder",
        "no stage 'builder'; stages: \"compile\" at line 2",
    )
    assert operation.postcondition(parse("FROM golang AS builder\nRUN true\n")) == Mismatch(
        1, "ARG TARGETARCH without a default in stage builder", "no such ARG"
    )


def test_a_global_arg_on_the_first_or_last_line() -> None:
    assert REMOVE_GLOBAL.precondition(parse("ARG BUILDPLATFORM=linux/amd64\nFROM a\n")) == Mismatch(
        1, "# why the default", "(start of file)"
    )
    alone = RemoveGlobalArg(name="BUILDPLATFORM", default="linux/amd64")
    assert _edit(alone, "ARG BUILDPLATFORM=linux/amd64\n") == ""
