"""When the scheduler sends "missed deadline" itself: the rule with fixed instants, then
real `overnight scheduler --once` passes, a real SMTP server, and a runner killed."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from clikit import wait_for

from overnight.scheduling.overdue import RUNNER_GRACE, missed_news

DEADLINE = 1_800_000_000.0
AFTER = DEADLINE + 30


@pytest.mark.parametrize(("now", "state", "live", "watched", "news"), [
    (DEADLINE - 1, None, False, True, None),             # not yet
    (AFTER, None, False, True, "not started"),           # no run at all
    (AFTER, None, False, False, None),                   # before the scheduler watched it: not its news
    (AFTER, "succeeded", False, True, None),             # done in time (or late: it is done)
    (AFTER, "running", True, True, None),                # its live runner sends its own
    (DEADLINE + RUNNER_GRACE, "running", True, True, "not finished"),  # ... and has not: the scheduler does
    (AFTER, "crashed", False, True, "crashed"),          # the runner died: nobody else will say it
    (AFTER, "failed", False, True, "failed"),            # failed and not resumed in time
    (AFTER, "cancelled", False, True, "cancelled"),
])
def test_the_scheduler_sends_missed_deadline_for_the_nights_no_runner_reports(
    now: float, state: str | None, live: bool, watched: bool, news: str | None
) -> None:
    assert missed_news(DEADLINE, now, state, live, watched=watched) == news


# -- the scheduler's passes, for real -----------------------------------------------------------

QUICK = """
from overnight import Batch
batch = Batch("night")
batch.command("work", "{command}")
"""


def scheduled(project, mailbox, schedule: str, deadline: str, command: str = "true", **more: str) -> None:
    project.write_batch("night", QUICK.format(command=command), config=False)
    extra = "".join(f'{k} = "{v}"\n' for k, v in more.items())
    project.write_config(
        f'[batches.night]\nmodule = "night.py"\nschedule = "{schedule}"\ndeadline = "{deadline}"\n{extra}\n'
        + mailbox.config()
    )


def once(project, *now: str) -> None:
    result = project.run("scheduler", "--once", *(("--now", now[0]) if now else ()))
    assert result.returncode == 0, result.stderr


def missed_mails(mailbox) -> list[str]:
    return [m["Subject"] for m in mailbox.messages if "missed deadline" in m["Subject"]]


def test_the_scheduler_says_when_a_night_missed_its_deadline_without_starting(project, mailbox):
    scheduled(project, mailbox, "0 1 * * *", "06:00", catchup="none")
    once(project, "2026-11-27T00:30:00Z")   # watching; then down over the 01:00 fire
    once(project, "2026-11-27T06:00:30Z")   # back after the deadline: the night never ran
    assert missed_mails(mailbox) == ["Overnight for 2026-11-26: night: missed deadline (06:00, not started)"]
    once(project, "2026-11-27T06:05:00Z")
    once(project, "2026-11-27T09:00:00Z")
    assert len(missed_mails(mailbox)) == 1  # once
    assert project.query("SELECT kind, run_id, state FROM alerts") == [("missed", None, "made")]
    assert project.query("SELECT channel, state FROM alert_deliveries") == [("mail", "sent")]


def test_a_night_before_the_scheduler_watched_the_batch_is_not_its_news(project, mailbox):
    scheduled(project, mailbox, "0 1 * * *", "06:00")
    once(project, "2026-11-27T07:00:00Z")   # first pass ever: it watches from now on
    assert missed_mails(mailbox) == []


def test_the_scheduler_says_when_a_crashed_night_missed_its_deadline(project, mailbox):
    """The runner dies (kill -9) before its deadline: its own timer dies with it, and the
    scheduler's next pass after the deadline sends the alert. Real clock: the night runs."""
    now = datetime.now(UTC)
    if now.second > 45:  # leave the fire and the deadline in one minute's reach
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    fire = now.replace(second=0, microsecond=0)
    deadline = now.replace(microsecond=0) + timedelta(seconds=8)
    scheduled(project, mailbox, f"{fire.minute} {fire.hour} * * *", f"{deadline:%H:%M:%S}",
              command="sleep 120")
    once(project, (fire - timedelta(seconds=30)).isoformat())   # watching since just before the fire
    once(project)                                                # the fire: the night is launched
    pid = wait_for(lambda: project.ledger_path.exists() and project.query(
        "SELECT pid FROM launches WHERE state = 'running'"), 30, "the launched night")[0][0]
    wait_for(lambda: project.query("SELECT 1 FROM attempts WHERE state = 'running'"), 30, "its step")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: datetime.now(UTC) > deadline + timedelta(seconds=1), 30, "the deadline")
    assert missed_mails(mailbox) == []  # the runner that would have said it is gone
    once(project)
    day = (fire - timedelta(days=1)).date().isoformat()
    wanted = f"Overnight for {day}: night: missed deadline ({deadline:%H:%M:%S}, crashed)"
    assert missed_mails(mailbox) == [wanted]


def test_each_pass_rewrites_the_textfile_with_its_heartbeat(project, mailbox, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    scheduled(project, mailbox, "0 1 * * *", "06:00")
    textfile = tmp_path / "node" / "overnight.prom"
    textfile.parent.mkdir()
    with open(project.root / "overnight.toml", "a") as config:
        config.write(f'\n[metrics]\ntextfile = "{textfile}"\n')
    for now in ("2026-11-27T00:30:00+00:00", "2026-11-27T00:31:00+00:00"):
        once(project, now)
        found = {f.name: f.samples for f in text_string_to_metric_families(textfile.read_text())}
        [beat] = found["overnight_scheduler_heartbeat_timestamp_seconds"]
        assert beat.value == datetime.fromisoformat(now).timestamp()
