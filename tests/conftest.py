"""Shared fixtures: a throwaway project folder and the real CLI in a real subprocess."""

from __future__ import annotations

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
