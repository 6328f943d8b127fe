"""What `overnight prune` may forget: the per-attempt detail of old nights.

A night's outcome stays (its run, its steps' final states, its launches, marks and report
records: `history` still shows it); its attempts go (each try's start, end, exit code and
log path), and prune.py removes the log files they named.
"""

from __future__ import annotations

from overnight.ledger.database import Database, placeholders
from overnight.ledger.rows import SELECT_RUN, RunRow
from overnight.states import RunState

SUCCEEDED = RunState.SUCCEEDED.value


class RetentionRecords(Database):
    def runs_before(self, before: str) -> list[RunRow]:
        """Every run dated before `before` (YYYY-MM-DD), oldest first."""
        return self._all(RunRow._make, f"{SELECT_RUN} WHERE date < ? ORDER BY date, id", (before,))

    def last_successes(self) -> dict[str, str]:
        """Per batch, the date of its latest run that succeeded."""
        return {
            batch: day
            for batch, day in self.conn.execute(
                "SELECT batch, max(date) FROM runs WHERE state = ? GROUP BY batch", (SUCCEEDED,)
            )
        }

    def attempt_log_paths(self, run_ids: list[int]) -> list[str]:
        if not run_ids:
            return []
        return [
            path for (path,) in self.conn.execute(
                f"SELECT log_path FROM attempts WHERE run_id IN ({placeholders(run_ids)}) "
                "AND log_path IS NOT NULL", run_ids,
            )
        ]

    def attempts_per_run(self, run_ids: list[int]) -> dict[int, int]:
        """How many attempt records each of these runs has (runs with none left out)."""
        if not run_ids:
            return {}
        return dict(self.conn.execute(
            f"SELECT run_id, count(*) FROM attempts WHERE run_id IN ({placeholders(run_ids)}) "
            "GROUP BY run_id",
            run_ids,
        ).fetchall())

    def forget_attempts(self, run_ids: list[int], before: float) -> int:
        """Delete the attempts of these runs that started before `before`, of those runs
        still succeeded (a launch may have begun on one since it was read); how many went.
        Call inside a transaction."""
        if not run_ids:
            return 0
        cur = self._write(
            f"DELETE FROM attempts WHERE run_id IN ({placeholders(run_ids)}) AND started_at < ? "
            "AND run_id IN (SELECT id FROM runs WHERE state = ?)",
            [*run_ids, before, SUCCEEDED],
        )
        return cur.rowcount
