"""Fixtures for the dashboard: a real `overnight web` server and a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from webtools import CHROMIUM, CHROMIUM_ARGS, OLIVE, TWO_STEPS, VIC, Project, Server, add_user


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def start(project: Project, *args: str, **how) -> Server:
        server = Server(project, tmp_path / f"web-{len(servers)}.log", args, **how)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def with_users(project) -> Project:
    """A project with one finished night (2026-11-20) of a two-step batch, an operator
    (olive) and a viewer (vic)."""
    project.write_batch("demo", TWO_STEPS)
    assert project.run("run", "demo", "--date", "2026-11-20").returncode == 0
    add_user(project, *OLIVE, role="operator")
    add_user(project, *VIC, role="viewer")
    return project


@pytest.fixture
def site(with_users, serve) -> Server:
    """`with_users`, served."""
    return serve(with_users)
