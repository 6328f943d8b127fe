"""The scheduler's records: what it did with each fire time, and how far it has got."""

from __future__ import annotations

import time

from overnight.ledger.database import Database
from overnight.ledger.rows import SELECT_FIRE, FireRow


class ScheduleRecords(Database):
    def record_fire(
        self, batch: str, scheduled_at: str, date: str, outcome: str,
        pid: int | None = None, message: str | None = None,
    ) -> None:
        self._write(
            "INSERT INTO fires (batch, scheduled_at, date, outcome, recorded_at, pid, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (batch, scheduled_at, date, outcome, time.time(), pid, message),
        )

    def fires_of(self, batch: str | None, limit: int) -> list[FireRow]:
        """The scheduler's latest records (launched, skipped, missed...), newest first: of
        one batch, or of every batch when `batch` is None."""
        if batch is None:
            return self._all(FireRow._make, f"{SELECT_FIRE} ORDER BY id DESC LIMIT ?", (limit,))
        return self._all(
            FireRow._make, f"{SELECT_FIRE} WHERE batch = ? ORDER BY id DESC LIMIT ?", (batch, limit)
        )

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
