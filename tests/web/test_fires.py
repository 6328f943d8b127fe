"""The scheduler's records of fires that did not become a night (issue 11) where a person
looks: a gap of missed fires as one record with the dates it covers, and the report owed for
it that could not be delivered. Real `overnight scheduler --once` passes, a mail server that
is down, a real server and Chromium."""

from __future__ import annotations

from mailkit import Mailbox
from webtools import SCREENSHOTS, Client, csp_refusals, watch_console

FAST = {"OVERNIGHT_MAIL_RETRY_DELAYS": "0.1"}
NIGHTLY = """
    from overnight import Batch
    batch = Batch("nightly")
    batch.command("work", "echo {date}")
"""


def test_a_gap_of_missed_fires_and_its_undelivered_report_show_on_the_history_page(
    project, serve, browser
):
    down = Mailbox()  # never started: nothing listens on its port
    project.write_batch("nightly", NIGHTLY, config=False)
    project.write_config(
        '[batches.nightly]\nmodule = "nightly.py"\nschedule = "0 1 * * *"\ncatchup = "none"\n'
        'mail = "failure"\ntimezone = "America/Chicago"\n\n' + down.config()
    )
    for now in ("2026-11-01T12:00:00Z", "2026-11-25T12:00:00Z"):
        result = project.run("scheduler", "--once", "--now", now, **FAST)
        assert result.returncode == 0, result.stderr
    [(count, first, last)] = project.query("SELECT count, date, last_date FROM fires")
    assert count > 1 and first < last  # one record for the whole gap

    server = serve(project)
    history = Client(server.url).get("/history/nightly")[2].decode()
    assert f"report not sent (mail): cannot connect to the mail server 127.0.0.1:{down.port}" in history
    batches = Client(server.url).get("/")[2].decode()
    assert f"missed ({count} fires)" in batches

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    console = watch_console(page)
    try:
        page.goto(server.url + "/history/nightly")
        row = page.locator("table.fires tbody tr").first
        assert row.locator("td.dates").inner_text() == f"{first} to {last}"
        assert row.locator(".unsent").inner_text().startswith("report not sent (mail)")
        page.screenshot(path=SCREENSHOTS / "16-history-missed-gap.png", full_page=True)
        assert csp_refusals(console) == []
    finally:
        page.close()
