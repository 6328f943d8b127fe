"""The scheduler daemon: real `overnight scheduler` processes, real launched runs, a real
ledger. `--once --now` drives it with fixed instants; the daemon tests use a clock skew
(OVERNIGHT_CLOCK_SKEW) so a fire comes within seconds instead of at the next minute."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clikit import Daemon, skew_to, wait_for

from overnight.lock import holder
from overnight.scheduling.daemon import Scheduler
from overnight.scheduling.plan import LAUNCHED, SKIPPED_RUNNING

QUICK = """
from overnight import Batch
batch = Batch("{name}")
batch.command("work", "echo {{date}} >> dates.txt")
"""

# Waits for a file named after its date, so a test decides when each run ends.
HELD = """
from overnight import Batch
batch = Batch("{name}")
batch.command("work", "while [ ! -e release-{{date}} ]; do sleep 0.05; done; echo {{date}} >> dates.txt")
"""


def scheduled(project, name: str, source: str, schedule: str = "0 1 * * *", **settings: str) -> None:
    project.write_batch(name, source.format(name=name), config=False)
    extra = "".join(f'{k} = "{v}"\n' for k, v in settings.items())
    project.write_config(f'[batches.{name}]\nmodule = "{name}.py"\nschedule = "{schedule}"\n{extra}')


def once(project, now: str) -> None:
    result = project.run("scheduler", "--once", "--now", now)
    assert result.returncode == 0, result.stderr


def runs(project) -> list[tuple[str, str]]:
    if not project.ledger_path.exists():
        return []
    return project.query("SELECT date, state FROM runs ORDER BY id")


def fires(project) -> list[tuple[str, str]]:
    return project.query("SELECT date, outcome FROM fires ORDER BY id")


def live(project) -> bool:
    return bool(project.query("SELECT 1 FROM launches WHERE state = 'running'"))


# -- catch-up after downtime (--once with fixed instants) ------------------------------------


def test_latest_launches_exactly_one_run_for_the_missed_date(project):
    scheduled(project, "nightly", QUICK)
    once(project, "2026-11-25T12:00:00Z")  # the scheduler watched until noon, then was down
    once(project, "2026-11-27T03:00:00Z")  # back two hours after the 01:00 fire
    wait_for(lambda: runs(project) == [("2026-11-26", "succeeded")], what="the caught-up run")
    # The fire of the 27th at 01:00 runs for the 26th (yesterday of the scheduled time);
    # the one of the 26th is older than the latest and is only recorded.
    assert fires(project) == [("2026-11-25", "missed"), ("2026-11-26", "caught_up")]
    assert (project.root / "dates.txt").read_text() == "2026-11-26\n"
    launch = project.status("nightly")["launches"][0]
    assert (launch["trigger"], launch["launched_by"]) == ("scheduled", "scheduler")


def test_none_records_the_misses_as_one_gap_and_launches_nothing(project):
    scheduled(project, "nightly", QUICK, catchup="none")
    once(project, "2026-11-25T12:00:00Z")
    once(project, "2026-11-27T03:00:00Z")
    assert fires(project) == [("2026-11-25", "missed")]
    assert project.query("SELECT count, last_date FROM fires") == [(2, "2026-11-26")]
    assert not (project.state_dir / "logs" / "scheduler").exists()  # no process was started
    assert runs(project) == []
    history = project.run("history")
    assert (
        "missed: 2 fires from 2026-11-26 01:00 +00:00 to 2026-11-27 01:00 +00:00 (for 2026-11-25 "
        "to 2026-11-26): the scheduler was not running then, and catchup = none"
    ) in history.stdout


def test_all_launches_each_missed_date_in_order_one_at_a_time(project):
    scheduled(project, "nightly", HELD, catchup="all")
    once(project, "2026-11-24T12:00:00Z")
    now = "2026-11-27T13:00:00Z"  # three fires missed: for the 24th, 25th and 26th
    for i, day in enumerate(("2026-11-24", "2026-11-25", "2026-11-26")):
        once(project, now)
        wait_for(lambda: live(project), what=f"the run for {day} to start")
        once(project, now)  # while it runs, the next dates wait their turn, in the ledger
        assert [d for d, _ in runs(project)][-1] == day
        assert [o for _, o in fires(project)] == ["caught_up"] * (i + 1) + ["queued"] * (2 - i)
        (project.root / f"release-{day}").touch()
        wait_for(lambda: not live(project) and holder(project.state_dir, "nightly") is None,
                 what=f"the run for {day} to end and let go of the batch")
    once(project, now)
    assert runs(project) == [
        ("2026-11-24", "succeeded"), ("2026-11-25", "succeeded"), ("2026-11-26", "succeeded")
    ]
    assert fires(project) == [
        ("2026-11-24", "caught_up"), ("2026-11-25", "caught_up"), ("2026-11-26", "caught_up")
    ]


# -- overlap -----------------------------------------------------------------------------------


def test_with_overlap_skip_a_batch_still_running_at_its_next_fire_is_not_started_again(project):
    scheduled(project, "slow", HELD, overlap="skip")
    once(project, "2026-11-26T00:59:00Z")
    once(project, "2026-11-26T01:00:02Z")
    wait_for(lambda: live(project), what="the first night to start")
    once(project, "2026-11-27T01:00:02Z")  # the next night's fire: the first one still runs
    assert fires(project) == [("2026-11-25", LAUNCHED), ("2026-11-26", SKIPPED_RUNNING)]
    history = project.run("history", "slow")
    assert history.returncode == 0, history.stderr
    line = next(x for x in history.stdout.splitlines() if SKIPPED_RUNNING in x)
    assert line.split()[:3] == ["2026-11-27T01:00:00+00:00", "slow", "skipped_running:"]
    assert "for 2026-11-26: the batch was busy: pid" in line and "overlap = skip" in line
    (project.root / "release-2026-11-25").touch()
    wait_for(lambda: runs(project) == [("2026-11-25", "succeeded")], what="the first night to end")
    once(project, "2026-11-27T01:00:30Z")
    assert runs(project) == [("2026-11-25", "succeeded")]  # skipped is skipped: not run later


def test_by_default_a_fire_that_finds_its_batch_busy_waits_and_runs_once_it_is_free(project):
    scheduled(project, "slow", HELD)
    once(project, "2026-11-26T00:59:00Z")
    once(project, "2026-11-26T01:00:02Z")
    wait_for(lambda: live(project), what="the first night to start")
    once(project, "2026-11-27T01:00:02Z")  # the next night's fire: the first one still runs
    assert fires(project) == [("2026-11-25", LAUNCHED), ("2026-11-26", "queued")]
    once(project, "2026-11-27T01:00:10Z")  # still busy: still waiting, nothing started twice
    assert fires(project) == [("2026-11-25", LAUNCHED), ("2026-11-26", "queued")]
    (project.root / "release-2026-11-25").touch()
    wait_for(lambda: holder(project.state_dir, "slow") is None, what="the first night to end")
    (project.root / "release-2026-11-26").touch()
    once(project, "2026-11-27T01:03:00Z")  # the first pass that finds the batch free
    assert fires(project) == [("2026-11-25", LAUNCHED), ("2026-11-26", LAUNCHED)]
    wait_for(lambda: runs(project) == [("2026-11-25", "succeeded"), ("2026-11-26", "succeeded")],
             what="the queued night to run")


# -- the daemon itself ---------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_daemon_launches_a_separate_process_and_kill_9_leaves_the_night_running(project):
    scheduled(project, "slow", HELD)
    fire = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    once(project, "2026-11-28T00:59:50Z")  # watching since ten seconds before the fire
    daemon = Daemon(project, OVERNIGHT_CLOCK_SKEW=skew_to(fire - timedelta(seconds=3)))
    try:
        daemon.wait_for_line("launched slow")  # logged just before the fire is recorded launched
        wait_for(lambda: live(project), what="the run to start")
        wait_for(lambda: fires(project) == [("2026-11-27", LAUNCHED)], what="the fire recorded launched")
        [(pid,)] = project.query("SELECT pid FROM fires")
        assert pid != daemon.proc.pid and os.getsid(pid) == pid  # its own process, own session
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=30)
        assert process_alive(pid)
        assert live(project)
    finally:
        daemon.stop()
    (project.root / "release-2026-11-27").touch()
    wait_for(lambda: runs(project) == [("2026-11-27", "succeeded")], what="the night to finish")
    launch = project.status("slow")["launches"][0]
    assert launch["state"] == "succeeded"
    assert (launch["trigger"], launch["launched_by"]) == ("scheduled", "scheduler")


def test_the_daemon_reaps_each_finished_night_while_it_lives(project):
    scheduled(project, "nightly", QUICK)
    once(project, "2026-11-28T00:59:50Z")
    daemon = Daemon(project, OVERNIGHT_CLOCK_SKEW=skew_to(datetime(2026, 11, 28, 0, 59, 57, tzinfo=UTC)))
    try:
        daemon.wait_for_line("launched nightly")
        # The child's exit wakes the daemon (SIGCHLD), well before its next minute tick.
        assert "ended with exit code 0" in daemon.wait_for_line("nightly (pid", timeout=30)
        children = subprocess.run(
            ["ps", "-o", "stat=", "--ppid", str(daemon.proc.pid)], capture_output=True, text=True
        )
        assert children.stdout.strip() == ""  # no zombie left behind
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()
    assert runs(project) == [("2026-11-27", "succeeded")]


def test_the_daemon_never_sleeps_past_a_fire_nor_longer_than_a_minute(project):
    scheduled(project, "nightly", QUICK, schedule="0 3 * * *")
    daemon = quiet_scheduler(project)
    try:
        assert daemon.sleep_for(datetime(2026, 11, 27, 1, 0, tzinfo=UTC)) <= 60.01  # a clock jump shows
        assert 1.9 < daemon.sleep_for(datetime(2026, 11, 27, 2, 59, 58, tzinfo=UTC)) < 2.1
    finally:
        daemon.close()


def test_the_daemon_sleeps_between_fires_reloads_on_sighup_and_stops_on_sigterm(project):
    scheduled(project, "nightly", QUICK, schedule="0 3 1 1 *")
    daemon = Daemon(project)
    try:
        daemon.wait_for_line("started")
        time.sleep(0.5)  # let it settle into its sleep
        before = daemon.cpu_ticks()
        time.sleep(3)
        assert daemon.cpu_ticks() - before <= 1  # ticks of 10 ms: asleep, not polling

        config = (project.root / "overnight.toml").read_text()
        (project.root / "overnight.toml").write_text(config.replace("0 3 1 1 *", "61 * * * *"))
        daemon.proc.send_signal(signal.SIGHUP)
        line = daemon.wait_for_line("not reloaded")
        assert "keeping the old one" in line and "[batches.nightly]" in line and "schedule" in line
        assert daemon.proc.poll() is None

        (project.root / "overnight.toml").write_text(config.replace("0 3 1 1 *", "30 4 * * *"))
        daemon.proc.send_signal(signal.SIGHUP)
        assert "nightly (30 4 * * *, UTC)" in daemon.wait_for_line("configuration reloaded")

        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
        daemon.wait_for_line("stopped")
    finally:
        daemon.stop()


def test_a_second_scheduler_on_the_same_state_dir_is_refused(project):
    scheduled(project, "nightly", QUICK)
    daemon = Daemon(project)
    try:
        daemon.wait_for_line("started")
        result = project.run("scheduler", "--once")
        assert result.returncode == 3
        assert "a scheduler already runs" in result.stderr and len(result.stderr.splitlines()) == 1
    finally:
        daemon.stop()


# -- in-process: the cursor, and memory over many fires ---------------------------------------


def quiet_scheduler(project, log=lambda _m: None) -> Scheduler:
    """A scheduler whose launches start `sh -c :` instead of a whole run: real processes,
    cheap enough for a thousand fires."""
    return Scheduler(project.root / "overnight.toml", command=["/bin/sh", "-c", ":"], log=log)


def test_a_clock_that_goes_back_never_fires_the_same_time_twice(project):
    scheduled(project, "nightly", QUICK)
    lines: list[str] = []
    daemon = quiet_scheduler(project, lines.append)
    try:
        t = datetime(2026, 11, 27, 0, 59, tzinfo=UTC)
        assert daemon.loop_once(t) == []
        assert [d.outcome for d in daemon.loop_once(t + timedelta(minutes=1, seconds=1))] == [LAUNCHED]
        assert daemon.loop_once(t - timedelta(hours=1)) == []  # an NTP step back: re-anchored
        assert daemon.loop_once(t + timedelta(minutes=1, seconds=2)) == []  # 01:00 is recorded
    finally:
        daemon.close()
    # A restarted daemon reads the cursor from the ledger and does not fire it again either.
    again = quiet_scheduler(project)
    try:
        assert again.loop_once(datetime(2026, 11, 27, 1, 5, tzinfo=UTC)) == []
    finally:
        again.close()
    assert fires(project) == [("2026-11-26", LAUNCHED), ("2026-11-25", "reanchored")]
    [note] = [x for x in lines if "before the instant up to which fires were handled" in x]
    assert note.startswith("nightly: the clock reads 2026-11-26 23:59 +00:00, before the instant")


def test_memory_stays_flat_over_a_thousand_fires(project):
    """Counted in live Python memory blocks (objects, strings, containers): a leak of even
    one small object per fire shows as a thousand more. (tracemalloc is fooled here by the
    interpreter's own tables, which it sees grow but not shrink.)"""
    scheduled(project, "nightly", QUICK)
    daemon = quiet_scheduler(project)
    start = datetime(2023, 1, 1, 1, 0, tzinfo=UTC)
    try:
        for day in range(100):  # warm up: caches, statements, imports
            daemon.loop_once(start + timedelta(days=day, seconds=1))
        gc.collect()
        before = sys.getallocatedblocks()
        for day in range(100, 1100):
            daemon.loop_once(start + timedelta(days=day, seconds=1))
        gc.collect()
        growth = sys.getallocatedblocks() - before
        for child in list(daemon.children.values()):
            child.proc.wait(timeout=30)
        daemon.reap()
    finally:
        daemon.close()
    assert len(fires(project)) == 1099  # the first pass only starts watching
    # A child still alive at the next day's pass makes that fire wait for the one after.
    assert {o for _, o in fires(project)} <= {LAUNCHED, "caught_up", "queued"}
    assert growth < 1000, f"{growth} more memory blocks after 1,000 fires"
    assert not daemon.children
    children = subprocess.run(
        ["ps", "-o", "stat=", "--ppid", str(os.getpid())], capture_output=True, text=True
    )
    assert "Z" not in children.stdout  # every launched child was reaped
