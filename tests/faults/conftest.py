"""The fault suites report their counts at the end of the session, whatever -s says."""

from __future__ import annotations

import faultkit


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if not faultkit.SUMMARY:
        return
    terminalreporter.section("fault injection")
    for line in faultkit.SUMMARY:
        terminalreporter.write_line(line)
