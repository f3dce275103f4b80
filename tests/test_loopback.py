"""One rule decides "this machine only": the config's `registry.start`, `python -m host registry`
and the verifier's plain-HTTP choice agree on every address (`verify.reference.is_loopback`)."""

import json

import pytest

from host.process import HostError
from host.registry import LoopbackAddress
from plan.settings import ConfigError, StartedRegistry, parse_settings
from verify.reference import parse_reference, split_host

ADDRESSES = [
    ("127.0.0.1:5000", True),
    ("127.1.2.3:5000", True),
    ("localhost:5000", True),
    ("LOCALHOST:5000", True),
    ("[::1]:5000", True),
    ("[::ffff:127.0.0.1]:5000", False),
    ("[127.0.0.1]:5000", False),
    ("10.0.0.1:5000", False),
    ("0.0.0.0:5000", False),
    ("[::]:5000", False),
    ("registry.example.com:5000", False),
    ("localhost.example.com:5000", False),
]


def config_starts(address: str) -> bool:
    raw = {"registry": json.dumps({"address": address, "start": True})}
    try:
        settings = parse_settings(raw, {}, registry_password_set=False)
    except ConfigError as error:
        assert error.key in (
            "boutique-multiarch:registry.start",
            "boutique-multiarch:registry.address",
        )
        return False
    assert isinstance(settings.destination, StartedRegistry)
    return True


def host_tool_accepts(address: str) -> bool:
    try:
        LoopbackAddress.parse(address)
    except HostError:
        return False
    return True


@pytest.mark.parametrize(("address", "loopback"), ADDRESSES)
def test_config_host_tool_and_verifier_agree_on_loopback(address: str, loopback: bool) -> None:
    assert config_starts(address) is loopback
    assert host_tool_accepts(address) is loopback
    scheme = parse_reference(f"{address}/boutique/frontend:v1").scheme
    assert scheme == ("http" if loopback else "https")


@pytest.mark.parametrize(
    ("registry", "parts"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", "5000")),
        ("registry.example.com", ("registry.example.com", None)),
        ("[::1]:5000", ("::1", "5000")),
        ("[::1]", ("::1", None)),
        # Unbracketed, every colon belongs to the IPv6 address: no port is read from it.
        ("::1:5000", ("::1:5000", None)),
        # Brackets hold an IPv6 address and nothing else.
        ("[127.0.0.1]:5000", ("[127.0.0.1]:5000", None)),
        ("[::1]x", ("[::1]x", None)),
        ("[::1", ("[::1", None)),
        ("[abc]", ("[abc]", None)),
        ("[::1]]:5", ("[::1]]:5", None)),
        ("::1", ("::1", None)),
    ],
)
def test_split_host(registry: str, parts: tuple[str, str | None]) -> None:
    assert split_host(registry) == parts
