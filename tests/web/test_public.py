"""A dashboard listening beyond loopback shows nothing without users, on every request:
also when the users are removed, or the ledger moved aside, after it started."""

from __future__ import annotations

import pytest
from webtools import ONE_STEP, Client, add_user

OLIVE = ("olive", "operator-pass")
DAY = "2026-11-20"
EVERY_KIND_OF_PAGE = [
    "/", "/login", f"/run/demo/{DAY}", f"/run/demo/{DAY}/live", f"/run/demo/{DAY}/log/a/1",
    f"/run/demo/{DAY}/log/a/1/tail?offset=0", "/history/demo", "/audit", "/metrics",
    "/static/app.css", "/states.css",
]


@pytest.fixture
def public(project, serve):
    project.write_batch("demo", ONE_STEP)
    assert project.run("run", "demo", "--date", DAY).returncode == 0
    add_user(project, *OLIVE, role="operator")
    return serve(project, "--host", "0.0.0.0")


def refuses_everything(server) -> None:
    anyone = Client(server.url)
    for path in EVERY_KIND_OF_PAGE:
        status, _, body = anyone.get(path)
        assert status == 403 and b"no users" in body, (path, status, body[:200])
        assert b"echo a" not in body
    status, _, body = anyone.post("/login", {"name": "x", "password": "y"})
    assert status == 403 and b"no users" in body


@pytest.mark.parametrize("how", ["the last user removed", "the ledger moved aside"])
def test_without_users_a_public_dashboard_refuses_every_request(project, public, how):
    olive = Client(public.url)
    assert olive.login(*OLIVE) == 303 and olive.get(f"/run/demo/{DAY}")[0] == 200
    if how == "the last user removed":
        assert project.run("user", "remove", "olive").returncode == 0
    else:
        project.ledger_path.rename(project.ledger_path.with_name("ledger.aside"))
    refuses_everything(public)
    assert olive.get(f"/run/demo/{DAY}/log/a/1/tail?offset=0")[0] == 403  # a session changes nothing

    # A user again: it serves again, to those who log in.
    if how == "the ledger moved aside":
        project.ledger_path.with_name("ledger.aside").rename(project.ledger_path)
    else:
        add_user(project, *OLIVE, role="operator")
    again = Client(public.url)
    assert again.get("/")[0] == 303
    assert again.login(*OLIVE) == 303 and again.get("/")[0] == 200


def test_on_loopback_without_users_it_stays_a_read_only_window(project, serve):
    project.write_batch("demo", ONE_STEP)
    assert project.run("run", "demo", "--date", DAY).returncode == 0
    server = serve(project)
    anyone = Client(server.url)
    assert anyone.get(f"/run/demo/{DAY}")[0] == 200
    assert anyone.post("/batch/demo/launch", {"date": DAY, "csrf": anyone.csrf()})[0] == 403


@pytest.mark.parametrize("damage", ["overwritten", "truncated", "emptied"])
def test_a_damaged_ledger_behind_a_public_dashboard_shows_nothing_and_says_why(project, public, damage):
    """The ledger broken after the start (overwritten, cut short, emptied): every request
    is refused in one line (503: cannot read it; 403: no users in an empty file), a session
    included, naming the file but not its folder; the server's log has the whole line."""
    olive = Client(public.url)
    assert olive.login(*OLIVE) == 303
    ledger = project.ledger_path
    if damage == "overwritten":
        ledger.write_bytes(b"not a database " * 512)
    elif damage == "truncated":
        ledger.write_bytes(ledger.read_bytes()[: ledger.stat().st_size // 3])
    else:
        ledger.write_bytes(b"")
    expected = (403, b"no users") if damage == "emptied" else (503, b"the ledger is damaged")
    for client in (olive, Client(public.url)):
        for path in EVERY_KIND_OF_PAGE:
            status, _, body = client.get(path)
            assert (status, expected[1] in body) == (expected[0], True), (path, status, body[:200])
            assert b"echo a" not in body and b"<html" not in body
            assert str(project.root).encode() not in body  # where the files live is the server's
    log = public.log.read_text()
    assert "Traceback" not in log
    if damage != "emptied":
        assert f"overnight: {project.ledger_path}: the ledger is damaged" in log
