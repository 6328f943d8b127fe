"""What the dashboard's buttons start: real `overnight` processes, outside the server."""

from __future__ import annotations

import re
import shutil
import sqlite3

from clikit import wait_for
from webtools import Client, add_user

GATED = """
    from overnight import Batch
    batch = Batch("gated")
    batch.command("first", "echo first {date}")
    batch.command(
        "wait", "i=0; while [ ! -e gate ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo through",
    )
    batch.command("last", "echo last {date}")
"""


def _flash(body: bytes) -> str:
    """The newest message the page shows (earlier ones unread by this client come first)."""
    found = re.findall(rb'<div class="flash (\w+)">([^<]*)</div>', body)
    assert found, body[:800]
    kind, text = found[-1]
    return f"{kind.decode()}: {text.decode()}"


def _operator(project, serve) -> tuple:
    project.write_batch("gated", GATED)
    add_user(project, "olive", "operator-pass", role="operator")
    server = serve(project)
    client = Client(server.url)
    assert client.login("olive", "operator-pass") == 303
    return server, client


def _state(project, day: str) -> str | None:
    try:
        rows = project.query("SELECT state FROM runs WHERE date = ?", (day,))
    except sqlite3.OperationalError:
        return None
    return rows[0][0] if rows else None


def _step_state(project, day: str, step: str) -> str | None:
    rows = project.query(
        "SELECT s.state FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.date = ? AND s.name = ?",
        (day, step),
    )
    return rows[0][0] if rows else None


def test_a_launch_from_the_page_outlives_the_server(project, serve):
    """The run is its own process: stopping the dashboard does not stop the night."""
    server, olive = _operator(project, serve)
    status, _, _ = olive.post("/batch/gated/launch", {"date": "2026-11-20", "csrf": olive.csrf("/")})
    assert status == 303
    wait_for(lambda: _step_state(project, "2026-11-20", "wait") == "running", what="the wait step")
    server.stop()
    (project.root / "gate").touch()
    wait_for(lambda: _state(project, "2026-11-20") == "succeeded", what="the run to finish")
    assert project.query("SELECT trigger, launched_by FROM launches") == [("web", "olive")]
    assert list((project.state_dir / "logs" / "web").iterdir())   # its output was kept


def test_a_second_launch_while_one_runs_is_refused_on_the_page(project, serve):
    """One live launch per batch: the page says why (the run's own exit 3 message)."""
    _, olive = _operator(project, serve)
    token = olive.csrf("/")
    assert olive.post("/batch/gated/launch", {"date": "2026-11-20", "csrf": token})[0] == 303
    wait_for(lambda: _step_state(project, "2026-11-20", "wait") == "running", what="the wait step")
    status, headers, _ = olive.post("/batch/gated/launch", {"date": "2026-11-21", "csrf": token})
    assert status == 303
    message = _flash(olive.get(headers["location"])[2])
    assert message.startswith("error: run gated for 2026-11-21: exit 3") and "already running" in message
    # The batches page offers Cancel for the live launch; pressing it cancels the run.
    assert b"Cancel" in olive.get("/")[2]
    assert olive.post("/batch/gated/cancel", {"back": "/", "csrf": token})[0] == 303
    wait_for(lambda: _state(project, "2026-11-20") == "cancelled", what="the run to be cancelled")
    assert _step_state(project, "2026-11-20", "last") == "pending"


def test_rerun_and_mark_from_the_run_page(project, serve):
    (project.root / "gate").touch()
    _, olive = _operator(project, serve)
    assert project.run("run", "gated", "--date", "2026-11-20").returncode == 0
    token = olive.csrf("/run/gated/2026-11-20")
    assert olive.post("/run/gated/2026-11-20/rerun", {"step": "wait", "csrf": token})[0] == 303
    wait_for(lambda: len(project.query("SELECT id FROM launches")) == 2
             and _state(project, "2026-11-20") == "succeeded", what="the re-run")
    counts = dict(project.query("SELECT step, count(*) FROM attempts GROUP BY step"))
    assert counts == {"first": 1, "wait": 2, "last": 1}   # only that step, not what follows
    # With what depends on it: the page lists what would run again first, and runs nothing.
    following = {"step": "wait", "downstream": "1", "csrf": token}
    status, _, body = olive.post("/run/gated/2026-11-20/rerun", following)
    page = body.decode()
    assert status == 200 and "2 steps to run again: wait, last" in page and "not idempotent" not in page
    assert dict(project.query("SELECT step, count(*) FROM attempts GROUP BY step")) == counts
    assert olive.post("/run/gated/2026-11-20/rerun", {**following, "confirmed": "1"})[0] == 303
    wait_for(lambda: dict(project.query("SELECT step, count(*) FROM attempts GROUP BY step"))
             == {"first": 1, "wait": 3, "last": 2}, what="the re-run with what follows")
    wait_for(lambda: _state(project, "2026-11-20") == "succeeded", what="the run to settle")

    status, headers, _ = olive.post(
        "/run/gated/2026-11-20/mark", {"step": "first", "action": "skip", "reason": "", "csrf": token}
    )
    assert _flash(olive.get(headers["location"])[2]) == "error: mark first: say why"
    mark = {"step": "first", "action": "skip", "reason": "done by hand", "downstream": "1", "csrf": token}
    assert olive.post("/run/gated/2026-11-20/mark", mark)[0] == 303
    assert project.query("SELECT step, new_state, who, reason FROM marks ORDER BY id") == [
        ("first", "skipped", "olive", "done by hand"),
        ("wait", "skipped", "olive", "done by hand"),
        ("last", "skipped", "olive", "done by hand"),
    ]


LOADING = """
    from overnight import Batch
    batch = Batch("loading")
    batch.command("extract", "echo extract >> runs.txt")
    batch.command("load", "echo load >> runs.txt", idempotent=False)
"""


def test_a_rerun_of_a_step_that_is_not_idempotent_warns_and_runs_only_when_confirmed(project, serve):
    """As `overnight run --rerun` at a terminal: the dashboard names the step that may
    repeat what it did, and nothing runs until the operator presses the second button."""
    project.write_batch("loading", LOADING)
    add_user(project, "olive", "operator-pass", role="operator")
    olive = Client(serve(project).url)
    assert olive.login("olive", "operator-pass") == 303
    assert project.run("run", "loading", "--date", "2026-11-20").returncode == 0
    token = olive.csrf("/run/loading/2026-11-20")
    status, _, body = olive.post("/run/loading/2026-11-20/rerun", {"step": "load", "csrf": token})
    page = body.decode()
    assert status == 200 and "1 step to run again: load" in page
    assert "load is not idempotent: running it again may repeat what it did before" in page
    assert 'name="confirmed" value="1"' in page
    assert (project.root / "runs.txt").read_text().split() == ["extract", "load"]   # nothing ran
    # An idempotent step alone needs no second word: it runs at once.
    assert olive.post("/run/loading/2026-11-20/rerun", {"step": "extract", "csrf": token})[0] == 303
    wait_for(lambda: (project.root / "runs.txt").read_text().split() == ["extract", "load", "extract"]
             and _state(project, "2026-11-20") == "succeeded", what="the re-run of extract")
    confirmed = {"step": "load", "confirmed": "1", "csrf": token}
    assert olive.post("/run/loading/2026-11-20/rerun", confirmed)[0] == 303
    wait_for(lambda: (project.root / "runs.txt").read_text().split()[-1:] == ["load"]
             and len(project.query("SELECT id FROM launches")) == 3, what="the confirmed re-run")


def test_backfill_from_the_dashboard_runs_each_date_as_its_operator(project, serve):
    """The backfill button starts `overnight backfill`: every date of the range is run, and
    each launch is recorded as the operator's."""
    (project.root / "gate").touch()
    _, olive = _operator(project, serve)
    assert b'action="/batch/gated/backfill"' in olive.get("/")[2]
    status, headers, _ = olive.post(
        "/batch/gated/backfill", {"from": "2026-11-01", "to": "2026-11-02", "csrf": olive.csrf("/")}
    )
    assert status == 303
    message = _flash(olive.get(headers["location"])[2])
    assert message.startswith("ok: backfill gated 2026-11-01..2026-11-02")
    wait_for(lambda: _state(project, "2026-11-02") == "succeeded", what="the backfill")
    assert _state(project, "2026-11-01") == "succeeded"
    assert {r[0] for r in project.query("SELECT launched_by FROM launches")} == {"olive"}


def test_a_damaged_ledger_is_reported_in_one_line(project, serve):
    _, olive = _operator(project, serve)
    assert olive.get("/")[0] == 200
    ledger = project.ledger_path
    for extra in ("-wal", "-shm"):
        shutil.rmtree(ledger.with_name(ledger.name + extra), ignore_errors=True)
    ledger.write_bytes(b"this is not a database" * 100)
    status, _, body = olive.get("/")
    assert status == 503 and body.decode().count("\n") == 1 and "ledger" in body.decode()
