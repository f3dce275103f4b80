"""verify.artifacts and gc's argument parsing: hostile API answers are refused with one clear
error, nothing is guessed. A loopback HTTP server plays the API (no mocks)."""

import contextlib
import gzip
import io
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.hostile_registry import OCI_INDEX, OCI_MANIFEST, HostileRegistry
from tests.integration.loopbackserver import (
    address_of,
    never_accepting,
    raised_within,
    reply_json,
    serve,
    shut_down,
)
from tests.verify_bytes import json_bytes
from verify import artifacts
from verify import gc as verify_gc
from verify.artifacts import ApiError, ArtifactRegistryApi, RepositoryPath, Version
from verify.auth import CredentialResolver
from verify.digests import sha256_digest
from verify.gc import GcError, parse_repository
from verify.registry import RegistryClient, RetryPolicy

REPOSITORY = RepositoryPath("p", "europe-west1", "r")
VERSIONS = f"/v1/{REPOSITORY.name}/packages/frontend/versions"
DIGEST = "sha256:" + "a" * 64


class Api:
    """Answers one fixed body per path (with its query, else without), as JSON or as the bytes
    given; records the requests and the Authorization headers it saw."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, object]] = {}
        # Answered in turn (the last one again and again), before `bodies`; a DELETE's key is
        # "DELETE <path>", as `paths` records it.
        self.answers: dict[str, list[tuple[int, object]]] = {}
        self.authorizations: list[str | None] = []
        self.paths: list[str] = []
        self.accepts: list[tuple[str | None, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                self.answer(self.path)

            def do_DELETE(self) -> None:
                self.answer(f"DELETE {self.path}")

            def answer(self, key: str) -> None:
                api.authorizations.append(self.headers.get("Authorization"))
                api.paths.append(key)
                api.accepts.append((self.headers.get("Accept"), self.headers.get("User-Agent")))
                queue = api.answers.get(key)
                found: tuple[int, object] | None
                if queue:
                    found = queue.pop(0) if len(queue) > 1 else queue[0]
                else:
                    found = api.bodies.get(key) or api.bodies.get(key.split("?")[0])
                status, body = found or (404, {})
                if not isinstance(body, bytes):
                    reply_json(self, status, body)
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = serve(Handler)

    def client(self, attempts: int = 1, path: str = "") -> ArtifactRegistryApi:
        return ArtifactRegistryApi(
            REPOSITORY,
            f"http://{address_of(self.server)}{path}",
            token=lambda: pytest.fail("an overridden API URL must not get Google credentials"),
            retry=RetryPolicy(attempts=attempts, base_delay=0.01),
        )


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    shut_down(server.server)


def test_versions_with_nanosecond_times_are_read(api: Api) -> None:
    api.bodies[VERSIONS] = (
        200,
        {
            "versions": [
                {"name": f"x/versions/{DIGEST}", "createTime": "2026-01-02T03:04:05.123456789Z"}
            ]
        },
    )
    (version,) = api.client().versions("frontend")
    assert version.digest == DIGEST
    assert version.created == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert api.authorizations == [None]


LISTED = f"list {VERSIONS[4:]}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"versions": [{"name": "x/versions/latest", "createTime": "2026-01-02T03:04:05Z"}]},
            "version of frontend: version 'latest' is not a sha256 digest",
        ),
        (
            {"versions": [{"name": f"x/versions/{DIGEST}", "createTime": "yesterday"}]},
            "version of frontend: createTime 'yesterday' is not an RFC 3339 time",
        ),
        (
            {"versions": [{"name": f"x/versions/{DIGEST}", "createTime": "2026-01-02T03:04:05"}]},
            "version of frontend: createTime '2026-01-02T03:04:05' has no time zone",
        ),
        (
            {"versions": [{"name": f"x/versions/{DIGEST}"}]},
            "version of frontend: createTime is missing or not a string",
        ),
        (
            {"versions": [{"name": f"x/tags/{DIGEST}", "createTime": "2026-01-02T03:04:05Z"}]},
            f"version of frontend: name 'x/tags/{DIGEST}' is not a .../versions/ID resource name",
        ),
        (
            {"versions": [{"createTime": "2026-01-02T03:04:05Z"}]},
            "version of frontend: name None is not a .../versions/ID resource name",
        ),
        ({"versions": {"name": "x"}}, f"{LISTED}: field 'versions' is not a list of objects"),
        ({"versions": ["x"]}, f"{LISTED}: field 'versions' is not a list of objects"),
        ({"versions": [], "nextPageToken": 7}, f"{LISTED}: nextPageToken is not a string"),
        (["not", "an", "object"], f"{LISTED}: the answer is not a JSON object"),
    ],
)
def test_malformed_answers_are_one_clear_error(api: Api, body: object, message: str) -> None:
    api.bodies[VERSIONS] = (200, body)
    with pytest.raises(ApiError) as raised:
        api.client().versions("frontend")
    assert str(raised.value) == message


def test_listings_follow_next_page_tokens(api: Api) -> None:
    first = {"name": f"x/versions/{DIGEST}", "createTime": "2026-01-02T03:04:05Z"}
    second = {**first, "name": f"x/versions/sha256:{'b' * 64}"}
    api.bodies[VERSIONS + "?pageSize=1000"] = (200, {"versions": [first], "nextPageToken": "n2"})
    api.bodies[VERSIONS + "?pageSize=1000&pageToken=n2"] = (200, {"versions": [second]})
    found = api.client().versions("frontend")
    assert [version.digest for version in found] == [DIGEST, f"sha256:{'b' * 64}"]
    assert api.paths == [VERSIONS + "?pageSize=1000", VERSIONS + "?pageSize=1000&pageToken=n2"]


def test_tags_and_packages_are_read_from_resource_names(api: Api) -> None:
    packages = f"/v1/{REPOSITORY.name}/packages"
    api.bodies[packages] = (200, {"packages": [{"name": "x/packages/team%2Ffrontend"}]})
    tags = f"{packages}/team%2Ffrontend/tags"
    tag = {"name": "x/tags/v1%2B1", "version": f"x/versions/{DIGEST}"}
    api.bodies[tags] = (200, {"tags": [tag]})
    client = api.client()
    assert client.packages() == ["team/frontend"]
    assert client.tags("team/frontend") == {"v1+1": DIGEST}


def test_only_transient_statuses_are_tried_again(api: Api) -> None:
    api.bodies[VERSIONS] = (503, {"error": {"status": "UNAVAILABLE", "message": "later"}})
    with pytest.raises(ApiError) as raised:
        api.client(attempts=3).versions("frontend")
    assert str(raised.value) == f"{LISTED}: HTTP 503: UNAVAILABLE later"
    assert len(api.paths) == 3
    api.paths.clear()
    api.bodies[VERSIONS] = (404, {"error": {"status": "NOT_FOUND"}})
    with pytest.raises(ApiError) as raised:
        api.client(attempts=3).versions("frontend")
    assert str(raised.value) == f"{LISTED}: HTTP 404: NOT_FOUND"
    assert len(api.paths) == 1


def test_an_oversized_answer_is_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_ANSWER_BYTES", 1024)
    api.bodies[VERSIONS] = (200, {"versions": [], "padding": "x" * 2048})
    with pytest.raises(ApiError) as raised:
        api.client().versions("frontend")
    assert str(raised.value) == f"{LISTED}: the answer is larger than 1024 bytes"


def test_an_api_refusal_names_the_status_and_message(api: Api) -> None:
    api.bodies[VERSIONS] = (403, {"error": {"status": "PERMISSION_DENIED", "message": "no"}})
    with pytest.raises(ApiError) as raised:
        api.client().versions("frontend")
    assert str(raised.value) == f"{LISTED}: HTTP 403: PERMISSION_DENIED no"


def test_plain_http_is_for_loopback_only() -> None:
    with pytest.raises(ApiError) as raised:
        ArtifactRegistryApi(REPOSITORY, "http://artifactregistry.example.com")
    assert str(raised.value) == (
        "API URL http://artifactregistry.example.com is plain HTTP off this machine"
    )
    for url in ("ftp://127.0.0.1/", "https:///v1"):
        with pytest.raises(ApiError) as raised:
            ArtifactRegistryApi(REPOSITORY, url)
        assert str(raised.value) == f"API URL {url!r} is not an http(s) URL"


def test_repository_locations_come_from_the_host_or_the_option() -> None:
    host, root, repository = parse_repository("us-east1-docker.pkg.dev/proj/images", None)
    assert (host, root, repository) == (
        "us-east1-docker.pkg.dev",
        "proj/images",
        RepositoryPath("proj", "us-east1", "images"),
    )
    assert parse_repository("127.0.0.1:5000/proj/images", "eu")[2].location == "eu"
    with pytest.raises(GcError) as raised:
        parse_repository("127.0.0.1:5000/proj/images", None)
    assert str(raised.value) == (
        "REPOSITORY host '127.0.0.1:5000' is not LOCATION-docker.pkg.dev; pass --location"
    )
    for text in ("us-east1-docker.pkg.dev/proj/images/frontend", "us-east1-docker.pkg.dev/P/i"):
        with pytest.raises(GcError) as raised:
            parse_repository(text, None)
        assert str(raised.value) == (
            f"REPOSITORY {text!r} is not HOST/PROJECT/REPOSITORY, e.g. "
            "europe-west1-docker.pkg.dev/my-project/online-boutique"
        )


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (
            {"name": "x/v1", "version": f"x/versions/{DIGEST}"},
            "tag of frontend: name 'x/v1' is not a .../tags/ID resource name",
        ),
        (
            {"name": "x/tags/v1", "version": DIGEST},
            f"tag of frontend: name '{DIGEST}' is not a .../versions/ID resource name",
        ),
        (
            {"name": "x/tags/v1", "version": "x/versions/latest"},
            "tag of frontend: version 'latest' is not a sha256 digest",
        ),
    ],
)
def test_a_malformed_tag_names_the_package(api: Api, tag: dict[str, str], message: str) -> None:
    api.bodies[f"/v1/{REPOSITORY.name}/packages/frontend/tags"] = (200, {"tags": [tag]})
    with pytest.raises(ApiError) as raised:
        api.client().tags("frontend")
    assert str(raised.value) == message


def test_a_malformed_package_name_is_refused(api: Api) -> None:
    api.bodies[f"/v1/{REPOSITORY.name}/packages"] = (200, {"packages": [{"name": "frontend"}]})
    with pytest.raises(ApiError) as raised:
        api.client().packages()
    assert str(raised.value) == "package: name 'frontend' is not a .../packages/ID resource name"


@pytest.mark.parametrize(
    ("created", "microseconds"),
    [
        ("2026-01-02T03:04:05.1Z", 100000),
        ("2026-01-02T03:04:05.000042Z", 42),
        ("2026-01-02t03:04:05.000042z", 42),  # RFC 3339 allows both in lower case
    ],
)
def test_short_fractions_of_a_second_are_tenths_not_millionths(
    api: Api, created: str, microseconds: int
) -> None:
    api.bodies[VERSIONS] = (
        200,
        {"versions": [{"name": f"x/versions/{DIGEST}", "createTime": created}]},
    )
    (version,) = api.client().versions("frontend")
    assert version.created == datetime(2026, 1, 2, 3, 4, 5, microseconds, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>", f"{LISTED}: the answer is not JSON"),
        (503, b"<html>", f"{LISTED}: HTTP 503"),
        (
            400,
            {"error": {"status": "INVALID_ARGUMENT", "message": "m" * 400}},
            f"{LISTED}: HTTP 400: INVALID_ARGUMENT {'m' * 300}",
        ),
    ],
)
def test_answers_that_are_no_json_object_are_named_and_not_echoed(
    api: Api, status: int, body: object, message: str
) -> None:
    api.bodies[VERSIONS] = (status, body)
    with pytest.raises(ApiError) as raised:
        api.client().versions("frontend")
    assert str(raised.value) == message


def test_an_empty_answer_is_an_empty_listing(api: Api) -> None:
    api.bodies[VERSIONS] = (200, b"")
    assert api.client().versions("frontend") == []


def test_versions_are_of_their_package_at_utc_whatever_the_name_holds(api: Api) -> None:
    # The resource name holds "/versions/" three times (a repository and a package of that name).
    name = f"projects/p/locations/l/repositories/versions/packages/versions/versions/{DIGEST}"
    api.bodies[f"/v1/{REPOSITORY.name}/packages/versions/versions"] = (
        200,
        {"versions": [{"name": name, "createTime": "2026-01-02T03:04:05+02:00"}]},
    )
    (version,) = api.client().versions("versions")
    assert (version.package, version.digest) == ("versions", DIGEST)
    assert version.created == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert version.created.tzinfo is UTC


def test_requests_ask_for_json_name_the_tool_and_join_a_base_url_ending_in_a_slash(
    api: Api,
) -> None:
    api.bodies[VERSIONS] = (200, {"versions": []})
    assert api.client(path="/").versions("frontend") == []
    assert api.paths == [VERSIONS + "?pageSize=1000"]
    assert api.accepts == [("application/json", "boutique-verify-gc/1")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "gone"}}, f"{LISTED}: HTTP 404: gone"),
        ({"error": {"status": "NOT_FOUND"}}, f"{LISTED}: HTTP 404: NOT_FOUND"),
        ({"error": {}}, f"{LISTED}: HTTP 404"),
        ({"error": "gone"}, f"{LISTED}: HTTP 404"),
        ({"errors": [{"message": "gone"}]}, f"{LISTED}: HTTP 404"),
        ([{"error": {"message": "gone"}}], f"{LISTED}: HTTP 404"),
    ],
)
def test_an_api_error_names_only_the_status_and_message_it_holds(
    api: Api, body: object, message: str
) -> None:
    api.bodies[VERSIONS] = (404, body)
    with pytest.raises(ApiError) as raised:
        api.client().versions("frontend")
    assert str(raised.value) == message


def test_only_google_s_api_gets_the_token_as_a_bearer_header(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://{address_of(api.server)}"
    monkeypatch.setattr(artifacts, "API_URL", url)  # this loopback server is "Google" now
    api.bodies[VERSIONS] = (200, {"versions": []})
    ArtifactRegistryApi(REPOSITORY, url, token=lambda: "t0ken").versions("frontend")
    assert api.authorizations == ["Bearer t0ken"]


def test_a_listing_of_more_pages_than_allowed_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "MAX_PAGES", 2)
    api.bodies[VERSIONS] = (200, {"versions": [], "nextPageToken": "again"})
    with pytest.raises(ApiError) as raised:
        api.client().versions("frontend")
    assert str(raised.value) == f"{LISTED}: more than 2 pages"
    assert len(api.paths) == 2


def test_a_redirect_is_refused_not_followed(api: Api) -> None:
    """A redirect could carry the bearer token to another host: it is an answer, and wrong."""
    api.bodies["/elsewhere"] = (200, {"versions": []})

    class Redirecting(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            api.paths.append(self.path)
            self.send_response(302)
            self.send_header("Location", f"http://{address_of(api.server)}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

    redirecting = serve(Redirecting)
    try:
        client = ArtifactRegistryApi(REPOSITORY, f"http://{address_of(redirecting)}")
        with pytest.raises(ApiError) as raised:
            client.versions("frontend")
    finally:
        shut_down(redirecting)
    assert str(raised.value) == f"{LISTED}: HTTP 302"
    assert api.paths == [VERSIONS + "?pageSize=1000"]  # the redirecting one; never /elsewhere


def test_an_api_that_cannot_be_reached_is_named(api: Api) -> None:
    url = f"http://{address_of(api.server)}"
    shut_down(api.server)
    with pytest.raises(ApiError) as raised:
        ArtifactRegistryApi(REPOSITORY, url, retry=RetryPolicy(attempts=1)).versions("frontend")
    assert str(raised.value).startswith(f"{LISTED}: connection failed: ")
    assert "refused" in str(raised.value)


# delete_version: a DELETE, then the long-running operation it started, polled by name.

OPERATION = "projects/p/locations/europe-west1/operations/op-1"
OLD = Version("frontend", DIGEST, datetime(2026, 1, 2, tzinfo=UTC))
DELETED = f"delete frontend@{DIGEST}"
DELETE = f"DELETE /v1/{REPOSITORY.name}/packages/frontend/versions/{DIGEST}"


@pytest.fixture
def quick_operations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "OPERATION_POLL_SECONDS", 0.01)


@pytest.mark.usefixtures("quick_operations")
def test_a_delete_returns_once_its_operation_is_done(api: Api) -> None:
    api.bodies[DELETE] = (200, {"name": OPERATION})
    api.answers[f"/v1/{OPERATION}"] = [
        (200, {"name": OPERATION, "done": False}),
        (200, {"name": OPERATION, "done": True, "response": {}}),
    ]
    api.client().delete_version(OLD)
    assert api.paths == [DELETE, f"/v1/{OPERATION}", f"/v1/{OPERATION}"]


def test_a_delete_done_at_once_is_not_polled(api: Api) -> None:
    api.bodies[DELETE] = (200, {"name": OPERATION, "done": True})
    api.client().delete_version(OLD)
    assert api.paths == [DELETE]


def test_a_refused_delete_is_not_tried_again(api: Api) -> None:
    """Deleting is not idempotent to report: a retried delete could hide which one finished."""
    api.bodies[DELETE] = (503, {"error": {"status": "UNAVAILABLE", "message": "later"}})
    with pytest.raises(ApiError) as raised:
        api.client(attempts=3).delete_version(OLD)
    assert str(raised.value) == f"{DELETED}: HTTP 503: UNAVAILABLE later"
    assert api.paths == [DELETE]


@pytest.mark.usefixtures("quick_operations")
def test_a_failing_poll_of_the_operation_names_the_delete(api: Api) -> None:
    api.bodies[DELETE] = (200, {"name": OPERATION})
    api.bodies[f"/v1/{OPERATION}"] = (403, {"error": {"status": "PERMISSION_DENIED"}})
    with pytest.raises(ApiError) as raised:
        api.client().delete_version(OLD)
    assert str(raised.value) == f"{DELETED}: HTTP 403: PERMISSION_DENIED"


@pytest.mark.parametrize(
    "answer",
    [
        {"name": 7, "padding": "p" * 300},
        {"name": "operations/op-1"},  # not a resource name of the API: never polled
        {},
    ],
)
def test_an_answer_that_is_no_operation_is_refused(api: Api, answer: dict[str, object]) -> None:
    api.bodies[DELETE] = (200, answer)
    with pytest.raises(ApiError) as raised:
        api.client().delete_version(OLD)
    shown = str(answer)[:200]
    assert str(raised.value) == f"{DELETED}: the answer is no operation ({shown})"
    assert api.paths == [DELETE]


def test_an_operation_not_done_in_time_stops_the_run(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "OPERATION_POLL_SECONDS", 0.01)
    monkeypatch.setattr(artifacts, "OPERATION_TIMEOUT_SECONDS", 0.1)
    api.bodies[DELETE] = (200, {"name": OPERATION})
    api.bodies[f"/v1/{OPERATION}"] = (200, {"name": OPERATION, "done": False})
    with pytest.raises(ApiError) as raised:
        api.client().delete_version(OLD)
    assert str(raised.value) == f"{DELETED}: not done after 0 s"
    assert 2 <= len(api.paths) < 100


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        ({"code": 9, "message": "the version is tagged"}, "the version is tagged"),
        ({"code": 13}, "{'code': 13}"),
        ("quota exhausted", "quota exhausted"),
        ({"message": "m" * 600}, "m" * 500),
    ],
)
def test_a_failed_operation_is_one_error_with_its_message(
    api: Api, error: object, detail: str
) -> None:
    api.bodies[DELETE] = (200, {"name": OPERATION, "done": True, "error": error})
    with pytest.raises(ApiError) as raised:
        api.client().delete_version(OLD)
    assert str(raised.value) == f"{DELETED}: the operation failed: {detail}"


def test_an_answer_past_the_cap_is_refused_without_waiting_for_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cap bounds what is read, not only what is kept: an answer that goes on and on (here,
    one that stalls after twice the cap) is refused once the cap is passed."""
    monkeypatch.setattr(artifacts, "MAX_ANSWER_BYTES", 1024)
    refused, waited_out = threading.Event(), []

    class Endless(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()  # no length: the answer ends when the connection does
            self.wfile.write(b'{"versions": [], "padding": "' + b"x" * 2048)
            self.wfile.flush()
            waited_out.append(not refused.wait(timeout=5))

    server = serve(Endless)
    try:
        client = ArtifactRegistryApi(REPOSITORY, f"http://{address_of(server)}")
        with pytest.raises(ApiError) as raised:
            client.versions("frontend")
        refused.set()
    finally:
        shut_down(server)
    assert str(raised.value) == f"{LISTED}: the answer is larger than 1024 bytes"
    assert waited_out == [False]


# verify.gc end to end in this process: the loopback API above lists versions and tags, a
# loopback registry (tests/hostile_registry.py) serves the manifests they name.

OLD_TIME, OLD_SHOWN = "2025-01-02T03:04:05.123456789Z", "2025-01-02T03:04:05Z"


def created_days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def image(nonce: object) -> dict[str, object]:
    """An image manifest; gc reads only what points elsewhere, so no blob is needed."""
    annotations = {"n": nonce}
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [], "annotations": annotations}


def pointer(digest: str, media_type: str = OCI_MANIFEST) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": 1}


def index(*entries: str, nonce: object = 0) -> dict[str, object]:
    manifests = [pointer(entry) for entry in entries]
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests, "n": nonce}


def referrer(subject: str, nonce: object = 0) -> dict[str, object]:
    return {**image(nonce), "subject": pointer(subject)}


def sorting_after(other: str, document: Callable[[int], dict[str, object]]) -> dict[str, object]:
    """`document(nonce)` for the first nonce whose digest sorts after `other`: gc visits
    versions in digest order, and some orders are what a test needs."""
    return next(
        document(nonce)
        for nonce in range(1000)
        if sha256_digest(json_bytes(document(nonce))) > other
    )


@dataclass
class Store:
    """One repository `p/r` as both services see it."""

    api: Api
    registry: HostileRegistry
    versions: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    tags: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def put(
        self,
        document: object,
        created: str = OLD_TIME,
        package: str = "frontend",
        media_type: str | None = None,
    ) -> str:
        """Serve a manifest (bytes as they are, else as JSON) and list it as a version."""
        data = document if isinstance(document, bytes) else json_bytes(document)
        if media_type is None:
            found = document.get("mediaType") if isinstance(document, dict) else None
            media_type = found if isinstance(found, str) else OCI_MANIFEST
        digest = sha256_digest(data)
        self.registry.put(f"/v2/p/r/{package}/manifests/{digest}", data, media_type)
        name = f"{REPOSITORY.name}/packages/{package}/versions/{digest}"
        self.versions.setdefault(package, []).append({"name": name, "createTime": created})
        done = {"name": OPERATION, "done": True}
        self.api.bodies[f"DELETE /v1/{name}"] = (200, done)
        self.publish()
        return digest

    def tag(self, digest: str, tag: str = "v1", package: str = "frontend") -> None:
        versions = f"{REPOSITORY.name}/packages/{package}/versions/{digest}"
        named = {"name": f"x/tags/{tag}", "version": versions}
        self.tags.setdefault(package, []).append(named)
        self.publish()

    def publish(self) -> None:
        packages = f"/v1/{REPOSITORY.name}/packages"
        names = [{"name": f"{packages[4:]}/{package}"} for package in self.versions]
        self.api.bodies[packages] = (200, {"packages": names})
        for package, items in self.versions.items():
            self.api.bodies[f"{packages}/{package}/versions"] = (200, {"versions": items})
            tags = self.tags.get(package, [])
            self.api.bodies[f"{packages}/{package}/tags"] = (200, {"tags": tags})

    @property
    def name(self) -> str:
        return f"{self.registry.address}/p/r"

    def gc(self, *options: str, api_url: bool = True) -> tuple[int, str, str]:
        """`python -m verify gc` on this repository, in this process: (exit code, out, err).
        Without `api_url`, gc calls the API at its default URL."""
        argv = [self.name, "--older-than", "30", "--location", "europe-west1"]
        if api_url:
            argv += ["--api-url", f"http://{address_of(self.api.server)}"]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = verify_gc.main([*argv, *options])
            except SystemExit as exit:  # argparse: --help, usage errors
                code = exit.code if isinstance(exit.code, int) else 2
        return code, stdout.getvalue(), stderr.getvalue()

    def deleted(self) -> list[str]:
        """The digests deleted, in order."""
        return [path.rsplit("/", 1)[1] for path in self.api.paths if path.startswith("DELETE ")]

    def graph(self) -> verify_gc.Graph:
        client = RegistryClient(CredentialResolver(use_gcp=False, environ={}), RetryPolicy())
        return verify_gc.Graph(client, self.registry.address, "p/r")


@pytest.fixture
def store(api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Store]:
    for variable in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no credentials from this machine
    registry = HostileRegistry().start()
    yield Store(api, registry)
    registry.stop()


def would_delete(stdout: str) -> list[str]:
    return re.findall(r"^would delete frontend@(sha256:[0-9a-f]{64}) ", stdout, re.MULTILINE)


def test_gc_keeps_what_tags_reach_and_lists_the_rest_by_age(store: Store) -> None:
    live_entries = [store.put(image(f"live-{arch}")) for arch in ("amd64", "arm64")]
    live = store.put(index(*live_entries))
    store.tag(live)
    signature = store.put(referrer(live))
    countersigned = store.put(referrer(signature, nonce="counter"))
    # A referrer of a referrer, listed before the one it refers to: found on a second pass.
    store.versions["frontend"].insert(0, store.versions["frontend"].pop())
    store.publish()
    old_entries = [store.put(image(f"old-{arch}")) for arch in ("amd64", "arm64")]
    superseded = store.put(index(*old_entries))
    old_signature = store.put(referrer(superseded))
    in_flight = store.put(image("in-flight"), created_days_ago(1))
    code, stdout, stderr = store.gc("--dry-run")
    assert (code, stderr) == (0, "")
    lines = stdout.splitlines()
    assert lines[0] == (
        f"gc {store.name}: 10 versions in 1 packages; 5 reachable from a tag, 1 unreachable "
        "but newer than 30 days (kept), 4 unreachable and older"
    )
    assert sorted(would_delete(stdout)) == sorted([superseded, *old_entries, old_signature])
    assert f"would delete frontend@{superseded} (created {OLD_SHOWN}, no tag reaches it)" in lines
    assert lines[-1] == "dry run: nothing deleted; pass --delete to delete these 4 versions"
    assert store.deleted() == []
    assert in_flight not in stdout and countersigned not in stdout


def test_deletes_go_parents_first_past_shared_and_reachable_entries(store: Store) -> None:
    live_entry = store.put(image("live"))
    store.tag(store.put(index(live_entry)))
    shared = store.put(image("shared"))
    first = store.put(index(shared, live_entry))  # an entry still reachable from the tag
    second = store.put(index(shared, nonce="second"))
    # A referrer that sorts after both indexes: only counting its subject holds `first` back,
    # and `second` goes first, so only counting both parents holds `shared` back.
    last = max(first, second)
    signature = store.put(sorting_after(last, lambda nonce: referrer(first, nonce)))
    code, stdout, stderr = store.gc("--delete")
    assert (code, stderr) == (0, "")
    deleted = store.deleted()
    assert sorted(deleted) == sorted([shared, first, signature, second])
    assert deleted.index(signature) < deleted.index(first) < deleted.index(shared)
    assert deleted.index(second) < deleted.index(shared)
    assert re.findall(r"^deleted frontend@(\S+) ", stdout, re.MULTILINE) == deleted
    assert "dry run" not in stdout


def test_an_entry_visited_again_does_not_end_the_marking(store: Store) -> None:
    """Two tags: one on a manifest, one on an index holding it and another entry. The index is
    marked second (digest order); its entries are taken last first, the known one first."""
    known = store.put(image("known"))
    other = store.put(image("other"))
    both = store.put(sorting_after(known, lambda nonce: index(other, known, nonce=nonce)))
    store.tag(known, "single")
    store.tag(both, "pair")
    code, stdout, _ = store.gc()
    assert code == 0
    assert would_delete(stdout) == []


def test_the_age_limit_keeps_a_version_exactly_that_old(store: Store) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    limit = timedelta(days=30)
    tagged = store.put(image("tagged"))
    exactly = store.put(image("exactly"), (now - limit).isoformat())
    older = store.put(image("older"), (now - limit - timedelta(microseconds=1)).isoformat())
    # Not old enough to be looked at: a referrer of a tagged image stays young, not reachable.
    young_signature = store.put(referrer(tagged), (now - limit).isoformat())
    versions = store.api.client().versions("frontend")
    outcome = verify_gc.plan(versions, {"frontend": {"v1": tagged}}, store.graph(), now, limit)
    assert [v.digest for v in outcome.young] == [exactly, young_signature]
    assert [v.digest for v in outcome.delete] == [older]
    assert (outcome.versions, outcome.reachable) == (4, 1)


def test_a_referrer_of_an_unreachable_version_goes_with_it(store: Store) -> None:
    store.tag(store.put(image("live")))
    gone = store.put(image("gone"))
    signature = store.put(referrer(gone))
    code, stdout, _ = store.gc()
    assert code == 0
    assert sorted(would_delete(stdout)) == sorted([gone, signature])


def test_an_index_without_a_media_type_field_is_known_by_its_content_type(store: Store) -> None:
    entry = store.put(image("entry"))
    bare = {"schemaVersion": 2, "manifests": [pointer(entry)]}
    store.tag(store.put(bare, media_type=OCI_INDEX))
    code, stdout, _ = store.gc()
    assert code == 0
    assert would_delete(stdout) == []


LONG = "d" * 300


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"\xffnot json", "{what} is not JSON"),
        ({"mediaType": OCI_INDEX, "manifests": {}}, "{what}: an index without a 'manifests' list"),
        # No mediaType field: the registry's Content-Type (an index, here) says what it is.
        ({"schemaVersion": 2}, "{what}: an index without a 'manifests' list"),
        (
            {"mediaType": OCI_INDEX, "manifests": [LONG]},
            f"{{what}}: a descriptor without a sha256 digest ({LONG[:200]})",
        ),
        (
            {"mediaType": OCI_INDEX, "manifests": [{}]},
            "{what}: a descriptor without a sha256 digest ({{}})",
        ),
        (
            {"mediaType": OCI_INDEX, "manifests": [{"digest": "sha256:abc"}]},
            "{what}: a descriptor without a sha256 digest ({{'digest': 'sha256:abc'}})",
        ),
        (
            {**image("x"), "subject": {"digest": 5}},
            "{what}: a descriptor without a sha256 digest ({{'digest': 5}})",
        ),
    ],
)
def test_a_tagged_manifest_gc_cannot_read_stops_it_before_any_delete(
    store: Store, document: object, problem: str
) -> None:
    digest = store.put(document, media_type=OCI_INDEX)
    store.tag(digest)
    store.put(image("garbage"))
    code, stdout, stderr = store.gc("--delete")
    what = f"manifest frontend@{digest}"
    assert (code, stdout) == (2, "")
    assert stderr == f"verify gc: {problem.format(what=what)}; nothing was deleted\n"
    assert store.deleted() == []


def test_a_manifest_that_is_not_what_its_digest_says_stops_gc(store: Store) -> None:
    digest = store.put(image("tagged"))
    store.tag(digest)
    store.registry.put(f"/v2/p/r/frontend/manifests/{digest}", b"{}", OCI_MANIFEST)
    code, _, stderr = store.gc("--delete")
    assert code == 2
    assert stderr == (
        f"verify gc: manifest frontend@{digest}: content digest is {sha256_digest(b'{}')}, "
        f"expected {digest}; nothing was deleted\n"
    )


def test_gc_accepts_one_day_as_the_age_limit(store: Store) -> None:
    store.put(image("old"))
    code, stdout, stderr = store.gc("--older-than", "1")
    assert (code, stderr) == (0, "")
    assert "newer than 1 days (kept), 1 unreachable and older" in stdout


def test_gc_reads_manifests_with_the_registry_credentials_it_is_given(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.registry.basic = ("robot", "s3cret")
    store.tag(store.put(image("live")))
    monkeypatch.setenv("REGISTRY_USERNAME", "robot")
    monkeypatch.setenv("REGISTRY_PASSWORD", "s3cret")
    code, _, stderr = store.gc()
    assert (code, stderr) == (0, "")
    assert "Basic cm9ib3Q6czNjcmV0" in store.registry.authorizations()


def test_gc_gives_google_s_api_an_application_default_token(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    google = f"http://{address_of(store.api.server)}"  # Google's API URL, the default, is this
    monkeypatch.setattr(artifacts, "API_URL", google)
    monkeypatch.setattr(verify_gc, "API_URL", google)
    monkeypatch.setattr(ArtifactRegistryApi, "default_token", staticmethod(lambda: "adc"))
    store.tag(store.put(image("live")))
    code, _, stderr = store.gc(api_url=False)
    assert (code, stderr) == (0, "")
    assert set(store.api.authorizations) == {"Bearer adc"}


GC_USAGE = """\
usage: python -m verify gc [-h] --older-than DAYS [--dry-run | --delete]
                           [--gcp] [--location LOCATION] [--api-url API_URL]
                           REPOSITORY
"""


def test_gc_help_names_every_option(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, stdout, _ = store.gc("--help")
    assert code == 0
    assert stdout == GC_USAGE + (
        "\n"
        "Delete the versions of an Artifact Registry repository that no tag reaches\n"
        "(index entries, attestation manifests and referrers of tagged versions are\n"
        "kept).\n"
        "\n"
        "positional arguments:\n"
        "  REPOSITORY           HOST/PROJECT/REPOSITORY of the Docker repository\n"
        "\n"
        "options:\n"
        "  -h, --help           show this help message and exit\n"
        "  --older-than DAYS    delete only unreachable versions created more than DAYS\n"
        "                       days ago (at least 1)\n"
        "  --dry-run            print what would be deleted (the default)\n"
        "  --delete             really delete\n"
        "  --gcp                read manifests with Application Default Credentials\n"
        "                       (Artifact Registry)\n"
        "  --location LOCATION  API location of a host that is not\n"
        "                       <location>-docker.pkg.dev\n"
        "  --api-url API_URL    Artifact Registry API base URL (tests; Google\n"
        "                       credentials go only to the default)\n"
    )
    assert store.api.paths == []


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["gc", "R", "--older-than", "3", "--dry-run", "--delete"],
            "argument --delete: not allowed with argument --dry-run",
        ),
        (["gc", "R"], "the following arguments are required: --older-than"),
        (["gc", "R", "--older-than", "soon"], "argument --older-than: invalid int value: 'soon'"),
        (["gc", "--older-than", "3"], "the following arguments are required: REPOSITORY"),
    ],
)
def test_gc_usage_errors_name_the_argument(
    argv: list[str], error: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exited:
        verify_gc.main(argv[1:])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"{GC_USAGE}python -m verify gc: error: {error}\n"


def test_google_s_api_over_https_is_accepted() -> None:
    """The API's own URL (https) and a trailing slash on any base are fine."""
    assert ArtifactRegistryApi(REPOSITORY)._base == artifacts.API_URL
    assert ArtifactRegistryApi(REPOSITORY, "https://ar.example.com/")._base == (
        "https://ar.example.com"
    )
    # Only slashes go: a base path ending in a letter keeps it.
    assert ArtifactRegistryApi(REPOSITORY, "https://ar.example.com/X//")._base == (
        "https://ar.example.com/X"
    )


def test_an_answer_of_exactly_the_cap_is_read(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json_bytes({"versions": [], "padding": ""})
    monkeypatch.setattr(artifacts, "MAX_ANSWER_BYTES", len(body) + 100)
    body = json_bytes({"versions": [], "padding": "p" * 100})
    assert len(body) == artifacts.MAX_ANSWER_BYTES
    api.bodies[VERSIONS] = (200, body)
    assert api.client().versions("frontend") == []


def test_a_gzip_answer_is_decoded() -> None:
    """urllib3 asks for gzip; an API (or a proxy) that uses it is read like a plain one."""
    plain = json_bytes({"versions": [{"name": f"x/versions/{DIGEST}", "createTime": OLD_TIME}]})

    class Gzipping(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            data = gzip.compress(plain)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = serve(Gzipping)
    try:
        (version,) = ArtifactRegistryApi(REPOSITORY, f"http://{address_of(server)}").versions(
            "frontend"
        )
    finally:
        shut_down(server)
    assert version.digest == DIGEST


@dataclass(frozen=True)
class CountedWaits(RetryPolicy):
    """The default policy without the waiting: records after which try it would have waited."""

    waited_after: list[int] = field(default_factory=list)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        self.waited_after.append(attempt)
        return 0.0


def test_tries_are_spaced_but_nothing_waits_after_the_last(api: Api) -> None:
    api.bodies[VERSIONS] = (503, {"error": {"status": "UNAVAILABLE"}})
    policy = CountedWaits(attempts=3)
    client = ArtifactRegistryApi(REPOSITORY, f"http://{address_of(api.server)}", retry=policy)
    with pytest.raises(ApiError):
        client.versions("frontend")
    assert len(api.paths) == 3
    assert policy.waited_after == [0, 1]


def test_an_api_slower_than_the_read_timeout_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "READ_TIMEOUT_SECONDS", 0.2)
    answered = threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            answered.wait(timeout=5)  # then the connection closes: a client without a read
            # timeout fails too, but later and otherwise

    server = serve(Silent)
    try:
        client = ArtifactRegistryApi(
            REPOSITORY, f"http://{address_of(server)}", retry=RetryPolicy(attempts=1)
        )
        with pytest.raises(ApiError) as raised:
            client.versions("frontend")
        answered.set()
    finally:
        shut_down(server)
    assert str(raised.value).startswith(f"{LISTED}: connection failed: ")
    assert "Read timed out. (read timeout=0.2)" in str(raised.value)


def test_an_api_that_never_accepts_is_given_up_at_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(artifacts, "CONNECT_TIMEOUT_SECONDS", 0.2)
    with never_accepting() as address:
        client = ArtifactRegistryApi(REPOSITORY, f"http://{address}", retry=RetryPolicy(attempts=1))
        # urllib3 tries 4 times: about 1 s with the 0.2 s timeout.
        error = raised_within(lambda: client.versions("frontend"), 20)
    assert isinstance(error, ApiError), f"{error!r} (None: still connecting after 20 s)"
    assert str(error).startswith(f"{LISTED}: connection failed: ")
    assert "connect timeout=0.2" in str(error)
