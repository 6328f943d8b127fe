"""One run and everything about it: what `status` prints, the report says and the run
page shows. Nine queries whatever the size of the run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from overnight.ledger import AttemptRow, LaunchRow, Ledger, ReportRow, RunRow
from overnight.ledger.runs import NOT_STARTED
from overnight.readmodel.liveness import RUNNING, Liveness, liveness, step_seen
from overnight.states import FAILED_STATES, StepState

if TYPE_CHECKING:
    from overnight.readmodel.outlook import AlertView, ForecastView

DONE_STATES = frozenset(s.value for s in StepState if s.is_done)


@dataclass(eq=False)
class AttemptView:
    number: int
    launch_id: int
    state: str
    started_at: float
    ended_at: float | None
    duration: float | None
    exit_code: int | None
    message: str | None
    log_path: str | None
    host: str | None
    remote_id: str | None
    launch: int = 0  # launch_id's number within the night


@dataclass(eq=False)
class StepView:
    name: str
    state: str
    kind: str
    command: str
    after: list[str]
    launch_id: int | None
    message: str | None
    duration: float | None  # of its last attempt
    log_path: str | None    # of its last attempt
    attempts: list[AttemptView]
    waiting: str | None = None  # a ready step of a live run waiting for a pool: for what, held by whom
    launch: int | None = None   # launch_id's number within the night (1, 2...): what a person is shown
    idempotent: bool = True     # as its module said when it last ran

    @property
    def held(self) -> bool:
        """Not idempotent and ended uncleanly: a plain resume will not run it again; an
        operator's mark (--redo or --done) comes first (planner.may_repeat)."""
        from overnight.planner import may_repeat

        return not may_repeat(self.idempotent, StepState(self.state))

    @property
    def host(self) -> str | None:
        """The worker host its last attempt ran on, when that was a remote queue's."""
        last = self.attempts[-1] if self.attempts else None
        return last.host if last is not None and last.remote_id else None

    @property
    def failed(self) -> bool:
        """It ran and did not succeed (states.FAILED_STATES): a reader needs its output."""
        return self.state in FAILED_STATES

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES


@dataclass(eq=False)
class LaunchView:
    id: int
    state: str
    trigger: str
    launched_by: str
    host: str
    pid: int
    started_at: float
    ended_at: float | None
    options: dict[str, Any]
    message: str | None
    number: int = 0  # within the night: launch 1, 2... of this run's date (ids count across nights)

    @property
    def took(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def not_started(self) -> bool:
        """It could not start (a module that does not import, a configuration error): it
        failed before any step ran, and its message says why."""
        return bool(self.options.get(NOT_STARTED))


@dataclass(eq=False)
class MarkView:
    step: str
    action: str
    from_: str  # "from" in JSON
    to: str
    who: str
    reason: str | None
    at: float


@dataclass(eq=False)
class ReportView:
    channel: str
    state: str
    tries: int
    at: float
    message: str | None
    launch_id: int | None


@dataclass(eq=False)
class RunView:
    """One run with everything about it: what `status` prints and the run page shows."""

    batch: str
    date: str
    run_id: int
    state: str
    steps: list[StepView]
    launches: list[LaunchView]
    marks: list[MarkView]
    reports: list[ReportView]
    forecast: ForecastView | None = None  # the latest launch's predicted finish (live: current)
    alerts: list[AlertView] = field(default_factory=list)  # will be late, missed deadline, running long
    waiting: str | None = None  # its live launch waits for other batches: "waiting for batch all (...)"

    def launch(self, launch_id: int | None) -> LaunchView | None:
        return next((la for la in self.launches if la.id == launch_id), None)


def run_view(ledger: Ledger, run: RunRow, live: Liveness | None = None) -> RunView:
    """Everything about one run: nine queries whatever its size."""
    from overnight.readmodel.outlook import alert_views, forecast_view

    live = live or liveness(ledger)
    state = live.run_state(run.batch, run.state)
    launches = ledger.launches(run.id)
    numbers = {la.id: number for number, la in enumerate(launches, 1)}
    attempts: dict[str, list[AttemptView]] = {}
    for a in ledger.attempts(run.id):
        attempts.setdefault(a.step, []).append(_attempt(a, state, numbers))
    steps = []
    for s in ledger.steps(run.id):
        tried = attempts.get(s.name, [])
        last = tried[-1] if tried else None
        steps.append(StepView(
            name=s.name, state=step_seen(s.state, state, bool(last and last.remote_id)),
            kind=s.kind, command=s.command, after=s.prerequisites, launch_id=s.launch_id,
            message=s.message, duration=last.duration if last else None,
            log_path=last.log_path if last else None, attempts=tried,
            waiting=_waiting(s.state, s.message, state, live),
            launch=numbers.get(s.launch_id or 0), idempotent=bool(s.idempotent),
        ))
    views = [launch_view(la, live, number) for number, la in enumerate(launches, 1)]
    running = next((la.id for la in views if la.state == RUNNING), None)
    return RunView(
        batch=run.batch, date=run.date, run_id=run.id, state=state, steps=steps, launches=views,
        marks=[
            MarkView(m.step, m.action, m.old_state, m.new_state, m.who, m.reason, m.at)
            for m in ledger.marks(run.id)
        ],
        reports=[report_view(r) for r in ledger.reports_of([run.id]).get(run.id, [])],
        forecast=forecast_view(ledger.latest_forecasts([run.id]).get(run.id), running),
        alerts=alert_views(ledger, run.batch, run.date),
        waiting=next((la.message for la in views if la.state == RUNNING and la.message), None),
    )


def _waiting(step_state: str, message: str | None, run_state: str, live: Liveness) -> str | None:
    """"waiting for pos_db (held by all/import-products)": a pending step of a live run
    that the runner set aside for a full pool (resources.py), with who holds it now."""
    if step_state != PENDING or run_state != RUNNING or not (message or "").startswith("waiting for "):
        return None
    from overnight.resources import holders, waited_pool
    from overnight.statefolder import StateFolder

    pool = waited_pool(message)
    if pool is None:
        return None
    held = holders(StateFolder(live.state_dir).resources, pool)
    return f"waiting for {pool}" + (f" (held by {', '.join(held)})" if held else "")


PENDING = StepState.PENDING.value


def _attempt(a: AttemptRow, run_state: str, numbers: dict[int, int]) -> AttemptView:
    return AttemptView(
        number=a.number, launch_id=a.launch_id, launch=numbers.get(a.launch_id, 0),
        state=step_seen(a.state, run_state, a.remote_id is not None),
        started_at=a.started_at, ended_at=a.ended_at, duration=a.duration, exit_code=a.exit_code,
        message=a.message, log_path=a.log_path, host=a.host, remote_id=a.remote_id,
    )


def attempt_seen(ledger: Ledger, run: RunRow, attempt: AttemptRow) -> AttemptRow:
    """One attempt, its state as seen (the log page reads the ledger's row directly)."""
    seen = liveness(ledger).run_state(run.batch, run.state)
    return attempt._replace(state=step_seen(attempt.state, seen, attempt.remote_id is not None))


def launch_view(la: LaunchRow, live: Liveness, number: int) -> LaunchView:
    """`number`: the launch's number within its night (ledger.launch_numbers)."""
    return LaunchView(
        id=la.id, number=number, state=live.run_state(la.batch, la.state), trigger=la.trigger,
        launched_by=la.launched_by, host=la.host, pid=la.pid, started_at=la.started_at,
        ended_at=la.ended_at, options=json.loads(la.options), message=la.message,
    )


def report_view(r: ReportRow) -> ReportView:
    return ReportView(r.channel, r.state, r.tries, r.at, r.message, r.launch_id)


def unsent(reports: list[ReportView]) -> list[ReportView]:
    """Each channel's latest report, when that one was not sent: a report sent later
    (`overnight report --send`) settles the failures before it."""
    latest = {r.channel: r for r in reports}
    return [r for r in latest.values() if r.state != "sent"]
