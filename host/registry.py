"""Ensure or remove the image registry the local stack pushes to, on a loopback address.

`ensure` reuses whatever registry already answers `GET /v2/` at the address (a second run, or
a registry the user started), else starts Debian's `docker-registry serve` with a generated
config (filesystem storage in the data directory) in its own session, so it outlives the
Pulumi command that started it, and waits until it answers. Without that binary it falls back to
the `registry:2` image under Docker. What it started is recorded in the data directory (a pid
file or a container file), so `remove` stops exactly that and nothing else.

Only loopback addresses are accepted: the registry is anonymous and plain HTTP, and Docker
treats loopback registries as insecure (plain HTTP) without any daemon configuration.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.contract import REGISTRY_BINARY, REGISTRY_IMAGE, RegistryRemoval, RegistryResult
from host.process import HostError, run, run_checked
from verify.reference import is_loopback, split_host

CONTAINER_NAME = "boutique-local-registry"

STORAGE_DIR = "data"
"""Image storage inside the data directory, shared by every address and by both ways of running."""

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0
PROC = Path("/proc")
"""Where Linux shows each process's arguments and state; without it (macOS) `ps` is asked."""

_API_VERSION_HEADER = "Docker-Distribution-API-Version"

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Probes loopback directly: an `http_proxy` in the environment (CI runners behind a proxy)
would otherwise receive them, and its answer is never the registry's."""


@dataclass(frozen=True)
class LoopbackAddress:
    """A `host:port` the registry listens on; the host is a loopback address."""

    host: str
    """`127.x.y.z`, `localhost` or `[::1]` (brackets kept, as in URLs and image refs)."""
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self}"

    @staticmethod
    def parse(text: str) -> "LoopbackAddress":
        """`text` as a loopback `host:port`, or one HostError naming it and what is allowed."""
        allowed = "a loopback host:port such as 127.0.0.1:5000, localhost:5000 or [::1]:5000"
        hostname, port = split_host(text)
        if port is None or not port.isdigit() or not 0 < int(port) < 65536:
            raise HostError(f"registry address {text!r} is not valid; allowed: {allowed}")
        if not is_loopback(hostname):
            raise HostError(
                f"registry address {text!r} is not on loopback; allowed: {allowed} "
                "(the registry is anonymous plain HTTP, so it never listens elsewhere)"
            )
        return LoopbackAddress(text.rpartition(":")[0], int(port))


@dataclass(frozen=True)
class RegistryFiles:
    """What `ensure` writes for one address in a data directory. Named per address, so when a
    stack moves its registry to another address, removing the old one stops the old process
    and not the one just started for the new address."""

    data_dir: Path
    address: LoopbackAddress

    def _file(self, suffix: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9.]+", "-", str(self.address)).strip("-")
        return self.data_dir / f"registry-{stem}.{suffix}"

    @property
    def config(self) -> Path:
        return self._file("yml")

    @property
    def pid(self) -> Path:
        return self._file("pid")

    @property
    def container(self) -> Path:
        return self._file("container")

    @property
    def log(self) -> Path:
        return self._file("log")

    @property
    def storage(self) -> Path:
        return self.data_dir / STORAGE_DIR


def ensure(address: LoopbackAddress, data_dir: Path, image: str = REGISTRY_IMAGE) -> RegistryResult:
    """A registry serving at `address`: the one already there, or one started now."""
    files = RegistryFiles(data_dir.resolve(), address)
    if _answers(address):
        return RegistryResult(
            address=str(address),
            pid=_recorded_pid(files),
            container=_recorded_container(files),
            started=False,
        )
    if shutil.which(REGISTRY_BINARY) is not None:
        files.data_dir.mkdir(parents=True, exist_ok=True)
        pid = _start_process(files)
        return RegistryResult(address=str(address), pid=pid, container=None, started=True)
    if shutil.which("docker") is None:
        raise HostError(
            f"cannot start a registry at {address}: neither {REGISTRY_BINARY} (Debian package "
            f"docker-registry) nor docker (to run {image}) is on PATH"
        )
    files.data_dir.mkdir(parents=True, exist_ok=True)
    container = _start_container(files, image)
    return RegistryResult(address=str(address), pid=None, container=container, started=True)


def remove(address: LoopbackAddress, data_dir: Path) -> RegistryRemoval:
    """Stop the registry `ensure` started at `address` for `data_dir`; stored images stay."""
    files = RegistryFiles(data_dir.resolve(), address)
    pid, container = _recorded_pid(files), _recorded_container(files)
    if pid is not None:
        _stop_process(pid)
    if container is not None and _container_state(container) is not None:
        run_checked(["docker", "rm", "--force", container], f"removing container {container}")
    else:
        container = None
    files.pid.unlink(missing_ok=True)
    files.container.unlink(missing_ok=True)
    return RegistryRemoval(
        address=str(address),
        pid=pid,
        container=container,
        stopped=pid is not None or container is not None,
    )


def _answers(address: LoopbackAddress) -> bool:
    """Whether a registry answers at `address`; False when nothing listens there. Something
    else listening there is an error: starting a registry on that port would fail."""
    request = urllib.request.Request(f"{address.url}/v2/")
    try:
        with _DIRECT.open(request, timeout=PROBE_TIMEOUT_S) as response:
            headers = response.headers
    except urllib.error.HTTPError as error:
        # 401: a registry with authentication is still a registry (and says so in this header).
        headers = error.headers
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ConnectionRefusedError):
            return False
        raise HostError(
            f"{address} is in use by something that is not a registry ({reason}); "
            "choose another registry.address"
        ) from error
    if not headers.get(_API_VERSION_HEADER, "").startswith("registry/2"):
        raise HostError(
            f"{address} is in use by something that is not a registry (GET /v2/ has no "
            f"{_API_VERSION_HEADER}: registry/2.0 header); choose another registry.address"
        )
    return True


def _config(files: RegistryFiles) -> str:
    # JSON strings are YAML double-quoted scalars: any path or address is quoted correctly.
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(files.storage))}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {json.dumps(str(files.address))}\n"
    )


def _start_process(files: RegistryFiles) -> int:
    partial = files.config.with_suffix(".partial")
    partial.write_text(_config(files))
    partial.replace(files.config)
    with files.log.open("ab") as log:
        # A new session and no inherited pipes: the registry outlives this script, and the
        # Pulumi command that runs it does not wait for the registry's output to end.
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(files.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    files.pid.write_text(f"{process.pid}\n")
    try:
        _wait_until_answering(files, lambda: process.poll() is None)
    except HostError:
        _stop_process(process.pid)
        files.pid.unlink(missing_ok=True)
        raise
    return process.pid


def _container_state(name: str) -> str | None:
    """`true`/`false` (running or not) for an existing container, None when there is none."""
    inspected = run(["docker", "inspect", "--format", "{{.State.Running}}", name])
    return inspected.stdout.strip() if inspected.returncode == 0 else None


def _start_container(files: RegistryFiles, image: str) -> str:
    address = files.address
    print(
        f"{REGISTRY_BINARY} is not on PATH: running {image} as container {CONTAINER_NAME} instead",
        file=sys.stderr,
    )
    state = _container_state(CONTAINER_NAME)
    if state == "true":
        raise HostError(
            f"container {CONTAINER_NAME} is running but does not serve {address}; "
            f"remove it (`docker rm -f {CONTAINER_NAME}`) or use its address"
        )
    if state is not None:
        # A stopped container of an earlier run blocks the name; its data is in the data dir.
        run_checked(["docker", "rm", CONTAINER_NAME], f"removing stopped {CONTAINER_NAME}")
    run_checked(
        [
            *("docker", "run", "--detach", "--name", CONTAINER_NAME),
            *("--publish", f"{address}:5000"),
            *("--volume", f"{files.storage}:/var/lib/registry"),
            image,
        ],
        f"starting {image} as {CONTAINER_NAME} on {address}",
    )
    files.container.write_text(f"{CONTAINER_NAME}\n")
    try:
        _wait_until_answering(files, lambda: _container_state(CONTAINER_NAME) == "true")
    except HostError:
        run(["docker", "rm", "--force", CONTAINER_NAME])
        files.container.unlink(missing_ok=True)
        raise
    return CONTAINER_NAME


def _wait_until_answering(files: RegistryFiles, alive: Callable[[], bool]) -> None:
    address = files.address
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise HostError(f"the registry for {address} exited at start; {_log_tail(files)}")
        try:
            if _answers(address):
                return
        except HostError:
            # The port opens before the HTTP server is ready; keep probing until the deadline.
            pass
        time.sleep(0.1)
    raise HostError(
        f"the registry did not answer on {address.url}/v2/ within {START_TIMEOUT_S:.0f} s; "
        f"{_log_tail(files)}"
    )


def _log_tail(files: RegistryFiles) -> str:
    if not files.log.is_file():
        return f"see `docker logs {CONTAINER_NAME}`"
    lines = files.log.read_text(errors="replace").strip().splitlines()
    return f"last lines of {files.log}: " + " | ".join(lines[-3:])


def _recorded_pid(files: RegistryFiles) -> int | None:
    """The pid in the pid file if that process is still the registry serving this address's
    config (a pid file outlives reboots, and pids are reused)."""
    try:
        pid = int(files.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    command_line = _command_line(pid)
    return pid if command_line and command_line[-1] == str(files.config) else None


def _command_line(pid: int) -> list[str]:
    """Arguments of a live (not zombie) process; empty when there is none."""
    if (PROC / "self").exists():
        try:
            arguments = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return []
        # A zombie has an empty cmdline, so it counts as gone.
        return [argument.decode(errors="replace") for argument in arguments if argument]
    # No /proc (macOS): ps prints the arguments joined by spaces.
    # ps prints nothing on stdout for a process that is gone.
    return run(["ps", "-o", "args=", "-p", str(pid)]).stdout.split()


def _running(pid: int) -> bool:
    """Whether `pid` still runs: not gone and not a zombie. An exiting process loses its
    arguments before it closes its sockets, so an empty command line does not yet mean its
    port is free."""
    if (PROC / "self").exists():
        try:
            stat = (PROC / str(pid) / "stat").read_text(errors="replace")
        except OSError:
            return False
        # `pid (comm) state ...`; comm may hold spaces and parentheses, the state follows the last.
        return not stat.rpartition(") ")[2].startswith("Z")
    # ps prints nothing on stdout for a process that is gone.
    state = run(["ps", "-o", "stat=", "-p", str(pid)]).stdout.strip()
    return bool(state) and not state.startswith("Z")


def _recorded_container(files: RegistryFiles) -> str | None:
    try:
        name = files.container.read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def _stop_process(pid: int) -> None:
    """SIGTERM, then SIGKILL if the registry has not exited within STOP_TIMEOUT_S."""
    for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not _running(pid):
                return
            time.sleep(0.05)
    raise HostError(f"the registry process {pid} did not exit after SIGKILL")


def _reap(pid: int) -> None:
    """Collect the exit status when this process started the registry (tests do)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
