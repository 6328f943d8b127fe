"""The night a monitor asks about, and what it says of it: `overnight check` and the
metrics read this, so "missed its deadline" and "report not sent" mean one thing.

The expected night is the one of the batch's most recent fire (for an unscheduled batch,
its default date), or the date asked for. `judge_night` is pure (a table of cases in
tests/test_expected.py); `check_night` gathers its facts from the configuration, the
schedule and the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import Ledger
    from overnight.readmodel.run import RunView

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
WORDS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


@dataclass(frozen=True)
class NightFacts:
    """What is known about one batch's expected night (Unix times)."""

    state: str | None            # the run's state as seen (a dead runner's: crashed); None: no run
    summary: str                 # how the run ended, e.g. "failed (1 of 12)"
    deadline: float | None
    overdue_at: float | None     # a night not run is overdue then: its deadline, else its next fire
    finished_at: float | None    # when its latest launch ended
    predicted: float | None      # a live run's predicted finish
    partial: bool = False
    unsent: tuple[str, ...] = ()  # deliveries not sent: "mail: connection refused"


@dataclass(eq=False)
class NightCheck:
    batch: str
    date: str
    code: int                    # OK, WARNING, CRITICAL (UNKNOWN: the ledger cannot be read)
    says: str                    # what is wrong, or that nothing is
    state: str | None
    duration: float | None       # of its latest launch (so far, while it runs)
    deadline: float | None
    predicted: float | None
    missed: bool                 # its deadline passed before it finished
    unsent: list[str]

    @property
    def word(self) -> str:
        return WORDS[self.code]


def judge_night(facts: NightFacts, now: float, clock: ClockText) -> tuple[int, str, bool]:
    """(code, what it says, whether the deadline was missed) for one expected night."""
    f = facts
    if f.state is None:
        if f.overdue_at is not None and now >= f.overdue_at:
            why = f"its deadline {clock(f.deadline)} has passed" if f.deadline else "its next fire has passed"
            return CRITICAL, f"not run, and {why}", f.deadline is not None
        return OK, "not started yet" + (f" (deadline {clock(f.deadline)})" if f.deadline else ""), False
    missed = f.deadline is not None and (
        f.finished_at > f.deadline if f.state != "running" and f.finished_at else now >= f.deadline
    )
    if f.state == "running":
        ahead = f"predicted {'at least ' if f.partial else ''}{clock(f.predicted)}" if f.predicted else ""
        if missed:
            return CRITICAL, _join(f"running past its deadline {clock(f.deadline)}", ahead), True
        if f.deadline is not None and f.predicted is not None and f.predicted > f.deadline:
            return WARNING, f"running, {ahead}, after its deadline {clock(f.deadline)}", False
        code, says = OK, _join("running", ahead) + (f" (deadline {clock(f.deadline)})" if f.deadline else "")
    elif f.state == "succeeded":
        code, says = OK, "succeeded" + (f", after its deadline {clock(f.deadline)}" if missed else "")
    else:
        return CRITICAL, f.summary, missed
    if f.unsent:
        return WARNING, f"{says}; not sent: {'; '.join(f.unsent)}", missed
    return code, says, missed


class ClockText:
    """Instants as the batch's wall time, HH:MM (with seconds when the deadline has them)."""

    def __init__(self, zone: object, deadline: float | None) -> None:
        from overnight.lookout import has_seconds

        self.zone = zone
        self.seconds = deadline is not None and has_seconds(deadline, zone)  # type: ignore[arg-type]
        self.day_of = deadline

    def __call__(self, instant: float | None) -> str:
        from overnight.lookout import wall_clock

        if instant is None:
            return "-"
        return wall_clock(instant, self.zone, seconds=self.seconds, day_of=self.day_of)  # type: ignore[arg-type]


def _join(first: str, second: str) -> str:
    return f"{first}, {second}" if second else first


# -- gathering the facts ------------------------------------------------------------------


def expected_date(config: Config, batch: str, now: datetime) -> date:
    """The date of the batch's most recent fire, or its default date when unscheduled."""
    from overnight.scheduling.deadlines import latest_fire
    from overnight.scheduling.schedules import schedule_for

    schedule = schedule_for(config, batch) if batch in config.batches else None
    fire = latest_fire(schedule, now) if schedule is not None else None
    return fire.date if fire is not None else config.default_date(batch, now)


def check_night(
    config: Config, ledger: Ledger | None, batch: str, run_date: date | None, now: float,
) -> NightCheck:
    """What a monitor says of the batch's night for `run_date` (None: the expected one)."""
    moment = datetime.fromtimestamp(now, UTC)
    day = run_date or expected_date(config, batch, moment)
    run = ledger.find_run(batch, day.isoformat()) if ledger is not None else None
    view = None
    if run is not None and ledger is not None:
        from overnight.readmodel.run import run_view

        view = run_view(ledger, run)
    deadline, overdue = _planned(config, batch, day)
    facts = _facts(view, deadline, overdue)
    clock = ClockText(config.zone_for(batch), facts.deadline)
    code, says, missed = judge_night(facts, now, clock)
    duration = None
    if view is not None and view.launches:
        last = view.launches[-1]
        duration = last.took if last.took is not None else now - last.started_at
    return NightCheck(batch, day.isoformat(), code, says, facts.state, duration, facts.deadline,
                      facts.predicted, missed, list(facts.unsent))


def _planned(config: Config, batch: str, day: date) -> tuple[float | None, float | None]:
    """The deadline of the night for `day` from its fire, and when a night that has not run
    is overdue (its deadline; without one, its next fire). Both None when unknown."""
    from overnight.scheduling.deadlines import deadline_after, fire_for_date, following_fire, parse_wall_time
    from overnight.scheduling.schedules import schedule_for

    bc = config.batches.get(batch)
    schedule = schedule_for(config, batch) if bc is not None else None
    fire = fire_for_date(schedule, day) if schedule is not None else None
    if fire is None or schedule is None or bc is None:
        return None, None
    wall = parse_wall_time(bc.deadline) if bc.deadline else None
    if wall is not None:
        deadline = deadline_after(fire.at, wall, schedule.zone).timestamp()
        return deadline, deadline
    after = following_fire(schedule, fire)
    return None, after.at.timestamp() if after is not None else None


def _facts(view: RunView | None, deadline: float | None, overdue: float | None) -> NightFacts:
    if view is None:
        return NightFacts(None, "not run", deadline, overdue, None, None)
    from overnight.readmodel.run import unsent

    forecast = view.forecast
    if forecast is not None and forecast.deadline is not None:
        deadline = forecast.deadline  # what the run itself recorded
    live = forecast is not None and forecast.live
    ended = [la.ended_at for la in view.launches if la.ended_at is not None]
    not_sent = [f"{r.channel}: {r.message}" for r in unsent(view.reports)]
    not_sent += [f"alert {d.channel}: {d.message}" for a in view.alerts for d in a.unsent]
    return NightFacts(
        state=view.state, summary=_summary(view), deadline=deadline, overdue_at=overdue,
        finished_at=max(ended) if ended else None,
        predicted=forecast.finish if live and forecast is not None else None,
        partial=bool(live and forecast is not None and forecast.partial), unsent=tuple(not_sent),
    )


def _summary(view: RunView) -> str:
    total = len(view.steps)
    bad = sum(1 for s in view.steps if s.failed) or sum(1 for s in view.steps if not s.done)
    return f"{view.state} ({bad} of {total})"


def one_line(checks: Sequence[NightCheck]) -> tuple[int, str]:
    """The monitoring plugin's line for these nights, worst first, and its exit code."""
    worst = max((c.code for c in checks), default=OK)
    ordered = sorted(checks, key=lambda c: -c.code)
    text = "; ".join(f"{c.batch} {c.date}: {c.says}" for c in ordered)
    perf = []
    for c in checks:
        prefix = f"{c.batch}_" if len(checks) > 1 else ""
        if c.duration is not None:
            perf.append(f"'{prefix}duration'={c.duration:.0f}s;;;0")
        end = c.predicted
        if c.deadline is not None and end is not None:
            perf.append(f"'{prefix}deadline_margin'={c.deadline - end:.0f}s")
    line = f"{WORDS[worst]} - {text}" + (f" | {' '.join(perf)}" if perf else "")
    return worst, line
