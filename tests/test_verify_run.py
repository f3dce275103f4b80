"""`verify --run` without Docker: probe syntax, the probes against real servers in this process
(a gRPC health server, an HTTP server, a TCP listener), log tails, and the CLI's exit 2 cases.

The container runs themselves are in tests/integration/test_verify_run.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.integration.loopbackserver import serve, shut_down
from tests.test_verify_cli import closed_port
from verify.auth import Credentials
from verify.contract import CheckRequest
from verify.platforms import parse_platform
from verify.probe import MAX_TIMEOUT, Probe, ProbeError, parse_env, parse_probe
from verify.reference import parse_reference
from verify.run import (
    DEFAULT_TIMEOUT,
    LOG_LINE_CHARS,
    MAX_JOBS,
    PlatformRun,
    RunOptions,
    RunResult,
    RunSession,
    RunUnavailable,
    RunUsageError,
    check_prerequisites,
    escape_line,
    grpc_health_once,
    log_tail,
    options_from,
    probe_once,
    run_failure_lines,
    run_json,
    secret_values,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "probe"),
    [
        ("grpc:7070", Probe("grpc", 7070)),
        ("http:8080/_healthz", Probe("http", 8080, "/_healthz")),
        ("http:80/", Probe("http", 80, "/")),
        ("tcp:6379", Probe("tcp", 6379)),
        ("up:45", Probe("up", 45)),
        ("up:1", Probe("up", 1)),
        ("up:3600", Probe("up", 3600)),
        ("tcp:1", Probe("tcp", 1)),
        ("grpc:65535", Probe("grpc", 65535)),
        ("http:1/a:b", Probe("http", 1, "/a:b")),
    ],
)
def test_probes_parse_and_print_back(text: str, probe: Probe) -> None:
    assert parse_probe(text) == probe
    assert str(probe) == text


@pytest.mark.parametrize(
    "text",
    ["grpc", "grpc:", "grpc:0", "tcp:65536", "http:8080", "http:8080/a b", "up:0", "ftp:21", ""],
)
def test_invalid_probes_are_refused(text: str) -> None:
    with pytest.raises(ProbeError, match="probe"):
        parse_probe(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("up:0", "probe 'up:0': SECONDS must be from 1 to 3600"),
        ("up:3601", "probe 'up:3601': SECONDS must be from 1 to 3600"),
        ("tcp:0", "probe 'tcp:0': PORT must be from 1 to 65535"),
        ("http:65536/", "probe 'http:65536/': PORT must be from 1 to 65535"),
        ("grpc:99999", "probe 'grpc:99999': PORT must be from 1 to 65535"),
        (
            "tcp:x",
            "probe 'tcp:x' is not valid; expected grpc:PORT, http:PORT/PATH, tcp:PORT or "
            "up:SECONDS",
        ),
    ],
)
def test_out_of_range_probes_name_the_range(text: str, message: str) -> None:
    with pytest.raises(ProbeError) as raised:
        parse_probe(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "hunter2-token",
            "env (an invalid name): expected NAME=VALUE with NAME of letters, "
            "digits and '_', not starting with a digit",
        ),
        (
            "NAME",
            "env NAME: expected NAME=VALUE with NAME of letters, digits and '_', "
            "not starting with a digit",
        ),
        ("A=x\ny", "env A: the value must not contain a newline or NUL byte"),
        ("A=x\x00y", "env A: the value must not contain a newline or NUL byte"),
    ],
)
def test_bad_env_values_name_only_a_valid_name(text: str, message: str) -> None:
    with pytest.raises(ProbeError) as raised:
        parse_env(text)
    assert str(raised.value) == message


def test_env_values_keep_equals_signs_and_bad_names_are_not_echoed() -> None:
    assert parse_env("OPTS=a=b") == ("OPTS", "a=b")
    assert parse_env("EMPTY=") == ("EMPTY", "")
    with pytest.raises(ProbeError) as error:
        parse_env("hunter2-token")
    assert "hunter2" not in str(error.value)
    with pytest.raises(ProbeError, match="newline"):
        parse_env("A=x\ny")


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(grace=None)


def test_grpc_probe_passes_on_serving_only(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    address, servicer = health_server
    host, port = address.rsplit(":", 1)
    probe = Probe("grpc", int(port))
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe_once(probe, host, 2.0) == f"grpc {address}: health status NOT_SERVING"
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert probe_once(probe, host, 2.0) is None


def test_grpc_probe_of_a_closed_port_says_unavailable() -> None:
    port = closed_port()
    assert probe_once(Probe("grpc", port), "127.0.0.1", 1.0) == (
        f"grpc 127.0.0.1:{port}: UNAVAILABLE"
    )


class _Paths(BaseHTTPRequestHandler):
    """200 on /ok, 302 on /moved, 503 elsewhere."""

    def do_GET(self) -> None:
        status = {"/ok": 200, "/moved": 302}.get(self.path, 503)
        self.send_response(status)
        self.send_header("Location", "/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_http_probe_accepts_2xx_and_3xx_only() -> None:
    server = serve(_Paths)
    try:
        port = server.server_port
        assert probe_once(Probe("http", port, "/ok"), "127.0.0.1", 2.0) is None
        assert probe_once(Probe("http", port, "/moved"), "127.0.0.1", 2.0) is None
        assert probe_once(Probe("http", port, "/down"), "127.0.0.1", 2.0) == (
            f"http://127.0.0.1:{port}/down answered 503"
        )
    finally:
        shut_down(server)


def test_tcp_probe_needs_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert probe_once(Probe("tcp", port), "127.0.0.1", 2.0) is None
    assert probe_once(Probe("tcp", port), "127.0.0.1", 2.0) == (
        f"127.0.0.1:{port}: Connection refused"
    )


def test_log_tail_keeps_the_last_20_lines_escaped_and_masked() -> None:
    lines = [f"line {n}" for n in range(30)] + ["token=s3cret \x1b[31mred\x1b[0m\r", "x" * 1000]
    data = "\n".join(lines).encode() + b"\n\xff"
    secrets = secret_values(
        [("API_TOKEN", "s3cret"), ("PORT", "8080")], Credentials("u", "pa55word", "test")
    )
    assert secrets == ["s3cret", "pa55word"]
    tail = log_tail(data, secrets)
    assert len(tail) == 20
    assert tail[0] == "line 13"
    assert tail[-3] == "token=*** \\x1b[31mred\\x1b[0m"
    assert tail[-2] == "x" * LOG_LINE_CHARS + "..."
    assert tail[-1] == "\ufffd"
    assert escape_line("a\tb\x00") == "a\\tb\\x00"


def run_cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    if path is not None:
        environ["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "verify", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


PROBES = "grpc:PORT, http:PORT/PATH, tcp:PORT or up:SECONDS"
RUN_TIMEOUTS = "allowed 1 to 3600 seconds"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--probe", "tcp:80"], "--probe only with --run"),
        (["--env", "A=1"], "--env only with --run"),
        (["--skip-run", "linux/amd64"], "--skip-run only with --run"),
        (["--run-timeout", "5"], "--run-timeout only with --run"),
        (["--jobs", "2"], "--jobs only with --run"),
        (["--run"], f"--run needs --probe ({PROBES})"),
        (
            ["--run", "--probe", "http:80"],
            f"--probe/--env: probe 'http:80' is not valid; expected {PROBES}",
        ),
        (
            ["--run", "--probe", "up:200"],
            "--probe up:200 needs a --run-timeout above 200 s (it is 180)",
        ),
        (["--run", "--probe", "tcp:1", "--run-timeout", "0"], f"--run-timeout 0: {RUN_TIMEOUTS}"),
        (
            ["--run", "--probe", "tcp:1", "--run-timeout", "3601"],
            f"--run-timeout 3601: {RUN_TIMEOUTS}",
        ),
        (
            ["--run", "--probe", "tcp:1", "--run-timeout", "nan"],
            f"--run-timeout nan: {RUN_TIMEOUTS}",
        ),
        (["--run", "--probe", "tcp:1", "--jobs", "0"], "--jobs 0: allowed 1 to 64"),
        (["--run", "--probe", "tcp:1", "--jobs", "65"], "--jobs 65: allowed 1 to 64"),
        (
            ["--run", "--probe", "tcp:1", "--env", "1X=2"],
            "--probe/--env: env (an invalid name): expected NAME=VALUE with NAME of letters, "
            "digits and '_', not starting with a digit",
        ),
        (
            ["--run", "--probe", "tcp:1", "--skip-run", "linux/s390x"],
            "--skip-run linux/s390x: not a verified platform (linux/amd64, linux/arm64)",
        ),
        (
            ["--run", "--probe", "tcp:1", "--skip-run", "linux"],
            "--skip-run: platform 'linux' is not valid; expected os/architecture[/variant], e.g. "
            "linux/amd64 or linux/arm64/v8",
        ),
        (
            ["--run", "--probe", "tcp:1", "--skip-run", "linux/amd64", "--skip-run", "linux/arm64"],
            "--skip-run names every platform; leave out --run instead",
        ),
    ],
)
def test_run_usage_errors_exit_2_before_any_request(
    args: list[str], message: str, verify_refusal: Callable[[list[str]], str]
) -> None:
    # Nothing listens on the port: a request would have been a connection error instead.
    refused = verify_refusal([f"127.0.0.1:{closed_port()}/a:1", "--json", *args])
    assert refused == f"verify: {message}\n"


AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")


def run_request(**arguments: object) -> CheckRequest:
    return CheckRequest(refs=("r/a:1",), run=True, **arguments)  # type: ignore[arg-type]


def test_run_options_take_the_arguments_given() -> None:
    request = run_request(
        probe="http:8080/_healthz",
        env=("A=1", "B=x=y"),
        skip_run=("linux/arm64",),
        run_timeout=7.5,
        jobs=2,
    )
    assert options_from(request, [AMD64, ARM64]) == RunOptions(
        probe=Probe("http", 8080, "/_healthz"),
        env=(("A", "1"), ("B", "x=y")),
        timeout=7.5,
        jobs=2,
        skip=(ARM64,),
    )


@pytest.mark.parametrize(("cpus", "jobs"), [(3, 3), (None, 1)])
def test_run_options_default_to_the_run_timeout_and_one_job_per_cpu(
    cpus: int | None, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert options_from(run_request(probe="tcp:80"), [AMD64, ARM64]) == RunOptions(
        probe=Probe("tcp", 80), env=(), timeout=DEFAULT_TIMEOUT, jobs=jobs
    )


@pytest.mark.parametrize(
    "arguments",
    [
        {"probe": "tcp:1", "run_timeout": 1},
        {"probe": "tcp:1", "run_timeout": MAX_TIMEOUT},
        {"probe": "tcp:1", "jobs": 1},
        {"probe": "tcp:1", "jobs": MAX_JOBS},
        # Only an `up` probe's number is seconds; a port above the timeout is a port.
        {"probe": "tcp:500", "run_timeout": 180},
        {"probe": "up:5"},
        {"probe": "up:179", "run_timeout": 180},
    ],
    ids=repr,
)
def test_run_options_at_their_bounds_are_accepted(arguments: dict[str, object]) -> None:
    options = options_from(run_request(**arguments), [AMD64])
    assert options is not None
    assert options.probe == parse_probe(str(arguments["probe"]))
    assert options.timeout == arguments.get("run_timeout", DEFAULT_TIMEOUT)
    assert options.jobs == arguments.get("jobs", options.jobs)


def test_an_up_probe_as_long_as_the_run_timeout_is_refused() -> None:
    with pytest.raises(RunUsageError) as refused:
        options_from(run_request(probe="up:180", run_timeout=180), [AMD64])
    assert str(refused.value) == "--probe up:180 needs a --run-timeout above 180 s (it is 180)"


def test_every_run_argument_given_without_run_is_named_in_one_refusal() -> None:
    request = CheckRequest(
        refs=("r/a:1",),
        probe="tcp:80",
        env=("A=1",),
        skip_run=("linux/amd64",),
        run_timeout=5,
        jobs=2,
    )
    with pytest.raises(RunUsageError) as refused:
        options_from(request, [parse_platform("linux/amd64")])
    assert str(refused.value) == "--probe, --env, --skip-run, --run-timeout, --jobs only with --run"


def test_run_results_as_json_and_failure_lines() -> None:
    failed = RunResult(False, "tcp:80", 12.3456, exit_code=3, reason="exited", log_tail=["a", "b"])
    assert run_json(failed) == {
        "ok": False,
        "probe": "tcp:80",
        "seconds": 12.35,
        "exitCode": 3,
        "logTail": ["a", "b"],
    }
    assert run_failure_lines("r/a:1", "linux/arm64", failed) == [
        "verify: r/a:1: linux/arm64: run failed (tcp:80): exited",
        "verify: r/a:1: linux/arm64: log: a",
        "verify: r/a:1: linux/arm64: log: b",
    ]
    silent = RunResult(False, "up:5", 1.0, reason="stopped")
    assert run_failure_lines("r/a:1", "linux/amd64", silent) == [
        "verify: r/a:1: linux/amd64: run failed (up:5): stopped",
        "verify: r/a:1: linux/amd64: log: (empty)",
    ]


def test_only_values_of_secret_looking_names_and_the_password_are_secrets() -> None:
    env = [("DB_PASSWORD", "p"), ("AWS_SECRET", "s"), ("GH_TOKEN", ""), ("API_key", "k")]
    env += [("CREDENTIALS_FILE", "c"), ("PORT", "8080"), ("TOKENIZER", "t")]
    assert secret_values(env, None) == ["p", "s", "k", "c", "t"]


def test_run_without_docker_exits_2_saying_so(tmp_path: Path) -> None:
    result = run_cli(
        f"127.0.0.1:{closed_port()}/a:1", "--run", "--probe", "tcp:1", path=str(tmp_path)
    )
    assert result.returncode == 2
    assert result.stderr == "verify: --run needs the Docker CLI ('docker' is not on PATH)\n"


def _serving_answer(size: int) -> bytes:
    """A HealthCheckResponse of exactly `size` bytes saying SERVING: status 1, then an unknown
    bytes field (number 15) as padding, which a client keeps without reading."""
    padding = size - 6  # status (2 bytes), the field's tag (1) and its 3-byte varint length
    assert 1 << 14 <= padding < 1 << 21
    length = bytes([padding & 0x7F | 0x80, padding >> 7 & 0x7F | 0x80, padding >> 14])
    return b"\x08\x01\x7a" + length + b"\0" * padding


@pytest.fixture
def raw_health_server() -> Iterator[tuple[str, list[bytes | threading.Event]]]:
    """A Health/Check that answers the bytes put in the list, or, given an Event, waits (5 s at
    most) for it to be set and then answers SERVING."""
    answers: list[bytes | threading.Event] = []

    def check(request: bytes, context: grpc.ServicerContext) -> bytes:
        answer = answers[0]
        if isinstance(answer, threading.Event):
            answer.wait(5.0)
            return b"\x08\x01"
        return answer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", answers
    server.stop(grace=None)


def test_grpc_probe_reads_64_kib_answers_at_most(
    raw_health_server: tuple[str, list[bytes | threading.Event]],
) -> None:
    address, answers = raw_health_server
    answers.append(_serving_answer(64 * 1024))
    assert grpc_health_once(address, 2.0) is None
    answers[0] = _serving_answer(64 * 1024 + 1)
    assert grpc_health_once(address, 2.0) == f"grpc {address}: RESOURCE_EXHAUSTED"


def test_grpc_probe_gives_up_at_its_timeout(
    raw_health_server: tuple[str, list[bytes | threading.Event]],
) -> None:
    address, answers = raw_health_server
    host, port = address.rsplit(":", 1)
    answered = threading.Event()
    answers.append(answered)
    try:
        # Without the deadline the answer (SERVING) would come when the server stops waiting.
        assert probe_once(Probe("grpc", int(port)), host, 0.2) == (
            f"grpc {address}: DEADLINE_EXCEEDED"
        )
    finally:
        answered.set()


class _Recording(BaseHTTPRequestHandler):
    """Answers /status/N with N and records each request's User-Agent; /garbage answers no
    HTTP at all; /slow waits (5 s at most) for `released`, then answers 200."""

    user_agents: ClassVar[list[str | None]] = []
    released: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        self.user_agents.append(self.headers.get("User-Agent"))
        if self.path == "/garbage":
            self.wfile.write(b"not http\r\n\r\n")
            return
        if self.path == "/slow":
            self.released.wait(5.0)
        self.send_response(
            int(self.path.removeprefix("/status/")) if "status" in self.path else 200
        )
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recording_server() -> Iterator[int]:
    _Recording.user_agents.clear()
    _Recording.released.clear()
    server = serve(_Recording)
    yield server.server_port
    _Recording.released.set()
    shut_down(server)


def test_http_probe_names_itself_and_refuses_400_and_above(recording_server: int) -> None:
    port = recording_server
    assert probe_once(Probe("http", port, "/status/399"), "127.0.0.1", 2.0) is None
    assert probe_once(Probe("http", port, "/status/400"), "127.0.0.1", 2.0) == (
        f"http://127.0.0.1:{port}/status/400 answered 400"
    )
    assert _Recording.user_agents == ["boutique-verify-run", "boutique-verify-run"]


def test_http_probe_names_the_error_of_an_answer_that_is_not_http(recording_server: int) -> None:
    port = recording_server
    assert probe_once(Probe("http", port, "/garbage"), "127.0.0.1", 2.0) == (
        f"http://127.0.0.1:{port}/garbage: BadStatusLine"
    )


def test_http_probe_gives_up_at_its_timeout(recording_server: int) -> None:
    # Without the timeout the answer (200) would come when the server stops waiting.
    port = recording_server
    assert probe_once(Probe("http", port, "/slow"), "127.0.0.1", 0.2) == (
        f"127.0.0.1:{port}: timed out"
    )


def test_log_tail_drops_only_a_final_empty_line() -> None:
    assert log_tail(b"first\n\nlast", []) == ["first", "", "last"]
    assert log_tail(b"first\nlast\n", []) == ["first", "last"]
    assert log_tail(b"only", []) == ["only"]


def test_a_line_of_exactly_the_limit_is_kept_whole() -> None:
    assert escape_line("y" * LOG_LINE_CHARS) == "y" * LOG_LINE_CHARS
    assert escape_line("y" * (LOG_LINE_CHARS + 1)) == "y" * LOG_LINE_CHARS + "..."


def test_tcp_probe_gives_up_at_its_timeout() -> None:
    results: list[str | None] = []
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued.connect(("127.0.0.1", port))  # fills the backlog: the kernel drops further SYNs
        attempt = threading.Thread(
            target=lambda: results.append(probe_once(Probe("tcp", port), "127.0.0.1", 0.2))
        )
        attempt.start()
        attempt.join(5.0)
    # An attempt still waiting once the listener is closed is refused, never "timed out".
    attempt.join()
    assert results == [f"127.0.0.1:{port}: timed out"]


def test_an_up_probe_has_no_attempt_to_make() -> None:
    with pytest.raises(AssertionError) as error:
        probe_once(Probe("up", 5), "127.0.0.1", 0.2)
    assert str(error.value) == "probe kind 'up' has no attempt"


def test_skipped_platforms_are_not_started() -> None:
    amd64, arm64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
    options = RunOptions(Probe("up", 5), (), 60.0, 1, skip=(arm64,))
    assert options.started([amd64, arm64]) == [amd64]


FAKE_DOCKER = """#!/bin/sh
# docker info --format '{{.Architecture}}<TAB>{{.OperatingSystem}}' as an Engine would answer it
[ "$FAKE_DOCKER_SLEEP" ] && exec sleep "$FAKE_DOCKER_SLEEP"
[ "$FAKE_DOCKER_DOWN" ] && { echo 'Cannot connect to the Docker daemon' >&2; exit 1; }
[ "$*" = "$(printf 'info --format {{.Architecture}}\t{{.OperatingSystem}}')" ] || exit 3
printf 'x86_64\tDebian GNU/Linux 12 (bookworm)\n'
"""


@pytest.fixture
def fake_docker(tmp_path: Path) -> str:
    """A Docker CLI script answering `docker info` (set FAKE_DOCKER_DOWN or FAKE_DOCKER_SLEEP)."""
    script = tmp_path / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(0o755)
    return str(script)


def test_an_engine_on_the_platforms_architecture_can_run_it(fake_docker: str) -> None:
    check_prerequisites([parse_platform("linux/amd64")], docker=fake_docker)  # raises if not


def test_an_engine_that_does_not_answer_is_named_with_its_error(
    fake_docker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_DOWN", "1")
    with pytest.raises(RunUnavailable) as error:
        check_prerequisites([parse_platform("linux/amd64")], docker=fake_docker)
    assert str(error.value) == (
        "--run needs a running Docker Engine ('docker info': Cannot connect to the Docker daemon)"
    )


def test_docker_info_is_given_up_after_its_time_limit(
    fake_docker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the limit the call would wait the whole sleep, then read an empty answer.
    monkeypatch.setenv("FAKE_DOCKER_SLEEP", "5")
    monkeypatch.setattr("verify.run.DOCKER_SECONDS", 0.3)
    with pytest.raises(RunUnavailable) as error:
        check_prerequisites([parse_platform("linux/amd64")], docker=fake_docker)
    assert str(error.value) == "--run: 'docker info' did not answer within 0.3 s"


FAKE_ENGINE = """#!/bin/sh
# The Docker CLI calls of one platform's run on an Engine whose container keeps running without
# a bridge address. FAKE_STATE=gone: `container inspect` fails, cut: it answers half a JSON
# state, exited: the container ended with status FAKE_EXIT. `logs` answers 25 lines;
# FAKE_LOGS=fail: an error, hang: a line, then nothing; pause: it tells FAKE_LOGS_FIFO it is
# reading, then waits for a line from it.
case "$1 $2" in
  "image inspect"|"run --detach"|"rm --force") exit 0 ;;
  "container inspect")
    case "$FAKE_STATE" in
      gone) echo 'Error response from daemon: No such container'; exit 1 ;;
      cut) echo '{"Running":' ;;
      exited) printf '{"Running":false,"ExitCode":%s}\\t{"Networks":{}}\\n' "$FAKE_EXIT" ;;
      *) printf '{"Running":true}\\t{"Networks":{}}\\n' ;;
    esac ;;
  "logs --tail")
    [ "$3 $4" = "20 --" ] || exit 3
    case "$FAKE_LOGS" in
      fail) echo 'Error response from daemon: No such container'; exit 1 ;;
      hang) echo 'partial'; exec sleep 3 ;;
      pause) echo reading > "$FAKE_LOGS_FIFO"; read -r _ < "$FAKE_LOGS_FIFO" ;;
    esac
    n=1
    while [ $n -le 25 ]; do echo "log line $n"; n=$((n + 1)); done ;;
  *) exit 3 ;;
esac
"""
NO_ADDRESS = "no success within 0.05 s (last attempt: the container has no bridge address)"


@pytest.fixture
def engine_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RunSession, PlatformRun]:
    """A run of `tcp:80` (0.05 s) on :data:`FAKE_ENGINE`, polling the container every 10 ms."""
    script = tmp_path / "docker"
    script.write_text(FAKE_ENGINE)
    script.chmod(0o755)
    monkeypatch.setattr("verify.run.POLL_SECONDS", 0.01)
    session = RunSession(docker=str(script))
    options = RunOptions(Probe("tcp", 80), (), 0.05, 1)
    return session, PlatformRun(session, options, lambda registry: None)


def _run(runner: PlatformRun) -> RunResult:
    ref = parse_reference("127.0.0.1:1/shop/app:v1")
    return runner.run(ref, parse_platform("linux/amd64"), "sha256:" + "a" * 64)


def test_a_container_without_a_bridge_address_fails_its_probe_with_its_log_tail(
    engine_run: tuple[RunSession, PlatformRun],
) -> None:
    result = _run(engine_run[1])
    assert (result.ok, result.probe, result.exit_code) == (False, "tcp:80", None)
    assert result.reason == NO_ADDRESS
    assert result.log_tail == [f"log line {n}" for n in range(6, 26)]


@pytest.mark.parametrize("logs", ["fail", "hang"])
def test_a_log_that_cannot_be_read_in_time_is_no_log(
    engine_run: tuple[RunSession, PlatformRun], logs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker logs` failing (its error is not the container's log) or not answering within
    the Docker CLI's time limit (what it wrote so far is dropped)."""
    monkeypatch.setenv("FAKE_LOGS", logs)
    monkeypatch.setattr("verify.run.DOCKER_SECONDS", 1.0)
    result = _run(engine_run[1])
    assert (result.ok, result.reason, result.log_tail) == (False, NO_ADDRESS, [])


def test_a_cancelled_run_still_reads_the_failed_containers_log(
    engine_run: tuple[RunSession, PlatformRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation (Ctrl-C) while `docker logs` runs does not stop it: reading the log is
    part of the cleanup, like removing the container."""
    session, runner = engine_run
    fifo = tmp_path / "logs.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("FAKE_LOGS", "pause")
    monkeypatch.setenv("FAKE_LOGS_FIFO", str(fifo))

    def cancel_while_reading() -> None:
        assert fifo.read_text() == "reading\n"
        session.cancelled.set()
        fifo.write_text("go on\n")

    canceller = threading.Thread(target=cancel_while_reading, daemon=True)
    canceller.start()
    result = _run(runner)
    canceller.join(5)
    assert session.cancelled.is_set()
    assert (result.ok, result.reason) == (False, NO_ADDRESS)
    assert result.log_tail == [f"log line {n}" for n in range(6, 26)]


def _failed_run(platform_run: PlatformRun) -> RunResult:
    """`_run` of a probe that fails: `ok` is False itself, and the seconds it reports are a
    float counted from `docker run` to the inspect, within this call."""
    before = time.monotonic()
    result = _run(platform_run)
    took = time.monotonic() - before
    assert result.ok is False
    assert isinstance(result.seconds, float)
    assert 0 <= result.seconds <= took
    return result


@pytest.mark.parametrize("state", ["gone", "cut"])
def test_a_container_without_a_readable_state_fails_at_once(
    engine_run: tuple[RunSession, PlatformRun], state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker container inspect` failing (the container was removed) or answering no JSON."""
    monkeypatch.setenv("FAKE_STATE", state)
    result = _failed_run(engine_run[1])
    assert result == RunResult(
        False,
        "tcp:80",
        result.seconds,
        None,
        "docker container inspect gave no readable state (was it removed?)",
        [f"log line {n}" for n in range(6, 26)],
    )


@pytest.mark.parametrize("status", [0, 3])
def test_a_container_that_exited_fails_with_its_exit_status(
    engine_run: tuple[RunSession, PlatformRun], status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STATE", "exited")
    monkeypatch.setenv("FAKE_EXIT", str(status))
    result = _failed_run(engine_run[1])
    assert result == RunResult(
        False,
        "tcp:80",
        result.seconds,
        status,
        f"the container exited with status {status}",
        [f"log line {n}" for n in range(6, 26)],
    )
