"""``verify --run``: start each verified platform's image with the local Docker Engine, probe it.

Static checks prove what the binaries are built for; this proves the image *starts* there (a
missing native module, dynamic loader or shared library, a musl/glibc mismatch, an entrypoint
that fails on one platform). Per platform: ``docker pull --platform P`` of the platform's
manifest digest (exactly what was verified), ``docker run -d --platform P`` of it (the foreign
platform through QEMU binfmt), then the probe until it passes, the container exits, or
``--run-timeout`` runs out.

The probe talks to the container's IP address on Docker's bridge network, and no port is
published. A published port answers through ``docker-proxy``, which accepts a TCP connection on
the container's behalf even when nothing in the container listens (measured on this project's
toolchain: a connection to ``127.0.0.1:<published>`` was accepted, then closed empty; the bridge
address refused it), so ``tcp:`` would pass a dead service. The bridge address also means no
host port is ever taken. It requires the Engine to run on this Linux host (as on CI runners):
Docker Desktop, which does not route its bridge network to the host, is refused up front (exit
2); with a remote Engine each probe fails and says which address it tried.

Every container carries the label :data:`RUN_LABEL` with this run's id and a unique name; it is
removed in ``finally`` after its probe, and on Ctrl-C or SIGTERM :meth:`RunSession.close` stops
the Docker CLI processes in flight and removes whatever carries the run's label (``--rm`` would
not remove a container whose ``docker run`` was killed, and would lose the exit status). Images
pulled only for the run are removed afterwards. Containers run with ``--cap-drop ALL`` and
``no-new-privileges``, as upstream's pods do.

Every read is bounded: Docker CLI calls have timeouts, log tails are read up to
:data:`LOG_BYTES` and each line cut at :data:`LOG_LINE_CHARS`, control characters are escaped,
and values that may be secrets (registry password, ``--env`` values of secret-looking names)
are masked.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify.auth import Credentials
from verify.checks import EXIT_VERIFIED, ImageResult
from verify.contract import DEFAULT_RUN_TIMEOUT, CheckRequest, RunSummary, run_dict
from verify.platforms import Platform, PlatformError, parse_platform
from verify.probe import MAX_TIMEOUT, PROBE_FORMS, Probe, ProbeError, parse_env, parse_probe
from verify.reference import Reference

DEFAULT_TIMEOUT = DEFAULT_RUN_TIMEOUT
"""``--run-timeout`` default: Java and Python services start slowly under QEMU."""
MAX_JOBS = 64
RUN_LABEL = "dev.boutique-multiarch.verify-run"
"""Label on every container a run starts; its value is the run's id."""
LOG_TAIL_LINES = 20
LOG_BYTES = 64 * 1024
LOG_LINE_CHARS = 400
POLL_SECONDS = 0.5
ATTEMPT_SECONDS = 2.0
"""Longest single probe attempt (connect + answer)."""
DOCKER_SECONDS = 60.0
"""Longest Docker CLI call other than the pull (run, inspect, logs, rm)."""
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_NAMES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "arm",
    "386": "i386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
"""Docker architecture -> the name of its QEMU user-mode emulator (binfmt_misc entry qemu-NAME)."""
DOCKER_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
"""What ``docker info`` reports as the host architecture -> Docker's platform architecture."""
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
MASK = "***"
_INSPECT_FORMAT = "{{json .State}}\t{{json .NetworkSettings}}"


class RunUnavailable(Exception):
    """The run cannot happen on this machine (no Docker, no emulation): exit code 2."""


class Cancelled(Exception):
    """The run was interrupted (Ctrl-C, SIGTERM); containers are being removed."""


@dataclass(frozen=True)
class RunOptions:
    """What ``--run`` starts and how it judges the container."""

    probe: Probe
    env: tuple[tuple[str, str], ...]
    """``--env NAME=VALUE`` pairs, in order."""
    timeout: float
    """Seconds the probe may take after the container started (the pull has its own)."""
    jobs: int
    """Platforms run at once."""
    skip: tuple[Platform, ...] = ()
    """Verified platforms not started (``--skip-run``)."""

    def started(self, platforms: Sequence[Platform]) -> list[Platform]:
        """The platforms of `platforms` this run starts."""
        return [platform for platform in platforms if platform not in self.skip]


@dataclass
class RunResult:
    """The outcome of one platform's run."""

    ok: bool
    probe: str
    seconds: float
    """From ``docker run`` to the probe's success (or to the failure)."""
    exit_code: int | None = None
    """The container's exit status when it ended before the probe passed."""
    reason: str = ""
    """Why it failed, for the stderr line; empty when ok."""
    log_tail: list[str] = field(default_factory=list)
    """The last :data:`LOG_TAIL_LINES` lines of its log when it failed (escaped, masked)."""


def run_summary(result: RunResult) -> RunSummary:
    """The ``run`` object of a platform in the ``--json`` document."""
    return RunSummary(
        ok=result.ok,
        probe=result.probe,
        seconds=round(result.seconds, 2),
        exit_code=result.exit_code,
        log_tail=tuple(result.log_tail),
    )


def run_json(result: RunResult) -> dict[str, Any]:
    """The ``run`` object of a platform in the ``--json`` document, as a dict."""
    return run_dict(run_summary(result))


def run_failure_lines(ref: str, platform: str, result: RunResult) -> list[str]:
    """``verify: REF: PLATFORM: run failed: ...``, then one line per log line."""
    lines = [f"verify: {ref}: {platform}: run failed ({result.probe}): {result.reason}"]
    lines += [f"verify: {ref}: {platform}: log: {line}" for line in result.log_tail]
    if not result.log_tail:
        lines.append(f"verify: {ref}: {platform}: log: (empty)")
    return lines


def escape_line(line: str) -> str:
    """Control and other non-printable characters as escapes; at most LOG_LINE_CHARS long."""
    escaped = "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode()
        for character in line
    )
    if len(escaped) > LOG_LINE_CHARS:
        escaped = escaped[:LOG_LINE_CHARS] + "..."
    return escaped


def log_tail(data: bytes, secrets: Sequence[str]) -> list[str]:
    """The last lines of a container log, escaped, with every secret value masked."""
    text = data.decode("utf-8", errors="replace")
    for secret in secrets:
        text = text.replace(secret, MASK)
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [escape_line(line) for line in lines[-LOG_TAIL_LINES:]]


def secret_values(env: Sequence[tuple[str, str]], credentials: Credentials | None) -> list[str]:
    """Values never shown: the registry password and env values of secret-looking names."""
    values = [value for name, value in env if _SECRET_NAME.search(name) and value]
    if credentials is not None:
        values.append(credentials.password)
    return values


def check_prerequisites(platforms: Sequence[Platform], docker: str = "docker") -> None:
    """Raise RunUnavailable unless the Engine answers and can run every platform (natively or
    through a registered, enabled QEMU binfmt_misc entry)."""
    if shutil.which(docker) is None:
        raise RunUnavailable(f"--run needs the Docker CLI ({docker!r} is not on PATH)")
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.Architecture}}\t{{.OperatingSystem}}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RunUnavailable(
            f"--run: 'docker info' did not answer within {DOCKER_SECONDS:g} s"
        ) from None
    if info.returncode != 0:
        detail = escape_line(info.stderr.strip()[:LOG_LINE_CHARS])
        raise RunUnavailable(f"--run needs a running Docker Engine ('docker info': {detail})")
    architecture, _, system = info.stdout.strip().partition("\t")
    if "Docker Desktop" in system:
        raise RunUnavailable(
            "--run probes each container on Docker's bridge network, which Docker Desktop does "
            "not route to this host; run it where the Engine runs on Linux (CI, a Linux "
            "machine), or set verify.run: false"
        )
    host = DOCKER_ARCHITECTURES.get(architecture, architecture)
    for platform in platforms:
        if platform.os != "linux":
            raise RunUnavailable(f"--run: {platform}: only linux platforms can be started")
        if platform.architecture == host:
            continue
        emulator = QEMU_NAMES.get(platform.architecture)
        if emulator is None:
            raise RunUnavailable(
                f"--run: {platform}: no emulation known for architecture "
                f"{platform.architecture!r} on this {host} host"
            )
        entry = BINFMT_DIR / f"qemu-{emulator}"
        try:
            enabled = entry.read_text().splitlines()[:1] == ["enabled"]
        except OSError:
            enabled = False
        if not enabled:
            raise RunUnavailable(
                f"--run: {platform}: no emulation on this {host} host ({entry} is missing or "
                "disabled; register QEMU, e.g. qemu-user-static + binfmt-support, or "
                "docker/setup-qemu-action)"
            )


class RunSession:
    """One ``--run``: its id (the container label), the Docker CLI processes in flight, and
    the cleanup that removes every container it started."""

    def __init__(self, docker: str = "docker") -> None:
        self.docker = docker
        self.run_id = uuid.uuid4().hex[:16]
        self.cancelled = threading.Event()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._count = 0

    def container_name(self, platform: Platform) -> str:
        with self._lock:
            self._count += 1
            return f"verify-run-{self.run_id}-{platform.architecture}-{self._count}"

    def docker_call(
        self,
        args: Sequence[str],
        timeout: float,
        environ: Mapping[str, str] | None = None,
        limit: int = LOG_BYTES,
        cleanup: bool = False,
    ) -> tuple[int, bytes]:
        """Run the Docker CLI; returns its exit code and at most `limit` bytes of its merged
        output. A timeout kills it (exit code -1); cancellation kills it unless `cleanup`."""
        if self.cancelled.is_set() and not cleanup:
            raise Cancelled()
        process = subprocess.Popen(
            [self.docker, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if environ is None else dict(environ),
        )
        with self._lock:
            self._processes.add(process)
        output = bytearray()
        reader = threading.Thread(target=_read_bounded, args=(process, output, limit))
        reader.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return -1, bytes(output)
        finally:
            reader.join()
            with self._lock:
                self._processes.discard(process)
        if self.cancelled.is_set() and not cleanup:
            raise Cancelled()
        return process.returncode, bytes(output)

    def remove(self, name: str) -> None:
        self.docker_call(["rm", "--force", "--volumes", "--", name], DOCKER_SECONDS, cleanup=True)

    def close(self) -> None:
        """Stop every Docker CLI call in flight and remove every container of this run."""
        self.cancelled.set()
        with self._lock:
            running = list(self._processes)
        for process in running:
            process.terminate()
        self._sweep()
        if running:
            # A `docker run` stopped mid-way may still be creating its container in the
            # Engine: sweep again a moment later.
            time.sleep(1.0)
            self._sweep()

    def _sweep(self) -> None:
        code, output = self.docker_call(
            ["ps", "--all", "--quiet", "--filter", f"label={RUN_LABEL}={self.run_id}"],
            DOCKER_SECONDS,
            cleanup=True,
        )
        ids = output.decode().split() if code == 0 else []
        if ids:
            self.docker_call(
                ["rm", "--force", "--volumes", "--", *ids], DOCKER_SECONDS, cleanup=True
            )


def _read_bounded(process: subprocess.Popen[bytes], output: bytearray, limit: int) -> None:
    """Keep the last `limit` bytes of a process's output (drain the rest so it cannot block)."""
    assert process.stdout is not None
    while chunk := process.stdout.read(8192):
        output += chunk
        if len(output) > limit:
            del output[: len(output) - limit]


@contextmanager
def _pull_config(registry: str, credentials: Credentials | None) -> Iterator[list[str]]:
    """``--config DIR`` arguments for a pull with these credentials (a private directory holding
    only this registry's login, removed afterwards), or none: Docker's own config then."""
    if credentials is None:
        yield []
        return
    directory = tempfile.mkdtemp(prefix="verify-run-docker-")
    try:
        auth = base64.b64encode(f"{credentials.username}:{credentials.password}".encode())
        path = Path(directory) / "config.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as config:
            json.dump({"auths": {registry: {"auth": auth.decode()}}}, config)
        yield ["--config", directory]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def probe_once(probe: Probe, address: str, timeout: float) -> str | None:
    """One probe attempt against the container at `address`; None on success, else why not."""
    try:
        if probe.kind == "tcp":
            with socket.create_connection((address, probe.number), timeout=timeout):
                return None
        if probe.kind == "http":
            return _http_once(address, probe, timeout)
        if probe.kind == "grpc":
            return grpc_health_once(f"{address}:{probe.number}", timeout)
    except OSError as error:
        return f"{address}:{probe.number}: {error.strerror or error}"
    raise AssertionError(f"probe kind {probe.kind!r} has no attempt")


def _http_once(address: str, probe: Probe, timeout: float) -> str | None:
    connection = http.client.HTTPConnection(address, probe.number, timeout=timeout)
    try:
        connection.request("GET", probe.path, headers={"User-Agent": "boutique-verify-run"})
        status = connection.getresponse().status
    except http.client.HTTPException as error:
        return f"http://{address}:{probe.number}{probe.path}: {type(error).__name__}"
    finally:
        connection.close()
    if 200 <= status < 400:
        return None
    return f"http://{address}:{probe.number}{probe.path} answered {status}"


def grpc_health_once(target: str, timeout: float) -> str | None:
    """``grpc.health.v1.Health/Check`` (service ""): None when it answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(
        target, options=[("grpc.max_receive_message_length", 64 * 1024)]
    ) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            return f"grpc {target}: {getattr(code, 'name', 'error')}"
    if response.status == health_pb2.HealthCheckResponse.SERVING:
        return None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return f"grpc {target}: health status {status}"


@dataclass(frozen=True)
class _State:
    running: bool
    exit_code: int | None
    address: str


class PlatformRun:
    """Pull, start, probe and remove one platform's image."""

    def __init__(
        self,
        session: RunSession,
        options: RunOptions,
        credentials_for: Callable[[str], Credentials | None],
    ) -> None:
        self._session = session
        self._options = options
        self._credentials_for = credentials_for

    def run(self, ref: Reference, platform: Platform, digest: str) -> RunResult:
        """Run `<repository>@<digest>` (a platform's manifest) for `platform`."""
        image = f"{ref.registry}/{ref.repository}@{digest}"
        credentials = self._credentials_for(ref.registry)
        secrets = secret_values(self._options.env, credentials)
        probe = str(self._options.probe)
        present = (
            self._session.docker_call(["image", "inspect", "--", image], DOCKER_SECONDS)[0] == 0
        )
        if not present:
            failure = self._pull(ref.registry, image, platform, credentials, secrets)
            if failure is not None:
                return RunResult(ok=False, probe=probe, seconds=0.0, reason=failure)
        try:
            return self._start_and_probe(image, platform, secrets)
        finally:
            if not present:
                self._session.docker_call(
                    ["image", "rm", "--", image], DOCKER_SECONDS, cleanup=True
                )

    def _pull(
        self,
        registry: str,
        image: str,
        platform: Platform,
        credentials: Credentials | None,
        secrets: Sequence[str],
    ) -> str | None:
        with _pull_config(registry, credentials) as config:
            code, output = self._session.docker_call(
                [*config, "pull", "--quiet", "--platform", str(platform), "--", image],
                self._options.timeout,
            )
        if code == 0:
            return None
        if code == -1:
            return f"docker pull {image} did not finish within {self._options.timeout:g} s"
        detail = " | ".join(log_tail(output, secrets)[-3:])
        return f"docker pull {image} failed: {detail}"

    def _start_and_probe(self, image: str, platform: Platform, secrets: Sequence[str]) -> RunResult:
        options, probe = self._options, str(self._options.probe)
        name = self._session.container_name(platform)
        # Values reach the container through the Docker CLI's environment (`-e NAME`), never
        # its argument list, which other users of the host can read.
        environ = {**os.environ, **dict(options.env)}
        arguments = [
            *("run", "--detach", "--name", name, "--label", f"{RUN_LABEL}={self._session.run_id}"),
            *("--platform", str(platform), "--pull", "never", "--network", "bridge"),
            *("--cap-drop", "ALL", "--security-opt", "no-new-privileges"),
            *(argument for env_name, _ in options.env for argument in ("--env", env_name)),
            # After `--`, nothing a registry address or repository holds reads as an option.
            "--",
            image,
        ]
        started = time.monotonic()
        try:
            code, output = self._session.docker_call(arguments, DOCKER_SECONDS, environ=environ)
            if code != 0:
                detail = " | ".join(log_tail(output, secrets)[-3:])
                return RunResult(False, probe, time.monotonic() - started, reason=detail)
            result = self._probe(name, started)
            if not result.ok:
                result.log_tail = self._log_tail(name, secrets)
            return result
        finally:
            self._session.remove(name)

    def _probe(self, name: str, started: float) -> RunResult:
        probe, timeout = self._options.probe, self._options.timeout
        deadline = started + timeout
        last = "the container has no bridge address"
        while True:
            state = self._state(name)
            elapsed = time.monotonic() - started
            if state is None:
                reason = "docker container inspect gave no readable state (was it removed?)"
                return RunResult(False, str(probe), elapsed, reason=reason)
            if not state.running:
                reason = f"the container exited with status {state.exit_code}"
                return RunResult(False, str(probe), elapsed, state.exit_code, reason)
            if probe.kind == "up":
                if elapsed >= probe.number:
                    return RunResult(True, str(probe), elapsed)
            elif state.address:
                remaining = max(0.1, min(ATTEMPT_SECONDS, deadline - time.monotonic()))
                failure = probe_once(probe, state.address, remaining)
                if failure is None:
                    return RunResult(True, str(probe), time.monotonic() - started)
                last = failure
            if time.monotonic() >= deadline:
                reason = f"no success within {timeout:g} s (last attempt: {last})"
                if probe.kind == "up":
                    reason = f"the run timeout ({timeout:g} s) ended before {probe.number} s"
                return RunResult(False, str(probe), time.monotonic() - started, reason=reason)
            if self._session.cancelled.wait(POLL_SECONDS):
                raise Cancelled()

    def _state(self, name: str) -> _State | None:
        code, output = self._session.docker_call(
            ["container", "inspect", "--format", _INSPECT_FORMAT, "--", name],
            DOCKER_SECONDS,
        )
        if code != 0:
            return None
        state_text, _, network_text = output.decode(errors="replace").strip().partition("\t")
        try:
            state, network = json.loads(state_text), json.loads(network_text)
        except ValueError:
            return None
        bridge = (network.get("Networks") or {}).get("bridge") or {}
        return _State(
            running=bool(state.get("Running")),
            exit_code=None if state.get("Running") else state.get("ExitCode"),
            address=bridge.get("IPAddress") or network.get("IPAddress") or "",
        )

    def _log_tail(self, name: str, secrets: Sequence[str]) -> list[str]:
        code, output = self._session.docker_call(
            ["logs", "--tail", str(LOG_TAIL_LINES), "--", name], DOCKER_SECONDS, cleanup=True
        )
        return log_tail(output, secrets) if code == 0 else []


RunKey = tuple[int, str]
"""``(index of the reference on the command line, platform)``."""


def run_verified(
    results: Sequence[ImageResult],
    refs: Sequence[Reference],
    options: RunOptions,
    credentials: Mapping[str, Credentials | None],
    session: RunSession,
) -> dict[RunKey, RunResult]:
    """Run every platform of every reference that passed the static checks, `options.jobs` at
    a time. `credentials` holds the pull login per registry (None: Docker's own config)."""
    runner = PlatformRun(session, options, credentials.get)
    pool = ThreadPoolExecutor(max(1, options.jobs), thread_name_prefix="run")
    try:
        futures = {
            (index, name): pool.submit(runner.run, ref, parse_platform(name), platform.digest)
            for index, (result, ref) in enumerate(zip(results, refs, strict=True))
            if result.exit_code == EXIT_VERIFIED
            for name, platform in result.platforms.items()
            if parse_platform(name) not in options.skip
        }
        return {key: future.result() for key, future in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        session.close()


class RunUsageError(ValueError):
    """A ``--run`` argument that is not valid (exit code 2)."""


def options_from(arguments: CheckRequest, platforms: Sequence[Platform]) -> RunOptions | None:
    """The run options of parsed arguments, None without ``--run``; RunUsageError when any
    ``--run`` argument is wrong or given without ``--run``."""
    if not arguments.run:
        given = [
            flag
            for flag, value in (
                ("--probe", arguments.probe),
                ("--env", arguments.env),
                ("--skip-run", arguments.skip_run),
                ("--run-timeout", arguments.run_timeout),
                ("--jobs", arguments.jobs),
            )
            if value
        ]
        if given:
            raise RunUsageError(f"{', '.join(given)} only with --run")
        return None
    if arguments.probe is None:
        raise RunUsageError(f"--run needs --probe ({PROBE_FORMS})")
    try:
        probe = parse_probe(arguments.probe)
        env = tuple(parse_env(text) for text in arguments.env)
    except ProbeError as error:
        raise RunUsageError(f"--probe/--env: {error}") from None
    timeout = DEFAULT_TIMEOUT if arguments.run_timeout is None else arguments.run_timeout
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise RunUsageError(f"--run-timeout {timeout:g}: allowed 1 to {MAX_TIMEOUT} seconds")
    if probe.kind == "up" and probe.number >= timeout:
        raise RunUsageError(
            f"--probe {probe} needs a --run-timeout above {probe.number} s (it is {timeout:g})"
        )
    jobs = (os.cpu_count() or 1) if arguments.jobs is None else arguments.jobs
    if not 1 <= jobs <= MAX_JOBS:
        raise RunUsageError(f"--jobs {jobs}: allowed 1 to {MAX_JOBS}")
    skipped = []
    for text in arguments.skip_run:
        try:
            platform = parse_platform(text)
        except PlatformError as error:
            raise RunUsageError(f"--skip-run: {error}") from None
        if platform not in platforms:
            listed = ", ".join(str(each) for each in platforms)
            raise RunUsageError(f"--skip-run {text}: not a verified platform ({listed})")
        skipped.append(platform)
    if all(platform in skipped for platform in platforms):
        raise RunUsageError("--skip-run names every platform; leave out --run instead")
    return RunOptions(probe=probe, env=env, timeout=timeout, jobs=jobs, skip=tuple(skipped))
