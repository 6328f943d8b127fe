"""What the pages show from records other parts of overnight write: scheduler fires, reports."""

from __future__ import annotations

import re

from webtools import Client

from overnight.ledger import Ledger

SIMPLE = """
    from overnight import Batch
    batch = Batch("demo")
    batch.command("extract", "echo extracting {date}")
"""


def test_the_scheduler_and_report_records_show_where_a_person_looks(project, serve):
    """Fires on the batches page (the latest) and the history page; report deliveries on the run."""
    project.write_batch("demo", SIMPLE)
    assert project.run("run", "demo", "--date", "2026-11-20").returncode == 0
    ledger = Ledger.open(project.ledger_path)
    with ledger.transaction():
        ledger.record_fire("demo", "2026-11-21T01:00:00+00:00", "2026-11-20", "launched", pid=4242)
        ledger.record_fire("demo", "2026-11-22T01:00:00+00:00", "2026-11-21", "missed",
                           message="the machine was off; outside the catch-up window")
        run = ledger.find_run("demo", "2026-11-20")
        ledger.record_report(run.id, None, "mail", "failed", 3, "connection refused by mail.example")
    ledger.close()
    # The batch's clock: the night is read in Chicago time wherever the server runs.
    config = project.root / "overnight.toml"
    config.write_text(config.read_text().replace('timezone = "UTC"', 'timezone = "America/Chicago"'))
    server = serve(project)
    anon = Client(server.url)   # no users: read-only pages for anyone on this machine
    batches = anon.get("/")[2].decode()
    assert "last fire 2026-11-21 19:00 CST: missed" in batches
    history = anon.get("/history/demo")[2].decode()
    assert "outside the catch-up window" in history and "launched" in history
    assert "<td>2026-11-20 19:00 CST</td>" in history
    run_page = anon.get("/run/demo/2026-11-20")[2].decode()
    assert "mail: failed (3 tries)" in run_page and "connection refused by mail.example" in run_page
    assert re.search(r"launch 1: manual by .*?, 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d CST", run_page, re.S)
    assert "UTC" not in run_page


def test_the_latest_run_link_goes_to_the_newest_night(project, serve):
    project.write_batch("demo", SIMPLE)
    for day in ("2026-11-19", "2026-11-20"):
        assert project.run("run", "demo", "--date", day).returncode == 0
    server = serve(project)
    status, headers, _ = Client(server.url).get("/run/demo")
    assert status == 303 and headers["location"] == "/run/demo/2026-11-20"


ADOPTING = """
    from pathlib import Path
    from overnight import Batch
    batch = Batch("demo")
    batch.command("extract", "echo extracting {date}", adopt_if=lambda day: Path(f"luigi-{day}").exists())
    batch.command("load", "echo loading {date}")
"""


def test_an_adopted_step_and_the_launches_of_a_night_read_as_such(project, serve):
    """The run page shows the adopted step as adopted, and launches by their number that
    night (launch 1, 2), not by ids counted across every night."""
    project.write_batch("demo", ADOPTING)
    assert project.run("run", "demo", "--date", "2026-11-19").returncode == 0  # launch id 1
    (project.root / "luigi-2026-11-20").touch()
    for _ in range(2):
        assert project.run("run", "demo", "--date", "2026-11-20").returncode == 0  # ids 2 and 3
    server = serve(project)
    page = Client(server.url).get("/run/demo/2026-11-20")[2].decode()
    assert 'class="badge s-adopted">adopted</span>' in page
    assert "launch 1:" in page and "launch 2:" in page and "launch 3" not in page


def test_a_launch_that_could_not_start_shows_on_the_run_and_batches_pages(project, serve):
    project.write_batch("demo", SIMPLE)
    (project.root / "demo.py").write_text("import no_such_package_xyz\n")
    failed = project.run("run", "demo", "--date", "2026-11-20", OVERNIGHT_TRIGGER="scheduled")
    assert failed.returncode == 2
    server = serve(project)
    anon = Client(server.url)
    run_page = anon.get("/run/demo/2026-11-20")[2].decode()
    assert 'class="badge s-failed">failed' in run_page
    assert "could not start: demo.py:1: import failed: ModuleNotFoundError" in run_page
    batches = anon.get("/")[2].decode()
    assert "2026-11-20" in batches and "failed" in batches
