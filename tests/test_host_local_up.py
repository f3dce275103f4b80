"""`python -m host.local_up`, the helpers scripts/local-up runs, called in this process.

scripts/local-up runs them as `python -m host.local_up ...` (tests/test_host_pulumi_cli.py and
tests/integration/test_local_stack.py run them that way); calling `main` here runs the same
code, and lets mutation testing switch its functions (it cannot in a module run as __main__).
"""

import io
import json
import os
import re
from pathlib import Path

import pytest

from host import local_up
from tests.engine_events import Events
from tests.pulumi_release import path_without_pulumi, stub_executable, write_project_files
from tests.test_host_progress import images_output


def test_table_prints_the_proof_table_of_the_images_output_on_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(images_output(with_proof=False)))
    assert local_up.main(["table"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines()[:3] == [
        "service          platforms                 digest",
        "checkoutservice  linux/amd64, linux/arm64  sha256:b2b2b2b2b2b2",
        "frontend         linux/amd64, linux/arm64  sha256:a1a1a1a1a1a1",
    ]
    assert captured.out.endswith(" --deep\n")


def test_table_of_something_that_is_not_the_images_output_is_one_error_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("[1]"))
    assert local_up.main(["table"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: the stack output `images` is not")
    assert len(captured.err.splitlines()) == 1


def test_progress_prints_one_prefixed_line_per_step_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    events = Events()
    events.registry(start=100, end=101)
    events.builder(start=100, end=103)
    log, done = tmp_path / "events.jsonl", tmp_path / "done"
    log.write_text("".join(json.dumps(event) + "\n" for event in events.events))
    done.touch()
    assert local_up.main(["progress", "--event-log", str(log), "--done-file", str(done)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [line.split("  ")[0] for line in captured.err.splitlines()] == [
        "scripts/local-up: registry ready",
        "scripts/local-up: builder ready",
    ]


def test_pulumi_with_an_unreadable_version_file_is_one_error_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / ".pulumi-version"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pulumi>=3.100,<4\n")
    arguments = ["--version-file", str(missing), "--requirements", str(requirements)]
    tools = tmp_path / ".tools"
    assert local_up.main(["pulumi", *arguments, "--tools-dir", str(tools)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: cannot read {missing}: No such file or directory\n"
    assert not tools.exists()


def help_of(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        local_up.main([*arguments, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_names_each_helper_and_its_required_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one usage line, whatever the terminal
    shown = help_of([], capsys)
    assert shown.startswith("usage: python -m host.local_up [-h] {pulumi,progress,table} ...\n")
    # The description is the docstring's first line only.
    assert (
        "\n\nHelpers `scripts/local-up` runs (standard library only, no Pulumi imports).\n\n"
        in (shown)
    )
    for command, purpose in [
        ("pulumi", "find or install the Pulumi CLI"),
        ("progress", "print one line per step of `pulumi up`"),
        ("table", "print the proof table from the images output on stdin"),
    ]:
        assert re.search(rf"\n    {command} +{re.escape(purpose)}\n", shown), (command, shown)

    options = {
        "pulumi": [
            ("--version-file VERSION_FILE", "holds the pinned version"),
            ("--requirements REQUIREMENTS", "its `pulumi>=` floor is the minimum"),
            ("--tools-dir TOOLS_DIR", "installs into DIR/pulumi"),
        ],
        "progress": [
            ("--event-log EVENT_LOG", "the --event-log file"),
            ("--done-file DONE_FILE", "created once the Pulumi command exited"),
        ],
    }
    for command, wanted in options.items():
        shown = help_of([command], capsys)
        # Every option is required: the usage line shows none in brackets.
        usage = " ".join(option for option, _ in wanted)
        assert shown.startswith(f"usage: python -m host.local_up {command} [-h] {usage}\n"), shown
        for option, purpose in wanted:
            assert re.search(rf"\n  {re.escape(option)}\s+{re.escape(purpose)}\n", shown), shown


def test_a_helper_must_be_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        local_up.main([])
    assert exited.value.code == 2
    assert "the following arguments are required" in capsys.readouterr().err


def test_pulumi_prints_the_cli_it_reused_or_found(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_project_files(project, "3.272.0")
    installed = project / ".tools" / "pulumi"
    (installed / "bin").mkdir(parents=True)
    (installed / "bin" / "pulumi").write_bytes(stub_executable("3.272.0"))
    (installed / "bin" / "pulumi").chmod(0o755)
    (installed / "VERSION").write_text("3.272.0\n")
    arguments = [
        *("pulumi", "--version-file", str(project / ".pulumi-version")),
        *("--requirements", str(project / "requirements.txt")),
        *("--tools-dir", str(project / ".tools")),
    ]
    monkeypatch.setenv("PATH", path_without_pulumi())
    monkeypatch.setenv("STUB_PULUMI_LOG", str(tmp_path / "pulumi-calls.jsonl"))
    assert local_up.main(arguments) == 0
    # One line of JSON with sorted keys, as scripts/local-up reads it.
    assert capsys.readouterr().out == (
        json.dumps(
            {"action": "reused", "path": str(installed / "bin" / "pulumi"), "version": "3.272.0"}
        )
        + "\n"
    )

    own = tmp_path / "bin" / "pulumi"
    own.parent.mkdir()
    own.write_bytes(stub_executable("3.250.1"))
    own.chmod(0o755)
    monkeypatch.setenv("PATH", f"{own.parent}{os.pathsep}{path_without_pulumi()}")
    assert local_up.main(arguments) == 0
    assert json.loads(capsys.readouterr().out) == {
        "action": "found",
        "path": str(own),
        "version": "3.250.1",
    }
