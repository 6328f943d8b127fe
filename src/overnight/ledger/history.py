"""Reads over many nights at once: step counts per run, usual durations, the history grid.

Each is a fixed, small number of queries whatever the number of nights: `history` and the
dashboard's grid of a year of nights must stay fast (benchmarks/, docs/performance.md).
"""

from __future__ import annotations

from overnight.ledger.database import Database, placeholders
from overnight.ledger.rows import SELECT_RUN, RunRow
from overnight.states import RunState, StepState

# One cell of the history grid: run_id, step, position, state, and the last attempt's
# start, end and remote id (None when the step has no attempt).
GridCell = tuple[int, str, int, str, float | None, float | None, str | None]


class HistoryRecords(Database):
    def state_counts(self, run_ids: list[int]) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {i: {} for i in run_ids}
        if not run_ids:
            return out
        for run_id, state, n in self.conn.execute(
            f"SELECT run_id, state, count(*) FROM steps WHERE run_id IN ({placeholders(run_ids)}) "
            "GROUP BY run_id, state",
            run_ids,
        ):
            out[run_id][state] = n
        return out

    def step_durations(self, batch: str, before: str, runs: int = 14) -> dict[str, list[float]]:
        """Each step's successful attempt durations in the `runs` latest runs of `batch`
        dated before `before`: what "usual" means when a report points out a slow step."""
        out: dict[str, list[float]] = {}
        for step, seconds in self.conn.execute(
            "SELECT a.step, a.ended_at - a.started_at FROM attempts a WHERE a.state = ? "
            "AND a.ended_at IS NOT NULL AND a.run_id IN (SELECT id FROM runs WHERE batch = ? "
            "AND date < ? ORDER BY date DESC LIMIT ?)",
            (StepState.SUCCEEDED.value, batch, before, runs),
        ):
            out.setdefault(step, []).append(seconds)
        return out

    def last_success(self, batch: str) -> float | None:
        """When the batch last finished a night that succeeded (a launch's end, Unix time)."""
        row = self.conn.execute(
            "SELECT max(l.ended_at) FROM launches l JOIN runs r ON r.id = l.run_id "
            "WHERE r.batch = ? AND r.state = ? AND l.state = ?",
            (batch, RunState.SUCCEEDED.value, RunState.SUCCEEDED.value),
        ).fetchone()
        return row[0] if row else None

    def recent_successes(self, batch: str, per_step: int = 14, runs: int = 60) -> dict[str, list[float]]:
        """Each step's latest `per_step` successful attempt durations (newest first), among
        the `runs` runs of `batch` with the latest activity: what its usual duration is when
        the runner predicts its finish. One query; the newest by end time, whatever date the
        runs were for (a year of a 10,000-step batch is not read to find the last weeks)."""
        out: dict[str, list[float]] = {}
        for step, seconds in self.conn.execute(
            "SELECT step, seconds FROM (SELECT a.step AS step, a.ended_at - a.started_at AS seconds, "
            "row_number() OVER (PARTITION BY a.step ORDER BY a.ended_at DESC) AS n FROM attempts a "
            "WHERE a.run_id IN (SELECT id FROM runs WHERE batch = ? ORDER BY updated_at DESC LIMIT ?) "
            "AND a.state = ? AND a.ended_at IS NOT NULL) WHERE n <= ? ORDER BY step, n",
            (batch, runs, StepState.SUCCEEDED.value, per_step),
        ):
            out.setdefault(step, []).append(seconds)
        return out

    def history_grid(self, batch: str, nights: int) -> tuple[list[RunRow], list[GridCell]]:
        """The last `nights` runs of a batch (newest first) and, for the grid, one GridCell
        per (run, step).

        Three queries whatever the size: the grid of a year of nights must stay fast.
        """
        runs = self._all(
            RunRow._make, f"{SELECT_RUN} WHERE batch = ? ORDER BY date DESC LIMIT ?", (batch, nights)
        )
        if not runs:
            return runs, []
        oldest = runs[-1].date
        # The last attempt of each (run, step): scanning the attempts once in id order and
        # keeping the last beats a correlated subquery per cell by several times.
        last: dict[tuple[int, str], tuple[float, float | None, str | None]] = {}
        for run_id, step, started, ended, remote_id in self.conn.execute(
            "SELECT a.run_id, a.step, a.started_at, a.ended_at, a.remote_id FROM attempts a "
            "JOIN runs r ON r.id = a.run_id WHERE r.batch = ? AND r.date >= ? ORDER BY a.id",
            (batch, oldest),
        ):
            last[(run_id, step)] = (started, ended, remote_id)
        cells: list[GridCell] = []
        for run_id, name, position, state in self.conn.execute(
            "SELECT s.run_id, s.name, s.position, s.state FROM runs r JOIN steps s ON s.run_id = r.id "
            "WHERE r.batch = ? AND r.date >= ?",
            (batch, oldest),
        ):
            started, ended, remote_id = last.get((run_id, name), (None, None, None))
            cells.append((run_id, name, position, state, started, ended, remote_id))
        return runs, cells
