"""One immutable row type per table, and the SELECT that reads exactly its fields.

Readers name their columns (never `SELECT *`): a column added by a later migration, or a
table rebuilt in another column order, changes nothing for a reader that does not know it.

The rows are NamedTuples, not frozen dataclasses: as immutable, and each costs ~0.2 ms
to define at import instead of ~1 ms, which `status` and `history` pay on every call.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class RunRow(NamedTuple):
    id: int
    batch: str
    date: str
    state: str
    created_at: float
    updated_at: float


class LaunchRow(NamedTuple):
    id: int
    run_id: int
    batch: str
    state: str
    host: str
    pid: int
    started_at: float
    ended_at: float | None
    trigger: str
    launched_by: str
    options: str
    message: str | None


class StepRow(NamedTuple):
    run_id: int
    name: str
    position: int
    kind: str
    after: str
    command: str
    state: str
    launch_id: int | None
    message: str | None
    updated_at: float
    idempotent: int

    @property
    def prerequisites(self) -> list[str]:
        return json.loads(self.after)


class AttemptRow(NamedTuple):
    id: int
    run_id: int
    step: str
    number: int
    launch_id: int
    state: str
    started_at: float
    ended_at: float | None
    exit_code: int | None
    message: str | None
    log_path: str | None
    host: str | None
    remote_id: str | None

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


class MarkRow(NamedTuple):
    id: int
    run_id: int
    step: str
    action: str
    old_state: str
    new_state: str
    who: str
    reason: str | None
    at: float


class FireRow(NamedTuple):
    """What the scheduler did with one fire time (launched, queued, skipped, missed...), or
    with a whole gap of fires it missed (`count` of them, the last at `until`)."""

    id: int
    batch: str
    scheduled_at: str
    date: str
    outcome: str
    recorded_at: float
    pid: int | None
    message: str | None
    at: float | None          # the instant (Unix time); None only in rows older than schema 3
    until: float | None       # the instant of the last fire it stands for (a gap), else at
    last_date: str | None     # the date of that last fire
    count: int                # how many fires it stands for
    report: str | None        # 'due': a report is owed; 'made': tried; None: none needed


class FireReportRow(NamedTuple):
    """One delivery of the report of a fire that did not become a run, sent or not."""

    id: int
    fire_id: int
    channel: str
    state: str
    tries: int
    at: float
    message: str | None


class ReportRow(NamedTuple):
    """One delivery of a report (a mail, a webhook), sent or not."""

    id: int
    run_id: int
    launch_id: int | None
    channel: str
    state: str
    tries: int
    at: float
    message: str | None


class ForecastRow(NamedTuple):
    """A launch's latest prediction of its finish (forecast.py), with the run's deadline."""

    launch_id: int
    run_id: int
    deadline: float | None      # the run's deadline (Unix time); None: its batch has none
    made_at: float
    finish: float | None        # None: no step still to run has any history
    first_finish: float | None  # the prediction made when the launch started
    unknown: int                # steps still to run without history (the finish is "at least")
    detail: str                 # JSON: critical_path, unknown_steps, usual (of running steps)

    @property
    def details(self) -> dict[str, Any]:
        return json.loads(self.detail)


class AlertRow(NamedTuple):
    """One alert about a night ("will be late", "missed deadline", "running long")."""

    id: int
    batch: str
    date: str
    run_id: int | None          # None: the night had no run when it was sent
    launch_id: int | None
    kind: str                   # late | missed | long
    key: str                    # what makes it once within its kind (a step, a slip number)
    subject: str
    predicted: float | None     # the predicted finish it announced
    deadline: float | None
    at: float
    state: str                  # 'due' until its deliveries are recorded, then 'made'


class AlertDeliveryRow(NamedTuple):
    """One delivery of an alert (a mail, a webhook), sent or not."""

    id: int
    alert_id: int
    channel: str
    state: str
    tries: int
    at: float
    message: str | None


class UserRow(NamedTuple):
    name: str
    password_hash: str
    role: str
    created_at: float


class SessionRow(NamedTuple):
    id_hash: str
    user: str
    created_at: float
    seen_at: float


class AuditRow(NamedTuple):
    id: int
    at: float
    who: str | None  # the user, or the name tried at a failed login
    address: str  # the client's address, or "cli" for `overnight user`
    action: str
    target: str | None  # what it acted on: "all 2026-11-26 load", a user name...
    outcome: str  # ok, refused, failed, throttled
    detail: str | None


def select(row_type: Any, table: str, alias: str = "") -> str:
    """`SELECT <row_type's fields> FROM table [alias]`, each column prefixed by the alias."""
    prefix = f"{alias}." if alias else ""
    columns = ", ".join(prefix + name for name in row_type._fields)
    return f"SELECT {columns} FROM {table}" + (f" {alias}" if alias else "")


SELECT_RUN = select(RunRow, "runs")
SELECT_LAUNCH = select(LaunchRow, "launches")
SELECT_STEP = select(StepRow, "steps")
SELECT_ATTEMPT = select(AttemptRow, "attempts")
SELECT_MARK = select(MarkRow, "marks")
SELECT_FIRE = select(FireRow, "fires")
SELECT_FIRE_REPORT = select(FireReportRow, "fire_reports")
SELECT_REPORT = select(ReportRow, "reports")
SELECT_USER = select(UserRow, "users")
SELECT_FORECAST = select(ForecastRow, "forecasts")
SELECT_ALERT = select(AlertRow, "alerts")
SELECT_ALERT_DELIVERY = select(AlertDeliveryRow, "alert_deliveries")
SELECT_SESSION = select(SessionRow, "sessions")
SELECT_AUDIT = select(AuditRow, "audit")
