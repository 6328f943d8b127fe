"""Shared fixtures: a throwaway project folder and the real CLI in a real subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from clikit import Project
from mailkit import Mailbox, Receiver


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hanging_receiver():
    r = Receiver(hang=True)
    yield r
    r.close()


# The fault suites report their counts (and seeds to replay) at the end of the session,
# whatever -s says. Under pytest-xdist each worker hands its lines to the controller.
_FROM_WORKERS: list[str] = []


def _fault_lines() -> list[str]:
    kit = sys.modules.get("faultkit")  # imported only where a fault suite ran
    return [*getattr(kit, "SUMMARY", []), *_FROM_WORKERS]


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fault_summary"] = _fault_lines()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 - xdist's hook
    _FROM_WORKERS.extend(getattr(node, "workeroutput", {}).get("fault_summary", []))


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    lines = _fault_lines()
    if lines:
        terminalreporter.section("fault injection")
        for line in lines:
            terminalreporter.write_line(line)
