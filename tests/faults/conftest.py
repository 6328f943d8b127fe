"""The fault suites' setup (their counts are printed by tests/conftest.py)."""

from __future__ import annotations


def pytest_configure(config) -> None:  # noqa: ANN001
    # A shell that starts pytest in the background (`pytest &` without job control) makes
    # it ignore SIGINT, and every child would inherit that: the SIGINT tests would then
    # test the shell. Children of a process with a handler start with the default.
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
