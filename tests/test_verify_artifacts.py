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
    """Answers one fixed body per path; records the Authorization headers it saw."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, object]] = {}
        self.authorizations: list[str | None] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                api.authorizations.append(self.headers.get("Authorization"))
                reply_json(self, *api.bodies.get(self.path.split("?")[0], (404, {})))

        self.server = serve(Handler)

    def client(self) -> ArtifactRegistryApi:
        return ArtifactRegistryApi(
            REPOSITORY,
            f"http://{address_of(self.server)}",
            token=lambda: pytest.fail("an overridden API URL must not get Google credentials"),
            retry=RetryPolicy(attempts=1),
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


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"versions": [{"name": "x/versions/latest", "createTime": "2026-01-02T03:04:05Z"}]},
            "is not a sha256 digest",
        ),
        (
            {"versions": [{"name": f"x/versions/{DIGEST}", "createTime": "yesterday"}]},
            "is not an RFC 3339 time",
        ),
        (
            {"versions": [{"name": f"x/versions/{DIGEST}", "createTime": "2026-01-02T03:04:05"}]},
            "has no time zone",
        ),
        ({"versions": {"name": "x"}}, "is not a list of objects"),
        ({"versions": [], "nextPageToken": 7}, "nextPageToken is not a string"),
        (["not", "an", "object"], "is not a JSON object"),
    ],
)
def test_malformed_answers_are_one_clear_error(api: Api, body: object, message: str) -> None:
    api.bodies[VERSIONS] = (200, body)
    with pytest.raises(ApiError, match=message):
        api.client().versions("frontend")


def test_an_oversized_answer_is_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_ANSWER_BYTES", 1024)
    api.bodies[VERSIONS] = (200, {"versions": [], "padding": "x" * 2048})
    with pytest.raises(ApiError, match="larger than 1024 bytes"):
        api.client().versions("frontend")


def test_an_api_refusal_names_the_status_and_message(api: Api) -> None:
    api.bodies[VERSIONS] = (403, {"error": {"status": "PERMISSION_DENIED", "message": "no"}})
    with pytest.raises(ApiError, match="HTTP 403: PERMISSION_DENIED no"):
        api.client().versions("frontend")


def test_plain_http_is_for_loopback_only() -> None:
    with pytest.raises(ApiError, match="plain HTTP off this machine"):
        ArtifactRegistryApi(REPOSITORY, "http://artifactregistry.example.com")


def test_repository_locations_come_from_the_host_or_the_option() -> None:
    host, root, repository = parse_repository("us-east1-docker.pkg.dev/proj/images", None)
    assert (host, root, repository) == (
        "us-east1-docker.pkg.dev",
        "proj/images",
        RepositoryPath("proj", "us-east1", "images"),
    )
    assert parse_repository("127.0.0.1:5000/proj/images", "eu")[2].location == "eu"
    with pytest.raises(GcError, match="pass --location"):
        parse_repository("127.0.0.1:5000/proj/images", None)
    with pytest.raises(GcError, match="is not HOST/PROJECT/REPOSITORY"):
        parse_repository("us-east1-docker.pkg.dev/proj/images/frontend", None)
