"""The runner's lookout: the live predicted finish, and the alerts that leave while there
is time to act.

The runner calls it at a few points of its loop (engine.py): `begin` once the launch is
recorded, `boundary` inside the transaction of every step boundary (the prediction is
written in the runner's own commit: no extra fsync), `step_started` / `step_ended` for
the "running long" timers. The rules are pure (forecast.py, lookout.py); this class
holds the timers and hands alerts to a courier.

Alerts and pings leave through a courier (reporting/courier.py): a child process that
sends, records each delivery and exits. The runner forks its step workers, and a fork
beside a thread blocked in a mail server's socket can inherit a held lock; a child
process also leaves the runner's loop untouched by a mail server that hangs. The alert is
recorded (claimed) in the runner's transaction before the courier starts, so an alert is
sent once even when the runner dies right after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as wall_time
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from overnight.forecast import Forecast, predict_finish, usual_durations
from overnight.lookout import (
    LATE,
    LONG,
    LONG_MINIMUM,
    MISSED,
    late_alert_due,
    late_key,
    late_subject,
    long_alert_after,
    long_subject,
    missed_subject,
)
from overnight.planner import check_run_if
from overnight.states import StepState

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.engine import Runner
    from overnight.executor import Job
    from overnight.loop import Timer

# A prediction costs time at a step boundary; on a batch so big that it costs much, it is
# made at most once per COST_FACTOR times its own cost (so it takes at most ~2% of the
# runner's time), and the boundaries in between are caught up by one made a little later.
# One that costs more than INLINE_COST (a night of some hundreds of steps) is made after
# the boundary's commit, not inside it: the next steps start, and the ledger's write lock
# is free, while it is made.
COST_FACTOR = 50.0
INLINE_COST = 0.002
# What a forecast row keeps by name (a 10,000-step chain would make its detail huge).
KEEP_PATH = 50
KEEP_UNKNOWN = 10
# How long the end of `overnight run` waits for couriers still delivering, and for the
# `/start` ping before it sends the end one (a ping's own bound, and then some).
COURIER_WAIT = 60.0
# How often the deadline's timer looks at the wall clock again.
DEADLINE_LOOK = 60.0
PING_WAIT = 15.0


@dataclass(frozen=True)
class WatchSettings:
    """What the configuration says about watching a batch's nights."""

    deadline: wall_time | None = None     # the batch's `deadline`
    zone: ZoneInfo = ZoneInfo("UTC")       # the batch's zone
    anchor: float | None = None           # the scheduled fire's instant, when known
    alerts: bool = True                   # False: --no-mail (a manual run that wants no news)
    ping_url: str | None = None
    config_path: str | None = None        # for the courier, which reads the [mail] settings again


def settings_for(config: Config, batch: str, mail: bool | None, anchor: float | None = None) -> WatchSettings:
    """The batch's watch settings from overnight.toml; `mail` is run's --mail/--no-mail."""
    from overnight.scheduling.deadlines import parse_wall_time

    bc = config.batches.get(batch)
    deadline = parse_wall_time(bc.deadline) if bc is not None and bc.deadline else None
    return WatchSettings(
        deadline=deadline, zone=config.zone_for(batch), anchor=anchor, alerts=mail is not False,
        ping_url=bc.ping_url if bc is not None else None,
        config_path=str(config.path) if config.path else None,
    )


class _Made(NamedTuple):
    forecast: Forecast | None   # None: nothing still to run has history
    at: float
    usual: dict[str, float]     # of the steps running


class NightWatch:
    def __init__(self, settings: WatchSettings | None = None, *, long_minimum: float = LONG_MINIMUM) -> None:
        self.settings = settings or WatchSettings()
        self.long_minimum = long_minimum
        self.usual: dict[str, float] = {}
        self.deadline: float | None = None
        self.announced: list[float] = []      # predicted finishes of "will be late" alerts sent
        self.long_timers: dict[str, Timer] = {}
        self.couriers: list[subprocess.Popen[bytes]] = []
        self.start_ping: subprocess.Popen[bytes] | None = None
        self.outbox: list[dict[str, Any]] = []  # courier jobs, started after the commit
        self.next_allowed = 0.0                 # no prediction before this (monotonic clock)
        self.cost = 0.0                         # what the last prediction cost (seconds)
        self.trailing: Timer | None = None
        self.forecast: Forecast | None = None
        self.saved = False

    # -- the launch ------------------------------------------------------------------------

    def begin(self, runner: Runner) -> None:
        """Once the launch is recorded: history, the run's deadline, its timer, /start."""
        self.runner = runner
        self.names = [s.name for s in runner.order]
        # What bounds the runner besides its workers, as it applies it: wait steps hold no
        # worker; pools have their units; a run_if="failure" step is skipped unless
        # something before it failed (the prediction is of a night that goes well).
        self.no_worker = frozenset(s.name for s in runner.order if s.wait is not None)
        self.needs = {s.name: dict(s.resources) for s in runner.order if s.resources}
        self.capacities = dict(runner.pool.capacities) if runner.pool is not None else {}
        self.only_after_failure = [s for s in runner.order if check_run_if(s, False) is not None]
        ledger = runner.ledger
        self.usual = usual_durations(ledger.recent_successes(runner.batch))
        now = time.time()
        if self.settings.deadline is not None:
            self.deadline = ledger.run_deadline(runner.run_id) or self._deadline_from(now)
            runner.loop.call_later(0, self._watch_deadline, daemon=True)
        self.announced = [
            a.predicted or 0.0 for a in ledger.alerts_of(runner.batch, self._date) if a.kind == LATE
        ]
        if self.settings.ping_url and self.settings.alerts:
            self.start_ping = self._send({"kind": "ping", "url": self.settings.ping_url, "what": "start",
                                          "run_id": runner.run_id, "launch_id": runner.launch_id})

    def _deadline_from(self, now: float) -> float:
        """The night's deadline: the first deadline wall time after its scheduled fire (one
        the scheduler or a cron line recorded for this date), else after this launch's start
        (a night started by hand)."""
        from overnight.scheduling.deadlines import deadline_after

        assert self.settings.deadline is not None
        anchor = datetime.fromtimestamp(self.settings.anchor or self._fire_instant() or now, UTC)
        return deadline_after(anchor, self.settings.deadline, self.settings.zone).timestamp()

    def _fire_instant(self) -> float | None:
        """When this night's scheduled fire was: the one that launched this launch
        (OVERNIGHT_FIRE_ID, from the scheduler), else one recorded for its date."""
        ledger, fire_id = self.runner.ledger, os.environ.get("OVERNIGHT_FIRE_ID", "")
        fire = ledger.get_fire(int(fire_id)) if fire_id.isdigit() else None
        if fire is None or fire.batch != self.runner.batch or fire.date != self._date:
            fire = next((f for f in ledger.fires_of(self.runner.batch, 60)
                         if f.date == self._date and f.at is not None), None)
        return fire.at if fire is not None else None

    @property
    def _date(self) -> str:
        return self.runner.options.date.isoformat()

    def boundary(self) -> None:
        """At a step boundary, inside the runner's transaction: predict again, and claim an
        alert that is due. A prediction that costs more than INLINE_COST is made right after
        the commit instead (the ledger's lock is not held while it is made); any prediction
        at most once per COST_FACTOR times its cost; the boundaries in between are caught up
        a moment later."""
        if not self.usual:
            if not self.saved:  # nothing to predict from: the deadline alone is recorded
                self._save(None, time.time())
            return
        wait = self.next_allowed - time.monotonic()
        if wait <= 0 and self.cost <= INLINE_COST:
            self._record(self._predict())
        elif self.trailing is None:
            self.trailing = self.runner.loop.call_later(max(0.0, wait), self._catch_up, daemon=True)

    def _catch_up(self) -> None:
        self.trailing = None
        made = self._predict()
        with self.runner.ledger.transaction():
            self._record(made)
        self.flush()

    def _predict(self) -> _Made:
        started = time.perf_counter()
        runner, now = self.runner, time.time()
        remaining = [
            n for n in self.names
            if n in runner.runnable and runner.state[n] in (StepState.PENDING, StepState.RUNNING)
        ]
        jobs = runner.running
        running = {
            n: (now - jobs[n].started_at if n in jobs else 0.0)
            for n in remaining if runner.state[n] is StepState.RUNNING
        }
        usual = self.usual
        if self.only_after_failure:
            skipped = {s.name: 0.0 for s in self.only_after_failure if s.name not in runner.unhappy}
            usual = {**usual, **skipped}
        forecast: Forecast | None = predict_finish(
            now=now, remaining=remaining, waiting=runner.waiting, running=running, usual=usual,
            rank=runner.rank, dependents=runner.dependents, workers=runner.options.workers,
            no_worker=self.no_worker, needs=self.needs, capacities=self.capacities,
        )
        if remaining and forecast is not None and len(forecast.unknown) == len(remaining):
            forecast = None  # nothing still to run has history: "at least now" says nothing
        self.cost = time.perf_counter() - started
        self.next_allowed = time.monotonic() + COST_FACTOR * self.cost
        return _Made(forecast, now, {n: self.usual[n] for n in running if n in self.usual})

    def _record(self, made: _Made) -> None:
        """Write the prediction, show it, and claim "will be late" when it is due. Inside a
        transaction; the alert's courier starts after the commit (flush)."""
        forecast = self.forecast = made.forecast
        self._save(forecast, made.at, made.usual)
        if forecast is None:
            return
        progress = self.runner.progress
        if progress.outlook_wanted:
            from overnight.lookout import finish_text

            progress.outlook(finish_text(forecast.finish, self.deadline, forecast.partial,
                                         len(forecast.unknown), self.settings.zone))
        if self.settings.alerts and late_alert_due(forecast.finish, self.deadline, made.at, self.announced):
            self._claim_late(forecast)

    def _save(self, forecast: Forecast | None, now: float, usual: dict[str, float] | None = None) -> None:
        detail = {}
        if forecast is not None:
            detail = {"critical_path": list(forecast.critical_path[-KEEP_PATH:]),
                      "unknown_steps": list(forecast.unknown[:KEEP_UNKNOWN]), "usual": usual or {}}
        self.runner.ledger.save_forecast(
            self.runner.launch_id, self.runner.run_id, deadline=self.deadline, made_at=now,
            finish=forecast.finish if forecast else None,
            unknown=len(forecast.unknown) if forecast else 0, detail=json.dumps(detail),
        )
        self.saved = True

    # -- alerts ---------------------------------------------------------------------------

    def _claim_late(self, forecast: Forecast) -> None:
        assert self.deadline is not None
        runner = self.runner
        subject = late_subject(runner.batch, self._date, forecast.finish, self.deadline,
                               self.settings.zone, forecast.partial)
        alert = runner.ledger.claim_alert(
            runner.batch, self._date, LATE, late_key(self.announced), subject, run_id=runner.run_id,
            launch_id=runner.launch_id, predicted=forecast.finish, deadline=self.deadline,
        )
        self.announced.append(forecast.finish)
        if alert is not None:
            self.outbox.append({"id": alert, "subject": subject})

    def _watch_deadline(self) -> None:
        """A daemon timer (it fires only while the launch still runs: the night is not done),
        woken at least every DEADLINE_LOOK seconds to read the wall clock again: the loop's
        clock stops while the machine sleeps, and NTP may step the wall clock."""
        assert self.deadline is not None
        left = self.deadline - time.time()
        if left > 0:
            self.runner.loop.call_later(min(left, DEADLINE_LOOK), self._watch_deadline, daemon=True)
        else:
            self._deadline_passed()

    def _deadline_passed(self) -> None:
        if not self.settings.alerts:
            return
        runner = self.runner
        assert self.deadline is not None
        subject = missed_subject(runner.batch, self._date, self.deadline, self.settings.zone, "not finished")
        with runner.ledger.transaction():
            alert = runner.ledger.claim_alert(
                runner.batch, self._date, MISSED, "", subject, run_id=runner.run_id,
                launch_id=runner.launch_id, predicted=self.forecast.finish if self.forecast else None,
                deadline=self.deadline,
            )
        self._alert(alert, subject)

    def step_started(self, job: Job) -> None:
        name = job.step.name
        after = long_alert_after(self.usual.get(name), job.step.timeout, self.long_minimum)
        if after is None or not self.settings.alerts:
            return
        left = after - (time.time() - job.started_at)
        self.long_timers[name] = self.runner.loop.call_later(
            left, lambda: self._running_long(job), daemon=True
        )

    def step_ended(self, job: Job) -> None:
        timer = self.long_timers.pop(job.step.name, None)
        if timer is not None:
            timer.cancel()

    def _running_long(self, job: Job) -> None:
        runner, name = self.runner, job.step.name
        self.long_timers.pop(name, None)
        if runner.running.get(name) is not job:
            return
        usual = self.usual[name]
        subject = long_subject(runner.batch, self._date, name, time.time() - job.started_at, usual)
        with runner.ledger.transaction():
            alert = runner.ledger.claim_alert(
                runner.batch, self._date, LONG, name, subject, run_id=runner.run_id,
                launch_id=runner.launch_id, deadline=self.deadline,
            )
        self._alert(alert, subject)

    # -- couriers ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Start the couriers of alerts claimed in the transaction just committed."""
        jobs, self.outbox = self.outbox, []
        for job in jobs:
            self._alert(job["id"], job["subject"])

    def _alert(self, alert: int | None, subject: str) -> None:
        if alert is not None:
            self.runner.progress.alert(subject)
            self._send({"kind": "alert", "id": alert})

    def _send(self, job: dict[str, Any]) -> subprocess.Popen[bytes] | None:
        job = {**job, "config": self.settings.config_path, "ledger": str(self.runner.ledger.path)}
        self.couriers = [c for c in self.couriers if c.poll() is None]
        try:
            # Outside the launch's kill net: a courier outlives the launch and its runner.
            with self.runner.guard.net.spawning_outside():
                courier = subprocess.Popen(
                    [sys.executable, "-m", "overnight.reporting.courier", json.dumps(job)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
                    env={k: v for k, v in os.environ.items() if k != "OVERNIGHT_LAUNCH_TOKEN"},
                )
        except OSError as e:  # news must never end a night
            sys.stderr.write(f"overnight: could not start the sender of an alert or ping: {e}\n")
            return None
        self.couriers.append(courier)
        return courier

    def await_start_ping(self, wait: float = PING_WAIT) -> None:
        """Before the end ping: a monitor that heard the end before the start would take
        it for a new run that never ended (a night of a few seconds beats the courier)."""
        if self.start_ping is not None:
            try:
                self.start_ping.wait(wait)
            except subprocess.TimeoutExpired:
                pass

    def close(self, wait: float = COURIER_WAIT) -> None:
        """After the launch: give the couriers still delivering up to `wait` seconds."""
        until = time.monotonic() + wait
        for courier in self.couriers:
            try:
                courier.wait(max(0.0, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # it goes on alone, in its own session, and records what it did
        self.couriers = []
