"""Credential sources and WWW-Authenticate parsing; helpers are real executables in a tmp dir."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gcp_fakes import CLOUD_PLATFORM, application_default_credentials
from tests.hostile_registry import HostileRegistry
from tests.test_verify_cli import REPO
from verify import auth
from verify.auth import (
    AuthError,
    Challenge,
    CredentialResolver,
    Credentials,
    docker_config_credentials,
    docker_config_path,
    environment_credentials,
    parse_challenges,
    realm_may_receive_credentials,
    registrable_domain,
)
from verify.digests import sha256_digest
from verify.reference import parse_reference
from verify.registry import RegistryClient

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:a/b:pull,push"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.example/token",
                        "service": "registry.example",
                        "scope": "repository:a/b:pull,push",
                    },
                )
            ],
        ),
        ('Basic realm="boutique tests"', [Challenge("basic", {"realm": "boutique tests"})]),
        ("Basic realm=plain", [Challenge("basic", {"realm": "plain"})]),
        (
            'Basic realm="a", Bearer realm="http://127.0.0.1:9/t", service=reg',
            [
                Challenge("basic", {"realm": "a"}),
                Challenge("bearer", {"realm": "http://127.0.0.1:9/t", "service": "reg"}),
            ],
        ),
        ('Bearer Realm="with \\"quote\\""', [Challenge("bearer", {"realm": 'with "quote"'})]),
        ("Negotiate", [Challenge("negotiate", {})]),
        ("", []),
    ],
)
def test_www_authenticate_parsing(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_credentials_repr_hides_the_secret() -> None:
    credentials = Credentials("user", SECRET, "test")
    assert SECRET not in repr(credentials)
    assert (
        credentials.basic_header()
        == "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
    )


def test_environment_credentials_need_both_variables() -> None:
    assert environment_credentials({}) is None
    found = environment_credentials({"REGISTRY_USERNAME": "u", "REGISTRY_PASSWORD": SECRET})
    assert found == Credentials("u", SECRET, "REGISTRY_USERNAME/REGISTRY_PASSWORD")
    assert environment_credentials({"REGISTRY_USERNAME": "", "REGISTRY_PASSWORD": ""}) is None
    for present, missing in (
        ("REGISTRY_PASSWORD", "REGISTRY_USERNAME"),
        ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"),
    ):
        with pytest.raises(AuthError) as raised:
            environment_credentials({present: SECRET, missing: ""})
        assert str(raised.value) == f"{present} is set but {missing} is not; set both or neither"


def _write_config(directory: Path, config: dict[str, object]) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return {"DOCKER_CONFIG": str(directory), "PATH": str(directory)}


def _write_helper(directory: Path, name: str, body: str) -> None:
    helper = directory / f"docker-credential-{name}"
    helper.write_text(f"#!/bin/sh\n{body}\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)


def test_docker_config_auths_in_all_key_forms(tmp_path: Path) -> None:
    encoded = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    environ = _write_config(
        tmp_path,
        {
            "auths": {
                "https://r1.example/v1/": {"auth": encoded},
                "r2.example:5000": {"username": "bob", "password": SECRET},
                "r3.example": {},
            }
        },
    )
    first = docker_config_credentials("r1.example", environ)
    assert first is not None and (first.username, first.password) == ("alice", SECRET)
    second = docker_config_credentials("r2.example:5000", environ)
    assert second is not None and second.username == "bob"
    assert docker_config_credentials("r3.example", environ) is None
    assert docker_config_credentials("elsewhere.example", environ) is None


def test_credential_helper_is_run_with_the_host_on_stdin(tmp_path: Path) -> None:
    # The helper answers only for the host it reads on stdin, proving the protocol is followed.
    _write_helper(
        tmp_path,
        "fake",
        'read host; if [ "$1" = get ] && [ "$host" = "r.example" ]; then '
        f'echo \'{{"ServerURL":"r.example","Username":"helper-user","Secret":"{SECRET}"}}\'; '
        'else echo "credentials not found in native keychain"; exit 1; fi',
    )
    environ = _write_config(tmp_path, {"credHelpers": {"r.example": "fake"}, "credsStore": "fake"})
    found = docker_config_credentials("r.example", environ)
    assert found == Credentials("helper-user", SECRET, "credential helper docker-credential-fake")
    # credsStore serves every other host; this helper holds nothing for them.
    assert docker_config_credentials("other.example", environ) is None


def test_failing_helper_is_an_error_that_does_not_echo_its_output(tmp_path: Path) -> None:
    _write_helper(tmp_path, "broken", f"echo 'leaked {SECRET}'; exit 3")
    environ = _write_config(tmp_path, {"credsStore": "broken"})
    with pytest.raises(AuthError, match="exited with 3") as raised:
        docker_config_credentials("r.example", environ)
    assert SECRET not in str(raised.value)


def test_missing_helper_is_named(tmp_path: Path) -> None:
    environ = _write_config(tmp_path, {"credHelpers": {"r.example": "absent"}})
    with pytest.raises(AuthError, match=r"docker-credential-absent .* not on PATH"):
        docker_config_credentials("r.example", environ)


def test_identity_tokens_are_refused_clearly(tmp_path: Path) -> None:
    _write_helper(tmp_path, "oauth", 'echo \'{"Username":"<token>","Secret":"refresh"}\'')
    environ = _write_config(tmp_path, {"credsStore": "oauth"})
    with pytest.raises(AuthError, match="identity token"):
        docker_config_credentials("r.example", environ)


def test_unreadable_docker_config_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(AuthError, match=re.escape(str(tmp_path / "config.json"))):
        docker_config_credentials("r.example", {"DOCKER_CONFIG": str(tmp_path)})


def test_docker_config_is_read_as_utf_8_whatever_the_locale(tmp_path: Path) -> None:
    """Docker writes config.json in UTF-8; a process in the C locale (ASCII, no UTF-8 mode, as
    in a minimal container) still reads a non-ASCII user name from it."""
    config = {"auths": {"r.example": {"username": "jérôme", "password": SECRET}}}
    (tmp_path / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    reader = (
        "import json, sys\n"
        "from verify.auth import docker_config_credentials\n"
        "found = docker_config_credentials('r.example', {'DOCKER_CONFIG': sys.argv[1]})\n"
        "print(json.dumps(found and found.username))\n"
    )
    locale = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    result = subprocess.run(
        [sys.executable, "-c", reader, str(tmp_path)],
        cwd=REPO,
        env={**os.environ, **locale},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, '"j\\u00e9r\\u00f4me"\n'), result.stderr


def test_resolver_prefers_environment_over_docker_config(tmp_path: Path) -> None:
    environ = _write_config(
        tmp_path, {"auths": {"r.example": {"username": "cfg", "password": "x"}}}
    )
    resolver = CredentialResolver(use_gcp=False, environ=environ)
    assert resolver.for_registry("r.example") == Credentials(
        "cfg", "x", f"{tmp_path}/config.json auths['r.example']"
    )
    with_env = {**environ, "REGISTRY_USERNAME": "env", "REGISTRY_PASSWORD": SECRET}
    resolver = CredentialResolver(use_gcp=False, environ=with_env)
    found = resolver.for_registry("r.example")
    assert found is not None and found.username == "env"


def test_gcp_reports_failing_application_default_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ADC file of an unknown type makes google-auth fail before any network access.
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps({"type": "not-a-credential-type"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    resolver = CredentialResolver(use_gcp=True, environ=dict(os.environ))
    with pytest.raises(AuthError, match="--gcp: Application Default Credentials failed"):
        resolver.for_registry("europe-docker.pkg.dev")


def test_gcp_logs_in_with_an_access_token_for_the_cloud_platform_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with application_default_credentials(tmp_path, "ya29.adc-5b17", monkeypatch) as tokens:
        found = CredentialResolver(use_gcp=True, environ={}).for_registry("europe-docker.pkg.dev")
    assert found == Credentials(
        "oauth2accesstoken", "ya29.adc-5b17", "Application Default Credentials (--gcp)"
    )
    # The token was asked for once, for the scope Artifact Registry accepts.
    assert tokens.scopes == [CLOUD_PLATFORM]


def test_gcp_refuses_an_empty_access_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        application_default_credentials(tmp_path, "", monkeypatch),
        pytest.raises(AuthError) as raised,
    ):
        CredentialResolver(use_gcp=True, environ={}).for_registry("europe-docker.pkg.dev")
    assert str(raised.value) == "--gcp: Application Default Credentials returned no access token"


@pytest.mark.parametrize(
    ("realm", "registry", "trusted", "allowed"),
    [
        ("registry.example", "registry.example", (), True),  # the registry's own host
        ("REGISTRY.example.", "registry.example", (), True),  # case and root dot do not matter
        ("auth.docker.io", "registry-1.docker.io", (), True),  # same registrable domain
        ("europe-docker.pkg.dev", "us-docker.pkg.dev", (), True),
        ("auth.evil.example", "registry.example", (), False),
        ("docker.io.evil.example", "registry-1.docker.io", (), False),
        ("b.appspot.com", "a.appspot.com", (), False),  # a public suffix: other owners
        ("other.co.uk", "registry.co.uk", (), False),
        ("127.0.0.2", "127.0.0.1", (), False),  # IP addresses have no domain
        ("127.0.0.2", "127.0.0.1", ("127.0.0.2",), True),  # --trust-realm
        ("auth.elsewhere.example", "registry.example", ("auth.elsewhere.example",), True),
        ("localhost", "registry.example", (), False),
        ("LOCALHOST.", "localhost", (), True),  # no domain: only the same host
        ("localhost", "LocalHost.", (), True),
        ("10.2.0.1", "10.1.0.1", (), False),  # the same last labels do not make IPs a domain
        ("auth.stra\u00dfe.de", "registry.strasse.de", (), False),  # not the same name
    ],
)
def test_which_token_realms_may_receive_credentials(
    realm: str, registry: str, trusted: tuple[str, ...], allowed: bool
) -> None:
    assert realm_may_receive_credentials(realm, registry, frozenset(trusted)) is allowed


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("u", "pw-\udcff", "the password is not valid UTF-8"),
        ("u\udcfe", "pw", "the username is not valid UTF-8"),
        ("u:v", "pw", "the username contains ':'"),
    ],
)
def test_credentials_that_basic_auth_cannot_carry_are_refused(
    username: str, password: str, message: str
) -> None:
    with pytest.raises(AuthError, match=f"^source: {message}") as raised:
        Credentials(username, password, "source")
    assert password not in str(raised.value)


# Docker config `auths` entries: what each form of entry yields.

COLON_SECRET = "pa:ss:word"  # colons belong to the password, not to the user name


def credentials_of(tmp_path: Path, entry: dict[str, object]) -> Credentials | None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r.example": entry}}))
    return docker_config_credentials("r.example", {"DOCKER_CONFIG": str(tmp_path)})


def test_a_password_may_contain_colons(tmp_path: Path) -> None:
    encoded = base64.b64encode(f"alice:{COLON_SECRET}".encode()).decode()
    found = credentials_of(tmp_path, {"auth": encoded})
    assert found is not None and (found.username, found.password) == ("alice", COLON_SECRET)
    assert str(tmp_path / "config.json") in found.source
    assert found.basic_header() == "Basic " + encoded


def test_plain_fields_serve_when_auth_is_not_a_string(tmp_path: Path) -> None:
    found = credentials_of(tmp_path, {"auth": 5, "username": "bob", "password": COLON_SECRET})
    assert found is not None and (found.username, found.password) == ("bob", COLON_SECRET)
    assert (
        credentials_of(tmp_path, {"auth": "", "username": "bob", "password": COLON_SECRET}) == found
    )


@pytest.mark.parametrize(
    "entry",
    [
        {"username": "", "password": COLON_SECRET},
        {"username": "bob"},
        {"password": COLON_SECRET},
        {"username": 7, "password": COLON_SECRET},
    ],
)
def test_incomplete_plain_fields_give_no_credentials(
    tmp_path: Path, entry: dict[str, object]
) -> None:
    assert credentials_of(tmp_path, entry) is None


def test_an_identity_token_entry_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(AuthError) as raised:
        credentials_of(tmp_path, {"identitytoken": "refresh-token"})
    assert str(tmp_path / "config.json") in str(raised.value)
    assert "refresh-token" not in str(raised.value)


def test_auth_that_is_not_base64_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(AuthError) as raised:
        credentials_of(tmp_path, {"auth": "***not base64***"})
    assert str(tmp_path / "config.json") in str(raised.value)


@pytest.mark.parametrize(
    ("printed", "complaint"),
    [
        ("not json", "printed no Username/Secret JSON"),
        ('{"Username": "u"}', "printed no Username/Secret JSON"),
        ('{"Username": "u", "Secret": 5}', "printed no Username/Secret strings"),
        ('{"Username": 5, "Secret": "s"}', "printed no Username/Secret strings"),
    ],
)
def test_a_helper_answer_without_username_and_secret_strings_is_refused(
    tmp_path: Path, printed: str, complaint: str
) -> None:
    _write_helper(tmp_path, "odd", f"echo '{printed}'")
    environ = _write_config(tmp_path, {"credsStore": "odd"})
    with pytest.raises(AuthError) as raised:
        docker_config_credentials("r.example", environ)
    assert str(raised.value) == f"credential helper docker-credential-odd {complaint}"


def test_a_helper_that_hangs_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "HELPER_TIMEOUT_SECONDS", 1)
    _write_helper(tmp_path, "slow", f"exec {shutil.which('sleep')} 30")
    environ = _write_config(tmp_path, {"credsStore": "slow"})
    with pytest.raises(AuthError) as raised:
        docker_config_credentials("r.example", environ)
    assert str(raised.value).startswith("credential helper docker-credential-slow failed to run: ")
    assert "timed out after 1 seconds" in str(raised.value)


def test_without_path_a_helper_is_looked_up_in_the_default_path_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tool's own PATH holds the helper; the environment it was given has no PATH.
    _write_helper(tmp_path, "local", 'echo \'{"Username": "u", "Secret": "s"}\'')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    environ = _write_config(tmp_path, {"credsStore": "local"})
    del environ["PATH"]
    with pytest.raises(AuthError) as raised:
        docker_config_credentials("r.example", environ)
    assert (
        str(raised.value)
        == "credential helper docker-credential-local (Docker config) is not on PATH"
    )


def test_docker_config_is_found_in_docker_config_else_home() -> None:
    assert docker_config_path({"DOCKER_CONFIG": "/etc/d", "HOME": "/home/u"}) == Path(
        "/etc/d/config.json"
    )
    assert docker_config_path({"DOCKER_CONFIG": "", "HOME": "/home/u"}) == Path(
        "/home/u/.docker/config.json"
    )
    # Without HOME in the environment it was given: the user's home as Python finds it.
    assert docker_config_path({}) == Path("~").expanduser() / ".docker" / "config.json"


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("Auth.Docker.IO.", "docker.io"),
        ("127.0.0.1", None),
        ("127.0.0.1.", None),
        ("::1", None),
        ("localhost", None),
        ("co.uk", None),
    ],
)
def test_registrable_domains(host: str, domain: str | None) -> None:
    assert registrable_domain(host) == domain


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ([], " is not a JSON object"),
        ({"auths": ["r.example"]}, ": 'auths' is not a JSON object"),
    ],
)
def test_a_docker_config_of_the_wrong_shape_is_refused(
    tmp_path: Path, config: object, complaint: str
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(AuthError) as raised:
        docker_config_credentials("r.example", {"DOCKER_CONFIG": str(tmp_path)})
    assert str(raised.value) == f"Docker config {tmp_path / 'config.json'}{complaint}"


def test_empty_or_malformed_helper_settings_fall_through_to_auths(tmp_path: Path) -> None:
    encoded = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    auths = {"auths": {"r.example": {"auth": encoded}}}
    for helpers in ({"credHelpers": {"r.example": ""}}, {"credHelpers": ["x"]}, {"credsStore": ""}):
        environ = _write_config(tmp_path, {**helpers, **auths})
        found = docker_config_credentials("r.example", environ)
        assert found is not None and (found.username, found.password) == ("alice", SECRET)


def test_the_creds_store_is_asked_for_the_registry_host(tmp_path: Path) -> None:
    _write_helper(
        tmp_path,
        "store",
        'read host; [ "$host" = "r.example" ] && echo \'{"Username": "u", "Secret": "s"}\' '
        "|| { echo 'credentials not found'; exit 1; }",
    )
    environ = _write_config(tmp_path, {"credsStore": "store"})
    assert docker_config_credentials("r.example", environ) == Credentials(
        "u", "s", "credential helper docker-credential-store"
    )


def test_a_basic_challenge_is_answered_with_the_docker_login_for_that_registry(
    tmp_path: Path,
) -> None:
    """The login is looked up for the challenging registry's host:port: the Docker config's
    entry for another port of the same host is not sent (the challenge then has no answer)."""
    registry = HostileRegistry(basic=("alice", SECRET)).start()
    try:
        image = registry.image("shop/app", "v1", {"amd64": [b"a"], "arm64": [b"b"]})
        port = int(registry.address.rpartition(":")[2])
        auths = {
            registry.address: {"username": "alice", "password": SECRET},
            f"127.0.0.1:{port + 1}": {"username": "mallory", "password": "other"},
        }
        environ = _write_config(tmp_path, {"auths": auths})
        client = RegistryClient(CredentialResolver(use_gcp=False, environ=environ))
        ref = parse_reference(f"{registry.address}/shop/app:v1")
        document = client.get_manifest(ref, "v1")
        del auths[registry.address]
        _write_config(tmp_path, {"auths": auths})
        anonymous = RegistryClient(CredentialResolver(use_gcp=False, environ=environ))
        with pytest.raises(AuthError) as refused:
            anonymous.get_manifest(ref, "v1")
    finally:
        registry.stop()
    assert sha256_digest(document.data) == sha256_digest(image.index)
    basic = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert registry.authorizations() == [basic]
    assert str(refused.value) == (
        f"{registry.address} requires credentials and none were found (set "
        "REGISTRY_USERNAME/REGISTRY_PASSWORD, log in with docker, or pass --gcp)"
    )


def _refusal(registry: HostileRegistry, environ: dict[str, str], *others: HostileRegistry) -> str:
    """What refuses reading shop/app:v1 from `registry` with the Docker config `environ` names
    (the AuthError's message); stops `registry` and `others`."""
    client = RegistryClient(CredentialResolver(use_gcp=False, environ=environ))
    try:
        with pytest.raises(AuthError) as refused:
            client.get_manifest(parse_reference(f"{registry.address}/shop/app:v1"), "v1")
    finally:
        for each in (registry, *others):
            each.stop()
    return str(refused.value)


@pytest.mark.parametrize(
    ("header", "quoted"),
    [
        ("Negotiate " + "x" * 190 + "0123456789", "Negotiate " + "x" * 190),
        (None, ""),  # no WWW-Authenticate at all: quoted as empty
    ],
    ids=["unknown-scheme", "no-challenge"],
)
def test_a_401_without_a_usable_challenge_is_refused_quoting_up_to_200_characters(
    tmp_path: Path, header: str | None, quoted: str
) -> None:
    registry = HostileRegistry().start()
    challenge = {} if header is None else {"WWW-Authenticate": header}
    registry.on("/v2/shop/app/manifests/v1", lambda handler: handler.reply(401, b"{}", challenge))
    refused = _refusal(registry, _write_config(tmp_path, {}))
    assert refused == (f"{registry.address} answered 401 with no usable challenge ({quoted!r})")
    assert len(registry.seen) == 1


def test_a_401_from_the_host_a_request_was_redirected_to_is_not_answered(tmp_path: Path) -> None:
    """Its challenge names a token realm of its own: neither that realm nor the host is asked
    again, and the refusal names the host, not the registry."""
    registry = HostileRegistry().start()
    other = HostileRegistry(host="127.0.0.2").start()
    registry.on(
        "/v2/shop/app/manifests/v1",
        lambda handler: handler.reply(307, headers={"Location": f"{other.url}/storage/m"}),
    )
    challenge = f'Bearer realm="{other.url}/token",service="x"'
    other.on("/storage/m", lambda h: h.reply(401, b"{}", {"WWW-Authenticate": challenge}))
    other.on("/token", lambda h: h.reply(200, json.dumps({"token": "stolen"}).encode()))
    environ = _write_config(
        tmp_path, {"auths": {registry.address: {"username": "alice", "password": SECRET}}}
    )
    assert _refusal(registry, environ, other) == (
        f"manifest v1: {other.address}, where {registry.address} redirected the request, asks "
        f"for credentials; they are only ever sent to {registry.address}"
    )
    assert [s.path for s in other.seen] == ["/storage/m"]
    assert other.authorizations() == []


@pytest.mark.parametrize(
    ("status", "login"), [(401, True), (403, False)], ids=["401-login", "403-anonymous"]
)
def test_a_refusal_names_whose_credentials_were_refused_and_the_registrys_error(
    tmp_path: Path, status: int, login: bool
) -> None:
    """A 401 is answered once (here with the Docker login the basic challenge asks for); a
    second 401, like a 403, is a refusal naming where the credentials came from, if any."""
    registry = HostileRegistry().start()
    body = b'{"errors": [{"code": "DENIED", "message": "no"}]}'
    challenge = {"WWW-Authenticate": 'Basic realm="r"'}
    registry.on("/v2/shop/app/manifests/v1", lambda handler: handler.reply(status, body, challenge))
    auths = {registry.address: {"username": "alice", "password": SECRET}} if login else {}
    environ = _write_config(tmp_path, {"auths": auths})
    refused = _refusal(registry, environ)
    who = f"credentials from {tmp_path}/config.json auths[{registry.address!r}]"
    assert refused == (
        f"manifest v1: {who if login else 'anonymous'} refused (HTTP {status}: DENIED no)"
    )
    assert len(registry.seen) == (2 if login else 1)
