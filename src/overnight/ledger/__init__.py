"""The ledger: runs, launches, steps and attempts, durably, in one SQLite file.

The modules of this package are the only code that speaks SQL, each for what it stores:
the file itself (database: opening, schema upgrades, transactions, errors), the night
(runs: runs and launches; steps: steps, attempts and marks; history: reads over many
nights), the scheduler's records (schedule), report deliveries (reports), the dashboard's
users and their sessions (users) and its audit record (audit), the runner's predicted
finish (forecasts) and the alerts about a night (alerts). `Ledger` is all of them over
one connection.
"""

from __future__ import annotations

from overnight.ledger.alerts import AlertRecords
from overnight.ledger.audit import AuditRecords
from overnight.ledger.forecasts import ForecastRecords
from overnight.ledger.history import GridCell, HistoryRecords
from overnight.ledger.reports import ReportRecords
from overnight.ledger.retention import RetentionRecords
from overnight.ledger.rows import (
    AlertDeliveryRow,
    AlertRow,
    AttemptRow,
    AuditRow,
    FireReportRow,
    FireRow,
    ForecastRow,
    LaunchRow,
    MarkRow,
    ReportRow,
    RunRow,
    SessionRow,
    StepRow,
    UserRow,
)
from overnight.ledger.runs import RunRecords
from overnight.ledger.schedule import ScheduleRecords
from overnight.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from overnight.ledger.users import UserRecords


class Ledger(
    RunRecords, HistoryRecords, ScheduleRecords, ReportRecords, UserRecords, ForecastRecords, AlertRecords,
    RetentionRecords, AuditRecords,
):
    """One SQLite file. Open it with ``Ledger.open(path)``; use it from one thread."""


__all__ = [
    "MIGRATIONS", "SCHEMA_VERSION", "AlertDeliveryRow", "AlertRow", "AttemptRow", "AuditRow",
    "FireReportRow", "FireRow", "ForecastRow", "GridCell", "LaunchRow",
    "Ledger", "MarkRow", "ReportRow", "RunRow", "SessionRow", "StepRow", "UserRow",
]
