"""The audit record: who logged in to the dashboard (or failed to), and who did what."""

from __future__ import annotations

from overnight.ledger.database import Database
from overnight.ledger.rows import SELECT_AUDIT, AuditRow


class AuditRecords(Database):
    def record_audit(
        self, at: float, who: str | None, address: str, action: str, target: str | None,
        outcome: str, detail: str | None = None,
    ) -> int:
        """One entry; in a transaction. Returns its id."""
        cursor = self._write(
            "INSERT INTO audit (at, who, address, action, target, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, who, address, action, target, outcome, detail),
        )
        return int(cursor.lastrowid or 0)

    def audit_entries(self, limit: int, before_id: int | None = None) -> list[AuditRow]:
        """The newest entries first; `before_id`: only those older than that entry."""
        if before_id is None:
            return self._all(AuditRow._make, f"{SELECT_AUDIT} ORDER BY id DESC LIMIT ?", (limit,))
        return self._all(
            AuditRow._make, f"{SELECT_AUDIT} WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
        )

    def audit_before(self, at: float) -> int:
        """How many entries are older than `at` (a timestamp)."""
        return int(self.conn.execute("SELECT count(*) FROM audit WHERE at < ?", (at,)).fetchone()[0])

    def forget_audit_before(self, at: float) -> int:
        """Delete the entries older than `at`; how many went. In a transaction."""
        return self._write("DELETE FROM audit WHERE at < ?", (at,)).rowcount
