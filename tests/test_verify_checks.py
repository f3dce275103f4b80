"""Allow-glob semantics of the deep check: absolute paths, ``*`` crossing directories."""

import pytest

from verify.checks import is_allowed, normalize_allow_glob
from verify.report import printable


@pytest.mark.parametrize(
    ("glob", "normalized"),
    [
        ("/opt/cross/*", "/opt/cross/*"),
        ("usr/lib/*.node", "/usr/lib/*.node"),
        ("./bin/app", "/bin/app"),
        ("*/pprof.node", "*/pprof.node"),
    ],
)
def test_globs_are_made_absolute(glob: str, normalized: str) -> None:
    assert normalize_allow_glob(glob) == normalized


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/opt/cross/busybox-amd64", True),
        ("/opt/cross/deep/tree/tool", True),  # fnmatch's * also matches "/"
        ("/opt/crossing/tool", False),
        ("/usr/src/app/node_modules/pprof/build/pprof.node", True),
        ("/usr/src/app/node_modules/pprof/build/pprof.so", False),
        ("/bin/busybox", False),
    ],
)
def test_allowed_paths(path: str, allowed: bool) -> None:
    globs = [normalize_allow_glob(glob) for glob in ("/opt/cross/*", "*/pprof/build/*.node")]
    assert is_allowed(path, globs) is allowed


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text: ünïcode is fine", "plain text: ünïcode is fine"),
        ("ünï\tcode", "ünï\\tcode"),
        ("line\nverified x", "line\\nverified x"),
        ("\x1b[2Kred\x07", "\\x1b[2Kred\\x07"),
        ("bidi \u202eevil", "bidi \\u202eevil"),
        ("bad utf-8 \udcff", "bad utf-8 \\udcff"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown
