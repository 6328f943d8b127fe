"""A run's steps, each step's attempts, and the operators' marks on them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from overnight.errors import InvalidTransition
from overnight.ledger.database import Database
from overnight.ledger.rows import (
    SELECT_ATTEMPT,
    SELECT_MARK,
    SELECT_STEP,
    AttemptRow,
    MarkRow,
    StepRow,
)
from overnight.states import StepState, check_step_transition


class StepRecords(Database):
    # -- steps ---------------------------------------------------------------------------

    def sync_steps(self, run_id: int, steps: Iterable[Any]) -> dict[str, StepState]:
        """Record the batch's steps for this run (new ones pending); return every state.

        Call inside a transaction. `steps` are batch.Step objects.
        """
        now = time.time()
        states: dict[str, StepState] = {}
        recorded_idempotent: dict[str, bool] = {}
        for name, state, idempotent in self.conn.execute(
            "SELECT name, state, idempotent FROM steps WHERE run_id = ?", (run_id,)
        ):
            states[name] = StepState(state)
            recorded_idempotent[name] = bool(idempotent)
        steps = list(steps)
        new = [
            (run_id, s.name, s.position, s.kind, json.dumps(list(s.after)), s.describe(),
             StepState.PENDING.value, now, int(s.idempotent))
            for s in steps
            if s.name not in states
        ]
        if new:
            self._write_many(
                "INSERT INTO steps (run_id, name, position, kind, after, command, state, "
                "updated_at, idempotent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                new,
            )
            for row in new:
                states[row[1]] = StepState.PENDING
        # A step whose module now says otherwise: readers go by what the module says now.
        changed = [(int(s.idempotent), run_id, s.name) for s in steps
                   if s.name in recorded_idempotent and recorded_idempotent[s.name] != s.idempotent]
        if changed:
            self._write_many("UPDATE steps SET idempotent = ? WHERE run_id = ? AND name = ?", changed)
        return states

    def step_states(self, run_id: int) -> dict[str, StepState]:
        return {
            name: StepState(state)
            for name, state in self.conn.execute(
                "SELECT name, state FROM steps WHERE run_id = ?", (run_id,)
            )
        }

    def steps(self, run_id: int) -> list[StepRow]:
        return self._all(StepRow._make, f"{SELECT_STEP} WHERE run_id = ? ORDER BY position", (run_id,))

    def set_step_state(
        self,
        run_id: int,
        step: str,
        old: StepState,
        new: StepState,
        launch_id: int | None,
        message: str | None = None,
    ) -> None:
        """The one function that changes a step's state: checked against the table, and
        applied only if the ledger still holds `old` (compare-and-set)."""
        check_step_transition(step, old, new)
        cur = self._write(
            "UPDATE steps SET state = ?, launch_id = ?, message = ?, updated_at = ? "
            "WHERE run_id = ? AND name = ? AND state = ?",
            (new.value, launch_id, message, time.time(), run_id, step, old.value),
        )
        if cur.rowcount != 1:
            raise InvalidTransition(
                f"step {step!r} of run {run_id}: expected {old} in the ledger, found otherwise"
            )

    # -- attempts ------------------------------------------------------------------------

    def start_attempt(
        self,
        run_id: int,
        step: str,
        number: int,
        launch_id: int,
        log_path: str | None,
        started_at: float,
        remote_id: str | None = None,
        host: str | None = None,
    ) -> int:
        cur = self._write(
            "INSERT INTO attempts (run_id, step, number, launch_id, state, started_at, "
            "log_path, host, remote_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, step, number, launch_id, StepState.RUNNING.value, started_at, log_path,
             host or self.host, remote_id),
        )
        return int(cur.lastrowid or 0)

    def finish_attempt(
        self,
        attempt_id: int,
        state: StepState,
        ended_at: float,
        exit_code: int | None,
        message: str | None,
        started_at: float | None = None,
    ) -> None:
        if started_at is None:
            self._write(
                "UPDATE attempts SET state = ?, ended_at = ?, exit_code = ?, message = ? "
                "WHERE id = ?",
                (state.value, ended_at, exit_code, message, attempt_id),
            )
        else:
            self._write(
                "UPDATE attempts SET state = ?, started_at = ?, ended_at = ?, exit_code = ?, "
                "message = ? WHERE id = ?",
                (state.value, started_at, ended_at, exit_code, message, attempt_id),
            )

    def update_attempt_remote(self, attempt_id: int, remote_id: str | None, host: str | None) -> None:
        self._write(
            "UPDATE attempts SET remote_id = ?, host = coalesce(?, host) WHERE id = ?",
            (remote_id, host, attempt_id),
        )

    def attempts(self, run_id: int, step: str | None = None) -> list[AttemptRow]:
        if step is None:
            return self._all(
                AttemptRow._make, f"{SELECT_ATTEMPT} WHERE run_id = ? ORDER BY id", (run_id,)
            )
        return self._all(
            AttemptRow._make, f"{SELECT_ATTEMPT} WHERE run_id = ? AND step = ? ORDER BY id",
            (run_id, step),
        )

    def attempt_counts(self, run_id: int) -> dict[str, int]:
        return {
            step: n
            for step, n in self.conn.execute(
                "SELECT step, max(number) FROM attempts WHERE run_id = ? GROUP BY step",
                (run_id,),
            )
        }

    def running_attempts(self, run_id: int) -> list[AttemptRow]:
        return self._all(
            AttemptRow._make, f"{SELECT_ATTEMPT} WHERE run_id = ? AND state = ?",
            (run_id, StepState.RUNNING.value),
        )

    # -- marks ---------------------------------------------------------------------------

    def record_mark(
        self, run_id: int, step: str, action: str, old: StepState, new: StepState,
        who: str, reason: str | None,
    ) -> None:
        self._write(
            "INSERT INTO marks (run_id, step, action, old_state, new_state, who, reason, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, step, action, old.value, new.value, who, reason, time.time()),
        )

    def marked_steps(self, run_id: int) -> frozenset[str]:
        """The steps an operator has marked in this run (any mark, ever)."""
        return frozenset(
            row[0] for row in self.conn.execute("SELECT DISTINCT step FROM marks WHERE run_id = ?", (run_id,))
        )

    def marks(self, run_id: int) -> list[MarkRow]:
        return self._all(MarkRow._make, f"{SELECT_MARK} WHERE run_id = ? ORDER BY id", (run_id,))
