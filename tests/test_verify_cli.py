"""The CLI's argument checks and exit codes: the usage errors in process (and one through
`python -m verify`), the rest as a real process (no registry needed); those of `verify
published` also in process, with its help and a loopback registry's login; the checks' worker
thread and the run's hard stop at --timeout in process, with the checks faked."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli_help import help_of
from tests.hostile_registry import OCI_INDEX, HostileRegistry
from verify import auth as verify_auth
from verify import cli, published
from verify import run as verify_run
from verify.auth import AuthError, Credentials
from verify.checks import ImageResult, PlatformResult, Verifier
from verify.digests import sha256_digest
from verify.probe import Probe

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
    }
    return subprocess.run(
        [sys.executable, "-m", "verify", *args],
        cwd=REPO,
        env={**environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


ATTEST_NEEDS_DEEP = "--attest needs --deep: the attestations carry the layers' SBOM"
BYTES = (
    "expected a number of bytes greater than 0, optionally followed by KiB, MiB, GiB or TiB "
    "(e.g. 64GiB)"
)
SECONDS = "expected a number of seconds greater than 0"
NEEDS_ATTEST = "--key, --create-key and --kms sign attestations: they need --attest"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


REF = "127.0.0.1:5000/a:1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["busybox:1"],
            "image reference 'busybox:1': no registry host; expected host[:port]/repository[:tag] "
            "or host[:port]/repository[:tag]@sha256:<64 hex>",
        ),
        (
            [REF, "--platform", "linux"],
            "--platform: platform 'linux' is not valid; expected os/architecture[/variant], e.g. "
            "linux/amd64 or linux/arm64/v8",
        ),
        (
            [REF, "--deep", "--platform", "linux/sparc"],
            "--platform linux/sparc: --deep knows no ELF machine for architecture 'sparc'; known: "
            "386, amd64, arm, arm64, loong64, mips64le, ppc64le, riscv64, s390x",
        ),
        ([REF, "--allow", ""], "--allow '': a glob must be non-empty with no outer spaces"),
        ([REF, "--allow", " /x"], "--allow ' /x': a glob must be non-empty with no outer spaces"),
        ([REF, "--allow", "/x "], "--allow '/x ': a glob must be non-empty with no outer spaces"),
        ([REF, "--attest"], ATTEST_NEEDS_DEEP),
        (
            [REF, REF, "--deep", "--attest"],
            "--attest attests one image; 2 references were given",
        ),
        (
            [REF, "--deep", "--attest"],
            "--attest needs exactly one of --key PEM and --kms KEY_VERSION",
        ),
        (
            [REF, "--deep", "--attest", "--kms", "k", "--create-key"],
            "--create-key creates the --key file; KMS keys are made in KMS",
        ),
        (
            [REF, "--trust-realm", "https://auth.example/"],
            "--trust-realm 'https://auth.example/': expected a host name such as "
            "auth.example.com (no scheme, port or path)",
        ),
        *(
            ([REF, "--max-layer-bytes", value], f"--max-layer-bytes {value!r}: {BYTES}")
            for value in ("10GB", "0", "0KiB", "-1", "")
        ),
        *(
            ([REF, "--timeout", value], f"--timeout {value!r}: {SECONDS}")
            for value in ("nan", "-5", "0", "inf", "soon")
        ),
        ([REF, "--sbom", "out"], "--sbom needs --deep: the SBOM is read from the layers"),
        (
            [REF, REF, "--deep", "--sbom", "out"],
            "--sbom describes one image; 2 references were given",
        ),
        ([REF, "--key", "k.pem"], NEEDS_ATTEST),
        ([REF, "--create-key"], NEEDS_ATTEST),
        ([REF, "--kms", "k"], NEEDS_ATTEST),
    ],
)
def test_usage_errors_exit_2_with_one_message(
    args: list[str], message: str, verify_refusal: Callable[[list[str]], str]
) -> None:
    assert verify_refusal([*args, "--json"]) == f"verify: {message}\n"


def test_option_values_at_their_bounds_are_accepted(tmp_path: Path) -> None:
    assert [cli._parse_size(text) for text in ("1", " 2KiB ", "3MiB", "1GiB", "1TiB")] == [
        1,
        2 << 10,
        3 << 20,
        1 << 30,
        1 << 40,
    ]
    assert [cli._parse_seconds(text) for text in ("0.001", "900", "1e6")] == [0.001, 900, 1e6]
    realms = [" Auth.Example.COM. ", "token-1.example", "127.0.0.2", "::1"]
    assert cli._parse_trusted_realms(realms) == {
        "auth.example.com",
        "token-1.example",
        "127.0.0.2",
        "::1",
    }
    refs = cli._parse_refs([REF])
    assert cli._check_sbom(None, False, refs) is None
    assert cli._check_sbom(str(tmp_path / "out"), True, refs) == tmp_path / "out"
    assert not (tmp_path / "out").exists()  # checked here, made once there is an SBOM


class _Logins:
    """A CredentialResolver that answers every registry with its name."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def for_registry(self, registry: str) -> str:
        self.asked.append(registry)
        return f"login for {registry}"


@pytest.mark.parametrize(
    ("gcp", "environment", "handed"),
    [
        (False, {}, None),  # Docker reads its own config: nothing is handed to docker pull
        (True, {}, "login for 127.0.0.1:5000"),
        (False, {"REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": "p"}, "login for 127.0.0.1:5000"),
    ],
    ids=["docker-config", "gcp", "environment"],
)
def test_a_run_hands_docker_pull_only_a_login_from_gcp_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, gcp: bool, environment: dict[str, str], handed: str | None
) -> None:
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    given: list[dict[str, object]] = []

    def run_verified(*arguments: object) -> dict[object, object]:
        given.append(dict(arguments[3]))  # type: ignore[call-overload]
        return {}

    monkeypatch.setattr(verify_run, "run_verified", run_verified)
    logins = _Logins()
    refs = [ref for _, ref in cli._parse_refs([REF])]
    options = verify_run.RunOptions(probe=Probe("tcp", 1), env=(), timeout=5, jobs=1)
    assert cli._run_images([], refs, options, logins, gcp) == {}  # type: ignore[arg-type]
    assert given == [{"127.0.0.1:5000": handed}]
    assert logins.asked == ([] if handed is None else ["127.0.0.1:5000"])


def test_sigterm_while_the_registry_is_read_ends_the_run_at_once_with_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process (the process test's twin): the worker is still reading, the main thread's
    SIGTERM ends the run without waiting for it."""
    released = threading.Event()

    def hang(_verifier: Verifier, refs: list[tuple[str, object]]) -> list[ImageResult]:
        released.wait(5)
        return [ImageResult(ref=text) for text, _ in refs]

    monkeypatch.setattr(Verifier, "verify_all", hang)
    monkeypatch.setattr(os, "_exit", hard_stop)
    clean_environment(monkeypatch, tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(HardStop) as stopped:
            cli.main([f"127.0.0.1:{closed_port()}/a:1", "--timeout", "60"])
    finally:
        timer.cancel()
        released.set()
    assert stopped.value.args == (cli.EXIT_INTERRUPTED,) == (130,)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "verify: interrupted\n")
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("published", "verify.published"),
        ("gc", "verify.gc"),
        ("attestations", "verify.attest.check"),
        ("binauthz", "verify.attest.binauthz"),
        ("attest-index", "verify.attest.join"),
    ],
)
def test_each_subcommand_gets_the_arguments_after_its_name(
    command: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def subcommand(argv: list[str]) -> int:
        seen.append(list(argv))
        return 7

    monkeypatch.setattr(importlib.import_module(module), "main", subcommand)
    assert cli.main([command, "a", "--b"]) == 7
    assert seen == [["a", "--b"]]


FAILED_RUN = verify_run.RunResult(False, "tcp:1", 1.5, exit_code=3, reason="exited", log_tail=["x"])
PASSED_RUN = verify_run.RunResult(True, "tcp:1", 1.5)


@pytest.mark.parametrize(
    ("outcome", "code", "err"),
    [
        ({(0, "linux/amd64"): PASSED_RUN}, 0, ""),
        (
            {(0, "linux/amd64"): PASSED_RUN, (0, "linux/arm64"): FAILED_RUN},
            1,
            "verify: REF: linux/arm64: run failed (tcp:1): exited\n"
            "verify: REF: linux/arm64: log: x\n",
        ),
        (AuthError("no login for r"), 2, "verify: --run: no login for r\n"),
        (KeyboardInterrupt(), 130, "verify: interrupted; the run's containers were removed\n"),
        (RuntimeError("a bug in --run"), 2, "verify: internal error in --run (see the traceback"),
    ],
    ids=["passed", "failed", "login-refused", "interrupted", "bug"],
)
def test_run_outcomes_set_the_exit_code_and_say_why(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    outcome: object,
    code: int,
    err: str,
) -> None:
    """--run after checks that passed (faked): what the run of each platform comes to."""
    ref = f"127.0.0.1:{closed_port()}/a:1"
    passed = [ImageResult(ref=ref, digest="sha256:00")]
    asked: list[tuple[object, ...]] = []

    def run_verified(*arguments: object) -> object:
        asked.append(arguments[:3])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(Verifier, "verify_all", lambda _verifier, _refs: passed)
    checked: list[list[str]] = []
    monkeypatch.setattr(
        verify_run, "check_prerequisites", lambda ps: checked.append([str(p) for p in ps])
    )
    monkeypatch.setattr(verify_run, "run_verified", run_verified)
    clean_environment(monkeypatch, tmp_path)

    assert cli.main([ref, "--json", "--run", "--probe", "tcp:1", "--jobs", "2"]) == code

    captured = capsys.readouterr()
    expected = err.replace("REF", ref)
    if code == 2 and "traceback" in err:
        assert captured.err.startswith("Traceback (most recent call last):\n"), captured.err
        assert captured.err.endswith(expected + " above)\n"), captured.err
    else:
        assert captured.err == expected
    reference = cli._parse_refs([ref])[0][1]
    options = verify_run.RunOptions(
        probe=Probe("tcp", 1), env=(), timeout=verify_run.DEFAULT_TIMEOUT, jobs=2
    )
    assert asked == [(passed, [reference], options)]
    assert checked == [["linux/amd64", "linux/arm64"]]


def _two_images_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runs: dict[tuple[int, str], object]
) -> list[str]:
    """Two references that pass the checks (faked, with both platforms), then ``runs`` as what
    --run comes to; the references."""
    port = closed_port()
    refs = [f"127.0.0.1:{port}/shop/{name}:1" for name in ("cart", "ad")]
    platforms = {
        name: PlatformResult(digest="sha256:" + digit * 64, config_architecture=name[6:])
        for name, digit in (("linux/amd64", "a"), ("linux/arm64", "b"))
    }

    def verify_all(_verifier: Verifier, given: list[tuple[str, object]]) -> list[ImageResult]:
        return [
            ImageResult(ref=text, digest="sha256:" + "c" * 64, platforms=dict(platforms))
            for text, _ in given
        ]

    monkeypatch.setattr(Verifier, "verify_all", verify_all)
    monkeypatch.setattr(verify_run, "check_prerequisites", lambda _platforms: None)
    monkeypatch.setattr(verify_run, "run_verified", lambda *_arguments: runs)
    clean_environment(monkeypatch, tmp_path)
    return refs


def test_each_images_runs_are_reported_under_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json of two references: a list (indented by 2), each platform with its own run."""
    seconds = {(0, "linux/amd64"): 1.0, (0, "linux/arm64"): 2.0, (1, "linux/amd64"): 3.0}
    runs: dict[tuple[int, str], object] = {
        key: verify_run.RunResult(True, "tcp:1", value) for key, value in seconds.items()
    }
    refs = _two_images_run(monkeypatch, tmp_path, runs)

    assert cli.main([*refs, "--json", "--run", "--probe", "tcp:1"]) == 0

    out = capsys.readouterr().out
    assert out.startswith('[\n  {\n    "ref": ')
    reports = json.loads(out)
    assert [report["ref"] for report in reports] == refs
    ran = {
        (index, platform): details["run"]
        for index, report in enumerate(reports)
        for platform, details in report["platforms"].items()
        if "run" in details  # a platform that was not started has none
    }
    assert ran == {
        key: {"ok": True, "probe": "tcp:1", "seconds": value, "exitCode": None, "logTail": []}
        for key, value in seconds.items()
    }


def test_a_failed_run_is_said_under_its_own_image_and_the_other_is_summarised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs: dict[tuple[int, str], object] = {
        (0, "linux/amd64"): PASSED_RUN,
        (0, "linux/arm64"): PASSED_RUN,
        (1, "linux/amd64"): PASSED_RUN,
        (1, "linux/arm64"): FAILED_RUN,
    }
    refs = _two_images_run(monkeypatch, tmp_path, runs)

    assert cli.main([*refs, "--run", "--probe", "tcp:1"]) == 1

    captured = capsys.readouterr()
    assert [line.split("@")[0] for line in captured.out.splitlines()] == [f"verified {refs[0]}"]
    assert captured.err == (
        f"verify: {refs[1]}: linux/arm64: run failed (tcp:1): exited\n"
        f"verify: {refs[1]}: linux/arm64: log: x\n"
    )


def test_a_run_with_gcp_hands_docker_pull_the_application_default_login(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--run --gcp`` through main: the login docker pull gets is the one Application Default
    Credentials gave (Google's side faked: no network here), asked for once."""
    ref = f"127.0.0.1:{closed_port()}/a:1"
    login = Credentials("oauth2accesstoken", "ya29.token", "--gcp")
    asked: list[int] = []

    def adc() -> Credentials:
        asked.append(1)
        return login

    handed: list[object] = []

    def run_verified(*arguments: object) -> dict[object, object]:
        handed.append(arguments[3])
        return {(0, "linux/amd64"): PASSED_RUN}

    monkeypatch.setattr(verify_auth, "gcp_credentials", adc)
    monkeypatch.setattr(
        Verifier, "verify_all", lambda _verifier, refs: [ImageResult(ref=ref, digest="sha256:00")]
    )
    monkeypatch.setattr(verify_run, "check_prerequisites", lambda _platforms: None)
    monkeypatch.setattr(verify_run, "run_verified", run_verified)
    clean_environment(monkeypatch, tmp_path)

    assert cli.main([ref, "--gcp", "--json", "--run", "--probe", "tcp:1"]) == 0

    assert handed == [{ref.rpartition("/")[0]: login}]
    assert asked == [1]


@pytest.mark.parametrize("gcp", [False, True], ids=["docker-login", "gcp"])
def test_the_arguments_reach_the_verifier_and_its_registry_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gcp: bool
) -> None:
    verifiers: list[Verifier] = []

    def record(verifier: Verifier, refs: list[tuple[str, object]]) -> list[ImageResult]:
        verifiers.append(verifier)
        return [ImageResult(ref=text, digest="sha256:00") for text, _ in refs]

    monkeypatch.setattr(Verifier, "verify_all", record)
    clean_environment(monkeypatch, tmp_path)
    argv = [REF, "--platform", "linux/arm64", "--deep", "--allow", "/opt/*"]
    argv += ["--max-layer-bytes", "1KiB", "--trust-realm", "Auth.Example", "--timeout", "30"]
    started = time.monotonic()

    assert cli.main([*argv, "--gcp"] if gcp else argv) == 0

    [verifier] = verifiers
    assert verifier._options == cli.Options(
        platforms=(cli.parse_platform("linux/arm64"),),
        deep=True,
        allow=("/opt/*",),
        sbom=False,
        max_layer_bytes=1024,
    )
    assert verifier._layer_pool._max_workers == cli.LAYER_WORKERS
    client = verifier._client
    assert client._credentials._use_gcp is gcp
    assert client._trusted_realms == {"auth.example"}
    assert client._run_limit == "--timeout 30 s"
    assert started + 30 <= client._run_deadline <= time.monotonic() + 30
    assert client._http.connection_pool_kw["maxsize"] == cli.LAYER_WORKERS + 8


def test_a_usage_error_of_python_m_verify_exits_2_with_one_message() -> None:
    result = run(REF, "--attest", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        result.stderr == "verify: --attest needs --deep: the attestations carry the layers' SBOM\n"
    )


def test_a_platform_named_twice_is_required_once() -> None:
    ref = f"127.0.0.1:{closed_port()}/a:1"
    result = run(ref, "--platform", "linux/arm64", "--platform", "linux/arm64/v8", "--deep")
    assert result.returncode == 2
    assert result.stderr.startswith(f"verify: {ref}: linux/arm64: manifest 1: connection failed")


def test_half_set_credentials_are_refused_before_any_request() -> None:
    # Nothing listens on the port: had a request been made, the error would be a connection one.
    result = run(f"127.0.0.1:{closed_port()}/a:1", REGISTRY_USERNAME="alice")
    assert result.returncode == 2
    assert result.stderr == (
        "verify: REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not; set both or neither\n"
    )


def test_unreachable_registry_is_retried_then_exit_2() -> None:
    ref = f"127.0.0.1:{closed_port()}/boutique/frontend:v1"
    result = run(ref, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"verify: {ref}: linux/amd64, linux/arm64: manifest v1: ")
    assert "Connection refused" in result.stderr
    assert result.stderr.rstrip().endswith("(gave up after 4 tries)")


def test_argparse_errors_exit_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "the following arguments are required: REF" in result.stderr


DIGEST = "sha256:" + "a" * 64
PINNED = f"127.0.0.1:1/a:1@{DIGEST}"


PUBLISHED_USAGE_ERRORS = [
    (["127.0.0.1:1/a:1"], "'127.0.0.1:1/a:1' names no digest (HOST/REPO[:TAG]@DIGEST)"),
    ([PINNED, "--immutable"], "--immutable takes HOST/REPO:TAG (no digest: none is built yet)"),
    (
        [f"127.0.0.1:1/a@{DIGEST}", "--immutable"],
        "--immutable takes HOST/REPO:TAG (no digest: none is built yet)",
    ),
    (
        [PINNED, "--manifest", "linux/amd64"],
        "--manifest 'linux/amd64' is not PLATFORM=sha256:<hex>",
    ),
    (
        [PINNED, "--manifest", "linux/amd64=md5:1"],
        "--manifest 'linux/amd64=md5:1' is not PLATFORM=sha256:<hex>",
    ),
    (
        [PINNED, "--manifest", "linux=sha256:1"],
        "--manifest 'linux=sha256:1': platform 'linux' is not valid; expected "
        "os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8",
    ),
]


@pytest.mark.parametrize(("args", "message"), PUBLISHED_USAGE_ERRORS)
def test_published_usage_errors_exit_2_before_any_request(args: list[str], message: str) -> None:
    # Nothing listens on port 1: a request would have been a connection error instead.
    result = run("published", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"verify published: {args[0]}: {message}\n"


@pytest.mark.parametrize(("args", "message"), PUBLISHED_USAGE_ERRORS)
def test_in_process_published_usage_errors_exit_2_before_any_request(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert published.main(args) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"verify published: {args[0]}: {message}\n")


PUBLISHED_USAGE = """\
usage: python -m verify published [-h] [--manifest PLATFORM=DIGEST]
                                  [--immutable] [--index-urn INDEX_URN]
                                  [--replace URN] [--gcp]
                                  REF
"""


def test_published_help_names_every_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert help_of(published.main, capsys, monkeypatch) == PUBLISHED_USAGE + (
        "\n"
        "Check that an exported tag still points at the exported digest, that the\n"
        "digest exists and holds the verified manifests.\n"
        "\n"
        "positional arguments:\n"
        "  REF                   HOST/REPO:TAG@DIGEST, HOST/REPO@DIGEST or\n"
        "                        HOST/REPO:TAG (with --immutable)\n"
        "\n"
        "options:\n"
        "  -h, --help            show this help message and exit\n"
        "  --manifest PLATFORM=DIGEST\n"
        "                        a verified platform manifest the digest must hold\n"
        "                        (repeatable)\n"
        "  --immutable           new images are built for this tag in an immutable\n"
        "                        repository: it must not exist\n"
        "  --index-urn INDEX_URN\n"
        "                        URN of the Index that publishes the tag\n"
        "  --replace URN         a resource to replace when the digest is lost\n"
        "                        (repeatable)\n"
        "  --gcp                 authenticate with Application Default Credentials\n"
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "the following arguments are required: REF"),
        (["--manifest"], "argument --manifest: expected one argument"),
        (["--replace"], "argument --replace: expected one argument"),
    ],
)
def test_published_argument_errors_exit_2_with_the_usage(
    args: list[str],
    complaint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exited:
        published.main(args)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"{PUBLISHED_USAGE}python -m verify published: error: {complaint}\n"


LOGIN = ("ci", "pw-3e81f0")


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A registry that serves nothing without its basic login, holding an exported two-platform
    index at tag v1: `HOST/REPO:v1@DIGEST` and its `--manifest PLATFORM=DIGEST` arguments. No
    login is configured (no REGISTRY_* variables, an empty Docker config)."""
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    registry = HostileRegistry(basic=LOGIN).start()
    try:
        image = registry.image("shop/app", "v1", {"amd64": [b"amd64"], "arm64": [b"arm64"]})
        digest = sha256_digest(image.index)
        registry.put(f"/v2/shop/app/manifests/{digest}", image.index, OCI_INDEX)
        manifests = [
            f"--manifest=linux/{arch}={sha256_digest(manifest)}"
            for arch, manifest in image.manifests.items()
        ]
        yield f"{registry.address}/shop/app:v1@{digest}", manifests
    finally:
        registry.stop()


def test_in_process_published_logs_in_and_prints_the_ref_and_its_digest(
    exported: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref, manifests = exported
    host = ref.split("/", 1)[0]
    assert published.main([ref, *manifests]) == 2
    refused = capsys.readouterr()
    assert (refused.out, refused.err) == (
        "",
        f"verify published: {ref}: {host} requires credentials and none were found (set "
        "REGISTRY_USERNAME/REGISTRY_PASSWORD, log in with docker, or pass --gcp)\n",
    )
    monkeypatch.setenv("REGISTRY_USERNAME", LOGIN[0])
    monkeypatch.setenv("REGISTRY_PASSWORD", LOGIN[1])
    assert published.main([ref, *manifests]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == json.dumps({"ref": ref, "digest": ref.rpartition("@")[2]}) + "\n"


def test_in_process_published_with_gcp_logs_in_with_application_default_credentials(
    exported: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--gcp asks Application Default Credentials for the login, not REGISTRY_* (set here):
    ADC that fail (no such key file) are the error."""
    ref, manifests = exported
    monkeypatch.setenv("REGISTRY_USERNAME", LOGIN[0])
    monkeypatch.setenv("REGISTRY_PASSWORD", LOGIN[1])
    adc = tmp_path / "no-adc.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    assert published.main([ref, *manifests, "--gcp"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    failed = f"verify published: {ref}: --gcp: Application Default Credentials failed: "
    assert captured.err.startswith(failed), captured.err
    assert str(adc) in captured.err and captured.err.count("\n") == 1


def test_verify_help_names_every_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m verify --help`, whole: the contract every Command and workflow relies on."""
    assert help_of(cli.main, capsys, monkeypatch) == (
        "usage: python -m verify [-h] [--platform OS/ARCH[/VARIANT]] [--deep] [--json]\n"
        "                        [--allow GLOB] [--sbom DIR]\n"
        "                        [--sbom-format {spdx,cyclonedx}] [--attest]\n"
        "                        [--key PEM] [--kms KEY_VERSION] [--create-key] [--gcp]\n"
        "                        [--run] [--probe PROBE] [--env NAME=VALUE]\n"
        "                        [--skip-run OS/ARCH] [--run-timeout SECONDS]\n"
        "                        [--jobs N] [--trust-realm HOST]\n"
        "                        [--max-layer-bytes SIZE] [--timeout SECONDS]\n"
        "                        REF [REF ...]\n"
        "\n"
        "Prove that images are really multi-arch: index platforms, image configs and\n"
        "(with --deep) the ELF machine of every binary in every layer.\n"
        "\n"
        "positional arguments:\n"
        "  REF                   host[:port]/repository:tag or\n"
        "                        host[:port]/repository@sha256:<hex>\n"
        "\n"
        "options:\n"
        "  -h, --help            show this help message and exit\n"
        "  --platform OS/ARCH[/VARIANT]\n"
        "                        required platform (repeatable; default linux/amd64 and\n"
        "                        linux/arm64)\n"
        "  --deep                scan every layer's ELF headers\n"
        "  --json                print the result as JSON on stdout\n"
        "  --allow GLOB          absolute-path glob of files allowed to be ELF for\n"
        "                        another machine (repeatable)\n"
        "  --sbom DIR            with --deep: write one SBOM per platform into DIR\n"
        "                        (linux-amd64.spdx.json, ...)\n"
        "  --sbom-format {spdx,cyclonedx}\n"
        "                        SPDX 2.3 JSON (default) or CycloneDX 1.6 JSON\n"
        "  --attest              with --deep, after every check passed: push signed\n"
        "                        SBOM and verification attestations (DSSE, in-toto) as\n"
        "                        OCI referrers of the digests\n"
        "  --key PEM             ECDSA P-256 private key (PEM) that signs with --attest\n"
        "  --kms KEY_VERSION     sign with Cloud KMS: projects/P/locations/L/keyRings/R\n"
        "                        /cryptoKeys/K/cryptoKeyVersions/N\n"
        "                        (EC_SIGN_P256_SHA256; Application Default Credentials)\n"
        "  --create-key          create the --key file (and PEM.pub) if it does not\n"
        "                        exist yet\n"
        "  --gcp                 authenticate with Google Application Default\n"
        "                        Credentials (Artifact Registry)\n"
        "  --trust-realm HOST    a token-service host (not the registry's host or\n"
        "                        domain) that may receive the registry credentials\n"
        "                        (repeatable)\n"
        "  --max-layer-bytes SIZE\n"
        "                        uncompressed bytes read from one layer at most: a\n"
        "                        number, optionally with KiB, MiB, GiB or TiB (default\n"
        "                        64GiB)\n"
        "  --timeout SECONDS     seconds the whole run may take (default 900)\n"
        "\n"
        "runtime proof (--run):\n"
        "  --run                 after the static checks pass, start each platform's\n"
        "                        image (by digest, with the local Docker Engine; the\n"
        "                        foreign platform through QEMU) and apply --probe\n"
        "  --probe PROBE         with --run: grpc:PORT, http:PORT/PATH, tcp:PORT or\n"
        "                        up:SECONDS\n"
        "  --env NAME=VALUE      with --run: environment of the container (repeatable)\n"
        "  --skip-run OS/ARCH    with --run: a verified platform not to start\n"
        "                        (repeatable)\n"
        "  --run-timeout SECONDS\n"
        "                        with --run: seconds each container has to pass its\n"
        "                        probe (default 180)\n"
        "  --jobs N              with --run: platforms started at once (default: the\n"
        "                        number of CPUs)\n"
    )


def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


def test_a_bug_in_the_checks_exits_2_with_its_own_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checks run in a worker thread; what it raises is raised again in the main thread,
    where it is reported as an internal error (exit 2, never 1: not a verdict on the image)."""

    def fail(_verifier: Verifier, _refs: object) -> list[ImageResult]:
        raise RuntimeError("a bug in the checks")

    monkeypatch.setattr(Verifier, "verify_all", fail)
    clean_environment(monkeypatch, tmp_path)

    assert cli.main([f"127.0.0.1:{closed_port()}/a:1"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("Traceback (most recent call last):\n"), captured.err
    assert captured.err.endswith(
        "RuntimeError: a bug in the checks\nverify: internal error (see the traceback above)\n"
    ), captured.err


class HardStop(BaseException):
    """Raised in place of ``os._exit``, which would end pytest too."""


def hard_stop(code: int) -> None:
    raise HardStop(code)


@pytest.mark.parametrize(
    ("requests", "busy"),
    [
        ([], ["layer scans"]),
        (
            # (what, opened how long ago, bytes read): listed oldest first
            [("manifest v1", 1.6, 120), ("layer sha256:ab", 6.6, 4096)],
            [
                "layer sha256:ab from r.example (4096 bytes in 7 s)",
                "manifest v1 from r.example (120 bytes in 2 s)",
            ],
        ),
    ],
)
def test_past_the_timeout_and_its_grace_the_process_exits_2_naming_what_is_busy(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    requests: list[tuple[str, float, int]],
    busy: list[str],
) -> None:
    """Work no deadline interrupts holds the worker thread: the run stops itself with os._exit,
    one line per request still open (oldest first), or the layer scans when none is."""
    released = threading.Event()

    def hang(verifier: Verifier, refs: list[tuple[str, object]]) -> list[ImageResult]:
        with contextlib.ExitStack() as stack:
            for what, age, bytes_read in requests:
                watchdog = verifier._client.watchdog
                watch = stack.enter_context(
                    watchdog.watch(what, "r.example", time.monotonic() + 60, "")
                )
                watch.started, watch.bytes_read = time.monotonic() - age, bytes_read
            released.wait(2)  # bounded: a run that waited for the worker would end, not hang
        return [ImageResult(ref=text) for text, _ in refs]

    monkeypatch.setattr(Verifier, "verify_all", hang)
    monkeypatch.setattr(cli, "STOP_GRACE_SECONDS", 0.25)
    monkeypatch.setattr(os, "_exit", hard_stop)
    clean_environment(monkeypatch, tmp_path)

    try:
        with pytest.raises(HardStop) as stopped:
            cli.main([f"127.0.0.1:{closed_port()}/a:1", "--timeout", "0.05"])
    finally:
        released.set()

    assert stopped.value.args == (2,)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "".join(
        f"verify: --timeout 0.05 s reached; still busy with {item}\n" for item in busy
    )


def test_a_run_ending_within_the_grace_after_its_timeout_reports_its_verdict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--timeout cuts requests; the hard stop waits a grace past it for the run to say so."""

    def slow(_verifier: Verifier, refs: list[tuple[str, object]]) -> list[ImageResult]:
        time.sleep(0.2)
        return [ImageResult(ref=text, digest="sha256:00") for text, _ in refs]

    monkeypatch.setattr(Verifier, "verify_all", slow)
    monkeypatch.setattr(os, "_exit", hard_stop)
    clean_environment(monkeypatch, tmp_path)
    ref = f"127.0.0.1:{closed_port()}/a:1"

    assert cli.main([ref, "--timeout", "0.05"]) == 0

    captured = capsys.readouterr()
    assert captured.out == f"verified {ref}@sha256:00: ; 0 attestation manifest(s) skipped\n"
    assert captured.err == ""
