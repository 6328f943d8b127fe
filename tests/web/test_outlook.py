"""The live estimate where a person looks (issue 12's fields): the predicted finish against
the deadline and a "will be late" badge on the batches and run pages, the running step
against its usual time, and the alerts of the night (will be late, missed deadline, running
long), on the batch's clock, in Chromium."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from clikit import deadline_in, wait_for
from webtools import SCREENSHOTS, csp_refusals, watch_console

DAY = "2026-11-26"
# Two nights of history (load and publish take 2 s each); then a night whose load and
# publish each wait for a gate file: the deadline passes while load waits, and when load
# ends the runner's new prediction (at that step boundary) is past the deadline.
GATED = ("if [ -e slow ]; then i=0; while [ ! -e {gate} ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); "
         "done; else sleep 2; fi")
NIGHT = f"""
    from overnight import Batch

    batch = Batch("night")
    batch.command("extract", "sleep 0.2")
    batch.command("load", {GATED.format(gate="gate")!r})
    batch.command("publish", {GATED.format(gate="gate2")!r})
"""


def configure(project, deadline: str = "") -> None:
    project.write_batch("night", NIGHT, config=False)
    project.write_config(f'[batches.night]\nmodule = "night.py"\ntimezone = "America/Chicago"\n{deadline}\n')


def test_a_night_that_will_be_late_says_so_on_both_pages(project, serve, browser):
    configure(project)
    for day in ("2026-11-24", "2026-11-25"):
        assert project.run("run", "night", "--date", day).returncode == 0
    # Far enough ahead that the launch surely starts before it (it is the first such wall
    # time after the launch's start), near enough not to wait long.
    chicago_deadline = deadline_in(10).astimezone(ZoneInfo("America/Chicago"))
    configure(project, f'deadline = "{chicago_deadline:%H:%M:%S}"')
    (project.root / "slow").touch()
    night = project.start("run", "night", "--date", DAY)
    server = serve(project)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(60_000)
    console = watch_console(page)
    try:
        page.goto(server.url + f"/run/night/{DAY}")
        # The deadline passes with the night unfinished: the alert shows up by itself.
        page.wait_for_selector("#outlook li.alert.missed")
        assert "missed deadline" in page.locator("#outlook").inner_text()
        (project.root / "gate").touch()
        wait_for(lambda: ", late)" in project.run("status", "night").stdout, 30, "a late forecast")
        page.goto(server.url + "/")
        row = page.locator("#batch-night")
        assert row.locator(".badge.late").inner_text() == "will be late"
        deadline_text = f"{chicago_deadline:%H:%M:%S} CST"
        assert row.locator("b.deadline").inner_text() == deadline_text
        assert re.fullmatch(r"\d\d:\d\d(:\d\d)? CST", row.locator("b.finish").inner_text())
        page.screenshot(path=SCREENSHOTS / "14-batches-will-be-late.png", full_page=True)

        page.goto(server.url + f"/run/night/{DAY}")
        outlook = page.locator("#outlook")
        assert outlook.locator("#forecast .badge.late").inner_text() == "will be late"
        assert "critical path: publish" in outlook.inner_text()
        assert "usually 2" in page.locator("#step-publish").inner_text()  # its median, about 2 s
        page.screenshot(path=SCREENSHOTS / "15-run-will-be-late.png", full_page=True)

        # Running long (the runner's rule needs medians of a minute): an alert of the ledger.
        from overnight.ledger import Ledger

        ledger = Ledger.open(project.ledger_path)
        with ledger.transaction():
            ledger.claim_alert("night", DAY, "long", "publish", f"Overnight for {DAY}: night: publish long")
        ledger.close()
        page.wait_for_selector("#step-publish .badge.long")

        (project.root / "gate2").touch()
        assert night.wait(60) == 0
        page.wait_for_selector("#run-state:text-is('succeeded')")
        assert page.locator("#forecast").count() == 0  # no prediction once the night is over
        assert page.locator("#step-publish .badge.long").count() == 0
        # The record stays: missed deadline, and running long (no "will be late" once missed).
        assert page.locator("#outlook li.alert").count() == 2
        assert csp_refusals(console) == []
    finally:
        page.close()
        (project.root / "gate").touch()
        (project.root / "gate2").touch()
        night.wait(60)
