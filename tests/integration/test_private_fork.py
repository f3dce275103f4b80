"""A private fork fetched as docs/hardening-config.md says: the token only in the environment.

A loopback git server (`git http-backend`, the smart HTTP protocol) answers 401 without the
right Basic credentials. `python -m host checkout`, run with the program's own command line,
fails at once without a credential helper (no prompt) and fetches with the helper the page
documents, configured through `GIT_CONFIG_*` variables that read the token from `GH_TOKEN`.
"""

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from host.contract import CheckoutResult
from plan.host_commands import checkout_request
from plan.settings import GitSource
from plan.tools import tool_command
from tests.integration.loopbackserver import address_of, serve, shut_down
from tests.program_mocks import ROOT
from tests.test_host_checkout import DOCKERFILE, make_upstream, run_host

TOKEN = "ghp_fork-token-0123456789"
USER = "x-access-token"
HELPER = '!f() { test "$1" = get && echo username=x-access-token && echo "password=$GH_TOKEN"; }; f'
"""The helper of docs/hardening-config.md, character for character."""


def git_http_backend(project_root: Path) -> type[BaseHTTPRequestHandler]:
    """A handler that serves the bare repositories under `project_root` to USER:TOKEN only."""
    expected = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="fork"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            environment = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(project_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "REMOTE_USER": USER,
            }
            answer = subprocess.run(
                ["git", "http-backend"], input=body, env=environment, capture_output=True
            ).stdout
            head, _, content = answer.partition(b"\r\n\r\n")
            headers = [line.split(":", 1) for line in head.decode().split("\r\n") if line]
            status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "status":
                    self.send_header(name, value.strip())
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    return Handler


@pytest.fixture
def fork_url(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The private fork's URL and the commit to fetch."""
    upstream = make_upstream(tmp_path)
    server = serve(git_http_backend(tmp_path))
    try:
        yield f"http://{address_of(server)}/upstream.git", upstream.first
    finally:
        shut_down(server)


def run_pulumi_command(
    line: str, project: Path, home: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run `line` as pulumi-command does (`/bin/sh -c` in the project directory), in the
    environment of the process that runs Pulumi: `extra`, no proxy for loopback, no user or
    system git config."""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "127.0.0.1",
        "GIT_CONFIG_NOSYSTEM": "1",
        **extra,
    }
    return run_host(line, project, environment)


def test_a_private_fork_is_fetched_with_a_credential_helper_from_the_environment(
    fork_url: tuple[str, str], tmp_path: Path
) -> None:
    url, commit = fork_url
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    line = tool_command(checkout_request(GitSource(url, commit), (DOCKERFILE,)), sys.executable)
    assert TOKEN not in line

    refused = run_pulumi_command(line, project, home)
    assert refused.returncode == 2
    assert f"fetching commit {commit} from {url} failed" in refused.stderr
    assert "terminal prompts disabled" in refused.stderr
    assert list((project / ".cache/upstream").iterdir()) == []

    fetched = run_pulumi_command(
        line,
        project,
        home,
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0=f"credential.{url.removesuffix('/upstream.git')}.helper",
        GIT_CONFIG_VALUE_0=HELPER,
        GH_TOKEN=TOKEN,
    )
    assert fetched.returncode == 0, fetched.stderr
    checkout = CheckoutResult.from_json(fetched.stdout)
    assert (checkout.commit, checkout.action, checkout.url) == (commit, "cloned", url)
    root = project / checkout.path
    assert (root / DOCKERFILE).read_text() == "FROM scratch\n"
    stored = [p for p in root.joinpath(".git").rglob("*") if p.is_file()]
    assert not [p for p in stored if TOKEN.encode() in p.read_bytes()]
    assert TOKEN not in fetched.stdout + fetched.stderr
