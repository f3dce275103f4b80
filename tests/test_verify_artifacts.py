"""verify.artifacts and gc's argument parsing: hostile API answers are refused with one clear
error, nothing is guessed. A loopback HTTP server plays the API (no mocks)."""

from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import pytest

from tests.integration.loopbackserver import address_of, reply_json, serve, shut_down
from verify import artifacts
from verify.artifacts import ApiError, ArtifactRegistryApi, RepositoryPath
from verify.gc import GcError, parse_repository
from verify.registry import RetryPolicy

REPOSITORY = RepositoryPath("p", "europe-west1", "r")
VERSIONS = f"/v1/{REPOSITORY.name}/packages/frontend/versions"
DIGEST = "sha256:" + "a" * 64


class Api:
    """Answers one fixed body per path (with its query, else without), as JSON or as the bytes
    given; records the requests and the Authorization headers it saw."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, object]] = {}
        self.authorizations: list[str | None] = []
        self.paths: list[str] = []
        self.accepts: list[tuple[str | None, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                api.authorizations.append(self.headers.get("Authorization"))
                api.paths.append(self.path)
                api.accepts.append((self.headers.get("Accept"), self.headers.get("User-Agent")))
                found = api.bodies.get(self.path) or api.bodies.get(self.path.split("?")[0])
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
    [("2026-01-02T03:04:05.1Z", 100000), ("2026-01-02T03:04:05.000042Z", 42)],
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
    name = f"x/packages/versions/versions/{DIGEST}"
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
