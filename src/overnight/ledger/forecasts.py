"""The runner's prediction of each launch's finish, and the run's deadline beside it."""

from __future__ import annotations

from overnight.ledger.database import Database, placeholders
from overnight.ledger.rows import SELECT_FORECAST, ForecastRow


class ForecastRecords(Database):
    def save_forecast(
        self, launch_id: int, run_id: int, *, deadline: float | None, made_at: float,
        finish: float | None, unknown: int, detail: str,
    ) -> None:
        """The launch's latest prediction; the first one it saves is kept as first_finish.
        Call inside a transaction (the runner's own, at a step boundary: no extra commit)."""
        self._write(
            "INSERT INTO forecasts (launch_id, run_id, deadline, made_at, finish, first_finish, "
            "unknown, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (launch_id) DO UPDATE SET "
            "deadline = excluded.deadline, made_at = excluded.made_at, finish = excluded.finish, "
            "unknown = excluded.unknown, detail = excluded.detail",
            (launch_id, run_id, deadline, made_at, finish, finish, unknown, detail),
        )

    def forecast_of(self, launch_id: int) -> ForecastRow | None:
        return self._one(ForecastRow._make, f"{SELECT_FORECAST} WHERE launch_id = ?", (launch_id,))

    def latest_forecasts(self, run_ids: list[int]) -> dict[int, ForecastRow]:
        """Per run, the forecast of its latest launch that made one."""
        out: dict[int, ForecastRow] = {}
        if not run_ids:
            return out
        for row in self._all(
            ForecastRow._make,
            f"{SELECT_FORECAST} WHERE run_id IN ({placeholders(run_ids)}) ORDER BY launch_id", run_ids,
        ):
            out[row.run_id] = row
        return out

    def run_deadline(self, run_id: int) -> float | None:
        """The deadline the run's first launch with one recorded: a resume keeps the night's
        deadline rather than moving it to the day after."""
        row = self.conn.execute(
            "SELECT deadline FROM forecasts WHERE run_id = ? AND deadline IS NOT NULL "
            "ORDER BY launch_id LIMIT 1", (run_id,),
        ).fetchone()
        return row[0] if row else None
