"""The scheduler's records: what it did with each fire time, how far it has got, the fires
waiting for their batch to be free, and the reports of fires that did not become a run."""

from __future__ import annotations

import time
from datetime import datetime

from overnight.ledger.database import Database, placeholders
from overnight.ledger.rows import SELECT_FIRE, SELECT_FIRE_REPORT, FireReportRow, FireRow

QUEUED = "queued"
MISSED = "missed"
REPORT_DUE = "due"
REPORT_MADE = "made"


def _instant(scheduled_at: str) -> float | None:
    try:
        return datetime.fromisoformat(scheduled_at).timestamp()
    except ValueError:
        return None


class ScheduleRecords(Database):
    def record_fire(
        self, batch: str, scheduled_at: str, date: str, outcome: str,
        pid: int | None = None, message: str | None = None, *, at: float | None = None,
        until: float | None = None, last_date: str | None = None, count: int = 1,
        report: bool = False,
    ) -> int:
        """One fire (or, with `count` > 1, a gap of fires from `at` to `until`); `report`:
        a report is owed for it (send_due_notices sends it once). Returns its id."""
        at = _instant(scheduled_at) if at is None else at
        cur = self._write(
            "INSERT INTO fires (batch, scheduled_at, date, outcome, recorded_at, pid, message, "
            "at, until, last_date, count, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (batch, scheduled_at, date, outcome, time.time(), pid, message, at,
             at if until is None else until, last_date or date, count, REPORT_DUE if report else None),
        )
        return int(cur.lastrowid or 0)

    def record_note(self, batch: str, scheduled_at: str, date: str, outcome: str, message: str) -> None:
        """Something the scheduler did that is not a fire (it re-anchored a cursor): shown
        with the fires, standing for no fire time."""
        self._write(
            "INSERT INTO fires (batch, scheduled_at, date, outcome, recorded_at, message, last_date) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (batch, scheduled_at, date, outcome, time.time(), message, date),
        )

    def mark_fire_launched(self, fire_id: int, outcome: str, pid: int, message: str) -> None:
        """A queued fire whose process `pid` has started. Unless that process already put it
        back (it found the batch taken, and recorded that under its own pid)."""
        self._write(
            "UPDATE fires SET outcome = ?, pid = ?, message = ?, recorded_at = ? "
            "WHERE id = ? AND outcome = ? AND (pid IS NULL OR pid != ?)",
            (outcome, pid, message, time.time(), fire_id, QUEUED, pid),
        )

    def settle_fire(
        self, fire_id: int, outcome: str, pid: int | None, message: str | None, *, report: bool = False
    ) -> None:
        """A queued fire's end: launched at last, or skipped, or found done meanwhile."""
        self._write(
            "UPDATE fires SET outcome = ?, pid = ?, message = ?, recorded_at = ?, "
            "report = CASE WHEN ? THEN ? ELSE report END WHERE id = ?",
            (outcome, pid, message, time.time(), report, REPORT_DUE, fire_id),
        )

    def get_fire(self, fire_id: int) -> FireRow | None:
        return self._one(FireRow._make, f"{SELECT_FIRE} WHERE id = ?", (fire_id,))

    def fires_of(self, batch: str | None, limit: int) -> list[FireRow]:
        """The scheduler's latest records (launched, skipped, missed...), newest first: of
        one batch, or of every batch when `batch` is None."""
        if batch is None:
            return self._all(FireRow._make, f"{SELECT_FIRE} ORDER BY id DESC LIMIT ?", (limit,))
        return self._all(
            FireRow._make, f"{SELECT_FIRE} WHERE batch = ? ORDER BY id DESC LIMIT ?", (batch, limit)
        )

    def recorded_spans(self, batch: str, after: float, until: float) -> list[tuple[float, float]]:
        """(first, last) instants of the records of `batch` that reach into (after, until]:
        fires already dealt with there (after a clock that went back) are not fired again.
        Misses are not among them: a fire a wrong clock called missed never ran, and fires
        when the real clock reaches it."""
        return [
            (first, last) for first, last in self.conn.execute(
                "SELECT at, until FROM fires WHERE batch = ? AND at <= ? AND until > ? AND outcome != ?",
                (batch, until, after, MISSED),
            )
        ]

    def queued_fires(self, batch: str | None = None) -> list[FireRow]:
        """Fires waiting for their batch to be free, oldest first."""
        if batch is None:
            return self._all(FireRow._make, f"{SELECT_FIRE} WHERE outcome = ? ORDER BY at, id", (QUEUED,))
        return self._all(
            FireRow._make, f"{SELECT_FIRE} WHERE outcome = ? AND batch = ? ORDER BY at, id", (QUEUED, batch)
        )

    def fire_for_date(self, batch: str, date: str) -> FireRow | None:
        """The newest record owing or having made a report that covers `date`."""
        return self._one(
            FireRow._make,
            f"{SELECT_FIRE} WHERE batch = ? AND report IS NOT NULL AND date <= ? AND "
            "coalesce(last_date, date) >= ? ORDER BY id DESC LIMIT 1",
            (batch, date, date),
        )

    # -- reports of fires that did not become a run ---------------------------------------

    def fires_with_report_due(self) -> list[FireRow]:
        return self._all(FireRow._make, f"{SELECT_FIRE} WHERE report = ? ORDER BY id", (REPORT_DUE,))

    def record_fire_report(
        self, fire_id: int, channel: str, state: str, tries: int, message: str | None
    ) -> None:
        """One delivery of a fire's report; the fire's report is then made, never owed again."""
        self._write(
            "INSERT INTO fire_reports (fire_id, channel, state, tries, at, message) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (fire_id, channel, state, tries, time.time(), message),
        )
        self.settle_fire_report(fire_id)

    def settle_fire_report(self, fire_id: int) -> None:
        self._write(
            "UPDATE fires SET report = ? WHERE id = ? AND report = ?", (REPORT_MADE, fire_id, REPORT_DUE)
        )

    def fire_reports_of(self, fire_ids: list[int]) -> dict[int, list[FireReportRow]]:
        out: dict[int, list[FireReportRow]] = {}
        if not fire_ids:
            return out
        for row in self._all(
            FireReportRow._make,
            f"{SELECT_FIRE_REPORT} WHERE fire_id IN ({placeholders(fire_ids)}) ORDER BY id", fire_ids,
        ):
            out.setdefault(row.fire_id, []).append(row)
        return out

    # -- cursors ---------------------------------------------------------------------------

    def schedule_cursors(self) -> dict[str, float]:
        """Per batch, the instant up to which the scheduler has dealt with every fire."""
        return {
            batch: until
            for batch, until in self.conn.execute("SELECT batch, handled_until FROM schedule_cursors")
        }

    def save_schedule_cursor(self, batch: str, handled_until: float) -> None:
        self._write(
            "INSERT INTO schedule_cursors (batch, handled_until, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (batch) DO UPDATE SET handled_until = excluded.handled_until, "
            "updated_at = excluded.updated_at",
            (batch, handled_until, time.time()),
        )

    def scheduler_heartbeat(self) -> float | None:
        """When the scheduler last made a pass (it saves every cursor on each one)."""
        row = self.conn.execute("SELECT max(updated_at) FROM schedule_cursors").fetchone()
        return row[0] if row else None
