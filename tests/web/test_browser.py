"""The dashboard in a real headless Chromium: log in, launch, watch, read a log, look back.

Screenshots of every page go to test-artifacts/screenshots/ for a person to review.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from clikit import wait_for
from webtools import SCREENSHOTS, add_user, colour, csp_refusals, rgb, watch_console

from overnight import palette

DEMO = """
    import time
    from pathlib import Path

    from overnight import Batch

    batch = Batch("demo", description="A small night for the dashboard tests")

    batch.command("extract", "echo extracting {date}; sleep 0.2; echo extracted")
    with batch.parallel():
        # load-a waits for a gate file, so the test can watch it run and then let it go.
        batch.command(
            "load-a",
            "echo waiting for the gate; "
            "i=0; while [ ! -e gate ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
            "echo gate open for {date}",
        )
        batch.command("load-b", "sleep 0.3; [ ! -e fail-b ] || { echo load-b broke; exit 3; }; echo b")

    @batch.step
    def publish(ctx):
        ctx.log.info("published %s", ctx.date)
"""


def test_an_operator_logs_in_launches_and_watches_the_night(project, serve, browser):
    """The 7am story: log in, launch a date, see it run and finish live, read a log as it grows,
    see the timeline, re-run a step, mark one, and look at the history grid."""
    project.write_batch("demo", DEMO)
    (project.root / "gate").touch()
    for day in ("2026-11-15", "2026-11-16", "2026-11-18"):
        assert project.run("run", "demo", "--date", day).returncode == 0
    (project.root / "fail-b").touch()
    assert project.run("run", "demo", "--date", "2026-11-17").returncode == 1
    (project.root / "fail-b").unlink()
    (project.root / "gate").unlink()
    add_user(project, "olive", "correct horse", role="operator")
    server = serve(project)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    console = watch_console(page)
    try:
        # Anonymous: sent to the login page.
        page.goto(server.url + "/")
        assert "/login" in page.url
        page.screenshot(path=SCREENSHOTS / "01-login.png")
        page.fill("input[name=name]", "olive")
        page.fill("input[name=password]", "correct horse")
        page.click("button:has-text('Log in')")
        page.wait_for_selector("table.batches")
        row = page.locator("#batch-demo")
        assert "2026-11-18" in row.inner_text() or "2026-11-17" in row.inner_text()
        page.screenshot(path=SCREENSHOTS / "02-batches.png", full_page=True)

        # Launch a night from the page; we land on its run page, which updates itself.
        row.locator("input[name=date]").fill("2026-11-20")
        row.locator("button:has-text('Launch')").click()
        page.wait_for_url(re.compile(r"/run/demo/2026-11-20$"))
        page.wait_for_selector("#step-load-a[data-state=running]")
        assert page.locator("#run-state").inner_text() == "running"
        page.screenshot(path=SCREENSHOTS / "03-run-running.png", full_page=True)

        # The log of the running step, in a second tab: it follows the tail live.
        log_page = context.new_page()
        log_page.set_default_timeout(60_000)
        log_page.goto(server.url + "/run/demo/2026-11-20/log/load-a/1")
        # Waits use selectors, not JavaScript: the pages' Content-Security-Policy forbids eval.
        log_page.wait_for_selector("#log:has-text('waiting for the gate')")
        (project.root / "gate").touch()
        log_page.wait_for_selector("#log:has-text('gate open for 2026-11-20')")
        log_page.wait_for_selector("#log-status:has-text('whole log')")
        log_page.wait_for_selector("#attempt-state:text-is('succeeded')")
        log_page.screenshot(path=SCREENSHOTS / "04-log.png", full_page=True)
        log_page.close()

        # Back on the run page, never reloaded: the run finishes before our eyes.
        page.wait_for_selector("#run-state:text-is('succeeded')")
        page.wait_for_selector("#step-publish[data-state=succeeded]")
        assert "olive" in page.locator("#step-extract").inner_text()
        assert page.locator("#gantt svg rect").count() >= 4   # one bar per attempt
        assert page.locator("#dag svg rect.node").count() == 4
        assert page.locator("#dag svg path.edge").count() == 4
        # The states' colours reach the page (palette.py, through /states.css).
        green = rgb(palette.TONES["ok"].background)
        assert colour(page.locator("#run-state")) == green
        assert colour(page.locator("#gantt rect.s-succeeded").first, "fill") == green
        # The timeline spans the page, and no tick label is cut at either end.
        assert_timeline_fills_the_page(page)
        page.screenshot(path=SCREENSHOTS / "05-run-succeeded.png", full_page=True)
        assert project.query(
            "SELECT trigger, launched_by FROM launches l JOIN runs r ON r.id = l.run_id "
            "WHERE r.date = '2026-11-20'"
        ) == [("web", "olive")]

        # Re-run load-b and what depends on it: listed first, then a second launch, by olive.
        page.locator("#step-load-b button[name=downstream]").click()
        page.wait_for_selector("#rerun")
        assert "2 steps to run again: load-b, publish" in page.locator("#rerun").inner_text()
        page.locator("#rerun button").click()
        page.wait_for_selector(".flash.ok")
        page.locator("#step-publish a.attempt").nth(1).wait_for()
        page.wait_for_selector("#step-publish[data-state=succeeded]")
        page.wait_for_selector("#run-state:text-is('succeeded')")
        assert page.locator("#step-load-a a.attempt").count() == 1   # not downstream of load-b
        assert len(project.query("SELECT id FROM launches WHERE launched_by = 'olive'")) == 2

        # Mark a step skipped, with a reason: recorded with olive's name.
        page.select_option("form.mark select[name=step]", "publish")
        page.select_option("form.mark select[name=action]", "skip")
        page.fill("form.mark input[name=reason]", "published by hand")
        page.click("form.mark button")
        page.wait_for_selector("#step-publish[data-state=skipped]")
        assert "published by hand" in page.locator("#launches").inner_text()
        marks = project.query("SELECT step, who, reason FROM marks")
        assert marks == [("publish", "olive", "published by hand")]

        # History: nights by steps, coloured by state; durations per step.
        page.goto(server.url + "/history/demo")
        grid = page.locator("#grid svg.grid")
        # Each night's cells of one state are one path (M...z per cell): count the cells.
        failed = grid.locator("path.c.s-failed")
        assert failed.count() == 1 and failed.get_attribute("d").count("z") == 1   # load-b, 11-17
        assert grid.locator("path.c.s-blocked").get_attribute("d").count("z") == 1   # publish
        shapes = grid.locator("path.c").evaluate_all("ps => ps.map(p => p.getAttribute('d'))")
        assert sum(d.count("z") for d in shapes) == 20   # 5 nights x 4 steps
        assert grid.locator("a").count() == 5                  # five nights
        failed.hover()                                         # the page names the cell
        assert page.locator(".tip").inner_text() == "load-b on 2026-11-17: failed"
        assert page.locator("table.durations tbody tr").count() == 4
        # Five nights are not squeezed into 10-pixel cells: each is a good 40 px wide.
        box = grid.bounding_box()
        assert box["width"] / 5 >= 40, box
        assert colour(failed, "fill") == rgb(palette.TONES["bad"].background)
        page.screenshot(path=SCREENSHOTS / "06-history.png", full_page=True)

        # A night with a failure, as a person would look at it.
        page.goto(server.url + "/run/demo/2026-11-17")
        assert page.locator("#step-load-b").get_attribute("data-state") == "failed"
        assert page.locator("#step-publish").get_attribute("data-state") == "blocked"
        page.screenshot(path=SCREENSHOTS / "07-run-failed.png", full_page=True)
        page.goto(server.url + "/run/demo/2026-11-17/log/load-b/1")
        page.wait_for_selector("#log:has-text('load-b broke')")
        page.goto(server.url + "/audit")
        assert "launch" in page.locator("table.audit").inner_text()
        page.screenshot(path=SCREENSHOTS / "09-audit.png", full_page=True)
        assert csp_refusals(console) == []
    finally:
        context.close()


def test_without_users_the_dashboard_is_a_read_only_window(project, serve, browser):
    """On 127.0.0.1 with no users, anyone on the machine may look, nobody may launch."""
    project.write_batch(
        "demo", "from overnight import Batch\nbatch = Batch('demo')\nbatch.command('a', 'true')\n"
    )
    assert project.run("run", "demo", "--date", "2026-11-20").returncode == 0
    server = serve(project)
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        assert "read-only" in page.inner_text("body")
        assert page.locator("button:has-text('Launch')").count() == 0
        page.goto(server.url + "/run/demo/2026-11-20")
        wait_for(lambda: page.locator("#step-a").get_attribute("data-state") == "succeeded", what="step a")
    finally:
        page.close()


def test_the_docs_words_start_the_dashboard_on_the_sample_night(tmp_path, browser):
    """docs/web.md: `cd examples/sample && overnight user add admin --role operator && overnight web`,
    then a person logs in, launches the night and watches it finish."""
    import shutil
    import subprocess
    import sys

    from webtools import free_port

    sample = tmp_path / "sample"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "sample", sample,
                    ignore=shutil.ignore_patterns(".overnight", "out", "break-import"))
    env = {k: v for k, v in os.environ.items() if k != "OVERNIGHT_CONFIG"}
    added = subprocess.run(
        [sys.executable, "-m", "overnight", "user", "add", "admin", "--role", "operator"],
        cwd=sample, env=env, input="night-owl-42\nnight-owl-42\n", capture_output=True, text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    port = free_port()
    with open(tmp_path / "web.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "overnight", "web", "--port", str(port)],
            cwd=sample, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(60_000)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url + "/login"), timeout=30, what="overnight web")
        page.goto(url)
        page.fill("input[name=name]", "admin")
        page.fill("input[name=password]", "night-owl-42")
        page.click("button:has-text('Log in')")
        page.locator("#batch-nightly button:has-text('Launch')").click()
        page.wait_for_url(re.compile(r"/run/nightly/\d{4}-\d{2}-\d{2}$"))
        page.wait_for_selector("#run-state:text-is('succeeded')")
        page.wait_for_selector("#step-tell-the-team[data-state=succeeded]")
        assert page.locator("#gantt svg rect").count() >= 10
        page.screenshot(path=SCREENSHOTS / "08-sample-night.png", full_page=True)
    finally:
        page.close()
        server.terminate()
        server.wait(timeout=10)


def assert_timeline_fills_the_page(page) -> None:
    """The bars take the page's width, and every tick label is whole inside the timeline."""
    main = page.locator("main").bounding_box()
    bars = page.locator("#gantt svg.gantt-bars").bounding_box()
    assert bars["width"] >= 0.7 * main["width"], (bars, main)
    frame = page.locator("#gantt").bounding_box()
    ticks = page.locator("#gantt svg.gantt-bars text.tick")
    assert ticks.count() >= 2
    for i in range(ticks.count()):
        box = ticks.nth(i).bounding_box()
        assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"], (
            ticks.nth(i).text_content(), box, frame)
        assert re.fullmatch(r"\d\d:\d\d(:\d\d)?( UTC)?", ticks.nth(i).text_content())


def _answers(url: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False
