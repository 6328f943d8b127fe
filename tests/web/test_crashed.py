"""A runner killed with kill -9 reads as crashed everywhere, before any launch records it.

The rule is states.after_runner_died, applied by the read model: status, history, list,
their --json, and the dashboard's batches page, run page, /live, history grid and log
tail all tell the same story, and it is the story the next launch (here: a mark, which
reaps dead launches and changes nothing else) then writes into the ledger.
"""

from __future__ import annotations

import json
import re

import pytest
from clikit import wait_for
from webtools import Client

DAY = "2026-11-26"

# Each kill point: the batch, when to kill, and what each step is then (as seen, and as the
# next launch records it).
KILL_POINTS = {
    "while a step runs": (
        """
        from overnight import Batch
        batch = Batch("crash")
        batch.command("first", "true")
        batch.command("long", "sleep 300")
        batch.command("last", "true")
        """,
        lambda steps: steps["long"]["state"] == "running",
        {"first": "succeeded", "long": "interrupted", "last": "pending"},
    ),
    "while a retry waits": (
        """
        from overnight import Batch
        batch = Batch("crash")
        batch.command("first", "true")
        batch.command("flaky", "exit 1", retries=1, retry_delay="300s")
        batch.command("last", "true")
        """,
        lambda steps: [a["state"] for a in steps["flaky"]["attempts"]] == ["failed"],
        {"first": "succeeded", "flaky": "pending", "last": "pending"},
    ),
}


def _steps(status: dict) -> dict[str, dict]:
    return {s["name"]: s for s in status["steps"]}


def _story(status: dict) -> tuple:
    """The states a reader is told: run, launches, steps, attempts."""
    return (
        status["state"],
        [la["state"] for la in status["launches"]],
        {s["name"]: (s["state"], [a["state"] for a in s["attempts"]]) for s in status["steps"]},
    )


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_runner_reads_as_crashed_in_every_reader(project, serve, point: str) -> None:
    source, ready, expected = KILL_POINTS[point]
    project.write_batch("crash", source)
    server = serve(project)
    runner = project.start("run", "crash", "--date", DAY)
    try:
        wait_for(lambda: project.ledger_path.exists() and ready(_steps(project.status("crash"))),
                 what=f"the launch to be {point}")
    finally:
        runner.kill()
        runner.wait()
    # The sentinel ends the steps and lets the lock go a moment after the runner died.
    wait_for(lambda: project.status("crash")["state"] == "crashed", timeout=10, what="the lock to go")

    status = project.status("crash")
    assert {name: s["state"] for name, s in _steps(status).items()} == expected
    assert [la["state"] for la in status["launches"]] == ["crashed"]
    assert "running" not in json.dumps(_story(status))
    assert project.run("status", "crash").stdout.startswith(f"crash for {DAY}: crashed\n")

    overview = json.loads(project.run("status", "--json").stdout)
    assert overview == [{"batch": "crash", "date": DAY, "state": "crashed", "live_launch": None}]
    history = json.loads(project.run("history", "--json").stdout)
    night = history["runs"][0]
    assert night["state"] == "crashed" and [la["state"] for la in night["launches"]] == ["crashed"]
    assert "running" not in night["steps"] and sum(night["steps"].values()) == 3
    text = project.run("history").stdout
    assert "crashed" in text and "running" not in text
    listed = json.loads(project.run("list", "--json").stdout)
    assert [(b["batch"], b["last_state"]) for b in listed] == [("crash", "crashed")]

    web = Client(server.url)  # no users: read-only pages for anyone on this machine
    batches = web.get("/")[2].decode()
    row = re.search(r'<tr id="batch-crash">.*?</tr>', batches, re.S)
    assert row and 'badge s-crashed">crashed' in row.group(0), batches
    assert "s-running" not in row.group(0) and "idle" in row.group(0)
    live = json.loads(web.get(f"/run/crash/{DAY}/live")[2])
    assert live["state"] == "crashed" and live["live"] is False
    for name, state in expected.items():
        assert f'id="step-{name}" data-state="{state}"' in live["steps"], live["steps"]
    assert 'data-state="running"' not in live["steps"] and "s-running" not in live["gantt"]
    assert 'badge s-crashed">crashed' in live["launches"]
    page = web.get(f"/run/crash/{DAY}")[2].decode()
    assert 'id="run-state" class="badge s-crashed">crashed' in page
    grid = web.get("/history/crash")[2].decode()
    data = json.loads(re.search(r'class="grid-data">(.*?)</script>', grid).group(1))
    assert data["codes"][data["runs"][0]] == "crashed" and "r" not in data["cells"][0]
    last_step = next(n for n in expected if expected[n] != "succeeded")
    status_code, headers, _ = web.get(f"/run/crash/{DAY}/log/{last_step}/1/tail")
    assert status_code == 200 and headers["X-State"] != "running" and headers["X-Finished"] == "1"

    # The next launch records exactly what the readers showed (a mark reaps, changes nothing).
    seen = _story(status)
    mark = project.run("mark", "crash", "last", "--redo", "--date", DAY, "--reason", "reap")
    assert mark.returncode == 0, mark.stderr
    assert _story(project.status("crash")) == seen
    assert project.query("SELECT state FROM runs") == [("crashed",)]


GATED = """
    from overnight import Batch
    batch = Batch("crash")
    batch.command("first", "true")
    batch.command("wait", "i=0; while [ ! -e gate ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done")
    batch.command("last", "true")
"""


def test_an_operator_sees_a_crashed_launch_as_crashed_with_resume_and_the_page_stops_polling(
    project, serve, browser
):
    from webtools import SCREENSHOTS, add_user, watch_console

    project.write_batch("crash", GATED)
    add_user(project, "olive", "operator-pass", role="operator")
    server = serve(project)
    runner = project.start("run", "crash", "--date", DAY)
    try:
        def waiting() -> bool:
            shown = project.run("status", "crash", "--json")  # the ledger holds users before the run
            return shown.returncode == 0 and _steps(json.loads(shown.stdout))["wait"]["state"] == "running"

        wait_for(waiting, what="the wait step")
    finally:
        runner.kill()
        runner.wait()
    wait_for(lambda: project.status("crash")["state"] == "crashed", timeout=10, what="the lock to go")

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(60_000)
    watch_console(page)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/live") else None)
    try:
        page.goto(server.url + "/login")
        page.fill("input[name=name]", "olive")
        page.fill("input[name=password]", "operator-pass")
        page.click("button:has-text('Log in')")
        row = page.locator("#batch-crash")
        assert row.locator(".badge.s-crashed").inner_text() == "crashed"
        assert row.locator("button:has-text('Resume 2026-11-26')").count() == 1
        assert row.locator("button:has-text('Cancel')").count() == 0
        page.screenshot(path=SCREENSHOTS / "10-batches-crashed.png", full_page=True)

        page.goto(server.url + f"/run/crash/{DAY}")
        assert page.locator("#run-state").inner_text() == "crashed"
        assert page.locator("#step-wait").get_attribute("data-state") == "interrupted"
        assert "on" not in (page.locator("#live-dot").get_attribute("class") or "").split()
        assert page.locator("button:has-text('Cancel this launch')").count() == 0
        # It asks a few times to be sure the night has settled, then stops asking.
        # (The browser's events arrive while Playwright waits, not while Python sleeps.)
        for _ in range(40):
            if len(polls) >= 3:
                break
            page.wait_for_timeout(500)
        settled = len(polls)
        assert settled >= 3, polls
        page.wait_for_timeout(3000)
        assert len(polls) == settled, polls
        page.screenshot(path=SCREENSHOTS / "11-run-crashed.png", full_page=True)

        # Resume: what succeeded is skipped, the interrupted step runs again, the night ends.
        (project.root / "gate").touch()
        page.goto(server.url + "/")
        page.locator("#batch-crash button:has-text('Resume')").click()
        page.wait_for_url(f"**/run/crash/{DAY}")
        page.wait_for_selector("#run-state:text-is('succeeded')")
        assert page.locator("#step-first a.attempt").count() == 1
        assert page.locator("#step-wait a.attempt").count() == 2
    finally:
        page.close()
