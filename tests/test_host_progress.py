"""Progress lines from engine events (host/progress.py); the proof table (host/proof_table.py)."""

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host.process import HostError
from host.progress import (
    COMMAND,
    IMAGE,
    MANIFEST_VERIFICATION,
    SERVICE_IMAGE,
    Progress,
    Urn,
    events,
    follow,
    format_duration,
    step_line,
)
from host.proof_table import arch, render, short_digest
from tests.engine_events import STACK_URN, Events, urn
from tests.program_mocks import ProgramRunner, stack_config

DIGEST_A = "sha256:" + "a1" * 32
DIGEST_B = "sha256:" + "b2" * 32


def lines_for(events: Events) -> list[str]:
    progress = Progress()
    return [line for event in events.events for line in progress.feed(event)]


def test_one_line_per_step_with_the_engine_measured_duration() -> None:
    events = Events()
    events.registry(start=100, end=101)
    events.builder(start=100, end=103)
    events.service("frontend", start=103, built=166, verified=170, tagged=171)
    events.cancel(172)
    assert lines_for(events) == [
        step_line("registry ready", 1),
        step_line("builder ready", 3),
        step_line("built frontend", 63),
        step_line("verified frontend", 4),
        step_line("tagged frontend", 1),
    ]
    assert step_line("built frontend", 63) == f"{'built frontend':<46}  1m03s"


def test_per_platform_builds_name_their_platform() -> None:
    events = Events()
    events.service("shippingservice", 0, 20, 25, 26, arches=("amd64", "arm64"))
    assert lines_for(events) == [
        step_line("built shippingservice linux/amd64", 20),
        step_line("verified shippingservice linux/amd64", 5),
        step_line("built shippingservice linux/arm64", 20),
        step_line("verified shippingservice linux/arm64", 5),
        step_line("tagged shippingservice", 1),
    ]


def test_a_service_whose_name_contains_another_keeps_its_own_name() -> None:
    # The service comes from the ServiceImage ancestor, not from a guess at the child's name.
    events = Events()
    events.service("checkoutservice-amd64", 0, 10, 12, 13)
    assert lines_for(events)[0] == step_line("built checkoutservice-amd64", 10)


def test_unchanged_and_updated_steps_say_so_and_preview_events_are_left_out() -> None:
    events = Events()
    events.registry(0, 0, op="same")
    # The preview part of `pulumi up` (planning) announces the same steps first.
    events.step(
        ["boutique:buildx_builder:BuildxBuilder", "command:local:Command"],
        "buildx-builder",
        "urn:pulumi:local::boutique-multiarch::boutique:buildx_builder:BuildxBuilder::buildx",
        0,
        9,
        op="update",
        planning=True,
    )
    events.builder(1, 2, op="update")
    assert lines_for(events) == [
        step_line("registry ready", 0, "unchanged"),
        step_line("builder ready", 1, "updated"),
    ]


def test_a_failed_step_is_named() -> None:
    events = Events()
    component = events.step([SERVICE_IMAGE], "frontend", STACK_URN, 0, 62)
    events.step([SERVICE_IMAGE, IMAGE], "frontend-image", component, 0, 50)
    verification = events.step(
        [SERVICE_IMAGE, MANIFEST_VERIFICATION],
        "frontend-verification",
        component,
        50,
        62,
    )
    events.step(
        [SERVICE_IMAGE, MANIFEST_VERIFICATION, COMMAND],
        "frontend-verification-verify",
        verification,
        50,
        62,
        failed=True,
    )
    assert lines_for(events) == [
        step_line("built frontend", 50),
        step_line("FAILED: frontend", 12, "the Pulumi output above says why"),
    ]


def test_destroy_says_what_was_removed_and_what_stays_in_the_registry() -> None:
    events = Events()
    events.service("frontend", 0, 0, 0, 0, op="delete")
    events.registry(1, 2, op="delete")
    events.builder(2, 5, op="delete")
    assert lines_for(events) == [
        step_line("removed frontend", 0, "state only: the pushed image stays in the registry"),
        step_line("removed frontend", 0),
        step_line("removed frontend", 0, "state only: the tag stays in the registry"),
        step_line("removed registry", 1),
        step_line("removed builder", 3),
    ]


def test_other_events_and_other_resources_print_nothing() -> None:
    events = Events()
    events.diagnostic(0, "hello")
    events.step(
        ["boutique:upstream_source:UpstreamSource"],
        "upstream",
        STACK_URN,
        0,
        5,
    )
    events.events.append({"sequence": 7, "timestamp": 1, "resOutputsEvent": {"metadata": "?"}})
    assert lines_for(events) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.4, "59s"),
        (60, "1m00s"),
        (63, "1m03s"),
        (120, "2m00s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3720, "1h02m"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_step_line_is_the_step_its_duration_and_its_note_in_brackets() -> None:
    assert step_line("tagged frontend", 5, "unchanged") == (
        f"{'tagged frontend':<46}     5s  (unchanged)"
    )
    assert step_line("tagged frontend", 5) == f"{'tagged frontend':<46}     5s"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (
            "urn:pulumi:dev::p::boutique:service_image:ServiceImage::a::b",
            Urn(types=(SERVICE_IMAGE,), name="a::b"),
        ),
        ("urn:pulumi:dev::p::t1$t2::n", Urn(types=("t1", "t2"), name="n")),
        ("urn:pulumi:dev::p", None),
        ("urn:other:dev::p::t::n", None),
        ("", None),
    ],
)
def test_a_urn_is_read_as_stack_project_type_chain_and_name(text: str, parsed: Urn | None) -> None:
    """The name is everything after the third `::`; anything else is not a Pulumi URN."""
    assert Urn.parse(text) == parsed


def test_an_end_event_whose_start_was_not_seen_takes_no_time() -> None:
    """An event log read from its middle (a resumed follow): the step still gets its line."""
    events = Events()
    events.registry(start=100, end=107)
    del events.events[0]
    assert lines_for(events) == [step_line("registry ready", 0)]


def test_events_without_a_whole_timestamp_are_timed_by_the_clock_when_read() -> None:
    events = Events()
    events.builder(start=100, end=160)
    del events.events[0]["timestamp"]
    events.events[1]["timestamp"] = "160"
    assert lines_for(events) in ([step_line("builder ready", 0)], [step_line("builder ready", 1)])


def test_a_resource_that_is_not_a_pulumi_urn_prints_nothing() -> None:
    events = Events()
    events.registry(start=0, end=1)
    for event in events.events:
        for body in event.values():
            if isinstance(body, dict):
                body["metadata"]["urn"] = "not a urn"
    assert lines_for(events) == []


def test_an_image_outside_a_service_component_is_named_after_itself() -> None:
    """Its parent chain ends (at the stack) without a ServiceImage: the resource's own name."""
    events = Events()
    events.step([SERVICE_IMAGE, IMAGE], "frontend-arm64-image", STACK_URN, 0, 9)
    assert lines_for(events) == [step_line("built frontend-arm64-image", 9)]


def test_parents_that_name_each_other_end_the_search_for_the_service() -> None:
    events = Events()
    image = urn([SERVICE_IMAGE, IMAGE], "frontend-image")
    helper = events.step([SERVICE_IMAGE, "other:index:Helper"], "helper", image, 0, 1)
    events.step([SERVICE_IMAGE, IMAGE], "frontend-image", helper, 1, 4)
    assert lines_for(events) == [step_line("built frontend-image", 3)]


def test_a_platform_is_read_only_from_a_name_that_starts_with_its_service() -> None:
    """`checkout-arm64-image` under the ServiceImage `frontend` (both eight letters): no platform
    is read from the part after the first eight."""
    events = Events()
    component = events.step([SERVICE_IMAGE], "frontend", STACK_URN, 0, 9)
    events.step([SERVICE_IMAGE, IMAGE], "checkout-arm64-image", component, 0, 9)
    assert lines_for(events) == [step_line("built frontend", 9)]


def images_output(with_proof: bool) -> str:
    frontend: dict[str, object] = {
        "ref": f"127.0.0.1:5000/frontend:v1@{DIGEST_A}",
        "digest": DIGEST_A,
        "tag": "v1",
        "platforms": {"linux/arm64": DIGEST_B, "linux/amd64": DIGEST_B},
    }
    checkout: dict[str, object] = {
        "ref": f"127.0.0.1:5000/checkoutservice:v1@{DIGEST_B}",
        "digest": DIGEST_B,
        "tag": "v1",
        "platforms": {"linux/amd64": DIGEST_A, "linux/arm64": DIGEST_A},
    }
    if with_proof:
        frontend["proof"] = {
            "linux/amd64": {"elfFiles": 1, "probe": "http:8080/_healthz", "seconds": 2.04},
            "linux/arm64": {"elfFiles": 1, "probe": "http:8080/_healthz", "seconds": 3.5},
        }
        checkout["proof"] = {
            "linux/amd64": {"elfFiles": 2, "skipped": "needs a cart"},
            "linux/arm64": {"elfFiles": 2, "skipped": "needs a cart"},
        }
    return json.dumps({"frontend": frontend, "checkoutservice": checkout})


def test_the_table_from_today_s_images_output() -> None:
    assert render(images_output(with_proof=False)) == [
        "service          platforms                 digest",
        "checkoutservice  linux/amd64, linux/arm64  sha256:b2b2b2b2b2b2",
        "frontend         linux/amd64, linux/arm64  sha256:a1a1a1a1a1a1",
        "",
        f"pull one: docker pull --platform linux/arm64 127.0.0.1:5000/frontend:v1@{DIGEST_A}",
        f"check it: .venv/bin/python -m verify 127.0.0.1:5000/frontend:v1@{DIGEST_A} --deep",
    ]


def test_the_table_shows_elf_counts_and_runtime_proof_when_the_output_has_them() -> None:
    table = render(images_output(with_proof=True))
    assert table[:3] == [
        "service          platforms                 digest               ELF files checked"
        "  runtime proof",
        "checkoutservice  linux/amd64, linux/arm64  sha256:b2b2b2b2b2b2  amd64 2, arm64 2   "
        "amd64 skipped (needs a cart), arm64 skipped (needs a cart)",
        "frontend         linux/amd64, linux/arm64  sha256:a1a1a1a1a1a1  amd64 1, arm64 1   "
        "amd64 http:8080/_healthz 2.0s, arm64 http:8080/_healthz 3.5s",
    ]


@pytest.mark.parametrize("text", ["", "[1]", '{"frontend": {"digest": "x"}}'])
def test_an_output_that_is_not_the_images_map_is_one_error(text: str) -> None:
    with pytest.raises(HostError, match="the stack output `images` is not"):
        render(text)


def test_short_digest() -> None:
    assert short_digest(DIGEST_A) == "sha256:a1a1a1a1a1a1"
    assert short_digest("") == ""


@pytest.mark.parametrize("strategy", ["multiPlatform", "perPlatform"])
def test_every_step_of_the_local_stack_program_gets_its_line(
    program: ProgramRunner, strategy: str
) -> None:
    """The URNs and parents of the real program (under mocks), as the engine reports them."""
    config = {**stack_config("local"), "boutique-multiarch:strategy": strategy}
    if strategy == "perPlatform":
        # Attestations need a verified index, which perPlatform does not have (refused).
        del config["boutique-multiarch:attest"]
    run = program(config)
    events = Events()
    for registration in run.registrations:
        state = {"type": registration.type, "urn": registration.urn, "parent": registration.parent}
        metadata = {
            "op": "create",
            "urn": registration.urn,
            "type": registration.type,
            "new": state,
        }
        events.events.append(
            {"sequence": 0, "timestamp": 0, "resourcePreEvent": {"metadata": metadata}}
        )
        events.events.append(
            {"sequence": 0, "timestamp": 7, "resOutputsEvent": {"metadata": metadata}}
        )
    words = [line.split("  ")[0].rstrip() for line in lines_for(events)]
    services = ["checkoutservice", "frontend", "productcatalogservice", "shippingservice"]
    builds = {
        "multiPlatform": {service: [service] for service in services},
        "perPlatform": {
            service: [f"{service} linux/amd64", f"{service} linux/arm64"] for service in services
        },
    }[strategy]
    expected = ["registry ready", "builder ready"]
    for service in services:
        expected += [f"built {build}" for build in builds[service]]
        expected += [f"verified {build}" for build in builds[service]]
        expected.append(f"tagged {service}")
    assert sorted(words) == sorted(expected)


def test_events_are_read_as_they_are_written_and_drained_at_the_end(tmp_path: Path) -> None:
    """A line is taken only once complete; after `done`, whatever was written before is read."""
    log, done = tmp_path / "events.jsonl", tmp_path / "done"
    seen: list[tuple[int, float]] = []
    first, second, third = ({"sequence": n, "timestamp": n} for n in range(3))

    def write() -> None:
        time.sleep(0.3)  # the file does not exist yet when the reader starts
        with log.open("w") as stream:
            stream.write(json.dumps(first) + "\n" + json.dumps(second)[:5])
            stream.flush()
            time.sleep(0.5)
            stream.write(json.dumps(second)[5:] + "\nnot json\n" + json.dumps(third) + "\n")
        done.touch()

    writer = threading.Thread(target=write)
    started = time.monotonic()
    writer.start()
    for event in events(log, done.exists):
        seen.append((event["sequence"], time.monotonic() - started))
    writer.join()
    assert [sequence for sequence, _ in seen] == [0, 1, 2]
    # The first event was read while the second was still half written.
    assert seen[0][1] < seen[1][1] - 0.3


def test_without_an_event_log_the_reader_stops_when_done(tmp_path: Path) -> None:
    (tmp_path / "done").touch()
    assert list(events(tmp_path / "never-written.jsonl", (tmp_path / "done").exists)) == []


def test_an_empty_images_output_says_no_service_was_built() -> None:
    assert render("{}") == ["the stack output `images` is empty: no service was built"]


def test_missing_fields_show_a_dash_and_the_example_follows_what_the_output_has() -> None:
    """Without frontend, the first service by name is the example; without linux/arm64 it is
    pulled for its first platform, and for linux/arm64 when it lists none."""
    images = {
        "cartservice": {"ref": "127.0.0.1:5000/cartservice:v1"},
        "adservice": {
            "ref": "127.0.0.1:5000/adservice:v1",
            "digest": DIGEST_B,
            "platforms": {"linux/s390x": DIGEST_A, "linux/amd64": DIGEST_A},
        },
    }
    assert render(json.dumps(images)) == [
        "service      platforms                 digest",
        "adservice    linux/amd64, linux/s390x  sha256:b2b2b2b2b2b2",
        "cartservice  -                         -",
        "",
        "pull one: docker pull --platform linux/amd64 127.0.0.1:5000/adservice:v1",
        "check it: .venv/bin/python -m verify 127.0.0.1:5000/adservice:v1 --deep",
    ]
    alone = render(json.dumps({"cartservice": images["cartservice"]}))
    assert alone[-2] == "pull one: docker pull --platform linux/arm64 127.0.0.1:5000/cartservice:v1"


def test_proof_entries_that_are_not_objects_or_lack_numbers_are_shown_without_them() -> None:
    images = {
        "frontend": {
            "ref": "r",
            "digest": DIGEST_A,
            "platforms": {"linux/amd64": DIGEST_B, "linux/arm64": DIGEST_B},
            "proof": {
                "linux/amd64": ["elfFiles", "probe"],
                "linux/arm64": {"elfFiles": 3, "probe": "grpc:3550", "seconds": "slow"},
            },
        }
    }
    assert render(json.dumps(images))[1] == (
        "frontend  linux/amd64, linux/arm64  sha256:a1a1a1a1a1a1  arm64 3            "
        "arm64 grpc:3550"
    )


def test_short_digest_keeps_the_first_twelve_characters_after_the_algorithm() -> None:
    assert short_digest("sha256:" + "c3" * 8 + ":tail") == "sha256:c3c3c3c3c3c3"
    assert short_digest("no-algorithm") == "no-algorithm"


def test_arch_is_the_last_part_of_a_platform() -> None:
    assert [arch("linux/arm64"), arch("arm64")] == ["arm64", "arm64"]
    # A platform with a variant shows its architecture, not the variant.
    assert [arch("linux/arm64/v8"), arch("linux/arm/v7")] == ["arm64", "arm"]


def test_follow_keeps_reading_until_the_done_file_appears(tmp_path: Path) -> None:
    """Steps written after `follow` started are printed: it stops only once `done` exists."""
    log, done = tmp_path / "events.jsonl", tmp_path / "done"
    written = Events()
    written.registry(start=100, end=101)
    out = io.StringIO()
    reader = threading.Thread(target=follow, args=(log, done, out, "local-up: "))
    reader.start()
    time.sleep(0.5)
    log.write_text("".join(json.dumps(event) + "\n" for event in written.events))
    time.sleep(0.5)
    done.touch()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert out.getvalue() == f"local-up: {step_line('registry ready', 1)}\n"


def test_a_line_that_is_not_utf8_is_skipped_like_any_line_that_is_not_json(
    tmp_path: Path,
) -> None:
    log, done = tmp_path / "events.jsonl", tmp_path / "done"
    first, second = ({"sequence": n, "timestamp": n} for n in range(2))
    log.write_bytes(
        json.dumps(first).encode() + b"\n\xff\xfe not utf-8\n" + json.dumps(second).encode() + b"\n"
    )
    done.touch()
    assert [event["sequence"] for event in events(log, done.exists)] == [0, 1]


def test_events_are_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """The CLI writes its event log in UTF-8; a reader under an ASCII locale (a CI runner with
    LC_ALL=C, locale coercion off) still sees the names it wrote."""
    log, done = tmp_path / "events.jsonl", tmp_path / "done"
    event = {"sequence": 0, "name": "façade-ünïcode"}
    log.write_text(json.dumps(event, ensure_ascii=False) + "\n", encoding="utf-8")
    done.touch()
    read = (
        "import json, sys; from pathlib import Path; from host.progress import events; "
        "print(json.dumps([e['name'] for e in events(Path(sys.argv[1]), lambda: True)]))"
    )
    ascii_locale = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    result = subprocess.run(
        [sys.executable, "-c", read, str(log)],
        cwd=Path(__file__).resolve().parents[1],
        env=ascii_locale,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == ["façade-ünïcode"]
