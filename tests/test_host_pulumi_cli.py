"""The Pulumi CLI installer (`python -m host.local_up pulumi`), run as a process against a
release served from 127.0.0.1: what it installs and runs, what it refuses, what it leaves."""

import contextlib
import errno
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from host import pulumi_cli
from host.process import HostError
from host.pulumi_cli import (
    Release,
    Version,
    download_base,
    install,
    minimum_version,
    parse_checksums,
    pinned_version,
    release_platform,
    reported_version,
)
from tests.program_mocks import ROOT
from tests.pulumi_release import (
    ReleaseServer,
    archive_bytes,
    loopback_certificate,
    path_without_pulumi,
    release_files,
    stub_executable,
    this_release,
    write_project_files,
)

PINNED = "3.272.0"


@pytest.fixture
def server() -> Iterator[ReleaseServer]:
    running = ReleaseServer(release_files(PINNED)).start()
    yield running
    running.stop()


def ensure_cli(
    project: Path, base_url: str, path: str | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **(extra_env or {}),
        "PATH": path if path is not None else path_without_pulumi(),
        "PULUMI_DOWNLOAD_URL": base_url,
        "no_proxy": "127.0.0.1",
        "NO_PROXY": "127.0.0.1",
        "STUB_PULUMI_LOG": str(project / "pulumi-calls.jsonl"),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [
            *(sys.executable, "-m", "host.local_up", "pulumi"),
            *("--version-file", str(project / ".pulumi-version")),
            *("--requirements", str(project / "requirements.txt")),
            *("--tools-dir", str(project / ".tools")),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def assert_nothing_installed(project: Path) -> None:
    tools = project / ".tools"
    assert not (tools / "pulumi").exists()
    leftovers = sorted(path.name for path in tools.iterdir()) if tools.exists() else []
    assert leftovers == [], f"temporary files left behind: {leftovers}"


def refused(project: Path, server: ReleaseServer) -> list[str]:
    """The installer's stderr lines against `server` (started and stopped here), having
    checked that it failed and left nothing behind."""
    server.start()
    try:
        write_project_files(project, PINNED)
        result = ensure_cli(project, server.base_url)
    finally:
        server.stop()
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert_nothing_installed(project)
    return result.stderr.splitlines()


def test_installs_the_pinned_release_and_it_runs(tmp_path: Path, server: ReleaseServer) -> None:
    write_project_files(tmp_path, PINNED)
    result = ensure_cli(tmp_path, server.base_url)
    assert result.returncode == 0, result.stderr
    executable = tmp_path / ".tools" / "pulumi" / "bin" / "pulumi"
    assert json.loads(result.stdout) == {
        "path": str(executable),
        "version": PINNED,
        "action": "installed",
    }
    release = this_release(PINNED)
    assert server.requests == {release.checksums: 1, release.archive: 1}
    # Every file of the archive's pulumi/ directory, and the version it was checked to report.
    assert sorted(path.name for path in executable.parent.iterdir()) == [
        "pulumi",
        "pulumi-language-python",
    ]
    assert (tmp_path / ".tools" / "pulumi" / "VERSION").read_text() == f"{PINNED}\n"
    assert sorted(path.name for path in (tmp_path / ".tools").iterdir()) == ["pulumi"]
    ran = subprocess.run(
        [str(executable), "version"],
        env={**os.environ, "STUB_PULUMI_LOG": str(tmp_path / "calls.jsonl")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout == f"v{PINNED}\n"


def test_installs_from_a_mirror_directory(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, body in release_files(PINNED).items():
        (mirror / name).write_bytes(body)
    write_project_files(tmp_path / "project", PINNED)
    result = ensure_cli(tmp_path / "project", mirror.as_uri())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["action"] == "installed"
    (mirror / this_release(PINNED).archive).write_bytes(b"not the archive")
    write_project_files(tmp_path / "other", PINNED)
    [line] = ensure_cli(tmp_path / "other", mirror.as_uri()).stderr.splitlines()
    assert "has SHA-256" in line and "nothing was installed" in line


def test_a_second_run_downloads_nothing(tmp_path: Path, server: ReleaseServer) -> None:
    write_project_files(tmp_path, PINNED)
    assert ensure_cli(tmp_path, server.base_url).returncode == 0
    downloads = server.downloads()
    again = ensure_cli(tmp_path, server.base_url)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["action"] == "reused"
    assert server.downloads() == downloads


def test_a_checksum_mismatch_installs_nothing(tmp_path: Path) -> None:
    files = release_files(PINNED)
    release = this_release(PINNED)
    published = hashlib.sha256(files[release.archive]).hexdigest()
    # The mirror serves another archive than the one the checksums file describes.
    files[release.archive] = archive_bytes({"pulumi/pulumi": stub_executable("6.6.6")})
    server = ReleaseServer(files)
    actual = hashlib.sha256(files[release.archive]).hexdigest()
    assert refused(tmp_path, server) == [
        f"error: {server.base_url}/{release.archive} has SHA-256 {actual}, but "
        f"{release.checksums} says {published}: "
        "the download is damaged or not Pulumi's; nothing was installed"
    ]


def test_a_truncated_download_installs_nothing(tmp_path: Path) -> None:
    release = this_release(PINNED)
    server = ReleaseServer(release_files(PINNED), cut_off={release.archive})
    [line] = refused(tmp_path, server)
    assert line.startswith(f"error: downloading {server.base_url}/{release.archive} was cut off")


def test_a_missing_release_installs_nothing(tmp_path: Path) -> None:
    server = ReleaseServer({})
    assert refused(tmp_path, server) == [
        f"error: downloading {server.base_url}/{this_release(PINNED).checksums} failed: "
        "HTTP 404 Not Found"
    ]


def test_an_archive_reporting_another_version_installs_nothing(tmp_path: Path) -> None:
    assert refused(tmp_path, ReleaseServer(release_files(PINNED, archive_version="3.1.0"))) == [
        f"error: the unpacked {this_release(PINNED).archive} reports version 3.1.0, "
        f"not {PINNED}; nothing was installed"
    ]


def needs_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH (it makes the loopback certificate)")


def test_installs_over_https_with_the_certificate_verified(tmp_path: Path) -> None:
    needs_openssl()
    certificate, key = loopback_certificate(tmp_path)
    server = ReleaseServer(release_files(PINNED), tls=(certificate, key)).start()
    try:
        write_project_files(tmp_path / "project", PINNED)
        untrusted = ensure_cli(tmp_path / "project", server.base_url)
        trusted = ensure_cli(
            tmp_path / "project", server.base_url, extra_env={"SSL_CERT_FILE": str(certificate)}
        )
    finally:
        server.stop()
    assert untrusted.returncode == 2
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["action"] == "installed"


def test_a_redirect_from_https_to_http_is_refused(tmp_path: Path) -> None:
    needs_openssl()
    release = this_release(PINNED)
    plain = ReleaseServer(release_files(PINNED)).start()
    certificate, key = loopback_certificate(tmp_path)
    tls = ReleaseServer(
        {},
        redirects={
            release.checksums: f"{plain.base_url}/{release.checksums}",
            release.archive: f"{plain.base_url}/{release.archive}",
        },
        tls=(certificate, key),
    ).start()
    try:
        write_project_files(tmp_path / "project", PINNED)
        result = ensure_cli(
            tmp_path / "project", tls.base_url, extra_env={"SSL_CERT_FILE": str(certificate)}
        )
    finally:
        tls.stop()
        plain.stop()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {tls.base_url}/{release.checksums} redirects to "
        f"{plain.base_url}/{release.checksums}, which is not https"
    ]
    assert tls.requests == {release.checksums: 1}
    assert plain.downloads() == 0
    assert_nothing_installed(tmp_path / "project")


def test_redirects_that_keep_the_scheme_are_followed(tmp_path: Path) -> None:
    """http to http and https to https are followed (the release host answers from a CDN)."""
    needs_openssl()
    release = this_release(PINNED)
    certificate, key = loopback_certificate(tmp_path)
    names = (release.checksums, release.archive)
    plain = ReleaseServer(release_files(PINNED)).start()
    secure = ReleaseServer(release_files(PINNED), tls=(certificate, key)).start()
    plain_front = ReleaseServer(
        {}, redirects={name: f"{plain.base_url}/{name}" for name in names}
    ).start()
    secure_front = ReleaseServer(
        {}, redirects={name: f"{secure.base_url}/{name}" for name in names}, tls=(certificate, key)
    ).start()
    trust = {"SSL_CERT_FILE": str(certificate)}
    try:
        for front, project in ((plain_front, "http"), (secure_front, "https")):
            write_project_files(tmp_path / project, PINNED)
            result = ensure_cli(tmp_path / project, front.base_url, extra_env=trust)
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["action"] == "installed"
            assert front.requests == {name: 1 for name in names}
    finally:
        for server in (plain, secure, plain_front, secure_front):
            server.stop()


def test_an_archive_with_paths_outside_pulumi_is_refused(tmp_path: Path) -> None:
    release = this_release(PINNED)
    archive = archive_bytes({"pulumi/pulumi": stub_executable(PINNED), "../escape": b"x"})
    files = {
        release.archive: archive,
        release.checksums: f"{hashlib.sha256(archive).hexdigest()}  {release.archive}\n".encode(),
    }
    [line] = refused(tmp_path, ReleaseServer(files))
    assert line.endswith(
        "holds '../escape'; a Pulumi release archive holds only files under pulumi/"
    )
    assert not (tmp_path / "escape").exists() and not (tmp_path / ".tools" / "escape").exists()


def test_a_new_pin_replaces_the_old_install_and_a_failed_one_keeps_it(tmp_path: Path) -> None:
    older = "3.271.0"
    server = ReleaseServer({**release_files(older), **release_files(PINNED)}).start()
    try:
        write_project_files(tmp_path, older)
        assert ensure_cli(tmp_path, server.base_url).returncode == 0
        write_project_files(tmp_path, PINNED)
        upgraded = ensure_cli(tmp_path, server.base_url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert json.loads(upgraded.stdout)["action"] == "installed"
        assert (tmp_path / ".tools" / "pulumi" / "VERSION").read_text() == f"{PINNED}\n"
        assert sorted(path.name for path in (tmp_path / ".tools").iterdir()) == ["pulumi"]

        write_project_files(tmp_path, "3.273.0")  # not on the server
        failed = ensure_cli(tmp_path, server.base_url)
    finally:
        server.stop()
    assert failed.returncode == 2
    assert "HTTP 404" in failed.stderr
    assert (tmp_path / ".tools" / "pulumi" / "VERSION").read_text() == f"{PINNED}\n"
    assert sorted(path.name for path in (tmp_path / ".tools").iterdir()) == ["pulumi"]


def put_on_path(directory: Path, version: str) -> Path:
    directory.mkdir()
    executable = directory / "pulumi"
    executable.write_bytes(stub_executable(version))
    executable.chmod(0o755)
    return executable


@pytest.mark.parametrize(
    ("on_path", "action"), [("3.250.1", "found"), ("3.200.0", "found"), ("3.199.9", "installed")]
)
def test_a_pulumi_on_path_is_used_as_it_is_when_new_enough(
    tmp_path: Path, server: ReleaseServer, on_path: str, action: str
) -> None:
    write_project_files(tmp_path / "project", PINNED, minimum="3.200")
    own = put_on_path(tmp_path / "bin", on_path)
    result = ensure_cli(
        tmp_path / "project",
        server.base_url,
        path=f"{own.parent}{os.pathsep}{path_without_pulumi()}",
    )
    assert result.returncode == 0, result.stderr
    assert own.read_bytes() == stub_executable(on_path)  # never replaced
    if action == "found":
        assert json.loads(result.stdout) == {"path": str(own), "version": on_path, "action": action}
        assert server.downloads() == 0
        assert not (tmp_path / "project" / ".tools").exists()
    else:
        # An older one stays where it is; the pinned version goes beside it, into .tools.
        assert json.loads(result.stdout)["action"] == "installed"
        assert json.loads(result.stdout)["version"] == PINNED


def test_the_committed_pin_meets_the_sdk_minimum() -> None:
    pinned = pinned_version(ROOT / ".pulumi-version")
    minimum = minimum_version(ROOT / "requirements.txt")
    assert minimum == Version(3, 200, 0)
    assert pinned >= minimum


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", ("linux", "x64")),
        ("Linux", "aarch64", ("linux", "arm64")),
        ("Darwin", "arm64", ("darwin", "arm64")),
        ("Darwin", "x86_64", ("darwin", "x64")),
    ],
)
def test_release_names_per_platform(system: str, machine: str, expected: tuple[str, str]) -> None:
    assert release_platform(system, machine) == expected
    release = Release(Version(3, 272, 0), *expected)
    assert release.archive == f"pulumi-v3.272.0-{expected[0]}-{expected[1]}.tar.gz"
    assert release.checksums == "pulumi-3.272.0-checksums.txt"


@pytest.mark.parametrize(("system", "machine"), [("Windows", "AMD64"), ("Linux", "riscv64")])
def test_an_unknown_platform_is_refused(system: str, machine: str) -> None:
    with pytest.raises(HostError) as refused:
        release_platform(system, machine)
    assert str(refused.value) == (
        f"no Pulumi release archive for this platform ({system}/{machine}); releases exist "
        "for Linux and macOS (Darwin) on x86_64 and arm64. Install the CLI yourself "
        "(https://www.pulumi.com/docs/install/) and put it on PATH"
    )


@pytest.mark.parametrize("text", ["3.272", "version 3.272.0", ""])
def test_text_that_is_not_a_version_is_named_with_where_it_came_from(text: str) -> None:
    with pytest.raises(HostError) as refused:
        Version.parse(f"{text}\n", "the marker")
    assert str(refused.value) == f"the marker is {text!r}, not a version such as 3.272.0"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ftp://mirror/pulumi", "must be an https://, http:// or file:// URL"),
        ("https://user:secret@mirror.example/pulumi", "must not carry credentials"),
        ("https://mirror.example/pulumi?token=1", "must not carry credentials or a query"),
    ],
)
def test_a_bad_mirror_url_is_refused(value: str, problem: str) -> None:
    with pytest.raises(HostError, match=problem) as raised:
        download_base({"PULUMI_DOWNLOAD_URL": value})
    assert "secret" not in str(raised.value)


def test_mirror_url_default_and_override() -> None:
    assert download_base({}) == "https://get.pulumi.com/releases/sdk"
    assert download_base({"PULUMI_DOWNLOAD_URL": "file:///srv/pulumi/"}) == "file:///srv/pulumi"


def test_a_bad_version_file_is_named(tmp_path: Path) -> None:
    (tmp_path / ".pulumi-version").write_text("latest\n")
    with pytest.raises(
        HostError, match=r"\.pulumi-version holds 'latest'; it must hold one version"
    ):
        pinned_version(tmp_path / ".pulumi-version")


def test_a_pin_below_the_minimum_is_refused(tmp_path: Path, server: ReleaseServer) -> None:
    write_project_files(tmp_path, "3.100.0", minimum="3.200")
    result = ensure_cli(tmp_path, server.base_url)
    assert result.returncode == 2
    assert "pins 3.100.0, older than 3.200.0" in result.stderr
    assert server.downloads() == 0


# In-process: `install` called directly against the release server, with archives built here.


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `ensure_cli` gives the installer's process: loopback without a proxy, and a log
    for the stub CLI the installer runs."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("STUB_PULUMI_LOG", str(tmp_path / "pulumi-calls.jsonl"))


def archive_of(*members: tuple[tarfile.TarInfo, bytes], gzip: bool = True) -> bytes:
    """A release archive of exactly `members` (no `pulumi/` directory entry is added)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w:") as tar:
        for info, content in members:
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def member(
    name: str, mode: int = 0o755, kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.linkname = mode, kind, linkname
    return info


def install_archive(archive: bytes, tools_dir: Path) -> Path:
    """`install` of the pinned release from a server whose archive is `archive`."""
    release = this_release(PINNED)
    checksum = f"{hashlib.sha256(archive).hexdigest()}  {release.archive}\n"
    server = ReleaseServer({release.archive: archive, release.checksums: checksum.encode()})
    server.start()
    try:
        return install(release, server.base_url, tools_dir)
    finally:
        server.stop()


CLI = (member("pulumi/pulumi"), stub_executable(PINNED))
OUTSIDE = "; a Pulumi release archive holds only files under pulumi/"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        # Beside pulumi/ (a real archive has nothing there).
        (member("README.md"), OUTSIDE),
        # Under pulumi/ by its first part, beside it once resolved.
        (member("pulumi/../escape"), OUTSIDE),
        (
            member("pulumi/link", kind=tarfile.SYMTYPE, linkname="/etc"),
            ", which is not a regular file",
        ),
    ],
    ids=["beside", "dot-dot", "symlink"],
)
def test_an_archive_member_other_than_a_file_under_pulumi_is_refused(
    tmp_path: Path,
    extra: tarfile.TarInfo,
    problem: str,
    in_process: None,
) -> None:
    with pytest.raises(HostError) as refused:
        install_archive(archive_of(CLI, (extra, b"x")), tmp_path / ".tools")
    assert str(refused.value) == f"{this_release(PINNED).archive} holds {extra.name!r}{problem}"
    assert_nothing_installed(tmp_path)
    assert not (tmp_path / "escape").exists()


def test_an_archive_that_is_not_gzip_compressed_is_refused(
    tmp_path: Path, in_process: None
) -> None:
    """Pulumi's release archives are .tar.gz; any other content under that name is not one."""
    with pytest.raises(HostError) as refused:
        install_archive(archive_of(CLI, gzip=False), tmp_path / ".tools")
    assert str(refused.value) == (
        f"{this_release(PINNED).archive} cannot be unpacked: not a gzip file"
    )
    assert_nothing_installed(tmp_path)


def test_an_archive_without_the_pulumi_executable_is_refused(
    tmp_path: Path, in_process: None
) -> None:
    language_host = (member("pulumi/pulumi-language-python"), b"#!/bin/sh\nexit 0\n")
    with pytest.raises(HostError) as refused:
        install_archive(archive_of(language_host), tmp_path / ".tools")
    assert str(refused.value) == f"{this_release(PINNED).archive} has no pulumi/pulumi executable"
    assert_nothing_installed(tmp_path)


def test_unpacked_files_lose_set_id_bits_and_write_access_for_others(
    tmp_path: Path, in_process: None
) -> None:
    archive = archive_of(
        (member("pulumi", 0o777, tarfile.DIRTYPE), b""),
        (member("pulumi/pulumi", 0o6777), stub_executable(PINNED)),
    )
    executable = install_archive(archive, tmp_path / ".tools")
    assert executable == tmp_path / ".tools" / "pulumi" / "bin" / "pulumi"
    assert stat.S_IMODE(executable.stat().st_mode) == 0o755


def test_a_checksum_line_in_binary_mode_names_the_file_too() -> None:
    """sha256sum marks files read in binary mode with `*` before the name."""
    release = this_release(PINNED)
    listed = f"{'0' * 64}  other.tar.gz\n{'A' * 64} *{release.archive}\n"
    assert parse_checksums(listed, release.archive, "checksums.txt") == "a" * 64


ARCHIVE = this_release(PINNED).archive
WITHOUT_THE_ARCHIVE_S_SHA256 = [
    # Only a line naming exactly the archive counts.
    pytest.param(
        f"{'0' * 64}  X{ARCHIVE}\n", f"lists no checksum for {ARCHIVE}", id="another-name"
    ),
    pytest.param(
        f"deadbeef  {ARCHIVE}\n",
        f"lists {ARCHIVE} with 'deadbeef', not a SHA-256",
        id="not-a-sha256",
    ),
]
"""Checksums files that list no SHA-256 for the archive, and the refusal after their source."""


@pytest.mark.parametrize(("listed", "problem"), WITHOUT_THE_ARCHIVE_S_SHA256)
def test_a_checksums_file_without_the_archive_s_sha256_is_refused(
    listed: str, problem: str
) -> None:
    with pytest.raises(HostError) as refused:
        parse_checksums(listed, ARCHIVE, "https://mirror/checksums.txt")
    assert str(refused.value) == f"https://mirror/checksums.txt {problem}"


@pytest.mark.parametrize(
    ("body", "exit_status", "wait"),
    [
        ('print("v3.272.0")', 1, 5.0),  # a version, but the command failed
        ('print("no version here")', 0, 5.0),
        # Answers after the wait ends; a short wait keeps the test fast, so that mutation
        # testing's time budget per mutant reaches it (docs/mutation.md#test-budget).
        ('import time; time.sleep(5); print("v3.272.0")', 0, 0.2),
    ],
    ids=["failing", "no-version", "too-slow"],
)
def test_an_executable_that_does_not_answer_a_version_reports_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, exit_status: int, wait: float
) -> None:
    monkeypatch.setattr(pulumi_cli, "VERSION_TIMEOUT_S", wait)
    executable = tmp_path / "pulumi"
    executable.write_text(f"#!{sys.executable}\nimport sys\n{body}\nsys.exit({exit_status})\n")
    executable.chmod(0o755)
    assert reported_version(str(executable)) is None


def test_a_server_that_never_answers_fails_the_download_when_the_read_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: None
) -> None:
    """It accepts the connection (the kernel does, for a listening socket) and says nothing."""
    monkeypatch.setattr(pulumi_cli, "READ_TIMEOUT_S", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/releases/sdk"
        # Closing the socket resets the connection: code that ignored the read timeout fails
        # after 5 s instead of hanging (mutation testing limits CPU time, not waiting).
        closer = threading.Timer(5.0, silent.close)
        closer.start()
        try:
            with pytest.raises(HostError) as failed:
                install(this_release(PINNED), base, tmp_path / ".tools")
        finally:
            closer.cancel()
    release = this_release(PINNED)
    assert str(failed.value) == f"downloading {base}/{release.checksums} failed: timed out"
    assert_nothing_installed(tmp_path)


def test_a_mirror_nothing_listens_on_is_named_with_the_connection_s_error(
    tmp_path: Path, in_process: None
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{closed.getsockname()[1]}/releases/sdk"
        with pytest.raises(HostError) as failed:
            install(this_release(PINNED), base, tmp_path / ".tools")
    release = this_release(PINNED)
    assert str(failed.value) == (
        f"downloading {base}/{release.checksums} failed: "
        f"[Errno {errno.ECONNREFUSED}] Connection refused"
    )
    assert_nothing_installed(tmp_path)


class _Drip(http.server.BaseHTTPRequestHandler):
    """Promises a megabyte and sends one byte every 50 ms (for at most 10 s)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(200):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_download_that_drips_stops_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: None
) -> None:
    """Every read brings a byte, so no read times out; the deadline still holds."""
    monkeypatch.setattr(pulumi_cli, "DOWNLOAD_DEADLINE_S", 1.0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/releases/sdk"
    try:
        with pytest.raises(HostError) as failed:
            install(this_release(PINNED), base, tmp_path / ".tools")
    finally:
        server.shutdown()
        server.server_close()
    release = this_release(PINNED)
    assert str(failed.value) == f"downloading {base}/{release.checksums} took longer than 1 s"
    assert_nothing_installed(tmp_path)


def install_in_process(server: ReleaseServer, tools_dir: Path) -> Path:
    server.start()
    try:
        return install(this_release(PINNED), server.base_url, tools_dir)
    finally:
        server.stop()


def test_files_served_without_a_content_length_are_installed(
    tmp_path: Path, in_process: None
) -> None:
    files = release_files(PINNED)
    executable = install_in_process(ReleaseServer(files, unsized=set(files)), tmp_path / ".tools")
    assert executable == tmp_path / ".tools" / "pulumi" / "bin" / "pulumi"
    assert reported_version(str(executable)) == Version.parse(PINNED, "test version")


def test_a_checksums_file_of_exactly_its_limit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: None
) -> None:
    files = release_files(PINNED)
    size = len(files[this_release(PINNED).checksums])
    monkeypatch.setattr(pulumi_cli, "MAX_CHECKSUMS_BYTES", size)
    # In pieces: the bytes received are counted across chunks, up to and including the limit.
    install_in_process(ReleaseServer(files, pieces=set(files)), tmp_path / ".tools")
    assert (tmp_path / ".tools" / "pulumi" / "bin" / "pulumi").is_file()


@pytest.mark.parametrize(
    ("sized", "problem"),
    [
        # Refused from its Content-Length, before anything is read.
        (True, "is {size} bytes, more than the {limit} allowed"),
        # No Content-Length and many small chunks: the bytes received so far are counted.
        (False, "sent more than the {limit} bytes allowed"),
    ],
    ids=["declared", "counted"],
)
def test_a_checksums_file_over_its_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: None, sized: bool, problem: str
) -> None:
    files = release_files(PINNED)
    checksums = this_release(PINNED).checksums
    size = len(files[checksums])
    monkeypatch.setattr(pulumi_cli, "MAX_CHECKSUMS_BYTES", size - 1)
    server = ReleaseServer(files, unsized=set() if sized else {checksums}, pieces={checksums})
    with pytest.raises(HostError) as refused:
        install_in_process(server, tmp_path / ".tools")
    expected = problem.format(size=size, limit=size - 1)
    assert str(refused.value) == f"{server.base_url}/{checksums} {expected}"
    assert_nothing_installed(tmp_path)


@pytest.mark.parametrize(
    ("chunked", "problem"),
    [
        # Content-Length: the count falls short of it once the connection closes.
        (False, "{half} of {size} bytes arrived"),
        # Chunked: the connection closes inside a chunk.
        (True, "the connection closed after {half} bytes"),
    ],
    ids=["sized", "chunked"],
)
def test_an_archive_cut_off_midway_names_the_bytes_that_arrived(
    tmp_path: Path, in_process: None, chunked: bool, problem: str
) -> None:
    files = release_files(PINNED)
    archive = this_release(PINNED).archive
    server = ReleaseServer(files, cut_off={archive}, chunked={archive} if chunked else set())
    with pytest.raises(HostError) as failed:
        install_in_process(server, tmp_path / ".tools")
    size = len(files[archive])
    expected = problem.format(half=size // 2, size=size)
    assert str(failed.value) == f"downloading {server.base_url}/{archive} was cut off: {expected}"
    assert_nothing_installed(tmp_path)


def test_the_release_is_run_once_from_a_hidden_directory_inside_the_tools_dir(
    tmp_path: Path, in_process: None
) -> None:
    """Staged beside the install (the same filesystem, so the final rename cannot fail half
    way), under a name a killed run's leftover is recognised by; only the install remains."""
    tools = tmp_path / ".tools"
    executable = install_in_process(ReleaseServer(release_files(PINNED)), tools)
    calls = [
        json.loads(line) for line in (tmp_path / "pulumi-calls.jsonl").read_text().splitlines()
    ]
    assert [call["args"] for call in calls] == [["version"]]
    staged = Path(calls[0]["executable"]).relative_to(tools)
    assert staged.parts[0].startswith(".pulumi-download-") and staged.name == "pulumi"
    assert staged.parts[0] != ".pulumi-download-"  # made unique, never a fixed name
    assert sorted(path.name for path in tools.iterdir()) == ["pulumi"]
    assert executable == tools / "pulumi" / "bin" / "pulumi"


def test_a_tools_dir_whose_parents_are_missing_is_made(tmp_path: Path, in_process: None) -> None:
    tools = tmp_path / "not" / "yet" / ".tools"
    executable = install_in_process(ReleaseServer(release_files(PINNED)), tools)
    assert executable == tools / "pulumi" / "bin" / "pulumi"
    assert reported_version(str(executable)) == Version(3, 272, 0)


def test_bytes_of_a_checksums_file_that_are_not_utf8_do_not_stop_the_install(
    tmp_path: Path, in_process: None
) -> None:
    """Only the archive's line matters; another line in Latin-1 (é as one byte) is read past."""
    release = this_release(PINNED)
    files = release_files(PINNED)
    files[release.checksums] = b"# r\xe9sum\xe9 of the release\n" + files[release.checksums]
    executable = install_in_process(ReleaseServer(files), tmp_path / ".tools")
    assert executable == tmp_path / ".tools" / "pulumi" / "bin" / "pulumi"


@pytest.mark.usefixtures("ascii_locale")
@pytest.mark.parametrize(
    ("listed", "problem"),
    [
        *WITHOUT_THE_ARCHIVE_S_SHA256,
        # Read as UTF-8 whatever the locale: the refusal quotes the line character for character.
        pytest.param(
            f"sha256-ключ  {ARCHIVE}\n",
            f"lists {ARCHIVE} with 'sha256-ключ', not a SHA-256",
            id="not-a-sha256-in-utf-8",
        ),
    ],
)
def test_a_mirror_s_checksums_file_without_the_archive_s_sha256_is_named(
    tmp_path: Path, in_process: None, listed: str, problem: str
) -> None:
    release = this_release(PINNED)
    server = ReleaseServer({**release_files(PINNED), release.checksums: listed.encode()})
    with pytest.raises(HostError) as refused:
        install_in_process(server, tmp_path / ".tools")
    assert str(refused.value) == f"{server.base_url}/{release.checksums} {problem}"
    assert_nothing_installed(tmp_path)


def test_unpacks_where_tarfile_has_no_data_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: None
) -> None:
    """Python before 3.11.4 has no extraction filters: every member was checked already."""
    monkeypatch.delattr(tarfile, "data_filter")
    executable = install_in_process(ReleaseServer(release_files(PINNED)), tmp_path / ".tools")
    assert sorted(path.name for path in executable.parent.iterdir()) == [
        "pulumi",
        "pulumi-language-python",
    ]
    assert reported_version(str(executable)) == Version(3, 272, 0)


def test_an_archive_is_hashed_piece_by_piece_never_held_whole(tmp_path: Path) -> None:
    """A release archive is about 150 MB (1 GiB allowed): its SHA-256 is computed from chunks
    of CHUNK_BYTES, so memory stays near two chunks whatever the archive's size."""
    archive = tmp_path / "archive.tar.gz"
    content = os.urandom(1 << 16) * 256  # 16 MiB
    archive.write_bytes(content)
    tracemalloc.start()
    try:
        digest = pulumi_cli._sha256(archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(content).hexdigest()
    assert peak < 4 * pulumi_cli.CHUNK_BYTES, f"{peak} bytes held while hashing 16 MiB"


def write_install(tools: Path, version: str, marker: bytes | None = None) -> Path:
    """What an earlier run left in `tools/pulumi`: the CLI and its VERSION marker."""
    installed = tools / "pulumi"
    (installed / "bin").mkdir(parents=True)
    executable = installed / "bin" / "pulumi"
    executable.write_bytes(stub_executable(version))
    executable.chmod(0o755)
    (installed / "VERSION").write_bytes(marker if marker is not None else f"{version}\n".encode())
    return executable


def test_an_install_without_its_executable_is_not_reused(tmp_path: Path) -> None:
    write_install(tmp_path / ".tools", PINNED).unlink()
    assert pulumi_cli.installed_version(tmp_path / ".tools") is None


@pytest.mark.usefixtures("ascii_locale")
def test_the_version_marker_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    write_install(tmp_path / ".tools", PINNED, marker="3.272.0 — installed\n".encode())
    assert pulumi_cli.installed_version(tmp_path / ".tools") == Version(3, 272, 0)


@pytest.mark.parametrize(
    ("requirements", "floor"),
    [
        ("Pulumi>=3.200,<4\n", Version(3, 200, 0)),  # names are case-insensitive
        ("pulumi >= 3.200, <4\n", Version(3, 200, 0)),
        ("pulumi>=3,<4\n", Version(3, 0, 0)),
        ("pulumi-gcp>=8.0\npulumi>=3.201.2  # comment\n", Version(3, 201, 2)),
    ],
    ids=["capitalised", "spaced", "major-only", "after-another"],
)
def test_the_floor_of_the_pulumi_requirement_is_the_minimum(
    tmp_path: Path, requirements: str, floor: Version
) -> None:
    (tmp_path / "requirements.txt").write_text(requirements)
    assert minimum_version(tmp_path / "requirements.txt") == floor


@pytest.mark.parametrize(
    "requirements",
    [
        "pulumi  # wanted >=3.300 (see #12)\n",  # a floor in a comment is none
        "pulumi<4\npulumi>=3.200\n",  # the first pulumi line decides
        "pulumi-gcp>=8.0\n",
    ],
    ids=["floor-in-comment", "first-without-floor", "no-pulumi"],
)
def test_requirements_without_a_pulumi_floor_are_refused(tmp_path: Path, requirements: str) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(requirements)
    with pytest.raises(HostError) as refused:
        minimum_version(path)
    assert str(refused.value) == (
        f"{path} has no `pulumi>=X.Y` requirement to take the minimum from"
    )


def test_unreadable_requirements_are_named(tmp_path: Path) -> None:
    with pytest.raises(HostError) as refused:
        minimum_version(tmp_path / "requirements.txt")
    assert str(refused.value) == (
        f"cannot read {tmp_path / 'requirements.txt'}: No such file or directory"
    )


@pytest.mark.usefixtures("ascii_locale")
def test_requirements_and_the_pin_are_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# Pulumi — SDK\npulumi>=3.200\n", "utf-8")
    assert minimum_version(tmp_path / "requirements.txt") == Version(3, 200, 0)
    (tmp_path / ".pulumi-version").write_text("3.272.0-β\n", "utf-8")
    with pytest.raises(HostError) as refused:
        pinned_version(tmp_path / ".pulumi-version")
    assert str(refused.value) == (
        f"{tmp_path / '.pulumi-version'} holds '3.272.0-β'; "
        "it must hold one version such as 3.272.0"
    )


def test_a_bad_mirror_url_is_one_whole_error() -> None:
    with pytest.raises(HostError) as scheme:
        download_base({"PULUMI_DOWNLOAD_URL": "ftp://mirror/pulumi"})
    assert str(scheme.value) == (
        "PULUMI_DOWNLOAD_URL is 'ftp://mirror/pulumi'; it must be an https://, http:// or "
        "file:// URL of a directory holding pulumi-vX.Y.Z-OS-ARCH.tar.gz and "
        "pulumi-X.Y.Z-checksums.txt"
    )
    # A user name alone is a credential too.
    with pytest.raises(HostError) as credentials:
        download_base({"PULUMI_DOWNLOAD_URL": "https://deploy@mirror.example/pulumi"})
    assert str(credentials.value) == (
        "PULUMI_DOWNLOAD_URL must not carry credentials or a query string; "
        "use a mirror that serves the files without them"
    )


def test_only_trailing_slashes_are_taken_off_the_mirror_url() -> None:
    assert download_base({"PULUMI_DOWNLOAD_URL": "file:///srv/X/"}) == "file:///srv/X"


def ensure_in(
    project: Path, environ: dict[str, str], pinned: str = PINNED, minimum: str = "3.200"
) -> pulumi_cli.CliResult:
    """`ensure` for `project`'s files and `.tools`; downloads come from an empty mirror."""
    write_project_files(project, pinned, minimum=minimum)
    (project / "mirror").mkdir(exist_ok=True)
    return pulumi_cli.ensure(
        project / ".pulumi-version",
        project / "requirements.txt",
        project / ".tools",
        {"PULUMI_DOWNLOAD_URL": (project / "mirror").as_uri(), **environ},
    )


def test_a_pin_equal_to_the_minimum_is_accepted(tmp_path: Path, in_process: None) -> None:
    executable = write_install(tmp_path / ".tools", "3.200.0")
    result = ensure_in(tmp_path, {"PATH": path_without_pulumi()}, pinned="3.200.0")
    assert result == pulumi_cli.CliResult(str(executable), "3.200.0", "reused")


def test_a_pin_below_the_minimum_is_one_whole_error(tmp_path: Path) -> None:
    with pytest.raises(HostError) as refused:
        ensure_in(tmp_path, {"PATH": path_without_pulumi()}, pinned="3.199.9")
    assert str(refused.value) == (
        f"{tmp_path / '.pulumi-version'} pins 3.199.9, older than 3.200.0, the minimum "
        f"{tmp_path / 'requirements.txt'} needs; pin a newer version"
    )


def test_pulumi_is_looked_for_on_the_path_it_is_given_not_the_process_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: None
) -> None:
    own = put_on_path(tmp_path / "bin", "3.250.1")
    installed = write_install(tmp_path / "project" / ".tools", PINNED)
    monkeypatch.setenv("PATH", path_without_pulumi())
    given = {"PATH": f"{own.parent}{os.pathsep}{path_without_pulumi()}"}
    assert ensure_in(tmp_path / "project", given).path == str(own)
    # Without a PATH of its own nothing is on it, whatever this process's PATH holds.
    monkeypatch.setenv("PATH", given["PATH"])
    assert ensure_in(tmp_path / "project", {}).path == str(installed)


def test_an_old_install_that_cannot_be_deleted_does_not_stop_the_new_pin(
    tmp_path: Path, in_process: None
) -> None:
    """A file of the old install that even root cannot delete (immutable here; a locked file
    on macOS): the new pin is installed, and the old one stays in the download's leftover."""
    tools = tmp_path / ".tools"
    locked = write_install(tools, "3.271.0").with_name("pulumi-locked")
    locked.write_bytes(b"")
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(locked)], check=False).returncode:
        pytest.skip("chattr +i is not possible here (e2fsprogs, CAP_LINUX_IMMUTABLE, ext4/xfs)")
    try:
        executable = install_in_process(ReleaseServer(release_files(PINNED)), tools)
        assert (tools / "pulumi" / "VERSION").read_text() == f"{PINNED}\n"
        assert reported_version(str(executable)) == Version(3, 272, 0)
        [leftover] = [path for path in tools.iterdir() if path.name != "pulumi"]
        assert (leftover / "previous" / "bin" / "pulumi-locked").is_file()
    finally:
        for path in tools.rglob("pulumi-locked"):
            subprocess.run([chattr, "-i", str(path)], check=True)
