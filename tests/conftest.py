"""Shared fixtures: a throwaway project folder and the real CLI in a real subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
from clikit import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
