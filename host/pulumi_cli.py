"""Find or install the Pulumi CLI that `scripts/local-up` runs.

A `pulumi` on PATH at or above the minimum the program's SDK needs (the `pulumi>=` floor in
requirements.txt) is used as it is. Otherwise the version pinned in `.pulumi-version` is
installed into `.tools/pulumi/` from Pulumi's release archive for this OS and architecture:

    {base}/pulumi-v{version}-{os}-{arch}.tar.gz     os: linux, darwin; arch: x64, arm64
    {base}/pulumi-{version}-checksums.txt           sha256sum format, one line per archive

`base` is https://get.pulumi.com/releases/sdk, or `PULUMI_DOWNLOAD_URL` (a mirror holding the
same two files: https://, http:// or file://). The archive is downloaded into a temporary
directory beside the install, checked against the published SHA-256 before anything is
unpacked, unpacked, run once (`pulumi version` must report the pinned version), and only then
renamed into place. Every failure removes the temporary directory and leaves any earlier
install untouched. A second run finds `.tools/pulumi/VERSION` and downloads nothing.
No Pulumi imports: this runs before the program's virtualenv exists.
"""

import hashlib
import http.client
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host.process import HostError

DEFAULT_DOWNLOAD_URL = "https://get.pulumi.com/releases/sdk"
DOWNLOAD_URL_VARIABLE = "PULUMI_DOWNLOAD_URL"
INSTALL_DIR = "pulumi"
"""Under the tools directory: `bin/` (the archive's executables) and `VERSION`."""
VERSION_MARKER = "VERSION"

OPERATING_SYSTEMS = {"Linux": "linux", "Darwin": "darwin"}
ARCHITECTURES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}

MAX_CHECKSUMS_BYTES = 1 << 20
MAX_ARCHIVE_BYTES = 1 << 30
"""Pulumi's archives are about 150 MB; anything beyond 1 GiB is not one."""
READ_TIMEOUT_S = 60.0
DOWNLOAD_DEADLINE_S = 30 * 60.0
VERSION_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_FLOOR = re.compile(r">=\s*(\d+(?:\.\d+){0,2})")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, order=True)
class Version:
    """A Pulumi release number; only major.minor.patch take part in comparisons."""

    major: int
    minor: int
    patch: int

    @staticmethod
    def parse(text: str, what: str) -> "Version":
        """`3.272.0`, `v3.272.0` or `v3.272.0-dev.1`; anything else is an error naming `what`."""
        match = _VERSION.match(text.strip())
        if match is None:
            raise HostError(f"{what} is {text.strip()!r}, not a version such as 3.272.0")
        return Version(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class CliResult:
    """The Pulumi CLI to run."""

    path: str
    """Absolute path of the `pulumi` executable."""
    version: str
    """What it reports, e.g. `3.272.0`."""
    action: str
    """`found` (on PATH, used as it is), `reused` (installed earlier) or `installed` (now)."""


@dataclass(frozen=True)
class Release:
    """The two files of one Pulumi release for one platform."""

    version: Version
    os: str
    arch: str

    @property
    def archive(self) -> str:
        return f"pulumi-v{self.version}-{self.os}-{self.arch}.tar.gz"

    @property
    def checksums(self) -> str:
        # The checksums file has no "v" before the version; the archives do.
        return f"pulumi-{self.version}-checksums.txt"


def release_platform(system: str, machine: str) -> tuple[str, str]:
    """Pulumi's names for this OS and architecture (`platform.system()`, `platform.machine()`)."""
    os_name, arch = OPERATING_SYSTEMS.get(system), ARCHITECTURES.get(machine.lower())
    if os_name is None or arch is None:
        raise HostError(
            f"no Pulumi release archive for this platform ({system}/{machine}); releases exist "
            "for Linux and macOS (Darwin) on x86_64 and arm64. Install the CLI yourself "
            "(https://www.pulumi.com/docs/install/) and put it on PATH"
        )
    return os_name, arch


def pinned_version(version_file: Path) -> Version:
    """The version `.pulumi-version` pins (one line, e.g. `3.272.0`)."""
    try:
        text = version_file.read_text(encoding="utf-8")
    except OSError as error:
        raise HostError(f"cannot read {version_file}: {error.strerror}") from error
    if not re.fullmatch(r"\d+\.\d+\.\d+\s*", text):
        raise HostError(
            f"{version_file} holds {text.strip()!r}; it must hold one version such as 3.272.0"
        )
    return Version.parse(text, str(version_file))


def minimum_version(requirements: Path) -> Version:
    """The floor of the `pulumi` requirement (`pulumi>=3.200,<4` gives 3.200.0)."""
    try:
        lines = requirements.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise HostError(f"cannot read {requirements}: {error.strerror}") from error
    for line in lines:
        requirement = line.split("#", 1)[0].strip()
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        if name is None or name.group(0).lower() != "pulumi":
            continue
        floor = _FLOOR.search(requirement)
        if floor is None:
            break
        parts = [int(part) for part in floor.group(1).split(".")]
        return Version(*[*parts, 0, 0][:3])
    raise HostError(f"{requirements} has no `pulumi>=X.Y` requirement to take the minimum from")


def download_base(environ: dict[str, str]) -> str:
    """The directory URL the release files come from; a bad `PULUMI_DOWNLOAD_URL` is an error."""
    base = environ.get(DOWNLOAD_URL_VARIABLE, "").strip() or DEFAULT_DOWNLOAD_URL
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("https", "http", "file") or (
        parsed.scheme != "file" and not parsed.netloc
    ):
        raise HostError(
            f"{DOWNLOAD_URL_VARIABLE} is {base!r}; it must be an https://, http:// or file:// "
            "URL of a directory holding pulumi-vX.Y.Z-OS-ARCH.tar.gz and pulumi-X.Y.Z-checksums.txt"
        )
    if parsed.username is not None or parsed.password is not None or parsed.query:
        raise HostError(
            f"{DOWNLOAD_URL_VARIABLE} must not carry credentials or a query string; "
            "use a mirror that serves the files without them"
        )
    return base.rstrip("/")


def parse_checksums(text: str, name: str, source: str) -> str:
    """The SHA-256 `text` (sha256sum format) lists for the file `name`."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*") == name:
            digest = fields[0].lower()
            if not _SHA256.fullmatch(digest):
                raise HostError(f"{source} lists {name} with {fields[0]!r}, not a SHA-256")
            return digest
    raise HostError(f"{source} lists no checksum for {name}")


def reported_version(executable: str) -> Version | None:
    """What `executable version` prints, or None when it does not run or says no version."""
    try:
        result = subprocess.run(
            [executable, "version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=VERSION_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    match = _VERSION.search(result.stdout)
    return None if match is None else Version(*(int(part) for part in match.groups()))


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects (get.pulumi.com answers from a CDN), but never from https to http."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.startswith("https://") and not newurl.startswith("https://"):
            raise HostError(f"{req.full_url} redirects to {newurl}, which is not https")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngrade)


def _fetch(url: str, target: Path, limit: int) -> None:
    """Download `url` into `target`: at most `limit` bytes, complete, within the deadline."""
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    expected: int | None = None
    received = 0
    try:
        with _OPENER.open(url, timeout=READ_TIMEOUT_S) as response:
            # read1 returns what one receive brings, so the deadline holds against a slow drip.
            read = getattr(response, "read1", response.read)
            declared = response.headers.get("Content-Length")
            expected = int(declared) if declared and declared.isdigit() else None
            if expected is not None and expected > limit:
                raise HostError(f"{url} is {expected} bytes, more than the {limit} allowed")
            with target.open("wb") as out:
                while chunk := read(CHUNK_BYTES):
                    received += len(chunk)
                    if received > limit:
                        raise HostError(f"{url} sent more than the {limit} bytes allowed")
                    if time.monotonic() > deadline:
                        raise HostError(
                            f"downloading {url} took longer than {DOWNLOAD_DEADLINE_S:.0f} s"
                        )
                    out.write(chunk)
    except urllib.error.HTTPError as error:
        raise HostError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from error
    except http.client.IncompleteRead as error:
        raise HostError(
            f"downloading {url} was cut off: the connection closed after {received} bytes"
        ) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise HostError(f"downloading {url} failed: {reason}") from error
    if expected is not None and received != expected:
        raise HostError(f"downloading {url} was cut off: {received} of {expected} bytes arrived")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, release: Release, stage: Path) -> Path:
    """Unpack the archive's `pulumi/` directory into `stage/bin`; returns the `pulumi` there."""
    unpacked = stage.parent / "unpacked"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if (
                    not parts
                    or parts[0] != "pulumi"
                    or ".." in parts
                    or member.name.startswith("/")
                ):
                    raise HostError(
                        f"{release.archive} holds {member.name!r}; a Pulumi release archive "
                        "holds only files under pulumi/"
                    )
                if not (member.isfile() or member.isdir()):
                    raise HostError(
                        f"{release.archive} holds {member.name!r}, which is not a regular file"
                    )
            # Every member was checked above; the "data" filter (Python 3.11.4+) also drops
            # ownership and unsafe modes.
            if hasattr(tarfile, "data_filter"):
                tar.extractall(unpacked, filter="data")
            else:
                tar.extractall(unpacked)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise HostError(f"{release.archive} cannot be unpacked: {error}") from error
    executable = unpacked / "pulumi" / "pulumi"
    if not executable.is_file():
        raise HostError(f"{release.archive} has no pulumi/pulumi executable")
    (unpacked / "pulumi").rename(stage / "bin")
    return stage / "bin" / "pulumi"


def install(release: Release, base: str, tools_dir: Path) -> Path:
    """Download, verify, unpack and move the release into `tools_dir/pulumi`; returns `pulumi`."""
    tools_dir.mkdir(parents=True, exist_ok=True)
    target = tools_dir / INSTALL_DIR
    work = Path(tempfile.mkdtemp(prefix=".pulumi-download-", dir=tools_dir))
    try:
        checksums_file = work / release.checksums
        _fetch(f"{base}/{release.checksums}", checksums_file, MAX_CHECKSUMS_BYTES)
        expected = parse_checksums(
            checksums_file.read_text(encoding="utf-8", errors="replace"),
            release.archive,
            f"{base}/{release.checksums}",
        )
        archive = work / release.archive
        _fetch(f"{base}/{release.archive}", archive, MAX_ARCHIVE_BYTES)
        actual = _sha256(archive)
        if actual != expected:
            raise HostError(
                f"{base}/{release.archive} has SHA-256 {actual}, but {release.checksums} "
                f"says {expected}: the download is damaged or not Pulumi's; nothing was installed"
            )
        stage = work / "stage"
        stage.mkdir()
        executable = _unpack(archive, release, stage)
        reported = reported_version(str(executable))
        if reported != release.version:
            raise HostError(
                f"the unpacked {release.archive} reports version {reported}, "
                f"not {release.version}; nothing was installed"
            )
        (stage / VERSION_MARKER).write_text(f"{release.version}\n", encoding="utf-8")
        if target.exists():
            # An older pinned version: moved aside (removed with the work directory) in the same
            # directory, so the rename below never meets an existing target.
            target.rename(work / "previous")
        stage.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / "bin" / "pulumi"


def installed_version(tools_dir: Path) -> Version | None:
    """The version a previous run installed into `tools_dir/pulumi`, if it is complete."""
    target = tools_dir / INSTALL_DIR
    marker = target / VERSION_MARKER
    if not (marker.is_file() and os.access(target / "bin" / "pulumi", os.X_OK)):
        return None
    try:
        return Version.parse(marker.read_text(encoding="utf-8"), str(marker))
    except HostError:
        return None


def ensure(
    version_file: Path,
    requirements: Path,
    tools_dir: Path,
    environ: dict[str, str],
    system: str | None = None,
    machine: str | None = None,
) -> CliResult:
    """The `pulumi` to run: on PATH if new enough, else the pinned one in `tools_dir`."""
    pinned, minimum = pinned_version(version_file), minimum_version(requirements)
    if pinned < minimum:
        raise HostError(
            f"{version_file} pins {pinned}, older than {minimum}, the minimum {requirements} "
            "needs; pin a newer version"
        )
    on_path = shutil.which("pulumi", path=environ.get("PATH", ""))
    if on_path is not None:
        found = reported_version(on_path)
        if found is not None and found >= minimum:
            return CliResult(path=os.path.abspath(on_path), version=str(found), action="found")
    if installed_version(tools_dir) == pinned:
        executable = tools_dir / INSTALL_DIR / "bin" / "pulumi"
        return CliResult(path=str(executable.absolute()), version=str(pinned), action="reused")
    os_name, arch = release_platform(system or platform.system(), machine or platform.machine())
    executable = install(Release(pinned, os_name, arch), download_base(environ), tools_dir)
    return CliResult(path=str(executable.absolute()), version=str(pinned), action="installed")
