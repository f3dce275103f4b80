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
import ipaddress
import os
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

from host.process import HostError, run, run_checked
from host.results import RegistryRemoval, RegistryResult

REGISTRY_BINARY = "docker-registry"
"""Debian's build of CNCF distribution (package `docker-registry`)."""
REGISTRY_IMAGE = "registry:2"
"""The fallback when the binary is absent; serves on :5000, stores in /var/lib/registry."""
CONTAINER_NAME = "boutique-local-registry"

CONFIG_FILE = "config.yml"
PID_FILE = "registry.pid"
CONTAINER_FILE = "registry.container"
LOG_FILE = "registry.log"
STORAGE_DIR = "data"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0

_API_VERSION_HEADER = "Docker-Distribution-API-Version"


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
        host, separator, port = text.rpartition(":")
        if not separator or not port.isdigit() or not 0 < int(port) < 65536:
            raise HostError(f"registry address {text!r} is not valid; allowed: {allowed}")
        if host != "localhost":
            try:
                loopback = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
            except ValueError:
                loopback = None
            bracketed = host.startswith("[") == (loopback is not None and loopback.version == 6)
            if loopback is None or not loopback.is_loopback or not bracketed:
                raise HostError(
                    f"registry address {text!r} is not on loopback; allowed: {allowed} "
                    "(the registry is anonymous plain HTTP, so it never listens elsewhere)"
                )
        return LoopbackAddress(host, int(port))


def ensure(address: LoopbackAddress, data_dir: Path, image: str = REGISTRY_IMAGE) -> RegistryResult:
    """A registry serving at `address`: the one already there, or one started now."""
    data_dir = data_dir.resolve()
    if _answers(address):
        return RegistryResult(
            address=str(address),
            pid=_recorded_pid(data_dir),
            container=_recorded_container(data_dir),
            started=False,
        )
    if shutil.which(REGISTRY_BINARY) is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        pid = _start_process(address, data_dir)
        return RegistryResult(address=str(address), pid=pid, container=None, started=True)
    if shutil.which("docker") is None:
        raise HostError(
            f"cannot start a registry at {address}: neither {REGISTRY_BINARY} (Debian package "
            f"docker-registry) nor docker (to run {image}) is on PATH"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    container = _start_container(address, data_dir, image)
    return RegistryResult(address=str(address), pid=None, container=container, started=True)


def remove(address: LoopbackAddress, data_dir: Path) -> RegistryRemoval:
    """Stop the registry `ensure` started for `data_dir`; the stored images stay on disk."""
    data_dir = data_dir.resolve()
    pid, container = _recorded_pid(data_dir), _recorded_container(data_dir)
    if pid is not None:
        _stop_process(pid)
    if container is not None:
        run_checked(["docker", "rm", "--force", container], f"removing container {container}")
    (data_dir / PID_FILE).unlink(missing_ok=True)
    (data_dir / CONTAINER_FILE).unlink(missing_ok=True)
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
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
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


def _config(address: LoopbackAddress, data_dir: Path) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data_dir / STORAGE_DIR}\n"
        "  delete:\n    enabled: true\n"
        f'http:\n  addr: "{address}"\n'
    )


def _start_process(address: LoopbackAddress, data_dir: Path) -> int:
    config = data_dir / CONFIG_FILE
    partial = config.with_suffix(".partial")
    partial.write_text(_config(address, data_dir))
    partial.replace(config)
    with (data_dir / LOG_FILE).open("ab") as log:
        # A new session and no inherited pipes: the registry outlives this script, and the
        # Pulumi command that runs it does not wait for the registry's output to end.
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (data_dir / PID_FILE).write_text(f"{process.pid}\n")
    try:
        _wait_until_answering(address, data_dir, lambda: process.poll() is None)
    except HostError:
        _stop_process(process.pid)
        (data_dir / PID_FILE).unlink(missing_ok=True)
        raise
    return process.pid


def _start_container(address: LoopbackAddress, data_dir: Path, image: str) -> str:
    print(
        f"{REGISTRY_BINARY} is not on PATH: running {image} as container {CONTAINER_NAME} instead",
        file=sys.stderr,
    )
    # A stopped container of an earlier run would block the name; its data is in data_dir.
    existing = run(["docker", "inspect", "--format", "{{.State.Running}}", CONTAINER_NAME])
    if existing.returncode == 0:
        if existing.stdout.strip() == "true":
            raise HostError(
                f"container {CONTAINER_NAME} is running but does not serve {address}; "
                f"remove it (`docker rm -f {CONTAINER_NAME}`) or use its address"
            )
        run_checked(["docker", "rm", CONTAINER_NAME], f"removing stopped {CONTAINER_NAME}")
    run_checked(
        [
            *("docker", "run", "--detach", "--name", CONTAINER_NAME),
            *("--publish", f"{address}:5000"),
            *("--volume", f"{data_dir / STORAGE_DIR}:/var/lib/registry"),
            image,
        ],
        f"starting {image} as {CONTAINER_NAME} on {address}",
    )
    (data_dir / CONTAINER_FILE).write_text(f"{CONTAINER_NAME}\n")

    def running() -> bool:
        state = run(["docker", "inspect", "--format", "{{.State.Running}}", CONTAINER_NAME])
        return state.stdout.strip() == "true"

    try:
        _wait_until_answering(address, data_dir, running)
    except HostError:
        run(["docker", "rm", "--force", CONTAINER_NAME])
        (data_dir / CONTAINER_FILE).unlink(missing_ok=True)
        raise
    return CONTAINER_NAME


def _wait_until_answering(
    address: LoopbackAddress, data_dir: Path, alive: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise HostError(f"the registry for {address} exited at start; {_log_tail(data_dir)}")
        try:
            if _answers(address):
                return
        except HostError:
            # The port opens before the HTTP server is ready; keep probing until the deadline.
            pass
        time.sleep(0.1)
    raise HostError(
        f"the registry did not answer on {address.url}/v2/ within {START_TIMEOUT_S:.0f} s; "
        f"{_log_tail(data_dir)}"
    )


def _log_tail(data_dir: Path) -> str:
    log = data_dir / LOG_FILE
    if not log.is_file():
        return "see `docker logs " + CONTAINER_NAME + "`"
    lines = log.read_text(errors="replace").strip().splitlines()
    return f"last lines of {log}: " + " | ".join(lines[-3:])


def _recorded_pid(data_dir: Path) -> int | None:
    """The pid in the pid file if that process is still the registry serving this directory's
    config (a pid file outlives reboots, and pids are reused)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    config = str(data_dir / CONFIG_FILE)
    command_line = _command_line(pid)
    return pid if command_line and command_line[-1] == config else None


def _command_line(pid: int) -> list[str]:
    """Arguments of a live (not zombie) process; empty when there is none."""
    if Path("/proc/self").exists():
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return []
        # A zombie has an empty cmdline, so it counts as gone.
        return [argument.decode(errors="replace") for argument in arguments if argument]
    # No /proc (macOS): ps prints the arguments joined by spaces.
    result = run(["ps", "-o", "args=", "-p", str(pid)])
    return result.stdout.split() if result.returncode == 0 else []


def _recorded_container(data_dir: Path) -> str | None:
    try:
        name = (data_dir / CONTAINER_FILE).read_text().strip()
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
            if not _command_line(pid):
                return
            time.sleep(0.05)
    raise HostError(f"the registry process {pid} did not exit after SIGKILL")


def _reap(pid: int) -> None:
    """Collect the exit status when this process started the registry (tests do)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
