"""The scheduler's part of "missed deadline": the nights no runner will report.

A live runner sends its own "missed deadline" the moment the deadline passes
(nightwatch.py). The scheduler sends it, on its next pass, for the nights no live runner
watches: the night that never started, the one whose runner crashed, or failed and was
not resumed in time. It also sends the alerts a runner recorded but died before sending.

`missed_news` is the rule, pure (tests/test_overdue.py); `send_overdue` applies it to each
scheduled batch with a deadline, for the night of its latest fire. An alert is recorded
before it is sent, under a key the ledger keeps unique, so the runner and the scheduler
never both send one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from overnight.lookout import MISSED, missed_subject
from overnight.reporting.notice import abandoned_after

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import Ledger
    from overnight.readmodel.liveness import Liveness
    from overnight.scheduling.cron import Schedule

# A live runner's own timer sends its "missed deadline" at once; the scheduler steps in for
# a runner that is alive but has not (stopped, or its clock is wrong) after this long.
RUNNER_GRACE = 120.0


def missed_news(
    deadline: float, now: float, state: str | None, live: bool, *, watched: bool,
) -> str | None:
    """What the "missed deadline" alert of a night says after the deadline ("not
    started", "not finished", "crashed"...), or None when the scheduler sends none.

    `state`: the run's state as seen (None: no run); `live`: a runner holds the batch now;
    `watched`: the scheduler has a record of the night's fire (a night before it watched
    the batch is not its to report, as its misses are not)."""
    if now < deadline or state == "succeeded":
        return None
    if state is None:
        return "not started" if watched else None
    if live and now - deadline < RUNNER_GRACE:
        return None  # its runner's own timer is on it
    return "not finished" if state == "running" else state


def send_overdue(
    config: Config, ledger: Ledger, schedules: dict[str, Schedule], now: datetime,
    say: Callable[[str], None],
) -> int:
    """Send the "missed deadline" of each scheduled batch's latest night that is due from
    the scheduler, and the alerts abandoned by their senders. Returns how many were sent."""
    from overnight.readmodel.liveness import liveness
    from overnight.reporting.alerts import send_alert

    live = liveness(ledger)
    made = 0
    for name, schedule in schedules.items():
        alert = _claim_missed(config, ledger, name, schedule, now, live)
        if alert is not None:
            made += 1
            for line in send_alert(config, ledger, alert):
                say(line)
    # An alert still due this long after its record: its sender died (the runner, killed
    # between the record and its courier's start); the same rule as for reports.
    for alert in ledger.alerts_due(time.time() - abandoned_after(os.environ)):
        made += 1
        for line in send_alert(config, ledger, alert.id):
            say(line)
    return made


def _claim_missed(
    config: Config, ledger: Ledger, name: str, schedule: Schedule, now: datetime, live: Liveness,
) -> int | None:
    from overnight.scheduling.deadlines import deadline_after, latest_fire, parse_wall_time

    bc = config.batches.get(name)
    wall = parse_wall_time(bc.deadline) if bc is not None and bc.deadline else None
    fire = latest_fire(schedule, now) if wall is not None else None
    if wall is None or fire is None:
        return None
    day = fire.date.isoformat()
    run = ledger.find_run(name, day)
    # The run's own deadline when it recorded one (a first launch by hand anchors it there).
    recorded = ledger.run_deadline(run.id) if run is not None else None
    deadline = recorded or deadline_after(fire.at, wall, schedule.zone).timestamp()
    if now.timestamp() < deadline or any(a.kind == MISSED for a in ledger.alerts_of(name, day)):
        return None
    state = live.run_state(name, run.state) if run is not None else None
    watched = run is not None or any(
        f.date <= day <= (f.last_date or f.date) for f in ledger.fires_of(name, 20)
    )
    why = missed_news(deadline, now.timestamp(), state, live.alive(name), watched=watched)
    if why is None:
        return None
    subject = missed_subject(name, day, deadline, schedule.zone, why)
    with ledger.transaction():
        return ledger.claim_alert(name, day, MISSED, "", subject, run_id=run.id if run else None,
                                  deadline=deadline)


def next_deadline(config: Config, schedules: dict[str, Schedule], now: datetime) -> float | None:
    """The soonest deadline still ahead among the scheduled batches' latest nights: the
    scheduler wakes for it (a second after it), not at its next minute."""
    from overnight.scheduling.deadlines import deadline_after, latest_fire, parse_wall_time

    ahead = []
    for name, schedule in schedules.items():
        bc = config.batches.get(name)
        wall = parse_wall_time(bc.deadline) if bc is not None and bc.deadline else None
        fire = latest_fire(schedule, now) if wall is not None else None
        if wall is not None and fire is not None:
            deadline = deadline_after(fire.at, wall, schedule.zone).timestamp()
            if deadline > now.timestamp():
                ahead.append(deadline)
    return min(ahead) if ahead else None
