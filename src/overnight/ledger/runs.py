"""Runs (one batch for one date) and their launches, and finding the launches whose
runner died."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from overnight.errors import InvalidTransition
from overnight.ledger.database import placeholders
from overnight.ledger.rows import SELECT_LAUNCH, SELECT_RUN, LaunchRow, RunRow
from overnight.ledger.steps import StepRecords
from overnight.states import (
    DEAD_LAUNCH_STATE,
    RunState,
    StepState,
    after_runner_died,
    check_run_transition,
)

LIVE = RunState.RUNNING.value
# In a launch's options: it could not start, and failed before any step ran.
NOT_STARTED = "not_started"


# Newest first by the ledger's sequence: the run's last launch, then the run's own id.
BY_LAST_LAUNCH = (
    "ORDER BY (SELECT max(launches.id) FROM launches WHERE launches.run_id = runs.id) DESC, runs.id DESC"
)


class RunRecords(StepRecords):
    # -- runs ------------------------------------------------------------------------------

    def find_run(self, batch: str, date: str) -> RunRow | None:
        return self._one(RunRow._make, f"{SELECT_RUN} WHERE batch = ? AND date = ?", (batch, date))

    def get_run(self, run_id: int) -> RunRow | None:
        return self._one(RunRow._make, f"{SELECT_RUN} WHERE id = ?", (run_id,))

    def latest_run(self, batch: str) -> RunRow | None:
        """The run launched last, by the ledger's own sequence (launch ids), not the clock:
        a clock stepped back must not make an older night the latest."""
        return self._one(RunRow._make, f"{SELECT_RUN} WHERE batch = ? {BY_LAST_LAUNCH} LIMIT 1", (batch,))

    def ensure_run(self, batch: str, date: str) -> RunRow:
        """The run for (batch, date), created (running) if new. Call inside a transaction."""
        now = time.time()
        self._write(
            "INSERT OR IGNORE INTO runs (batch, date, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (batch, date, LIVE, now, now),
        )
        run = self.find_run(batch, date)
        assert run is not None
        return run

    def set_run_state(self, run_id: int, state: RunState) -> None:
        """The one function that changes a run's state, checked against RUN_TRANSITIONS.
        Call inside a transaction (the state read is the one replaced)."""
        row = self.conn.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InvalidTransition(f"run {run_id}: not in the ledger")
        old = RunState(row[0])
        check_run_transition(str(run_id), old, state)
        self._write(
            "UPDATE runs SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
            (state.value, time.time(), run_id, old.value),
        )

    def runs(self, batch: str | None = None, limit: int = 50) -> list[RunRow]:
        """The latest runs, of one batch or of all, newest business date first (the same
        order either way: `history` and `history BATCH` must not disagree)."""
        if batch:
            return self._all(
                RunRow._make, f"{SELECT_RUN} WHERE batch = ? ORDER BY date DESC, id DESC LIMIT ?",
                (batch, limit),
            )
        return self._all(RunRow._make, f"{SELECT_RUN} ORDER BY date DESC, id DESC LIMIT ?", (limit,))

    def batches(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT batch FROM runs ORDER BY batch")]

    def last_completed_date(self, batch: str) -> str | None:
        row = self.conn.execute(
            "SELECT max(date) FROM runs WHERE batch = ? AND state = ?",
            (batch, RunState.SUCCEEDED.value),
        ).fetchone()
        return row[0] if row else None

    # -- launches ------------------------------------------------------------------------

    def start_launch(
        self, run_id: int, batch: str, *, trigger: str, launched_by: str, options: dict[str, Any]
    ) -> int:
        now = time.time()
        cur = self._write(
            "INSERT INTO launches (run_id, batch, state, host, pid, started_at, trigger, "
            "launched_by, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, batch, LIVE, self.host, os.getpid(), now, trigger, launched_by,
             json.dumps(options, sort_keys=True)),
        )
        self.set_run_state(run_id, RunState.RUNNING)
        return int(cur.lastrowid or 0)

    def record_not_started(
        self, batch: str, date: str, *, trigger: str, launched_by: str, message: str,
        pid: int | None = None,
    ) -> tuple[int, int]:
        """A launch that could not start (its module does not import, its configuration is
        wrong...): recorded failed before any step ran, with the one-line error. The run
        becomes failed unless it is live or already succeeded (its steps are all done: a
        launch that did nothing takes nothing away). Returns (run id, launch id). Call
        inside a transaction."""
        before = self.find_run(batch, date)
        run = self.ensure_run(batch, date)
        now = time.time()
        cur = self._write(
            "INSERT INTO launches (run_id, batch, state, host, pid, started_at, ended_at, trigger, "
            "launched_by, options, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.id, batch, RunState.FAILED.value, self.host, pid or os.getpid(), now, now, trigger,
             launched_by, json.dumps({NOT_STARTED: True}), message),
        )
        if before is None or before.state not in (LIVE, RunState.SUCCEEDED.value):
            self.set_run_state(run.id, RunState.FAILED)
        return run.id, int(cur.lastrowid or 0)

    def launch_by_pid(self, batch: str, pid: int, since: float) -> LaunchRow | None:
        """The launch of `batch` that process `pid` recorded at or after `since`, if any."""
        return self._one(
            LaunchRow._make,
            f"{SELECT_LAUNCH} WHERE batch = ? AND pid = ? AND started_at >= ? AND host = ? "
            "ORDER BY id DESC LIMIT 1",
            (batch, pid, since, self.host),
        )

    def end_launch(self, launch_id: int, run_id: int, state: RunState, message: str | None) -> None:
        self._write(
            "UPDATE launches SET state = ?, ended_at = ?, message = ? WHERE id = ?",
            (state.value, time.time(), message, launch_id),
        )
        self.set_run_state(run_id, state)

    def set_launch_message(self, launch_id: int, message: str | None) -> None:
        """While a launch lives, its message says what it waits for (batchafter.py); its end
        replaces it with how it ended. Call inside a transaction."""
        self._write("UPDATE launches SET message = ? WHERE id = ?", (message, launch_id))

    def launches(self, run_id: int) -> list[LaunchRow]:
        return self._all(LaunchRow._make, f"{SELECT_LAUNCH} WHERE run_id = ? ORDER BY id", (run_id,))

    def launch_numbers(self, run_id: int) -> dict[int, int]:
        """Each launch of the run by its number within the night (1, 2, ...): the number a
        person is shown; launch ids count across every night of every batch."""
        ids = [row[0] for row in self.conn.execute(
            "SELECT id FROM launches WHERE run_id = ? ORDER BY id", (run_id,)
        )]
        return {launch_id: number for number, launch_id in enumerate(ids, 1)}

    def night_of(self, launch_id: int) -> tuple[str, int]:
        """A launch as a person is told it: its run's date and its number within that night."""
        row = self.conn.execute(
            "SELECT r.date, (SELECT count(*) FROM launches o WHERE o.run_id = l.run_id AND o.id <= l.id) "
            "FROM launches l JOIN runs r ON r.id = l.run_id WHERE l.id = ?", (launch_id,),
        ).fetchone()
        return (row[0], row[1]) if row else ("?", 0)

    def launches_of_runs(self, run_ids: list[int]) -> dict[int, list[LaunchRow]]:
        out: dict[int, list[LaunchRow]] = {i: [] for i in run_ids}
        if not run_ids:
            return out
        for launch in self._all(
            LaunchRow._make,
            f"{SELECT_LAUNCH} WHERE run_id IN ({placeholders(run_ids)}) ORDER BY id", run_ids,
        ):
            out[launch.run_id].append(launch)
        return out

    def live_launch(self, batch: str) -> LaunchRow | None:
        """The launch of `batch` recorded live (its runner may have died since: see
        readmodel.liveness before showing it as running)."""
        return self._one(
            LaunchRow._make,
            f"{SELECT_LAUNCH} WHERE batch = ? AND state = ? ORDER BY id DESC LIMIT 1", (batch, LIVE),
        )

    def last_event(self, launch: LaunchRow) -> float:
        """The time of the last thing the launch recorded: its start, an attempt's start or
        end, a step state it set."""
        row = self.conn.execute(
            "SELECT max(coalesce(ended_at, started_at)) FROM attempts WHERE run_id = ? AND launch_id = ?",
            (launch.run_id, launch.id),
        ).fetchone()
        step = self.conn.execute(
            "SELECT max(updated_at) FROM steps WHERE run_id = ? AND launch_id = ?", (launch.run_id, launch.id)
        ).fetchone()
        return max(t for t in (launch.started_at, row[0], step[0]) if t is not None)

    def reap_dead_launches(self, batch: str) -> list[LaunchRow]:
        """Mark every launch of `batch` still recorded live as crashed.

        Call only while holding the batch's lock: then no such launch can be alive. What
        each of its running steps is now is states.after_runner_died: local ones are
        interrupted; those sent to a remote queue may well go on without the runner, so
        they stay running until a launch of their run re-attaches to them (engine.py).
        Call inside a transaction.
        """
        dead = self._all(
            LaunchRow._make, f"{SELECT_LAUNCH} WHERE batch = ? AND state = ?", (batch, LIVE)
        )
        for launch in dead:
            # When it died is not known, only that it was alive at its last record: its
            # duration runs to that, not to whenever a later launch happened to notice.
            last = self.last_event(launch)
            self._write(
                "UPDATE attempts SET state = ?, ended_at = ?, message = ? "
                "WHERE launch_id = ? AND state = ? AND remote_id IS NULL",
                (StepState.INTERRUPTED.value, last, "the runner died while this ran",
                 launch.id, StepState.RUNNING.value),
            )
            remote = {a.step for a in self.running_attempts(launch.run_id) if a.remote_id}
            for name, state in self.step_states(launch.run_id).items():
                now_state = after_runner_died(state, remote=name in remote)
                if now_state is not state:
                    self.set_step_state(
                        launch.run_id, name, state, now_state,
                        launch.id, "interrupted: the runner died while it ran",
                    )
            self._write(
                "UPDATE launches SET state = ?, ended_at = ?, message = ? WHERE id = ?",
                (DEAD_LAUNCH_STATE.value, last, "found dead by a later launch", launch.id),
            )
        for run_id in dict.fromkeys(launch.run_id for launch in dead):
            self.set_run_state(run_id, DEAD_LAUNCH_STATE)
        return dead
