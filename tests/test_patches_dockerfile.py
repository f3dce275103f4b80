"""The Dockerfile reader: byte-exact round trips and BuildKit's rules for what an instruction is."""

from __future__ import annotations

import pytest

from patches.dockerfile import (
    ArgDeclaration,
    DockerfileSyntaxError,
    FromClause,
    parse,
    parse_arg,
    parse_from,
    split_lines,
)

MULTI_STAGE = (
    "# header comment\n"
    "ARG BUILDPLATFORM=linux/amd64\n"
    "\n"
    "FROM --platform=$BUILDPLATFORM golang:1.23 AS Builder\n"
    "ARG TARGETARCH\n"
    "RUN apk add \\\n"
    "    # a comment inside the continuation is skipped\n"
    "\n"
    "    g++ \\\n"
    "    make\n"
    "FROM scratch\n"
    "COPY --from=builder /out /app\n"
)


@pytest.mark.parametrize(
    "text",
    [
        MULTI_STAGE,
        MULTI_STAGE.replace("\n", "\r\n"),
        "FROM a\nRUN x",  # no final newline
        "FROM a\r\nRUN b\nRUN c\r\n",  # mixed endings
        "",
    ],
)
def test_render_gives_back_every_byte(text: str) -> None:
    assert parse(text).render() == text


def test_split_lines_keeps_crlf_and_lone_cr_in_text() -> None:
    lines = split_lines("a\r\nb\rc\nd")
    assert [(line.text, line.ending) for line in lines] == [
        ("a", "\r\n"),
        ("b\rc", "\n"),
        ("d", ""),
    ]


def test_instructions_span_continuations_and_skip_comment_lines_inside() -> None:
    dockerfile = parse(MULTI_STAGE)
    summary = [(i.keyword, i.line_number, i.end, i.stage) for i in dockerfile.instructions]
    assert summary == [
        ("ARG", 2, 2, None),
        ("FROM", 4, 4, 0),
        ("ARG", 5, 5, 0),
        ("RUN", 6, 10, 0),
        ("FROM", 11, 11, 1),
        ("COPY", 12, 12, 1),
    ]
    run = dockerfile.instructions[3]
    assert run.arguments == "apk add     g++     make"


def test_stages_are_named_case_insensitively() -> None:
    dockerfile = parse(MULTI_STAGE)
    builder = dockerfile.stage("BUILDER")
    assert builder is not None
    assert builder.clause == FromClause("$BUILDPLATFORM", "golang:1.23", "builder")
    assert [i.keyword for i in dockerfile.stage_instructions(builder)] == ["FROM", "ARG", "RUN"]
    assert dockerfile.stage("missing") is None
    assert dockerfile.stages[1].label == "#1 (unnamed)"
    assert [i.keyword for i in dockerfile.global_instructions()] == ["ARG"]


def test_crlf_file_parses_like_the_lf_file() -> None:
    lf = parse(MULTI_STAGE)
    crlf = parse(MULTI_STAGE.replace("\n", "\r\n"))
    assert [(i.keyword, i.arguments, i.start, i.end) for i in crlf.instructions] == [
        (i.keyword, i.arguments, i.start, i.end) for i in lf.instructions
    ]


def test_escape_directive_switches_the_continuation_character() -> None:
    text = "# escape=`\nFROM windows AS w\nRUN dir `\n    c:\\\nRUN next\n"
    dockerfile = parse(text)
    assert dockerfile.escape == "`"
    assert [(i.keyword, i.line_number) for i in dockerfile.instructions] == [
        ("FROM", 2),
        ("RUN", 3),
        ("RUN", 5),
    ]
    assert dockerfile.instructions[1].arguments == "dir     c:\\"


def test_directives_are_only_read_before_anything_else() -> None:
    text = "# syntax=docker/dockerfile:1\n# a comment\n# escape=`\nFROM a \\\n  AS b\n"
    dockerfile = parse(text)
    assert dockerfile.escape == "\\"
    assert dockerfile.stages[0].clause.name == "b"


def test_unsupported_escape_directive_is_refused_with_the_allowed_values() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"line 1: escape directive '!'.*allowed"):
        parse("# escape=!\nFROM a\n")


def test_heredoc_bodies_are_not_instructions() -> None:
    text = (
        "FROM a AS build\n"
        "RUN <<EOF\n"
        "FROM not-a-stage\n"
        "EOF\n"
        "COPY <<-'ONE' /x\n"
        "\tARG NOT_AN_ARG=1\n"
        "\tONE\n"
        "FROM b\n"
    )
    dockerfile = parse(text)
    assert [(i.keyword, i.line_number, i.end) for i in dockerfile.instructions] == [
        ("FROM", 1, 1),
        ("RUN", 2, 4),
        ("COPY", 5, 7),
        ("FROM", 8, 8),
    ]
    assert [s.clause.image for s in dockerfile.stages] == ["a", "b"]


def test_parse_from_reads_flags_image_and_name() -> None:
    assert parse_from("--platform=${BUILDPLATFORM} node:20 as Builder") == FromClause(
        "${BUILDPLATFORM}", "node:20", "builder"
    )
    assert parse_from("scratch") == FromClause(None, "scratch", None)


def test_parse_arg_reads_several_declarations_and_quoted_defaults() -> None:
    assert parse_arg('A B=1 C="x y"') == (
        ArgDeclaration("A", None),
        ArgDeclaration("B", "1"),
        ArgDeclaration("C", "x y"),
    )


@pytest.mark.parametrize(
    ("text", "escape", "instructions"),
    [
        # A directive seen twice is a comment the second time: the first one holds.
        ("# escape=`\n# escape=\\\nRUN a `\n  b\n", "`", [("RUN", "a   b", 3, 4)]),
        # Directive names are case-insensitive.
        ("# ESCAPE = `\nRUN a `\n  b\n", "`", [("RUN", "a   b", 2, 3)]),
        ("# escape=`\n", "`", []),
        # Keywords are case-insensitive; spaces and tabs may follow the escape character.
        ("from a \\ \t\n  AS b\nrun x\n", "\\", [("FROM", "a   AS b", 1, 2), ("RUN", "x", 3, 3)]),
        # A continuation on the last line, or followed only by comments, ends the instruction.
        ("RUN a \\\n", "\\", [("RUN", "a", 1, 1)]),
        ("RUN a \\\n# c\n\n", "\\", [("RUN", "a", 1, 3)]),
        # Several heredocs in one instruction are skipped in order; an open one runs to the end.
        (
            "RUN <<A <<'B'\na\nA\nb\nB\nRUN y\n",
            "\\",
            [("RUN", "<<A <<'B'", 1, 5), ("RUN", "y", 6, 6)],
        ),
        ("COPY <<EOF /x\nFROM z\n", "\\", [("COPY", "<<EOF /x", 1, 2)]),
        # Only the delimiter alone on its line ends a heredoc; <<- strips leading tabs only.
        (
            "RUN <<EOF\n\tEOF\n EOF\nXEOF\nEOF\nRUN y\n",
            "\\",
            [("RUN", "<<EOF", 1, 5), ("RUN", "y", 6, 6)],
        ),
        (
            "RUN <<-EOF\n  EOF\n\tXEOF\n\t\tEOF\nRUN y\n",
            "\\",
            [("RUN", "<<-EOF", 1, 4), ("RUN", "y", 5, 5)],
        ),
    ],
)
def test_directives_keywords_continuations_and_heredocs(
    text: str, escape: str, instructions: list[tuple[str, str, int, int]]
) -> None:
    dockerfile = parse(text)
    assert dockerfile.escape == escape
    assert [(i.keyword, i.arguments, i.line_number, i.end) for i in dockerfile.instructions] == (
        instructions
    )
    assert dockerfile.render() == text


def test_parse_from_takes_the_platform_flag_in_any_case_and_skips_other_flags() -> None:
    assert parse_from("--PLATFORM=linux/arm64 --other=1 img AS x") == FromClause(
        "linux/arm64", "img", "x"
    )
    assert parse_from("--platform=linux/arm64") == FromClause("linux/arm64", "", None)
    # The value is everything after the first "=".
    assert parse_from("--platform=linux/arm64=x img") == FromClause("linux/arm64=x", "img", None)
    # "AS" needs an image before it to name a stage.
    assert parse_from("AS x") == FromClause(None, "AS", None)


def test_parse_arg_with_an_unbalanced_quote_splits_on_whitespace() -> None:
    assert parse_arg('A="x B') == (ArgDeclaration("A", '"x'), ArgDeclaration("B", None))


def test_a_hash_in_an_arg_is_part_of_the_word_not_a_comment() -> None:
    assert parse_arg("A=x#y B") == (ArgDeclaration("A", "x#y"), ArgDeclaration("B", None))
