"""Sending a test's child process Ctrl-C."""

import signal


def ctrl_c_as_from_a_terminal() -> None:
    """`preexec_fn` for a child a test sends SIGINT. A parent that ignores SIGINT (mutmut's fork
    server, `cmd &` in a script) passes that on through exec, and Python then installs no Ctrl-C
    handler at all: give the child SIGINT's default back, as a terminal's Ctrl-C would find it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
