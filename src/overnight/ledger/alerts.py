"""Alerts about a night, each sent once, and every delivery of each, sent or not."""

from __future__ import annotations

import time

from overnight.ledger.database import Database, placeholders
from overnight.ledger.rows import SELECT_ALERT, SELECT_ALERT_DELIVERY, AlertDeliveryRow, AlertRow

DUE = "due"
MADE = "made"


class AlertRecords(Database):
    def claim_alert(
        self, batch: str, date: str, kind: str, key: str, subject: str, *,
        run_id: int | None = None, launch_id: int | None = None, predicted: float | None = None,
        deadline: float | None = None, at: float | None = None,
    ) -> int | None:
        """Record that the alert goes out, and return its id; None when it already went (or
        is going) out: (batch, date, kind, key) is unique, so whoever records it first, the
        runner or the scheduler, is the one that sends it. Call inside a transaction."""
        cur = self._write(
            "INSERT OR IGNORE INTO alerts (batch, date, run_id, launch_id, kind, key, subject, "
            "predicted, deadline, at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (batch, date, run_id, launch_id, kind, key, subject, predicted, deadline,
             time.time() if at is None else at, DUE),
        )
        return int(cur.lastrowid) if cur.rowcount == 1 and cur.lastrowid else None

    def record_alert_delivery(
        self, alert_id: int, channel: str, state: str, tries: int, message: str | None,
    ) -> None:
        self._write(
            "INSERT INTO alert_deliveries (alert_id, channel, state, tries, at, message) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (alert_id, channel, state, tries, time.time(), message),
        )

    def settle_alert(self, alert_id: int) -> None:
        """Its deliveries are recorded: no one sends it again on its own."""
        self._write("UPDATE alerts SET state = ? WHERE id = ?", (MADE, alert_id))

    def alert(self, alert_id: int) -> AlertRow | None:
        return self._one(AlertRow._make, f"{SELECT_ALERT} WHERE id = ?", (alert_id,))

    def alerts_due(self, recorded_before: float) -> list[AlertRow]:
        """Alerts recorded before then and still not sent: their sender died first."""
        return self._all(
            AlertRow._make, f"{SELECT_ALERT} WHERE state = ? AND at < ? ORDER BY id", (DUE, recorded_before)
        )

    def alerts_of(self, batch: str, date: str) -> list[AlertRow]:
        return self._all(
            AlertRow._make, f"{SELECT_ALERT} WHERE batch = ? AND date = ? ORDER BY id", (batch, date)
        )

    def alert_deliveries(self, alert_ids: list[int]) -> dict[int, list[AlertDeliveryRow]]:
        out: dict[int, list[AlertDeliveryRow]] = {}
        if not alert_ids:
            return out
        for row in self._all(
            AlertDeliveryRow._make,
            f"{SELECT_ALERT_DELIVERY} WHERE alert_id IN ({placeholders(alert_ids)}) ORDER BY id",
            alert_ids,
        ):
            out.setdefault(row.alert_id, []).append(row)
        return out
