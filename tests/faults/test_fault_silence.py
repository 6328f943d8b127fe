"""No night lost in silence, attacked: every way a scheduled night can fail to become a run,
each a class of cases through the real CLI, real launched processes, a real SMTP server
and a real HTTP receiver on 127.0.0.1. Whatever the way, the night is recorded once and
reported once, later passes never repeat the report, and a report that could not be
delivered is delivered by `overnight report BATCH --date D --send`.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest
from clikit import wait_for
from mailkit import Mailbox, text_of

FAST = {"OVERNIGHT_MAIL_RETRY_DELAYS": "0.1"}
HEAD = 'from overnight import Batch\nbatch = Batch("nightly")\n'
QUICK = HEAD + 'batch.command("work", "echo {date} >> dates.txt")\n'
HELD = HEAD + 'batch.command("work", "while [ ! -e release-{date} ]; do sleep 0.05; done")\n'


def configure(project, mailbox: Mailbox, receiver=None, source: str = QUICK, **settings: object) -> None:
    (project.root / "nightly.py").write_text(source)
    table = {"module": "nightly.py", "schedule": "0 1 * * *", "mail": "failure", **settings}
    text = "[batches.nightly]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    text += "\n" + mailbox.config()
    if receiver is not None:
        text += f'\n[[webhooks]]\nurl = "{receiver.url}"\nwhen = "failure"\n'
    project.write_config(text)


def once(project, now: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = project.run("scheduler", "--once", "--now", now, **FAST, **env)
    assert result.returncode == 0, result.stderr
    return result


def ended(project, count: int = 1) -> None:
    wait_for(lambda: len(project.query("SELECT 1 FROM launches WHERE state != 'running'")) >= count,
             what=f"{count} launch(es) to end")


# -- 1. every way a scheduled launch cannot start --------------------------------------------------

NOT_STARTING = {
    "syntax-error": ({"nightly.py": HEAD + 'batch.command("work", "true"\n'}, "syntax error"),
    "import-of-a-missing-package": ({"nightly.py": "import no_such_package_xyz\n" + QUICK},
                                    "import failed: ModuleNotFoundError"),
    "exception-at-import": ({"nightly.py": QUICK + 'raise RuntimeError("half edited")\n'},
                            "import failed: RuntimeError: half edited"),
    "no-batch-defined": ({"nightly.py": "x = 1\n"}, "defines no batch"),
    "batch-renamed-in-module": ({"nightly.py": QUICK.replace('Batch("nightly")', 'Batch("renamed")')},
                                "calls it 'nightly'"),
    "definition-error": ({"nightly.py": QUICK + 'batch.command("work", "again")\n'}, "work"),
    "queue-without-celery": ({"nightly.py": HEAD + 'batch.command("work", "true", queue="far")\n'},
                             "has no [celery] section"),
    "module-deleted": ({"nightly.py": None}, "no such batch module file"),
}


@pytest.mark.parametrize("how", list(NOT_STARTING), ids=list(NOT_STARTING))
def test_a_launch_that_cannot_start_is_recorded_and_reported_once(project, mailbox, receiver, how):
    files, error = NOT_STARTING[how]
    configure(project, mailbox, receiver)
    once(project, "2026-11-26T00:59:00Z")
    for name, text in files.items():
        if text is None:
            (project.root / name).unlink()
        else:
            (project.root / name).write_text(text)
    once(project, "2026-11-26T01:00:05Z")
    ended(project)
    wait_for(lambda: mailbox.messages and receiver.bodies, what="the report")
    once(project, "2026-11-26T01:10:00Z")
    once(project, "2026-11-27T00:00:00Z")
    [message] = mailbox.messages
    assert message["Subject"] == "Overnight for 2026-11-25: nightly: could not start", how
    assert error in text_of(message), text_of(message)
    assert message["Date"] and message["Message-ID"]
    [posted] = receiver.bodies
    assert posted["not_started"] and error in posted["error"]
    assert project.query("SELECT state FROM runs") == [("failed",)]
    assert project.query("SELECT state, trigger FROM launches") == [("failed", "scheduled")]
    assert "could not start" in project.run("history", "nightly").stdout


# -- 2. every way a fire does not become a run ------------------------------------------------------


def missed_once(project) -> str:
    """catchup = none and the scheduler down over one fire."""
    once(project, "2026-11-25T12:00:00Z")
    once(project, "2026-11-26T12:00:00Z")
    return "2026-11-25"


def missed_gap(project) -> str:
    """A cursor months old: one record, one report, for the whole gap."""
    once(project, "2026-08-01T12:00:00Z")
    once(project, "2026-11-26T12:00:00Z")
    return "2026-08-01"


def skipped_busy(project) -> str:
    runner = hold(project)
    once(project, "2026-11-26T00:59:00Z")
    once(project, "2026-11-26T01:00:05Z")
    (project.root / "release-2026-11-20").touch()
    assert runner.wait(timeout=60) == 0
    return "2026-11-25"


def failed_to_launch(project) -> str:
    """The folder for the launch's output cannot be made (a file stands in its way)."""
    once(project, "2026-11-26T00:59:00Z")
    blocker = project.state_dir / "logs" / "scheduler" / "nightly"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    once(project, "2026-11-26T01:00:05Z")
    return "2026-11-25"


def lost_the_race(project) -> str:
    """The scheduler looked, found the batch free, and a manual run took it before the
    launch got its lock (overlap = skip: recorded skipped by the launch, and reported)."""
    from overnight.scheduling.daemon import Scheduler

    once(project, "2026-11-26T00:59:00Z")
    gate = project.root / "go"
    slow_start = ["/bin/sh", "-c", f'while [ ! -e {gate} ]; do sleep 0.02; done; exec "$@"', "sh",
                  *_overnight()]
    daemon = Scheduler(project.root / "overnight.toml", command=slow_start, log=lambda _m: None)
    try:
        daemon.loop_once(datetime(2026, 11, 26, 1, 0, 5, tzinfo=UTC))
        runner = hold(project)
        gate.touch()
        [child] = [c.proc for c in daemon.children.values()]
        assert child.wait(timeout=60) == 3
    finally:
        daemon.close()
    (project.root / "release-2026-11-20").touch()
    assert runner.wait(timeout=60) == 0
    return "2026-11-25"


def cron_line_busy(project) -> str:
    """A cron line cannot wait for a busy batch: its night is recorded skipped, reported."""
    runner = hold(project)
    day = (datetime.now(tz=UTC).date() - timedelta(days=1)).isoformat()
    result = project.run("run", "nightly", OVERNIGHT_TRIGGER="cron", **FAST)
    assert result.returncode == 3
    (project.root / "release-2026-11-20").touch()
    assert runner.wait(timeout=60) == 0
    return day


def _overnight() -> list[str]:
    import sys

    return [sys.executable, "-m", "overnight"]


def hold(project) -> subprocess.Popen[str]:
    """A manual run for the 20th that holds the batch until release-2026-11-20 exists."""
    import sqlite3

    def running() -> bool:
        try:
            return bool(project.query("SELECT 1 FROM launches WHERE state = 'running'"))
        except sqlite3.OperationalError:  # the ledger is being created
            return False

    runner = project.start("run", "nightly", "--date", "2026-11-20")
    wait_for(running, what="the holder")
    return runner


NOT_RUN = {
    "missed-once": (missed_once, {"catchup": "none"}, "missed, not run"),
    "missed-gap-of-months": (missed_gap, {}, "missed, not run (117 fires)"),
    "skipped-busy": (skipped_busy, {"overlap": "skip"}, "skipped: the batch was busy"),
    "failed-to-launch": (failed_to_launch, {}, "failed to launch"),
    "lost-the-race": (lost_the_race, {"overlap": "skip"}, "skipped: the batch was busy"),
    "cron-line-busy": (cron_line_busy, {}, "skipped: the batch was busy"),
}


@pytest.mark.parametrize("how", list(NOT_RUN), ids=list(NOT_RUN))
def test_a_fire_that_does_not_become_a_run_is_reported_once_and_resent_on_demand(project, receiver, how):
    make, settings, headline = NOT_RUN[how]
    box = Mailbox()  # down while the night is lost: the report is recorded not sent
    configure(project, box, receiver, source=HELD, **settings)
    day = make(project)
    wait_for(lambda: receiver.bodies, what="the webhook")
    once(project, "2026-11-27T00:30:00Z")  # later passes: nothing sent again
    [posted] = receiver.bodies
    assert posted["date"] == day and posted["fire_id"]
    [(outcome, report, fire_id)] = project.query(
        "SELECT outcome, report, id FROM fires WHERE report IS NOT NULL"
    )
    assert report == "made"
    assert project.query("SELECT channel, state FROM fire_reports WHERE fire_id = ?", (fire_id,)) == [
        ("mail", "not_sent"), (f"webhook:{receiver.url}", "sent")
    ]
    history = project.run("history", "nightly").stdout
    assert f"{outcome}:" in history and "report not sent (mail): cannot connect" in history
    box.start()
    try:
        shown = project.run("report", "nightly", "--date", day)
        assert shown.returncode == 0, shown.stderr
        assert f"nightly: {headline}" in shown.stdout
        sent = project.run("report", "nightly", "--date", day, "--send", **FAST)
        assert sent.returncode == 0, sent.stderr
        once(project, "2026-11-27T00:40:00Z")
        [message] = box.messages
    finally:
        box.stop()
    subject = message["Subject"]
    assert subject.startswith(f"Overnight for {day}") and f"nightly: {headline}" in subject
    assert "report not sent" not in project.run("history", "nightly").stdout


# -- 3. a sender killed while it reports: the report is owed, and sent by a later pass --------------


def test_a_pass_killed_while_it_reports_leaves_the_report_owed_and_a_later_pass_sends_it(project):
    """kill -9 while the mail server holds the connection: the record says the report is
    owed; a pass after the sender is gone sends it once."""
    hanging = Mailbox(hang=True)
    hanging.start()
    try:
        configure(project, hanging, catchup="none")
        once(project, "2026-11-25T12:00:00Z")
        sender = project.start("scheduler", "--once", "--now", "2026-11-26T12:00:00Z", **FAST)
        wait_for(lambda: hanging.connected, what="the sender to reach the mail server")
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=30)
    finally:
        hanging.stop()
    assert project.query("SELECT outcome, report FROM fires") == [("missed", "due")]
    box = Mailbox()
    box.start()
    try:
        configure(project, box, catchup="none")
        once(project, "2026-11-26T12:01:00Z")  # its sender may still be at it: not yet
        assert box.messages == []
        once(project, "2026-11-26T12:02:00Z", OVERNIGHT_REPORT_ABANDONED_AFTER="0")
        once(project, "2026-11-26T12:03:00Z", OVERNIGHT_REPORT_ABANDONED_AFTER="0")
        [message] = box.messages
    finally:
        box.stop()
    assert "missed, not run" in message["Subject"]
    assert project.query("SELECT outcome, report FROM fires") == [("missed", "made")]


# -- 4. the clock: simulated and real time never hijack the real nights ------------------------------


def tree_digest(root) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("ahead", [timedelta(minutes=2), timedelta(days=2), timedelta(days=400)],
                         ids=["two-minutes", "two-days", "a-year"])
def test_a_pass_after_the_real_clock_is_refused_and_its_dry_run_changes_no_file(project, mailbox, ahead):
    configure(project, mailbox)
    once(project, "2026-11-20T12:00:00Z")
    before = tree_digest(project.state_dir)
    when = (datetime.now(tz=UTC) + ahead).isoformat(timespec="seconds")
    refused = project.run("scheduler", "--once", "--now", when)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert "later than the clock" in refused.stderr
    shown = project.run("scheduler", "--once", "--now", when, "--dry-run")
    assert shown.returncode == 0 and "nothing is launched or recorded" in shown.stdout
    assert tree_digest(project.state_dir) == before
    assert mailbox.messages == []


# Sequences of pass instants, in the order the clock showed them (some go back). Whatever
# the clock did, each real fire from the 21st to the 24th ends with a record, none is
# launched twice, and every pass that found the clock behind its cursor left a note.
CLOCKS = {
    "steps-back-an-hour-after-a-fire": ["2026-11-21T00:59", "2026-11-21T01:00:05", "2026-11-21T00:05",
                                        "2026-11-21T01:00:06", "2026-11-24T01:00:05"],
    "jumps-a-day-then-corrected": ["2026-11-21T00:59", "2026-11-22T12:00", "2026-11-21T12:00",
                                   "2026-11-22T01:00:05", "2026-11-23T01:00:05", "2026-11-24T01:00:05"],
    "replayed-past-pass": ["2026-11-21T00:59", "2026-11-23T01:00:05", "2026-11-20T00:00",
                           "2026-11-24T01:00:05"],
    "many-small-steps-back": ["2026-11-21T00:59", "2026-11-21T01:00:05", "2026-11-21T00:59:59",
                              "2026-11-21T01:00:01", "2026-11-21T00:58", "2026-11-22T01:00:05",
                              "2026-11-23T01:00:05", "2026-11-24T01:00:05"],
}


@pytest.mark.parametrize("name", list(CLOCKS), ids=list(CLOCKS))
def test_a_clock_that_goes_back_and_forth_loses_no_fire_and_fires_none_twice(project, mailbox, name):
    from overnight.scheduling.daemon import Scheduler

    configure(project, mailbox, catchup="all")
    notes: list[str] = []
    daemon = Scheduler(project.root / "overnight.toml", command=["/bin/sh", "-c", ":"], log=notes.append)
    went_back = 0
    try:
        previous = None
        for text in CLOCKS[name]:
            now = datetime.fromisoformat(text + "+00:00")
            went_back += previous is not None and now < previous  # before the cursor it left
            previous = now
            daemon.loop_once(now)
            for child in daemon.children.values():
                child.proc.wait(timeout=30)
    finally:
        daemon.close()
    records = project.query("SELECT date, last_date, outcome FROM fires WHERE outcome != 'reanchored'")
    covered: dict[str, list[str]] = {}
    for first, last, outcome in records:
        day = date.fromisoformat(first)
        while day <= date.fromisoformat(last):
            covered.setdefault(day.isoformat(), []).append(outcome)
            day += timedelta(days=1)
    for day in ("2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"):
        outcomes = covered.get(day, [])
        assert outcomes, f"{name}: the fire for {day} has no record"
        launched = [o for o in outcomes if o in ("launched", "caught_up", "queued")]
        assert len(launched) <= 1, f"{name}: {day} launched more than once: {outcomes}"
    assert len(project.query("SELECT 1 FROM fires WHERE outcome = 'reanchored'")) == went_back
    assert sum("watching again from now" in x for x in notes) == went_back


# -- 5. dates after today, whatever the command and however far --------------------------------------


@pytest.mark.parametrize("days", [1, 40, 3650], ids=["tomorrow", "40-days", "ten-years"])
@pytest.mark.parametrize("command", ["run", "mark", "backfill"])
def test_a_date_after_today_is_refused_by_every_command_that_changes_a_night(project, command, days):
    (project.root / "nightly.py").write_text(QUICK)
    project.write_config('[batches.nightly]\nmodule = "nightly.py"\n')
    assert project.run("run", "nightly", "--date", "2026-11-01").returncode == 0
    before = hashlib.sha256(project.ledger_path.read_bytes()).hexdigest()
    today = datetime.now(tz=UTC).date()
    ahead = (today + timedelta(days=days)).isoformat()
    args, allowed_with = {
        "run": (["run", "nightly", "--date", ahead], []),
        "mark": (["mark", "nightly", "work", "--done", "--date", ahead], ["--reason", "planned"]),
        "backfill": (["backfill", "nightly", "--from", today.isoformat(), "--to", ahead], ["--no-mail"]),
    }[command]
    result = project.run(*args)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"{ahead}: after today" in line and "--allow-future" in line
    assert hashlib.sha256(project.ledger_path.read_bytes()).hexdigest() == before
    if command != "backfill" or days == 1:  # not thousands of dates
        allowed = project.run(*args, "--allow-future", *allowed_with)
        assert allowed.returncode == 0, allowed.stderr


def test_the_abandoned_report_hook_reads_only_numbers() -> None:
    """OVERNIGHT_REPORT_ABANDONED_AFTER is a test hook: anything but a number is ignored."""
    from overnight.reporting.notice import abandoned_after

    assert abandoned_after({"OVERNIGHT_REPORT_ABANDONED_AFTER": "0"}) == 0.0
    assert abandoned_after({"OVERNIGHT_REPORT_ABANDONED_AFTER": "soon"}) == 900.0
    assert abandoned_after({}) == 900.0
