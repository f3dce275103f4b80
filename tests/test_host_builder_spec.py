"""The builder spec the program passes and how `host.builder` reads `docker buildx inspect`.

The text below is written in the format buildx 0.13 prints; the real output is exercised in
tests/integration/test_host_builder.py.
"""

import json
from pathlib import Path

import pytest

from host import builder
from host.builder import (
    BuilderSpec,
    InspectedBuilder,
    InspectedNode,
    NodeSpec,
    create_commands,
    matches,
    owner_record,
    parse_inspect,
    recorded_owner,
)
from host.process import HostError
from plan.host_commands import builder_spec
from plan.settings import BuilderNode, BuilderSettings
from plan.tools import interpreter

INACTIVE_WITH_NODE = """\
Name:          multiarch-builder
Driver:        docker-container
Last Activity: 2026-11-27 07:13:06 +0000 UTC

Nodes:
Name:                  multiarch-builder0
Endpoint:              unix:///var/run/docker.sock
Driver Options:        image="moby/buildkit:v0.12.5" network="host"
Status:                inactive
BuildKit daemon flags: --allow-insecure-entitlement=network.host
Platforms:             linux/amd64*

Name:                  arm64-native
Endpoint:              ssh://builder@arm64-builder.internal
Driver Options:        image="moby/buildkit:v0.12.5" network="host"
Status:                inactive
Platforms:             linux/arm64*
"""

RUNNING = """\
Name:          plain
Driver:        docker-container
Last Activity: 2026-11-27 07:13:06 +0000 UTC

Nodes:
Name:           plain0
Endpoint:       unix:///var/run/docker.sock
Status:         running
BuildKit version: v0.13.2
Platforms:      linux/amd64, linux/amd64/v2, linux/arm64, linux/386
Labels:
 org.mobyproject.buildkit.worker.executor: oci
"""


def settings(**changes: object) -> BuilderSettings:
    base: dict[str, object] = {
        "name": "multiarch-builder",
        "driver": "docker-container",
        "driver_opts": {"image": "moby/buildkit:v0.12.5", "network": "host"},
        "endpoint": None,
        "nodes": (
            BuilderNode("arm64-native", ("linux/arm64",), "ssh://builder@arm64-builder.internal"),
        ),
    }
    return BuilderSettings(**{**base, **changes})  # type: ignore[arg-type]


def spec_of(builder: BuilderSettings) -> BuilderSpec:
    return BuilderSpec.from_json(builder_spec(builder, ("linux/amd64", "linux/arm64")))


def test_inspect_output_is_read_with_declared_platforms_and_options() -> None:
    assert parse_inspect(INACTIVE_WITH_NODE) == InspectedBuilder(
        name="multiarch-builder",
        driver="docker-container",
        nodes=(
            InspectedNode(
                "multiarch-builder0",
                "unix:///var/run/docker.sock",
                {"image": "moby/buildkit:v0.12.5", "network": "host"},
                frozenset({"linux/amd64"}),
            ),
            InspectedNode(
                "arm64-native",
                "ssh://builder@arm64-builder.internal",
                {"image": "moby/buildkit:v0.12.5", "network": "host"},
                frozenset({"linux/arm64"}),
            ),
        ),
    )


def test_detected_platforms_of_a_running_node_are_not_declared_ones() -> None:
    (node,) = parse_inspect(RUNNING).nodes
    assert node.declared_platforms == frozenset()
    assert node.driver_opts == {}


def test_unreadable_inspect_output_is_an_error() -> None:
    with pytest.raises(HostError, match="cannot read `docker buildx inspect` output"):
        parse_inspect("ERROR: something else\n")


def test_native_nodes_take_their_platforms_and_the_first_node_the_rest() -> None:
    spec = spec_of(settings())
    first, native = spec.nodes
    assert (first.name, first.endpoint, first.platforms) == (
        "multiarch-builder0",
        None,
        frozenset({"linux/amd64"}),
    )
    assert native.platforms == frozenset({"linux/arm64"})
    assert spec_of(settings(nodes=())).nodes[0].platforms == frozenset()


def test_matching_builder_is_reused_and_any_difference_is_reconciled() -> None:
    current = parse_inspect(INACTIVE_WITH_NODE)
    assert matches(current, spec_of(settings()))
    assert not matches(current, spec_of(settings(driver="remote", endpoint="tcp://b:1234")))
    assert not matches(current, spec_of(settings(driver_opts={"network": "host"})))
    assert not matches(current, spec_of(settings(nodes=())))
    moved = BuilderNode("arm64-native", ("linux/arm64",), "ssh://builder@elsewhere")
    assert not matches(current, spec_of(settings(nodes=(moved,))))
    assert not matches(current, spec_of(settings(endpoint="tcp://other:2375")))


def test_invalid_spec_is_an_error() -> None:
    with pytest.raises(HostError, match="builder spec"):
        BuilderSpec.from_json('{"driver": "remote"}')


def test_interpreter_inside_the_project_is_written_relative_to_it() -> None:
    assert interpreter("/work/p/.venv/bin/python", "/work/p") == ".venv/bin/python"
    assert interpreter("/usr/bin/python3", "/work/p") == "/usr/bin/python3"


def test_every_endpoint_follows_a_double_dash_on_the_create_command_lines() -> None:
    """buildx (cobra) stops reading options at `--`: an endpoint that looks like an option is
    then a (non-existent) endpoint, never `--driver-opt=image=...` choosing the BuildKit image."""
    evil = "--driver-opt=image=evil/buildkit:latest"
    node = BuilderNode("arm64-native", ("linux/arm64",), evil)
    first, appended = create_commands(spec_of(settings(endpoint=evil, nodes=(node,))))
    assert first[-2:] == ["--", evil]
    assert appended[-2:] == ["--", evil]
    configured = ["--driver-opt=image=moby/buildkit:v0.12.5", "--driver-opt=network=host"]
    for argv in (first, appended):
        options = argv[: argv.index("--")]
        assert [a for a in options if a.startswith("--driver-opt")] == configured, argv
    (without_endpoint,) = create_commands(spec_of(settings(nodes=())))
    assert "--" not in without_endpoint


@pytest.mark.parametrize("driver", ["docker", "kubernetes", "remote"])
def test_a_builder_whose_driver_alone_differs_is_reconciled(driver: str) -> None:
    # Same name, nodes, endpoints, options and platforms: only the driver tells them apart.
    current = parse_inspect(INACTIVE_WITH_NODE)
    assert not matches(current, spec_of(settings(driver=driver)))
    assert matches(current, spec_of(settings(driver="docker-container")))


BARE_NODE = """\
Name:   bare
Driver: docker

Nodes:
Name:   bare0
Status: inactive
"""


def test_a_node_without_endpoint_options_or_platforms_reads_as_empty() -> None:
    builder = parse_inspect(BARE_NODE)
    assert (builder.name, builder.driver) == ("bare", "docker")
    assert builder.nodes == (InspectedNode("bare0", "", {}, frozenset()),)


def test_several_declared_platforms_of_one_node_are_all_read() -> None:
    text = BARE_NODE + "Platforms: linux/amd64*, linux/arm64*, linux/386\n"
    (node,) = parse_inspect(text).nodes
    assert node.declared_platforms == frozenset({"linux/amd64", "linux/arm64"})


@pytest.mark.parametrize("missing", ["Name:   bare\n", "Driver: docker\n"])
def test_inspect_output_without_builder_name_or_driver_is_an_error(missing: str) -> None:
    with pytest.raises(HostError, match="docker buildx inspect"):
        parse_inspect(BARE_NODE.replace(missing, "", 1))


def test_a_minimal_spec_is_one_first_node_with_nothing_declared() -> None:
    spec = BuilderSpec.from_json('{"name": "b", "driver": "docker"}')
    assert spec == BuilderSpec("b", "docker", {}, (NodeSpec("b0", None, frozenset()),))


def test_a_node_declaring_several_platforms_names_them_all_comma_separated() -> None:
    both = BuilderNode("native", ("linux/arm64", "linux/amd64"), "ssh://builder@native.internal")
    _, appended = create_commands(spec_of(settings(nodes=(both,))))
    assert appended == [
        *("docker", "buildx", "create", "--name", "multiarch-builder", "--append"),
        *("--node", "native", "--driver-opt=image=moby/buildkit:v0.12.5"),
        *("--driver-opt=network=host", "--platform", "linux/amd64,linux/arm64"),
        *("--", "ssh://builder@native.internal"),
    ]


def test_an_appended_node_without_an_endpoint_is_given_an_empty_one() -> None:
    """buildx reads an empty endpoint as the current Docker context's."""
    spec = BuilderSpec.from_json(
        '{"name": "b", "driver": "docker-container", '
        '"nodes": [{"name": "n", "platforms": [], "endpoint": null}]}'
    )
    _, appended = create_commands(spec)
    assert appended == [
        *("docker", "buildx", "create", "--name", "b", "--append"),
        *("--node", "n", "--", ""),
    ]


def test_long_unreadable_inspect_output_is_quoted_up_to_200_characters() -> None:
    text = "x" * 300
    with pytest.raises(HostError) as unreadable:
        parse_inspect(text)
    assert str(unreadable.value) == f"cannot read `docker buildx inspect` output: {'x' * 200!r}"


# Owner records: files under the buildx store, read and written in this process.


@pytest.fixture
def buildx_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Docker config directory that does not exist yet, as DOCKER_CONFIG names it."""
    config = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def test_without_docker_config_the_owner_is_recorded_under_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert owner_record("b") == tmp_path / ".docker" / "buildx" / "boutique-owners" / "b"


def test_an_owner_is_recorded_in_a_store_that_does_not_exist_yet(buildx_store: Path) -> None:
    builder._record_owner("b", "organization/project/dev")
    assert recorded_owner("b") == "organization/project/dev"
    record = buildx_store / "buildx" / "boutique-owners" / "b"
    assert json.loads(record.read_text()) == {"stack": "organization/project/dev"}
    assert sorted(path.name for path in record.parent.iterdir()) == ["b"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "{not json",
            "is unreadable: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        ('{"owner": "dev"}', "is unreadable: 'stack'"),
        ('{"stack": 5}', "names no stack"),
        ('{"stack": ""}', "names no stack"),
    ],
    ids=["not-json", "no-stack", "not-a-string", "empty"],
)
def test_an_owner_record_that_names_no_stack_is_refused_by_name(
    buildx_store: Path, content: str, problem: str
) -> None:
    record = buildx_store / "buildx" / "boutique-owners" / "b"
    record.parent.mkdir(parents=True)
    record.write_text(content)
    with pytest.raises(HostError) as refused:
        recorded_owner("b")
    assert str(refused.value) == f"owner record {record} of builder b {problem}"


@pytest.mark.usefixtures("ascii_locale")
def test_an_owner_record_is_read_as_utf8_whatever_the_locale(buildx_store: Path) -> None:
    """JSON is UTF-8: a record another tool wrote without escapes reads the same."""
    record = buildx_store / "buildx" / "boutique-owners" / "b"
    record.parent.mkdir(parents=True)
    record.write_bytes(json.dumps({"stack": "équipe/boutique/dev"}, ensure_ascii=False).encode())
    assert recorded_owner("b") == "équipe/boutique/dev"
