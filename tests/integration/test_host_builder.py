"""`python -m host builder ...` against the real Docker CLI and engine, without `--bootstrap`.

Each test gets its own buildx store (DOCKER_CONFIG in a temporary directory), so builders the
tests create never touch the machine's own. Nothing is pulled: creating a docker-container
builder only records it; BuildKit would start on the first build.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from host import __main__ as host_cli
from host.builder import InspectedBuilder, parse_inspect
from host.contract import BuilderEnsureRequest, BuilderRemoveRequest, BuilderResult, CheckoutResult
from plan.host_commands import builder_spec
from plan.settings import BuilderNode, BuilderSettings
from plan.tools import tool_command
from tests.program_mocks import ROOT, ProgramRunner
from tests.test_host_checkout import make_upstream

P = "boutique-multiarch"
PLATFORMS = ("linux/amd64", "linux/arm64")
UNREACHABLE_NODE = "tcp://10.255.255.1:2375"
"""A node endpoint nobody answers on; creating the node does not connect to it."""
OWNER = "organization/boutique-multiarch/dev"
OTHER_STACK = "organization/boutique-multiarch/prod"

Run = Callable[[str], subprocess.CompletedProcess[str]]


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_engine: None) -> Path:
    config = tmp_path / "docker-config"
    config.mkdir()
    user_plugins = Path.home() / ".docker" / "cli-plugins"
    if user_plugins.is_dir():
        # buildx may be installed per user; keep it visible with the separate store.
        (config / "cli-plugins").symlink_to(user_plugins)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


@pytest.fixture
def run(docker_config: Path) -> Run:
    """Run a command line as pulumi-command does: `/bin/sh -c` in the project directory."""

    def run_line(command_line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", "-c", command_line],
            cwd=ROOT,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=False,
        )

    return run_line


def builder(name: str, **changes: object) -> BuilderSettings:
    base: dict[str, object] = {
        "name": name,
        "driver": "docker-container",
        "driver_opts": {"network": "host"},
        "endpoint": None,
        "nodes": (BuilderNode("arm64-native", ("linux/arm64",), UNREACHABLE_NODE),),
    }
    return BuilderSettings(**{**base, **changes})  # type: ignore[arg-type]


def ensure(run: Run, settings: BuilderSettings, owner: str = OWNER) -> BuilderResult:
    result = run(
        tool_command(BuilderEnsureRequest(builder_spec(settings, PLATFORMS), owner), sys.executable)
    )
    assert result.returncode == 0, result.stderr
    return BuilderResult.from_json(result.stdout)


def inspect(name: str) -> InspectedBuilder | None:
    result = subprocess.run(
        ["docker", "buildx", "inspect", name], capture_output=True, text=True, check=False
    )
    return parse_inspect(result.stdout) if result.returncode == 0 else None


def test_builder_is_created_with_native_node_then_reused(run: Run, docker_config: Path) -> None:
    assert ensure(run, builder("boutique-test")) == BuilderResult("boutique-test", "created")
    record = docker_config / "buildx" / "boutique-owners" / "boutique-test"
    assert json.loads(record.read_text(encoding="utf-8")) == {"stack": OWNER}
    current = inspect("boutique-test")
    assert current is not None
    assert current.driver == "docker-container"
    first, native = current.nodes
    assert first.name == "boutique-test0"
    assert first.driver_opts == {"network": "host"}
    assert first.declared_platforms == {"linux/amd64"}
    assert (native.name, native.endpoint) == ("arm64-native", UNREACHABLE_NODE)
    assert native.declared_platforms == {"linux/arm64"}
    assert native.driver_opts == {"network": "host"}

    assert ensure(run, builder("boutique-test")) == BuilderResult("boutique-test", "reused")
    assert inspect("boutique-test") == current
    assert json.loads(record.read_text(encoding="utf-8")) == {"stack": OWNER}


def test_changed_configuration_is_reconciled(run: Run) -> None:
    ensure(run, builder("boutique-test"))
    changed = builder("boutique-test", driver_opts={}, nodes=())
    assert ensure(run, changed) == BuilderResult("boutique-test", "reconciled")
    current = inspect("boutique-test")
    assert current is not None
    (only,) = current.nodes
    assert (only.name, only.driver_opts, only.declared_platforms) == ("boutique-test0", {}, set())
    assert ensure(run, changed).action == "reused"


def test_remote_driver_builder_is_created_without_connecting(run: Run) -> None:
    remote = builder(
        "boutique-remote", driver="remote", driver_opts={}, endpoint=UNREACHABLE_NODE, nodes=()
    )
    assert ensure(run, remote).action == "created"
    current = inspect("boutique-remote")
    assert current is not None
    assert (current.driver, current.nodes[0].endpoint) == ("remote", UNREACHABLE_NODE)


def test_remove_deletes_the_builder_and_is_idempotent(run: Run) -> None:
    ensure(run, builder("boutique-test"))
    removed = run(tool_command(BuilderRemoveRequest("boutique-test", OWNER), sys.executable))
    assert removed.returncode == 0, removed.stderr
    assert BuilderResult.from_json(removed.stdout) == BuilderResult("boutique-test", "removed")
    assert inspect("boutique-test") is None
    again = run(tool_command(BuilderRemoveRequest("boutique-test", OWNER), sys.executable))
    assert BuilderResult.from_json(again.stdout) == BuilderResult("boutique-test", "absent")


def test_remove_prints_one_line_of_sorted_json(
    docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, as `python -m host builder remove` prints it (here for an absent builder)."""
    assert host_cli.main(["builder", "remove", "--name", "boutique-test"]) == 0
    assert capsys.readouterr().out == '{"action": "absent", "name": "boutique-test"}\n'


def test_remove_without_an_owner_keeps_an_owned_builder_and_says_so(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: the delete command stored before ownership existed names no owner."""
    ensure(run, builder("boutique-test"))
    created = inspect("boutique-test")
    assert host_cli.main(["builder", "remove", "--name", "boutique-test"]) == 0
    assert capsys.readouterr().out == '{"action": "kept", "name": "boutique-test"}\n'
    assert inspect("boutique-test") == created


def test_a_builder_made_by_hand_is_removed_without_an_owner_record(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    made_by_hand = run("docker buildx create --name boutique-test --driver docker-container")
    assert made_by_hand.returncode == 0, made_by_hand.stderr
    assert host_cli.main(["builder", "remove", "--name", "boutique-test", "--owner", OWNER]) == 0
    assert capsys.readouterr().out == '{"action": "removed", "name": "boutique-test"}\n'
    assert inspect("boutique-test") is None


def test_a_builder_buildx_cannot_remove_is_named_with_buildx_s_reason(
    docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`default` is the Docker context's own builder: buildx refuses to remove it."""
    assert host_cli.main(["builder", "remove", "--name", "default"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "error: removing builder default failed: ERROR: failed to remove one or more builders\n"
    )
    assert inspect("default") is not None


@pytest.mark.parametrize(
    ("arguments", "doing"),
    [
        (["builder", "remove", "--name", "boutique-test", "--owner", OWNER], "remove"),
        (
            BuilderEnsureRequest(builder_spec(builder("boutique-test"), PLATFORMS), OWNER).argv(),
            "reconcile or reuse",
        ),
    ],
)
def test_a_builder_another_stack_owns_is_refused_with_the_way_out(
    run: Run,
    docker_config: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    doing: str,
) -> None:
    """The whole refusal, in process; the slower test below goes through both stacks' commands."""
    made = run("docker buildx create --name boutique-test --driver docker-container")
    assert made.returncode == 0, made.stderr
    record = docker_config / "buildx" / "boutique-owners" / "boutique-test"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"stack": OTHER_STACK}))
    before = inspect("boutique-test")
    assert host_cli.main(arguments) == 2
    assert capsys.readouterr() == (
        "",
        f"error: builder boutique-test belongs to stack {OTHER_STACK} (recorded in {record}); "
        f"stack {OWNER} does not {doing} it. Give this stack a builder of its own "
        "(`pulumi config set --path builder.name <name>`), or remove boutique-test from stack "
        f"{OTHER_STACK}\n",
    )
    assert inspect("boutique-test") == before
    assert json.loads(record.read_text()) == {"stack": OTHER_STACK}


def test_a_second_stack_neither_removes_nor_reconciles_the_first_stacks_builder(
    run: Run, docker_config: Path
) -> None:
    assert ensure(run, builder("boutique-shared")).action == "created"
    record = docker_config / "buildx" / "boutique-owners" / "boutique-shared"
    assert json.loads(record.read_text()) == {"stack": OWNER}
    created = inspect("boutique-shared")

    removed = run(
        tool_command(BuilderRemoveRequest("boutique-shared", OTHER_STACK), sys.executable)
    )
    assert removed.returncode == 2 and removed.stdout == ""
    assert removed.stderr.startswith(f"error: builder boutique-shared belongs to stack {OWNER}")
    assert f"stack {OTHER_STACK} does not remove it" in removed.stderr
    different = builder("boutique-shared", driver_opts={}, nodes=())
    spec = builder_spec(different, PLATFORMS)
    reconciled = run(tool_command(BuilderEnsureRequest(spec, OTHER_STACK), sys.executable))
    assert reconciled.returncode == 2
    assert "does not reconcile or reuse it" in reconciled.stderr
    assert inspect("boutique-shared") == created

    # The delete command stored before ownership existed names no owner: it keeps owned builders.
    legacy = run(f"{sys.executable} -m host builder remove --name boutique-shared")
    assert BuilderResult.from_json(legacy.stdout).action == "kept"
    assert inspect("boutique-shared") == created

    mine = run(tool_command(BuilderRemoveRequest("boutique-shared", OWNER), sys.executable))
    assert BuilderResult.from_json(mine.stdout).action == "removed", mine.stderr
    assert inspect("boutique-shared") is None and not record.exists()
    # Once removed, the name is free for the other stack.
    assert ensure(run, different, OTHER_STACK).action == "created"
    assert json.loads(record.read_text()) == {"stack": OTHER_STACK}


def test_an_unowned_builder_is_adopted_by_the_stack_that_ensures_it(run: Run) -> None:
    made_by_hand = run("docker buildx create --name boutique-adopted --driver docker-container")
    assert made_by_hand.returncode == 0, made_by_hand.stderr
    assert ensure(run, builder("boutique-adopted")).action == "reconciled"
    refused = run(
        tool_command(BuilderRemoveRequest("boutique-adopted", OTHER_STACK), sys.executable)
    )
    assert refused.returncode == 2 and inspect("boutique-adopted") is not None


def test_failed_node_append_leaves_no_half_configured_builder(run: Run) -> None:
    broken = BuilderNode("arm64-native", ("linux/arm64",), "unix:///nonexistent/docker.sock")
    spec = builder_spec(builder("boutique-broken", nodes=(broken,)), PLATFORMS)
    result = run(tool_command(BuilderEnsureRequest(spec, OWNER), sys.executable))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: docker buildx create for builder boutique-broken failed"
    )
    assert "nonexistent/docker.sock" in result.stderr
    assert inspect("boutique-broken") is None


def test_an_option_like_endpoint_reaches_buildx_as_an_endpoint_not_an_option(run: Run) -> None:
    """Config refuses it; the host tool still passes it after `--`, so buildx (cobra) does not
    take it as `--driver-opt` (without `--` this creates a builder that runs evil/buildkit)."""
    evil = "--driver-opt=image=evil/buildkit:latest"
    spec = builder_spec(builder("boutique-evil", endpoint=evil, nodes=()), PLATFORMS)
    result = run(tool_command(BuilderEnsureRequest(spec, OWNER), sys.executable))
    current = inspect("boutique-evil")
    assert current is None or all("image" not in node.driver_opts for node in current.nodes)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("error: docker buildx create for builder boutique-evil failed")
    assert current is None


def test_missing_docker_cli_is_reported(run: Run, tmp_path: Path) -> None:
    command_line = tool_command(
        BuilderEnsureRequest(builder_spec(builder("x"), PLATFORMS), OWNER), sys.executable
    )
    result = run(f"PATH={tmp_path} {command_line}")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: docker is not installed or not on PATH"


def test_program_command_lines_ensure_and_remove_host_state(
    run: Run, tmp_path: Path, program: ProgramRunner
) -> None:
    """The exact command lines the program hands pulumi-command, run for real in a project dir."""
    upstream = make_upstream(tmp_path)
    config = {
        f"{P}:registry": {"address": "127.0.0.1:5000"},
        f"{P}:services": ["emailservice", "cartservice"],
        f"{P}:source": {"url": upstream.url, "commit": upstream.first},
        f"{P}:builder": {"name": "boutique-program", "driverOpts": {"network": "host"}},
    }
    # The made-up upstream has no patch set: the mocked patch tool is told what it reports.
    evaluated = program(config, patch_ids={"emailservice": None, "cartservice": None})
    commands = [
        call.args["command"]
        for call in evaluated.monitor.invocations
        if " -m host " in call.args["command"]
    ]
    (owner,) = [
        registration
        for registration in evaluated.of_type("command:local:Command")
        if " -m host builder " in registration.inputs["create"]
    ]
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(ROOT / ".venv")
    (project / "host").symlink_to(ROOT / "host")
    # `python -m host` reads the one loopback rule from verify.reference.
    (project / "verify").symlink_to(ROOT / "verify")
    # Its contract (host.contract) shares the tools' argv helpers.
    (project / "cli_contract.py").symlink_to(ROOT / "cli_contract.py")

    def in_project(command_line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", "-c", command_line],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )

    checkout_line, ensure_line = commands
    checked_out = in_project(checkout_line)
    assert checked_out.returncode == 0, checked_out.stderr
    root = project / CheckoutResult.from_json(checked_out.stdout).path
    assert (root / "src/cartservice/src/Dockerfile").is_file()
    for line in (ensure_line, owner.inputs["create"]):
        ensured = in_project(line)
        assert ensured.returncode == 0, ensured.stderr
    current = inspect("boutique-program")
    assert current is not None and current.nodes[0].driver_opts == {"network": "host"}
    removed = in_project(owner.inputs["delete"])
    assert removed.returncode == 0, removed.stderr
    assert inspect("boutique-program") is None


def test_a_builder_that_differs_but_cannot_be_removed_is_named_with_buildx_s_reason(
    docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: `default` (the Docker context's builder, driver docker) differs from a
    docker-container spec, and buildx refuses to remove it for the re-creation."""
    spec = builder_spec(builder("default", nodes=()), PLATFORMS)
    before = inspect("default")
    assert host_cli.main(BuilderEnsureRequest(spec, OWNER).argv()) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        "error: removing builder default failed: ERROR: failed to remove one or more builders\n",
    )
    assert inspect("default") == before


def test_a_buildx_store_buildx_cannot_read_is_named_with_buildx_s_reason(
    docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: a damaged builder record is not "no builder": nothing is removed."""
    instance = docker_config / "buildx" / "instances" / "boutique-test"
    instance.parent.mkdir(parents=True)
    instance.write_text("{damaged")
    assert host_cli.main(["builder", "remove", "--name", "boutique-test", "--owner", OWNER]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        "error: docker buildx inspect boutique-test failed: ERROR: invalid character 'd' "
        "looking for beginning of object key string\n",
    )
    assert instance.read_text() == "{damaged"
