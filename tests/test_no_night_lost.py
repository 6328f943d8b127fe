"""No night lost in silence (issue 11): every night that cannot start, is missed, or finds
its batch busy is recorded and reported. Real `overnight scheduler` passes and daemons,
real launched runs, a real SMTP server and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from clikit import Daemon, skew_to, wait_for
from mailkit import text_of

FAST = {"OVERNIGHT_MAIL_RETRY_DELAYS": "0.1"}

BROKEN = 'from overnight import Batch\nbatch = Batch("nightly"\n'  # a syntax error: no closing ")"
HEAD = 'from overnight import Batch\nbatch = Batch("{name}")\n'
QUICK = HEAD + 'batch.command("work", "echo {{date}} >> dates.txt")\n'
FAILS = HEAD + 'batch.command("work", "echo broken; exit 1")\n'
HELD = HEAD + (
    'batch.command("work", "while [ ! -e release-{{date}} ]; do sleep 0.05; done; '
    'echo {{date}} >> dates.txt")\n'
)


def setup(project, mailbox, source: str, *, name: str = "nightly", receiver=None, **settings: str) -> None:
    (project.root / f"{name}.py").write_text(source.format(name=name) if "{name}" in source else source)
    table = {"module": f"{name}.py", "schedule": "0 1 * * *", "mail": "failure", **settings}
    lines = [f"[batches.{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    extra = mailbox.config() if mailbox is not None else ""
    if receiver is not None:
        extra += f'\n[[webhooks]]\nurl = "{receiver.url}"\nwhen = "failure"\n'
    project.write_config("\n".join(lines) + "\n\n" + extra)


def once(project, now: str, *extra: str) -> subprocess.CompletedProcess[str]:
    result = project.run("scheduler", "--once", "--now", now, *extra, **FAST)
    assert result.returncode == 0, result.stderr
    return result


def settled(project, count: int = 1) -> None:
    """Wait until `count` launches have ended (the children the passes started)."""
    wait_for(lambda: len(project.query("SELECT 1 FROM launches WHERE state != 'running'")) >= count,
             what=f"{count} launch(es) to end")


# -- 1. a launch that cannot start is a failed launch ---------------------------------------


def test_a_scheduled_fire_of_a_module_with_a_syntax_error_mails_once_and_shows_everywhere(
    project, mailbox, receiver
):
    setup(project, mailbox, BROKEN, receiver=receiver)
    (project.root / "nightly.py").write_text(QUICK.format(name="nightly"))  # fine when the scheduler starts
    once(project, "2026-11-26T00:59:00Z")
    (project.root / "nightly.py").write_text(BROKEN)  # an afternoon edit
    once(project, "2026-11-26T01:00:05Z")
    wait_for(lambda: mailbox.messages, what="the mail")
    once(project, "2026-11-26T01:05:00Z")  # later passes send nothing more
    once(project, "2026-11-27T00:30:00Z")
    time.sleep(0.5)
    [message] = mailbox.messages
    assert message["Subject"] == "Overnight for 2026-11-25: nightly: could not start"
    body = text_of(message)
    assert "nightly for 2026-11-25: could not start: nightly.py:2: syntax error" in body
    assert "overnight --config" in body and "run nightly --date 2026-11-25" in body
    [posted] = receiver.bodies
    assert posted["not_started"] and "syntax error" in posted["error"] and posted["date"] == "2026-11-25"

    history = project.run("history", "nightly").stdout
    assert "2026-11-25  nightly      failed" in history
    assert "scheduled by scheduler" in history and "could not start: nightly.py:2: syntax error" in history
    status = project.run("status", "nightly").stdout
    assert "nightly for 2026-11-25: failed" in status and "could not start: nightly.py:2" in status
    listed = project.run("list").stdout.splitlines()[1].split()
    assert listed[-3:] == ["2026-11-25", "failed", "-"]
    [launch] = project.status("nightly")["launches"]
    assert (launch["state"], launch["trigger"]) == ("failed", "scheduled")
    assert launch["options"] == {"not_started": True}
    assert project.query("SELECT date, outcome FROM fires") == [("2026-11-25", "launched")]
    assert project.query("SELECT channel, state FROM reports ORDER BY id") == [
        ("mail", "sent"), (f"webhook:{receiver.url}", "sent")
    ]


def test_a_daemon_whose_config_stopped_parsing_reports_with_the_last_good_one(project, mailbox):
    """The child cannot read overnight.toml, so it cannot record anything: the daemon that
    launched it records the failed launch and mails it, with the configuration it holds."""
    setup(project, mailbox, QUICK)
    fire = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    once(project, "2026-11-28T00:59:50Z")
    daemon = Daemon(project, OVERNIGHT_CLOCK_SKEW=skew_to(fire - timedelta(seconds=2)), **FAST)
    try:
        daemon.wait_for_line("started")
        config = project.root / "overnight.toml"
        config.write_text(config.read_text() + "\n[[[ not toml\n")
        line = daemon.wait_for_line("could not start")
        assert "nightly for 2026-11-27 could not start:" in line and "not valid TOML" in line
        wait_for(lambda: mailbox.messages, what="the mail")
    finally:
        daemon.stop()
    [message] = mailbox.messages
    assert message["Subject"] == "Overnight for 2026-11-27: nightly: could not start"
    assert "not valid TOML" in text_of(message)
    assert project.query(
        "SELECT l.state, l.trigger, r.date FROM launches l JOIN runs r ON r.id = l.run_id"
    ) == [("failed", "scheduled", "2026-11-27")]


# -- 2. a busy batch queues its fire, or skips and reports it -------------------------------


def running(project) -> bool:
    try:
        return bool(project.query("SELECT 1 FROM launches WHERE state = 'running'"))
    except sqlite3.OperationalError:  # the ledger is being created
        return False


def hold_the_batch(project, day: str) -> subprocess.Popen[str]:
    """A manual run of another date that holds the batch until release-DAY exists."""
    runner = project.start("run", "nightly", "--date", day)
    wait_for(lambda: (project.root / "dates.txt").exists() or running(project), what="the holder")
    return runner


def test_with_overlap_queue_a_fire_on_a_busy_batch_runs_once_the_lock_is_free(project, mailbox):
    """Under the real daemon: recorded queued, then launched within seconds of the end."""
    setup(project, mailbox, HELD)
    holder = hold_the_batch(project, "2026-11-20")  # a backfill or a manual resume
    fire = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    once(project, "2026-11-28T00:59:50Z")
    daemon = Daemon(project, OVERNIGHT_CLOCK_SKEW=skew_to(fire - timedelta(seconds=2)), **FAST)
    try:
        daemon.wait_for_line("queued: nightly")  # logged just before it is recorded
        wait_for(lambda: project.query("SELECT date, outcome FROM fires") == [("2026-11-27", "queued")],
                 what="the fire recorded queued")
        (project.root / "release-2026-11-27").touch()
        (project.root / "release-2026-11-20").touch()
        assert holder.wait(timeout=60) == 0
        freed = time.monotonic()
        daemon.wait_for_line("launched nightly")
        assert time.monotonic() - freed < 10  # within a few seconds of the batch being free
        wait_for(lambda: project.query("SELECT state FROM runs WHERE date = '2026-11-27'")
                 == [("succeeded",)], what="the queued night to succeed")
    finally:
        daemon.stop()
    assert project.query("SELECT date, outcome FROM fires") == [("2026-11-27", "launched")]
    assert mailbox.messages == []  # nothing failed, nothing lost: mail = "failure" says nothing


def test_with_overlap_skip_one_report_says_the_fire_was_skipped(project, mailbox, receiver):
    setup(project, mailbox, HELD, receiver=receiver, overlap="skip")
    holder = hold_the_batch(project, "2026-11-20")
    once(project, "2026-11-28T00:59:50Z")
    once(project, "2026-11-28T01:00:10Z")
    once(project, "2026-11-28T01:00:40Z")
    (project.root / "release-2026-11-20").touch()
    assert holder.wait(timeout=60) == 0
    once(project, "2026-11-28T01:02:00Z")
    [message] = mailbox.messages
    assert message["Subject"] == "Overnight for 2026-11-27: nightly: skipped: the batch was busy"
    body = text_of(message)
    assert "the batch was busy: pid" in body and "(for 2026-11-20)" in body and "overlap = skip" in body
    assert "run nightly --date 2026-11-27" in body
    [posted] = receiver.bodies
    assert (posted["state"], posted["date"]) == ("skipped_running", "2026-11-27")
    assert project.query("SELECT date, outcome, report FROM fires") == [
        ("2026-11-27", "skipped_running", "made")
    ]
    assert project.query("SELECT date FROM runs") == [("2026-11-20",)]


# -- 3. simulated time cannot hijack real nights --------------------------------------------


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_pass_in_the_future_is_refused_and_a_dry_run_writes_nothing(project, mailbox):
    setup(project, mailbox, QUICK)
    once(project, "2026-11-25T12:00:00Z")
    # Two days ahead, 30 s after that day's 01:00 fire: on time, were it real.
    day = datetime.now(tz=UTC).date() + timedelta(days=2)
    ahead = datetime(day.year, day.month, day.day, 1, 0, 30, tzinfo=UTC).isoformat()
    refused = project.run("scheduler", "--once", "--now", ahead)
    assert refused.returncode == 2 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"overnight: --now {ahead}: later than the clock") and "--dry-run" in line
    files = {p: digest(p) for p in project.state_dir.rglob("*") if p.is_file()}

    shown = project.run("scheduler", "--once", "--now", ahead, "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert {p: digest(p) for p in project.state_dir.rglob("*") if p.is_file()} == files
    assert "nothing is launched or recorded" in shown.stdout
    assert "nightly: would record missed (fire 2026-11-26 01:00 +00:00):" in shown.stdout
    assert "and report it" in shown.stdout and "nightly: would launch the fire at" in shown.stdout
    assert project.query("SELECT count(*) FROM runs") == [(0,)]
    assert project.query("SELECT outcome FROM fires") == []
    assert not (project.state_dir / "logs" / "scheduler").exists()
    assert mailbox.messages == []


def test_a_cursor_a_year_old_records_one_miss_per_gap_and_reports_it_once(project, mailbox):
    setup(project, mailbox, QUICK, catchup="none")
    once(project, "2025-11-25T12:00:00Z")
    once(project, "2026-11-25T12:00:00Z")
    once(project, "2026-11-25T12:05:00Z")
    [(count, first, last, outcome, report)] = project.query(
        "SELECT count, date, last_date, outcome, report FROM fires"
    )
    assert (count, first, last, outcome, report) == (365, "2025-11-25", "2026-11-24", "missed", "made")
    [message] = mailbox.messages
    assert message["Subject"] == (
        "Overnight for 2025-11-25 to 2026-11-24: nightly: missed, not run (365 fires)"
    )
    assert "backfill nightly --from 2025-11-25 --to 2026-11-24" in text_of(message)
    history = project.run("history", "nightly").stdout
    assert "missed: 365 fires from 2025-11-26 01:00 +00:00 to 2026-11-25 01:00 +00:00" in history


def test_a_clock_that_jumped_ahead_and_came_back_drops_no_real_fire_without_a_record(project, mailbox):
    """The clock jumps a day ahead, then is corrected: the cursor is re-anchored with a
    recorded note, and tonight's real fire, which the bad clock recorded missed, fires."""
    from overnight.scheduling.daemon import Scheduler

    setup(project, mailbox, QUICK)
    lines: list[str] = []
    daemon = Scheduler(project.root / "overnight.toml", command=["/bin/sh", "-c", ":"], log=lines.append)
    try:
        daemon.loop_once(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
        daemon.loop_once(datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC))  # a bad jump: 01:00 "missed"
        daemon.loop_once(datetime(2026, 11, 25, 12, 5, tzinfo=UTC))  # corrected
        decided = daemon.loop_once(datetime(2026, 11, 26, 1, 0, 5, tzinfo=UTC))  # the real 01:00
    finally:
        daemon.close()
    assert [d.outcome for d in decided] == ["launched"]
    assert project.query("SELECT outcome, date FROM fires ORDER BY id") == [
        ("missed", "2026-11-25"), ("reanchored", "2026-11-24"), ("launched", "2026-11-25")
    ]
    assert any("nightly: the clock reads 2026-11-25 12:05 +00:00, before the instant" in x for x in lines)


# -- 4. dates after today --------------------------------------------------------------------


def test_run_40_days_ahead_is_refused_in_one_line_and_records_nothing(project):
    project.write_batch("backups", QUICK.format(name="backups"))
    ahead = (datetime.now(tz=UTC) + timedelta(days=40)).date().isoformat()
    result = project.run("run", "backups", "--date", ahead)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"overnight: --date {ahead}: after today") and "--allow-future" in line
    assert not project.ledger_path.exists()
    allowed = project.run("run", "backups", "--date", ahead, "--allow-future")
    assert allowed.returncode == 0, allowed.stderr


def test_mark_without_date_acts_on_the_run_status_shows_and_names_its_date(project):
    project.write_batch("backups", FAILS.format(name="backups"))
    assert project.run("run", "backups", "--date", "2026-11-02").returncode == 1
    assert project.run("run", "backups", "--date", "2026-10-30").returncode == 1  # the latest activity
    shown = project.status("backups")["date"]
    marked = project.run("mark", "backups", "work", "--done", "--reason", "fixed by hand")
    assert marked.returncode == 0, marked.stderr
    assert marked.stdout == f"backups for {shown}: work: failed -> succeeded\n"
    assert shown == "2026-10-30"


# -- 5. a cron line reports like the scheduler -----------------------------------------------


def test_a_failing_night_from_a_cron_line_mails_once_with_date_and_message_id(project, mailbox):
    setup(project, mailbox, FAILS)
    printed = project.run("cron", "--cron-tz")
    assert printed.returncode == 0, printed.stderr
    [entry] = [x for x in printed.stdout.splitlines() if x and not x.startswith(("#", "CRON_TZ"))]
    command = entry.split(" ", 5)[5]
    cron_env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": str(project.root), "LOGNAME": "root"}
    ran = subprocess.run(["/bin/sh", "-c", command], cwd="/", env={**cron_env, **FAST},
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1, ran.stderr
    [message] = mailbox.messages
    subject = message["Subject"]
    assert subject.startswith("Overnight for ") and subject.endswith(": nightly: failed (1 of 1)")
    assert message["Date"] and message["Message-ID"].endswith("@example.com>")
    [launch] = project.status("nightly")["launches"]
    assert launch["trigger"] == "cron"


# -- 6. mail-run streams -----------------------------------------------------------------------


MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_mail_run_of_300_mb_of_output_stays_under_120_mb(project, mailbox):
    """Measured from outside: the peak resident size of the mail-run process (and of the
    command it runs), as the kernel counts it for a parent that waited for them."""
    project.write_config(mailbox.config())
    produce = "yes 'a line of output that is neither short nor long' | head -c 300000000; exit 3"
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, sys.executable, "-m", "overnight", "mail-run", "-s", "Big",
         "--", "sh", "-c", produce],
        cwd=project.root, env={**os.environ, **FAST}, capture_output=True, text=True, timeout=300,
    )
    code, peak_kb = (int(x) for x in measured.stdout.split())
    assert code == 3
    assert peak_kb < 120 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    [message] = mailbox.messages
    assert message["Subject"] == "Big [exit code 3]" and message["Date"] and message["Message-ID"]
    body = text_of(message)
    assert "bytes left out" in body and len(body) < 3 * 1024 * 1024
