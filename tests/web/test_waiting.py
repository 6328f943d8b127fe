"""What a live night waits for, where a person looks: a launch waiting for another batch
(after = ["all"]) and a step waiting for a pool another batch holds, on the batches page and
the run page, in Chromium."""

from __future__ import annotations

import textwrap

from clikit import wait_for
from webtools import SCREENSHOTS, watch_console

DAY = "2026-11-26"
ALL = """
    from overnight import Batch
    batch = Batch("all")
    batch.command("hold", "i=0; while [ ! -e gate ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done",
                  resources={"pos_db": 1})
"""
BACKUPS = """
    from overnight import Batch
    batch = Batch("backups")
    batch.command("dump", "true")
"""
REPORTS = """
    from overnight import Batch
    batch = Batch("reports")
    batch.command("pos-report", "true", resources={"pos_db": 1})
"""
CONFIG = """
    [overnight]
    state_dir = ".overnight"
    timezone = "UTC"

    [resources]
    pos_db = 1

    [batches.all]
    module = "all.py"

    [batches.backups]
    module = "backups.py"
    after = ["all"]

    [batches.reports]
    module = "reports.py"
"""


def test_a_night_waiting_for_a_batch_or_a_pool_says_so_on_both_pages(project, serve, browser):
    for name, source in (("all", ALL), ("backups", BACKUPS), ("reports", REPORTS)):
        (project.root / f"{name}.py").write_text(textwrap.dedent(source))
    (project.root / "overnight.toml").write_text(textwrap.dedent(CONFIG))
    runs = [project.start("run", "all", "--date", DAY)]
    try:
        wait_for(lambda: project.ledger_path.exists() and project.run("status", "all").returncode == 0
                 and "running" in project.run("status", "all").stdout, what="all to hold pos_db")
        runs += [project.start("run", name, "--date", DAY) for name in ("backups", "reports")]
        wait_for(lambda: "waiting for" in project.run("status", "reports").stdout
                 and "waiting for" in project.run("status", "backups").stdout, what="both to wait")
        server = serve(project)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        watch_console(page)
        try:
            page.goto(server.url + "/")
            backups = page.locator("#batch-backups").inner_text()
            assert "waiting for batch all" in backups, backups
            page.screenshot(path=SCREENSHOTS / "12-batches-waiting.png", full_page=True)
            page.goto(server.url + f"/run/reports/{DAY}")
            note = page.locator("#step-pos-report").inner_text()
            assert "waiting for pos_db (held by all/hold)" in note, note
            page.screenshot(path=SCREENSHOTS / "13-run-waiting-for-a-pool.png", full_page=True)
            page.goto(server.url + f"/run/backups/{DAY}")
            assert "waiting for batch all" in page.locator("#outlook").inner_text()
            # Then all finishes: both pages clear by themselves.
            (project.root / "gate").touch()
            page.wait_for_selector("#run-state:text-is('succeeded')")
            assert page.locator("#outlook").inner_text().strip() == ""
        finally:
            page.close()
    finally:
        (project.root / "gate").touch()
        for proc in runs:
            proc.wait(timeout=60)
