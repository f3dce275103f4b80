"""A Pulumi release as the installer downloads it, served from 127.0.0.1.

`release_files` builds `pulumi-vX.Y.Z-OS-ARCH.tar.gz` (a `pulumi/` directory holding the stub
CLI of tests/fixtures/stub_pulumi.py and a second executable, like the real archive's language
hosts) and `pulumi-X.Y.Z-checksums.txt` in sha256sum format. `ReleaseServer` serves such files,
counts the requests per path, and can cut a response off after half its bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from host.pulumi_cli import Release, Version, release_platform
from tests.program_mocks import ROOT

STUB_SOURCE = ROOT / "tests" / "fixtures" / "stub_pulumi.py"


def this_release(version: str) -> Release:
    """The release the installer picks on this machine."""
    os_name, arch = release_platform(platform.system(), platform.machine())
    return Release(Version.parse(version, "test version"), os_name, arch)


def stub_executable(version: str) -> bytes:
    """The stub CLI, run by this interpreter, reporting `version`."""
    source = STUB_SOURCE.read_text(encoding="utf-8").replace("__VERSION__", version)
    return f"#!{sys.executable}\n{source}".encode()


def archive_bytes(members: dict[str, bytes]) -> bytes:
    """A .tar.gz of executable files (name -> content) and their directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        directory = tarfile.TarInfo("pulumi")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def release_files(version: str, archive_version: str | None = None) -> dict[str, bytes]:
    """`{file name: bytes}` of the release for this machine; `archive_version` is what its
    `pulumi version` reports (default: `version`)."""
    release = this_release(version)
    archive = archive_bytes(
        {
            "pulumi/pulumi": stub_executable(archive_version or version),
            "pulumi/pulumi-language-python": b"#!/bin/sh\nexit 0\n",
        }
    )
    # Other platforms' lines around this one, as in the real file.
    checksums = (
        f"{'0' * 64}  pulumi-v{version}-windows-x64.zip\n"
        f"{hashlib.sha256(archive).hexdigest()}  {release.archive}\n"
        f"{'1' * 64}  pulumi-v{version}-darwin-arm64.tar.gz\n"
    )
    return {release.archive: archive, release.checksums: checksums.encode()}


@dataclass
class ReleaseServer:
    """Serves `files` at /releases/sdk/NAME on a free loopback port."""

    files: dict[str, bytes]
    cut_off: set[str] = field(default_factory=set)
    """Names sent with their full Content-Length but only half their bytes."""
    unsized: set[str] = field(default_factory=set)
    """Names sent without a Content-Length: the body ends when the connection closes."""
    pieces: set[str] = field(default_factory=set)
    """Names sent 64 bytes at a time, 2 ms apart, so that a reader receives many chunks."""
    chunked: set[str] = field(default_factory=set)
    """Names sent with `Transfer-Encoding: chunked`, as one chunk (cut off: half of it)."""
    redirects: dict[str, str] = field(default_factory=dict)
    """Names answered with a 302 to the given URL."""
    tls: tuple[Path, Path] | None = None
    """(certificate, key): serve https instead of http."""
    requests: dict[str, int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.server.server_port}/releases/sdk"

    def start(self) -> ReleaseServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.removeprefix("/releases/sdk/")
                owner.requests[name] = owner.requests.get(name, 0) + 1
                if name in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[name])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = owner.files.get(name)
                if body is None or not self.path.startswith("/releases/sdk/"):
                    self.send_error(404)
                    return
                self.send_response(200)
                if name in owner.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif name not in owner.unsized:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                sent = body[: len(body) // 2] if name in owner.cut_off else body
                if name in owner.chunked:
                    self.wfile.write(f"{len(body):x}\r\n".encode())
                    if name not in owner.cut_off:
                        sent += b"\r\n0\r\n\r\n"
                step = 64 if name in owner.pieces else max(len(sent), 1)
                for start in range(0, len(sent), step):
                    self.wfile.write(sent[start : start + step])
                    self.wfile.flush()
                    if name in owner.pieces:
                        time.sleep(0.002)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        # Polls for shutdown every 20 ms (0.5 s by default, paid by every test that stops it).
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def downloads(self) -> int:
        return sum(self.requests.values())


def path_without_pulumi() -> str:
    """PATH with every directory that holds a `pulumi` executable left out."""
    return os.pathsep.join(
        directory
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if directory and not os.access(os.path.join(directory, "pulumi"), os.X_OK)
    )


def write_project_files(project: Path, version: str, minimum: str = "3.200") -> None:
    """`.pulumi-version` and a requirements.txt whose `pulumi>=` floor is `minimum`."""
    project.mkdir(parents=True, exist_ok=True)
    (project / ".pulumi-version").write_text(f"{version}\n")
    (project / "requirements.txt").write_text(f"pulumi>={minimum},<4\npulumi-gcp>=8.0,<11\n")


def loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (trust it with SSL_CERT_FILE)."""
    certificate, key = directory / "loopback.pem", directory / "loopback.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(certificate)),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key
