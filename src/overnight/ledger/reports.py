"""Every delivery of a report (mail, webhook), sent or not: nothing goes out unrecorded."""

from __future__ import annotations

import time

from overnight.ledger.database import Database, placeholders
from overnight.ledger.rows import SELECT_REPORT, ReportRow


class ReportRecords(Database):
    def record_report(
        self, run_id: int, launch_id: int | None, channel: str, state: str, tries: int,
        message: str | None,
    ) -> None:
        self._write(
            "INSERT INTO reports (run_id, launch_id, channel, state, tries, at, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, launch_id, channel, state, tries, time.time(), message),
        )

    def reports_of(self, run_ids: list[int]) -> dict[int, list[ReportRow]]:
        """Every delivery recorded for these runs, oldest first, by run."""
        out: dict[int, list[ReportRow]] = {}
        if not run_ids:
            return out
        for report in self._all(
            ReportRow._make,
            f"{SELECT_REPORT} WHERE run_id IN ({placeholders(run_ids)}) ORDER BY id", run_ids,
        ):
            out.setdefault(report.run_id, []).append(report)
        return out
