"""Runs counted rather than listed, and the scheduler's records: what `history` prints.
Six queries whatever the number of runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from overnight.ledger import FireReportRow, FireRow, Ledger, RunRow
from overnight.readmodel.liveness import Liveness, liveness
from overnight.readmodel.run import LaunchView, ReportView, launch_view, report_view, run_view


@dataclass(eq=False)
class FireView:
    """What the scheduler did with one fire time (launched, queued, skipped, missed...), or
    with a gap of `count` fires it missed, the dates from `date` to `last_date`."""

    batch: str
    date: str  # the business date it was for
    scheduled_at: str
    outcome: str
    message: str | None
    recorded_at: float
    pid: int | None
    id: int
    count: int = 1
    last_date: str | None = None
    report: str | None = None  # 'due': a report is owed; 'made': tried; None: none needed
    reports: list[ReportView] = field(default_factory=list)  # its deliveries, oldest first


@dataclass(eq=False)
class RunSummary:
    """One run as `history` lists it: its steps counted by state, not listed."""

    batch: str
    date: str
    state: str
    run_id: int
    steps: dict[str, int]  # how many steps are in each state
    launches: list[LaunchView]  # newest first
    reports: list[ReportView]


@dataclass(eq=False)
class HistoryView:
    runs: list[RunSummary]
    fires: list[FireView]


def fire_view(f: FireRow, deliveries: list[FireReportRow] | None = None) -> FireView:
    return FireView(
        batch=f.batch, date=f.date, scheduled_at=f.scheduled_at, outcome=f.outcome,
        message=f.message, recorded_at=f.recorded_at, pid=f.pid, id=f.id, count=f.count,
        last_date=f.last_date or f.date, report=f.report,
        reports=[ReportView(r.channel, r.state, r.tries, r.at, r.message, None) for r in deliveries or []],
    )


def fire_views(ledger: Ledger, fires: list[FireRow]) -> list[FireView]:
    """The records with their reports' deliveries: two queries."""
    deliveries = ledger.fire_reports_of([f.id for f in fires if f.report])
    return [fire_view(f, deliveries.get(f.id)) for f in fires]


def step_counts(
    ledger: Ledger, runs: list[RunRow], live: Liveness | None = None
) -> dict[int, dict[str, int]]:
    """How many steps of each run are in each state, as seen: one query, and a full read
    only of a run whose runner died (its running steps are not all what they were)."""
    live = live or liveness(ledger)
    counts = ledger.state_counts([r.id for r in runs])
    for run in runs:
        if live.run_state(run.batch, run.state) != run.state:
            seen: dict[str, int] = {}
            for step in run_view(ledger, run, live).steps:
                seen[step.state] = seen.get(step.state, 0) + 1
            counts[run.id] = seen
    return counts


def history_view(ledger: Ledger, batch: str | None, limit: int) -> HistoryView:
    """The latest runs (of one batch, or of all) and the scheduler's latest records: six
    queries whatever the number of runs."""
    live = liveness(ledger)
    runs = ledger.runs(batch, limit)
    ids = [r.id for r in runs]
    launches = ledger.launches_of_runs(ids)
    counts = step_counts(ledger, runs, live)
    reports = ledger.reports_of(ids)
    return HistoryView(
        runs=[
            RunSummary(
                batch=r.batch, date=r.date, state=live.run_state(r.batch, r.state), run_id=r.id,
                steps=counts.get(r.id, {}),
                launches=[
                    launch_view(la, live, number)
                    for number, la in reversed(list(enumerate(launches.get(r.id, []), 1)))
                ],
                reports=[report_view(rep) for rep in reports.get(r.id, [])],
            )
            for r in runs
        ],
        fires=fire_views(ledger, ledger.fires_of(batch, limit)),
    )
