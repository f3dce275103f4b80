"""`python -m host registry ensure|remove`, run for real as the local stack's Commands run it.

The lifecycle tests start Debian's `docker-registry` on a free loopback port (fail under CI=true
when the binary is missing, skip otherwise); the container tests also need the Docker Engine, to
run an image built here from that binary; the refusals need no registry: they must happen
before anything is started or written.
"""

import contextlib
import fcntl
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from host import __main__ as host_cli
from host import registry
from host.contract import RegistryEnsureRequest, RegistryRemoval
from host.process import HostError
from host.registry import LoopbackAddress, RegistryFiles
from tests.integration.conftest import BUILD_PLATFORMS, missing_prerequisite
from tests.integration.dockerenv import ToolchainError, check_docker_engine, free_loopback_port
from tests.program_mocks import ROOT


def host_registry(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "host", "registry", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def ensure(address: str, data_dir: Path) -> dict[str, object]:
    result = host_registry("ensure", "--address", address, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def remove(address: str, data_dir: Path) -> dict[str, object]:
    result = host_registry("remove", "--address", address, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def v2_status(address: str) -> int | None:
    """HTTP status of GET /v2/, or None when nothing listens."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:
        return None


def process_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


@pytest.fixture
def registry_binary() -> None:
    if shutil.which("docker-registry") is None:
        missing_prerequisite("docker-registry is not on PATH")


@pytest.fixture
def address(registry_binary: None, tmp_path: Path) -> Iterator[str]:
    """A free loopback address; whatever a test started there is stopped afterwards."""
    address = f"127.0.0.1:{free_loopback_port()}"
    yield address
    host_registry("remove", "--address", address, "--data-dir", str(tmp_path / "registry"))
    kill_registries_serving_configs_under(tmp_path)


def kill_registries_serving_configs_under(directory: Path) -> None:
    """SIGKILL each `docker-registry serve CONFIG` whose CONFIG is under `directory`: one this
    test started that `remove` left running (mutation testing runs these tests against mutants
    of `remove`, which then leaked a registry per mutant)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = [os.fsdecode(part) for part in cmdline.read_bytes().split(b"\0")]
        except OSError:
            continue
        serving = arguments[:2] == ["docker-registry", "serve"] and len(arguments) > 2
        if serving and Path(arguments[2]).is_relative_to(directory.resolve()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)


@pytest.fixture
def http_server() -> Iterator[str]:
    """A plain HTTP server on loopback that is not a registry (404 on /v2/)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.registry
def test_ensure_starts_reuses_and_remove_stops(address: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "registry"
    first = ensure(address, data_dir)
    assert first["started"] is True and first["container"] is None
    assert first["address"] == address
    pid = first["pid"]
    assert isinstance(pid, int) and process_alive(pid)
    pid_file = RegistryFiles(data_dir, LoopbackAddress.parse(address)).pid
    assert pid_file.read_text().strip() == str(pid)
    assert v2_status(address) == 200

    second = ensure(address, data_dir)
    assert second == {"address": address, "pid": pid, "container": None, "started": False}

    removed = remove(address, data_dir)
    assert removed == {"address": address, "pid": pid, "container": None, "stopped": True}
    assert not process_alive(pid)
    assert v2_status(address) is None
    assert not pid_file.exists()

    again = remove(address, data_dir)
    assert again == {"address": address, "pid": None, "container": None, "stopped": False}


@pytest.mark.registry
def test_ensure_and_remove_each_print_one_line_of_sorted_json(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, as `python -m host registry` prints them."""
    arguments = ["--address", address, "--data-dir", str(tmp_path / "registry")]
    assert host_cli.main(["registry", "ensure", *arguments]) == 0
    started = capsys.readouterr().out
    pid = json.loads(started)["pid"]
    assert isinstance(pid, int)
    fields = {"address": address, "container": None, "pid": pid}
    assert started == json.dumps({**fields, "started": True}) + "\n"
    assert host_cli.main(["registry", "ensure", *arguments]) == 0
    assert capsys.readouterr().out == json.dumps({**fields, "started": False}) + "\n"
    assert host_cli.main(["registry", "remove", *arguments]) == 0
    assert capsys.readouterr().out == json.dumps({**fields, "stopped": True}) + "\n"
    assert not process_alive(pid)


def test_an_http_proxy_in_the_environment_is_not_asked_about_loopback(
    address: str, tmp_path: Path
) -> None:
    # Port 9 (discard) refuses connections: a probe sent to this proxy never reaches a registry.
    proxy = "http://127.0.0.1:9"
    env = {**os.environ, "http_proxy": proxy, "HTTP_PROXY": proxy}
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    data_dir = str(tmp_path / "registry")
    try:
        result = host_registry("ensure", "--address", address, "--data-dir", data_dir, env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["started"] is True
        again = host_registry("ensure", "--address", address, "--data-dir", data_dir, env=env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["started"] is False
    finally:
        host_registry("remove", "--address", address, "--data-dir", data_dir)


@pytest.mark.registry
def test_registry_outlives_the_command_and_keeps_images_across_restarts(
    address: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "registry"
    pid = ensure(address, data_dir)["pid"]
    assert isinstance(pid, int)
    # The CLI has exited: the registry runs in its own session, not in the caller's.
    assert os.getsid(pid) == pid != os.getsid(0)
    upload = urllib.request.Request(
        f"http://{address}/v2/probe/blobs/uploads/", method="POST", data=b""
    )
    with urllib.request.urlopen(upload, timeout=5) as response:
        assert response.status == 202
    remove(address, data_dir)
    assert (data_dir / "data" / "docker" / "registry" / "v2" / "repositories" / "probe").is_dir()
    restarted = ensure(address, data_dir)
    assert restarted["started"] is True and restarted["pid"] != pid


@pytest.mark.registry
def test_moving_to_another_address_removes_only_the_old_registry(
    address: str, tmp_path: Path
) -> None:
    # A path YAML would misread unquoted: the generated config must quote it.
    data_dir = tmp_path / "registry data: #1"
    new_address = f"127.0.0.1:{free_loopback_port()}"
    old_pid = ensure(address, data_dir)["pid"]
    try:
        # `pulumi up` after an address change: the new ensure runs first, then the old
        # Command's delete, then the new Command's create.
        new_pid = ensure(new_address, data_dir)["pid"]
        assert remove(address, data_dir)["pid"] == old_pid
        assert ensure(new_address, data_dir)["pid"] == new_pid
        assert v2_status(address) is None and v2_status(new_address) == 200
    finally:
        remove(new_address, data_dir)
        remove(address, data_dir)


@pytest.mark.registry
def test_a_registry_this_data_dir_did_not_start_is_reused_and_never_stopped(
    address: str, tmp_path: Path
) -> None:
    owner_dir, other_dir = tmp_path / "registry", tmp_path / "other"
    pid = ensure(address, owner_dir)["pid"]
    assert ensure(address, other_dir) == {
        "address": address,
        "pid": None,
        "container": None,
        "started": False,
    }
    assert remove(address, other_dir)["stopped"] is False
    assert v2_status(address) == 200 and isinstance(pid, int) and process_alive(pid)


@pytest.mark.registry
def test_remove_never_kills_an_unrelated_process_behind_a_stale_pid_file(
    address: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "registry"
    ensure(address, data_dir)
    remove(address, data_dir)
    # After a reboot the recorded pid may belong to anything.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = RegistryFiles(data_dir, LoopbackAddress.parse(address)).pid
        pid_file.write_text(f"{bystander.pid}\n")
        assert remove(address, data_dir)["stopped"] is False
        assert bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGTERM)
        bystander.wait()


def test_a_stale_pid_of_a_process_with_arguments_not_in_utf_8_is_left_alone(
    tmp_path: Path,
) -> None:
    """In-process, and no registry needed: the recorded pid belongs to a process whose command
    line is not UTF-8 (any bytes are allowed there); remove reads it and leaves it running."""
    address = LoopbackAddress.parse("127.0.0.1:5000")
    data_dir = tmp_path / "registry"
    data_dir.mkdir()
    # It says when it runs: until its exec is complete, its command line reads as empty.
    sleeping = b"import time; print('running', flush=True); time.sleep(60)"
    bystander = subprocess.Popen(
        [os.fsencode(sys.executable), b"-c", sleeping, b"caf\xe9"], stdout=subprocess.PIPE
    )
    try:
        assert bystander.stdout is not None and bystander.stdout.readline() == b"running\n"
        RegistryFiles(data_dir, address).pid.write_text(f"{bystander.pid}\n")
        removal = registry.remove(address, data_dir)
        assert removal == RegistryRemoval("127.0.0.1:5000", None, None, stopped=False)
        assert bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGTERM)
        bystander.communicate()


def test_a_registry_that_ignores_sigterm_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: a process serving this data directory's config (as ensure records it) that
    ignores SIGTERM; remove sends SIGKILL once the wait for it ends (shortened here)."""
    monkeypatch.setattr(registry, "STOP_TIMEOUT_S", 0.5)
    address = LoopbackAddress.parse("127.0.0.1:5000")
    data_dir = tmp_path / "registry"
    data_dir.mkdir()
    files = RegistryFiles(data_dir, address)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('running', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", stubborn, str(files.config)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"running\n"
        files.pid.write_text(f"{process.pid}\n")
        removal = registry.remove(address, data_dir)
        assert removal == RegistryRemoval("127.0.0.1:5000", process.pid, None, stopped=True)
        # Killed: its command line already reads as empty while the kernel finishes its exit.
        settled = time.monotonic() + 5
        while process_alive(process.pid) and time.monotonic() < settled:
            time.sleep(0.01)
        assert not process_alive(process.pid)
        assert not files.pid.exists()
    finally:
        process.kill()
        process.communicate()


@pytest.mark.registry
def test_a_started_registry_gets_its_data_dir_no_input_and_a_log_of_warnings_only(
    address: str, tmp_path: Path
) -> None:
    """In-process: the data directory is made with its parents; the registry reads nothing of
    the caller's stdin (here a pipe: a Pulumi Command's), and logs neither requests nor info
    lines, so its log grows only with what needs attention."""
    data_dir = tmp_path / "not" / "yet" / "registry"
    loopback = LoopbackAddress.parse(address)
    read_end, write_end = os.pipe()
    caller_stdin = os.dup(0)
    os.dup2(read_end, 0)
    try:
        started = registry.ensure(loopback, data_dir)
    finally:
        os.dup2(caller_stdin, 0)
        for descriptor in (caller_stdin, read_end, write_end):
            os.close(descriptor)
    try:
        assert started.started is True and started.pid is not None
        assert os.readlink(f"/proc/{started.pid}/fd/0") == os.devnull
        assert v2_status(address) == 200
    finally:
        registry.remove(loopback, data_dir)
    logged = RegistryFiles(data_dir.resolve(), loopback).log.read_text().splitlines()
    assert logged and [line for line in logged if "level=warning" not in line] == []


@pytest.mark.parametrize(
    ("address", "stem"),
    [
        ("127.0.0.1:5000", "127.0.0.1-5000"),
        ("LocalHost:5000", "LocalHost-5000"),
        ("[::1]:5000", "1-5000"),
    ],
)
def test_the_files_of_an_address_are_named_after_it(
    tmp_path: Path, address: str, stem: str
) -> None:
    """docs/local.md: `registry-127.0.0.1-5000.{yml,pid,log}`; a run of anything but letters,
    digits and dots becomes one `-`, none at either end."""
    files = RegistryFiles(tmp_path, LoopbackAddress.parse(address))
    assert [files.config, files.pid, files.container, files.log] == [
        tmp_path / f"registry-{stem}.{suffix}" for suffix in ("yml", "pid", "container", "log")
    ]


def test_a_port_that_accepts_but_never_answers_is_refused_when_the_probe_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the kernel accepts the connection for a listening socket that nobody
    serves; the probe gives up after PROBE_TIMEOUT_S (shortened here) and names why."""
    monkeypatch.setattr(registry, "PROBE_TIMEOUT_S", 0.5)
    data_dir = tmp_path / "registry"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = LoopbackAddress.parse(f"127.0.0.1:{silent.getsockname()[1]}")
        # Closing the socket resets the connection: a probe without a timeout fails after
        # 5 s instead of hanging (mutation testing limits CPU time, not waiting).
        closer = threading.Timer(5.0, silent.close)
        closer.start()
        try:
            with pytest.raises(HostError) as refused:
                registry.ensure(address, data_dir)
        finally:
            closer.cancel()
    assert str(refused.value) == (
        f"{address} is in use by something that is not a registry (timed out); "
        "choose another registry.address"
    )
    assert not data_dir.exists()


def test_non_loopback_addresses_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    data_dir = tmp_path / "registry"
    for address in ("10.0.0.1:5000", "0.0.0.0:5000", "registry.example.com:5000", "::1:5000"):
        for action in ("ensure", "remove"):
            result = host_registry(action, "--address", address, "--data-dir", str(data_dir))
            assert result.returncode == 2, (address, result)
            assert result.stdout == ""
            assert f"registry address {address!r}" in result.stderr
            assert "allowed: a loopback host:port" in result.stderr
    assert not data_dir.exists()


def test_address_parsing() -> None:
    assert LoopbackAddress.parse("127.0.0.1:5000") == LoopbackAddress("127.0.0.1", 5000)
    assert LoopbackAddress.parse("127.1.2.3:80") == LoopbackAddress("127.1.2.3", 80)
    assert LoopbackAddress.parse("127.0.0.1:1") == LoopbackAddress("127.0.0.1", 1)
    assert LoopbackAddress.parse("127.0.0.1:65535") == LoopbackAddress("127.0.0.1", 65535)
    assert LoopbackAddress.parse("localhost:5000").url == "http://localhost:5000"
    assert str(LoopbackAddress.parse("[::1]:5000")) == "[::1]:5000"


ALLOWED = "a loopback host:port such as 127.0.0.1:5000, localhost:5000 or [::1]:5000"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("127.0.0.1", "is not valid"),
        ("127.0.0.1:0", "is not valid"),
        ("127.0.0.1:65536", "is not valid"),
        ("127.0.0.1:x", "is not valid"),
        ("[127.0.0.1]:5", "is not valid"),
        ("10.0.0.1:5000", "is not on loopback"),
        ("0.0.0.0:5000", "is not on loopback"),
    ],
)
def test_an_address_that_is_not_loopback_host_port_is_one_whole_error(
    text: str, problem: str
) -> None:
    with pytest.raises(HostError) as refused:
        LoopbackAddress.parse(text)
    why = " (the registry is anonymous plain HTTP, so it never listens elsewhere)"
    assert str(refused.value) == (
        f"registry address {text!r} {problem}; allowed: {ALLOWED}"
        + (why if problem == "is not on loopback" else "")
    )


def test_a_port_taken_by_something_else_is_refused(http_server: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "registry"
    result = host_registry("ensure", "--address", http_server, "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {http_server} is in use by something that is not a registry (GET /v2/ has no "
        "Docker-Distribution-API-Version: registry/2.0 header); choose another registry.address"
    ]
    assert not data_dir.exists()


def test_neither_the_binary_nor_docker_is_one_clear_error(tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    address = f"127.0.0.1:{free_loopback_port()}"
    result = host_registry(
        "ensure",
        "--address",
        address,
        "--data-dir",
        str(tmp_path / "registry"),
        env={**os.environ, "PATH": str(empty_path)},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: cannot start a registry at {address}: neither docker-registry (Debian package "
        "docker-registry) nor docker (to run registry:2) is on PATH"
    )
    assert not (tmp_path / "registry").exists()


def test_a_registry_that_exits_at_start_is_reported_with_its_log_and_leaves_no_pid_file(
    registry_binary: None, tmp_path: Path
) -> None:
    """A port bound but not listening refuses connections (so it looks free) and makes the
    registry's own listen fail: the registry exits, and the error quotes its log."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{blocker.getsockname()[1]}"
        data_dir = tmp_path / "registry"
        files = RegistryFiles(data_dir.resolve(), LoopbackAddress.parse(address))
        # The log of earlier runs, one line not UTF-8: only the last three lines are quoted.
        data_dir.mkdir()
        files.log.write_bytes(b"earlier run \xff\nearlier run 2\nearlier run 3\n")
        result = host_registry("ensure", "--address", address, "--data-dir", str(data_dir))
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    logged = files.log.read_text(errors="replace").strip().splitlines()
    assert len(logged) > 3 and "address already in use" in logged[-1]
    assert line == (
        f"error: the registry for {address} exited at start; last lines of {files.log}: "
        + " | ".join(logged[-3:])
    )
    assert not files.pid.exists()


def test_a_registry_process_that_never_answers_is_stopped_and_named_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `docker-registry` that starts, logs a line and never listens: when the wait ends it is
    stopped, its pid file goes, and the error quotes its log (a shorter wait keeps it fast)."""
    stub = tmp_path / "bin" / "docker-registry"
    stub.parent.mkdir()
    stub.write_text(
        '#!/bin/sh\necho $$ > "$(dirname "$0")/pid"\necho "stub registry: not listening"\n'
        "exec sleep 30\n"
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(registry, "START_TIMEOUT_S", 1.0)
    address = LoopbackAddress.parse(f"127.0.0.1:{free_loopback_port()}")
    files = RegistryFiles((tmp_path / "registry").resolve(), address)
    with pytest.raises(HostError) as failed:
        registry.ensure(address, tmp_path / "registry", "unused/registry:2")
    assert str(failed.value) == (
        f"the registry did not answer on {address.url}/v2/ within 1 s; "
        f"last lines of {files.log}: stub registry: not listening"
    )
    assert not files.pid.exists()
    # Gone, or a zombie this test process (its parent) has not collected yet.
    stat = Path(f"/proc/{int((stub.parent / 'pid').read_text())}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


# Without the docker-registry binary, `ensure` runs the registry image as a container. The tests
# build that image here from Debian's docker-registry binary and the libraries it links (nothing
# can be pulled), and give the tool a PATH that has docker but not docker-registry.

CONTAINER = "boutique-local-registry"
REGISTRY_ENTRYPOINT = ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]
CONTAINER_LOCK = Path(tempfile.gettempdir()) / f"{CONTAINER}.test-lock"
REGISTRY_CONFIG = (
    "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n"
    "http:\n  addr: :5000\n"
)


def docker(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, check=False, timeout=120
    )


def build_image(
    context: Path, tag: str, entrypoint: list[str], config: str = REGISTRY_CONFIG
) -> str:
    """A FROM-scratch image holding docker-registry, its libraries and a config (on :5000)."""
    binary = shutil.which("docker-registry")
    assert binary is not None
    context.mkdir()
    copies = [(Path(binary), "/bin/registry")]
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    for line in linked.stdout.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            copies.append((Path(path), path))
    lines = ["FROM scratch"]
    for number, (source, target) in enumerate(copies):
        shutil.copy(source, context / f"file{number}")
        lines.append(f"COPY file{number} {target}")
    (context / "config.yml").write_text(config)
    lines += [
        "COPY config.yml /etc/docker/registry/config.yml",
        f"ENTRYPOINT {json.dumps(entrypoint)}",
    ]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    built = docker("build", "--quiet", "--tag", tag, str(context))
    assert built.returncode == 0, built.stderr
    return tag


@pytest.fixture
def container_tools(registry_binary: None, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment for `python -m host registry` with docker but without docker-registry;
    the container name is machine-wide, so these tests hold a lock and remove it afterwards."""
    try:
        check_docker_engine(BUILD_PLATFORMS)
    except ToolchainError as error:
        missing_prerequisite(str(error))
    docker_cli = shutil.which("docker")
    assert docker_cli is not None
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "docker").symlink_to(docker_cli)
    with CONTAINER_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if docker("inspect", CONTAINER).returncode == 0:
            pytest.fail(f"a container named {CONTAINER} exists; these tests need the name")
        try:
            yield {**os.environ, "PATH": str(tools)}
        finally:
            docker("rm", "--force", CONTAINER)


def ensure_in_container(
    image: str, tools: dict[str, str], tmp_path: Path
) -> tuple[str, Path, subprocess.CompletedProcess[str]]:
    """`registry ensure --image IMAGE` on a free address: the address, the data dir, the run."""
    address = f"127.0.0.1:{free_loopback_port()}"
    data_dir = tmp_path / "registry"
    arguments = ("--address", address, "--data-dir", str(data_dir), "--image", image)
    return address, data_dir, host_registry("ensure", *arguments, env=tools)


def test_without_the_binary_the_registry_runs_as_a_container(
    container_tools: dict[str, str], tmp_path: Path
) -> None:
    image = build_image(tmp_path / "image", "boutique-test/registry:serving", REGISTRY_ENTRYPOINT)
    address, data_dir, started = ensure_in_container(image, container_tools, tmp_path)
    arguments = ("--address", address, "--data-dir", str(data_dir))
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == {
        "address": address,
        "pid": None,
        "container": CONTAINER,
        "started": True,
    }
    assert started.stderr == (
        f"docker-registry is not on PATH: running {image} as container {CONTAINER} instead\n"
    )
    assert v2_status(address) == 200
    assert docker("inspect", "--format", "{{.State.Running}}", CONTAINER).stdout.strip() == "true"

    again = host_registry("ensure", *arguments, "--image", image, env=container_tools)
    assert json.loads(again.stdout)["started"] is False
    assert json.loads(again.stdout)["container"] == CONTAINER

    removed = host_registry("remove", *arguments, env=container_tools)
    assert json.loads(removed.stdout) == {
        "address": address,
        "pid": None,
        "container": CONTAINER,
        "stopped": True,
    }
    assert docker("inspect", CONTAINER).returncode != 0
    assert v2_status(address) is None
    nothing = host_registry("remove", *arguments, env=container_tools)
    assert json.loads(nothing.stdout) == {
        "address": address,
        "pid": None,
        "container": None,
        "stopped": False,
    }


def test_a_stopped_container_of_an_earlier_run_is_replaced(
    container_tools: dict[str, str], tmp_path: Path
) -> None:
    image = build_image(tmp_path / "image", "boutique-test/registry:serving", REGISTRY_ENTRYPOINT)
    assert docker("create", "--name", CONTAINER, image).returncode == 0
    address, _, started = ensure_in_container(image, container_tools, tmp_path)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == {
        "address": address,
        "container": CONTAINER,
        "pid": None,
        "started": True,
    }
    assert v2_status(address) == 200


def test_a_running_container_serving_elsewhere_is_refused(
    container_tools: dict[str, str], tmp_path: Path
) -> None:
    image = build_image(tmp_path / "image", "boutique-test/registry:serving", REGISTRY_ENTRYPOINT)
    assert docker("run", "--detach", "--name", CONTAINER, image).returncode == 0
    address, data_dir, refused = ensure_in_container(image, container_tools, tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines()[-1] == (
        f"error: container {CONTAINER} is running but does not serve {address}; "
        f"remove it (`docker rm -f {CONTAINER}`) or use its address"
    )
    assert not RegistryFiles(data_dir.resolve(), LoopbackAddress.parse(address)).container.exists()


def test_a_container_that_exits_at_start_is_removed_and_named(
    container_tools: dict[str, str], tmp_path: Path
) -> None:
    broken = ["/bin/registry", "serve", "/nonexistent.yml"]
    image = build_image(tmp_path / "image", "boutique-test/registry:broken", broken)
    address, data_dir, failed = ensure_in_container(image, container_tools, tmp_path)
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.splitlines()[-1] == (
        f"error: the registry for {address} exited at start; see `docker logs {CONTAINER}`"
    )
    assert docker("inspect", CONTAINER).returncode != 0
    assert not RegistryFiles(data_dir.resolve(), LoopbackAddress.parse(address)).container.exists()


# In-process: `registry.ensure` called directly with the same PATH (docker, no docker-registry).


def test_an_image_that_cannot_be_run_is_named_with_the_address_and_docker_s_reason(
    container_tools: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", container_tools["PATH"])
    # Nothing serves at that port, so the image can be neither found nor pulled.
    image = f"127.0.0.1:{free_loopback_port()}/missing/registry:2"
    address = LoopbackAddress.parse(f"127.0.0.1:{free_loopback_port()}")
    # Its parents missing the first time (made), present the second (reused): the same error.
    data_dir = tmp_path / "not" / "yet" / "registry"
    for _ in ("made", "reused"):
        with pytest.raises(HostError) as failed:
            registry.ensure(address, data_dir, image)
        message = str(failed.value)
        assert message.startswith(f"starting {image} as {CONTAINER} on {address} failed: docker: ")
        assert message.endswith("connect: connection refused"), message
        assert docker("inspect", CONTAINER).returncode != 0
        assert not RegistryFiles(data_dir.resolve(), address).container.exists()
        assert capsys.readouterr().err == (
            f"{registry.REGISTRY_BINARY} is not on PATH: running {image} as container "
            f"{CONTAINER} instead\n"
        )
    assert data_dir.is_dir()


def test_the_container_s_data_dir_is_made_with_its_parents_or_reused(
    container_tools: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = build_image(tmp_path / "image", "boutique-test/registry:serving", REGISTRY_ENTRYPOINT)
    monkeypatch.setenv("PATH", container_tools["PATH"])
    address = LoopbackAddress.parse(f"127.0.0.1:{free_loopback_port()}")
    data_dir = tmp_path / "not" / "yet" / "registry"
    for _ in ("made", "reused"):
        started = registry.ensure(address, data_dir, image)
        assert (started.container, started.started) == (CONTAINER, True)
        assert v2_status(str(address)) == 200
        removal = registry.remove(address, data_dir)
        assert removal == RegistryRemoval(str(address), None, CONTAINER, stopped=True)
    assert (data_dir / "data").is_dir()


def test_a_container_still_running_when_the_wait_ends_is_removed(
    container_tools: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry in it serves on another port than the published one, so it runs and never
    answers: only a forced removal stops it (a shorter wait keeps the test fast)."""
    elsewhere = REGISTRY_CONFIG.replace("addr: :5000", "addr: :5001")
    image = build_image(
        tmp_path / "image", "boutique-test/registry:elsewhere", REGISTRY_ENTRYPOINT, elsewhere
    )
    monkeypatch.setenv("PATH", container_tools["PATH"])
    monkeypatch.setattr(registry, "START_TIMEOUT_S", 1.0)
    address = LoopbackAddress.parse(f"127.0.0.1:{free_loopback_port()}")
    data_dir = tmp_path / "registry"
    with pytest.raises(HostError) as failed:
        registry.ensure(address, data_dir, image)
    assert str(failed.value) == (
        f"the registry did not answer on {address.url}/v2/ within 1 s; "
        f"see `docker logs {CONTAINER}`"
    )
    assert docker("inspect", CONTAINER).returncode != 0
    assert not RegistryFiles(data_dir.resolve(), address).container.exists()


def test_the_default_image_is_left_off_the_registry_command_line() -> None:
    """So the command line, and the Pulumi diff of the Command that runs it, only change when a
    stack chooses another image."""
    assert RegistryEnsureRequest("127.0.0.1:5000", "d", registry.REGISTRY_IMAGE).argv() == [
        *("registry", "ensure", "--address", "127.0.0.1:5000", "--data-dir", "d"),
    ]
    assert RegistryEnsureRequest("127.0.0.1:5000", "d", "mirror/registry:2").argv()[-2:] == [
        *("--image", "mirror/registry:2"),
    ]


def test_without_proc_a_process_s_arguments_are_read_with_ps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """macOS has no /proc; Linux's ps answers the same, so the branch runs here for real."""
    with subprocess.Popen(["sleep", "30"]) as sleeper:
        try:
            with_proc = exec_done(sleeper.pid, ["sleep", "30"])
            monkeypatch.setattr(registry, "PROC", Path("/nonexistent-proc"))
            assert registry._command_line(sleeper.pid) == with_proc
        finally:
            sleeper.kill()
    assert registry._command_line(sleeper.pid) == []


def exec_done(pid: int, arguments: list[str]) -> list[str]:
    """`arguments`, once the child `pid` shows them (between fork and exec it shows others)."""
    deadline = time.monotonic() + 10
    while (shown := registry._command_line(pid)) != arguments:
        assert time.monotonic() < deadline, shown
        time.sleep(0.01)
    return shown


def test_proc_is_read_without_ps_and_a_strange_process_name_does_not_fool_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slim images have no ps. A process name (comm) may hold `) `, a state letter and bytes
    that are not UTF-8: the state is the field after the last `) `."""
    strange = tmp_path / os.fsdecode(b"x) Z \xff")
    strange.symlink_to(shutil.which("sleep") or "/bin/sleep")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    with subprocess.Popen([strange, "30"]) as sleeper:
        try:
            exec_done(sleeper.pid, [os.fsencode(strange).decode(errors="replace"), "30"])
            assert registry._running(sleeper.pid)
        finally:
            sleeper.kill()


@pytest.mark.parametrize("proc", [True, False], ids=["proc", "ps"])
def test_a_process_runs_until_it_is_a_zombie_or_gone(
    proc: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not proc:
        monkeypatch.setattr(registry, "PROC", Path("/nonexistent-proc"))
    sleeper = subprocess.Popen(["sleep", "30"])
    assert registry._running(sleeper.pid)
    sleeper.kill()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{sleeper.pid}/stat").read_text().rpartition(") ")[2][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not registry._running(sleeper.pid)  # a zombie: this test has not collected it
    sleeper.wait()
    assert not registry._running(sleeper.pid)  # gone
