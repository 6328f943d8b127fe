"""The ledger: runs, launches, steps and attempts, durably, in one SQLite file.

This module is the only one that speaks SQL. The connection is in autocommit mode and
every change happens inside ``transaction()`` (``BEGIN IMMEDIATE``), in WAL mode with
``synchronous=FULL``: when a transaction returns, its records survive a power loss.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from overnight.errors import InvalidTransition, LedgerError
from overnight.states import (
    DEAD_LAUNCH_STATE,
    RunState,
    StepState,
    after_runner_died,
    check_step_transition,
)

SCHEMA_VERSION = 2

# Each entry takes the schema from version i to i + 1. Never edit a released entry: add one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        batch TEXT NOT NULL,
        date TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (batch, date)
    );
    CREATE TABLE launches (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        batch TEXT NOT NULL,
        state TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        trigger TEXT NOT NULL,
        launched_by TEXT NOT NULL,
        options TEXT NOT NULL,
        message TEXT
    );
    CREATE INDEX launches_run ON launches (run_id);
    CREATE INDEX launches_live ON launches (batch, state);
    CREATE TABLE steps (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        kind TEXT NOT NULL,
        after TEXT NOT NULL,
        command TEXT NOT NULL,
        state TEXT NOT NULL,
        launch_id INTEGER,
        message TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID;
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        step TEXT NOT NULL,
        number INTEGER NOT NULL,
        launch_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        exit_code INTEGER,
        message TEXT,
        log_path TEXT,
        host TEXT,
        remote_id TEXT
    );
    CREATE INDEX attempts_run_step ON attempts (run_id, step);
    CREATE TABLE marks (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        step TEXT NOT NULL,
        action TEXT NOT NULL,
        old_state TEXT NOT NULL,
        new_state TEXT NOT NULL,
        who TEXT NOT NULL,
        reason TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX marks_run ON marks (run_id);
    CREATE TABLE fires (
        id INTEGER PRIMARY KEY,
        batch TEXT NOT NULL,
        scheduled_at TEXT NOT NULL,
        date TEXT NOT NULL,
        outcome TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        pid INTEGER,
        message TEXT
    );
    CREATE INDEX fires_batch ON fires (batch, scheduled_at);
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        launch_id INTEGER,
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        tries INTEGER NOT NULL,
        at REAL NOT NULL,
        message TEXT
    );
    CREATE INDEX reports_run ON reports (run_id);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 2: the scheduler's cursor per batch: every fire at or before handled_until (a Unix
    # time) has been dealt with, so after downtime it knows exactly what it missed.
    """
    CREATE TABLE schedule_cursors (
        batch TEXT PRIMARY KEY,
        handled_until REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
]

LIVE = RunState.RUNNING.value

# The rows are NamedTuples, not frozen dataclasses: as immutable, and each costs ~0.2 ms
# to define at import instead of ~1 ms, which `status` and `history` pay on every call.


class RunRow(NamedTuple):
    id: int
    batch: str
    date: str
    state: str
    created_at: float
    updated_at: float


class LaunchRow(NamedTuple):
    id: int
    run_id: int
    batch: str
    state: str
    host: str
    pid: int
    started_at: float
    ended_at: float | None
    trigger: str
    launched_by: str
    options: str
    message: str | None


class StepRow(NamedTuple):
    run_id: int
    name: str
    position: int
    kind: str
    after: str
    command: str
    state: str
    launch_id: int | None
    message: str | None
    updated_at: float

    @property
    def prerequisites(self) -> list[str]:
        return json.loads(self.after)


class AttemptRow(NamedTuple):
    id: int
    run_id: int
    step: str
    number: int
    launch_id: int
    state: str
    started_at: float
    ended_at: float | None
    exit_code: int | None
    message: str | None
    log_path: str | None
    host: str | None
    remote_id: str | None

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


class MarkRow(NamedTuple):
    id: int
    run_id: int
    step: str
    action: str
    old_state: str
    new_state: str
    who: str
    reason: str | None
    at: float


class UserRow(NamedTuple):
    name: str
    password_hash: str
    role: str
    created_at: float


def _describe_error(path: Path, error: BaseException) -> str:
    text = str(error)
    if isinstance(error, PermissionError) or "readonly" in text or "permission" in text.lower():
        return (
            f"{path}: cannot write the ledger (permission denied or read-only): "
            "check the owner and mode of the state directory"
        )
    if "disk is full" in text or "No space" in text or "too large" in text:
        return f"{path}: the disk is full: free space, then run the same command again"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"{path}: the ledger is damaged ({text}): move it aside and run again, "
            "or restore it from a backup"
        )
    if "disk I/O error" in text:
        # SQLite says no more than this for a full disk met outside a write (a reader that
        # cannot create the -shm file) and for a file-size limit: name what to check.
        return (
            f"{path}: cannot read or write the ledger (disk I/O error): check the disk's free "
            "space, quotas and health, then run the same command again"
        )
    if "unable to open" in text:
        return f"{path}: cannot open the ledger: check that its folder exists and is writable"
    return f"{path}: ledger error: {text}"


class _Cursor(sqlite3.Cursor):
    """A cursor whose every SQLite error (a damaged page met while reading, a full disk)
    becomes one LedgerError naming the file, wherever in the program the query runs."""

    def _guard(self, call, *args):  # noqa: ANN001, ANN202
        try:
            return call(*args)
        except sqlite3.Error as e:
            raise LedgerError(_describe_error(self.connection.ledger_path, e)) from None  # type: ignore[attr-defined]

    def execute(self, sql, parameters=()):  # noqa: ANN001, ANN201
        return self._guard(super().execute, sql, parameters)

    def executemany(self, sql, seq):  # noqa: ANN001, ANN201
        return self._guard(super().executemany, sql, seq)

    def fetchone(self):  # noqa: ANN201
        return self._guard(super().fetchone)

    def fetchall(self):  # noqa: ANN201
        return self._guard(super().fetchall)

    def __next__(self):  # noqa: ANN204
        return self._guard(super().__next__)


class _Connection(sqlite3.Connection):
    ledger_path: Path

    def execute(self, sql, parameters=()):  # noqa: ANN001, ANN201
        return self.cursor(_Cursor).execute(sql, parameters)

    def executemany(self, sql, seq):  # noqa: ANN001, ANN201
        return self.cursor(_Cursor).executemany(sql, seq)


class _NeedsUpgrade(Exception):
    """A read-only open found an older schema."""


class Ledger:
    """One SQLite file. Open it with ``Ledger.open(path)``; use it from one thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.host = socket.gethostname()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Ledger:
        if os.path.lexists(path) and not path.is_file():
            # SQLite would call a folder here "unable to open" or "disk I/O error".
            raise LedgerError(f"{path}: is not a file: move it aside, or point state_dir elsewhere")
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10,
                    factory=_Connection,
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, factory=_Connection)
            conn.ledger_path = path
            ledger = cls(path, conn)
            try:
                ledger._prepare(readonly)
            except _NeedsUpgrade:
                # A reader of an older ledger upgrades it first (a few quick statements in
                # one transaction), so `status` works right after installing a new version.
                conn.close()
                cls.open(path).close()
                return cls.open(path, readonly=True)
            return ledger
        except LedgerError:
            raise
        except (sqlite3.Error, OSError) as e:
            raise LedgerError(_describe_error(path, e)) from None

    def _prepare(self, readonly: bool) -> None:
        c = self.conn
        c.row_factory = sqlite3.Row
        c.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LedgerError(f"{self.path}: cannot switch the ledger to WAL mode ({mode})")
        c.execute("PRAGMA synchronous = FULL")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: written by a newer overnight (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade overnight, or point state_dir elsewhere"
            )
        if version < SCHEMA_VERSION:
            if readonly:
                raise _NeedsUpgrade
            self._migrate(version)
        # A quick check that catches a file replaced by garbage with a valid header.
        c.execute("SELECT count(*) FROM runs WHERE id = 0").fetchone()

    def _migrate(self, version: int) -> None:
        with self.transaction():
            current = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for index in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[index].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing; the write lock is taken at BEGIN, so no upgrade deadlock."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise LedgerError(_describe_error(self.path, e)) from None
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise LedgerError(_describe_error(self.path, e)) from None

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, tuple(params))
        except sqlite3.Error as e:
            raise LedgerError(_describe_error(self.path, e)) from None

    # -- runs ------------------------------------------------------------------------------

    def find_run(self, batch: str, date: str) -> RunRow | None:
        row = self.conn.execute(
            "SELECT * FROM runs WHERE batch = ? AND date = ?", (batch, date)
        ).fetchone()
        return RunRow(**row) if row else None

    def get_run(self, run_id: int) -> RunRow | None:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRow(**row) if row else None

    def latest_run(self, batch: str) -> RunRow | None:
        """The run with the most recent activity (a launch, a mark)."""
        row = self.conn.execute(
            "SELECT * FROM runs WHERE batch = ? ORDER BY updated_at DESC LIMIT 1", (batch,)
        ).fetchone()
        return RunRow(**row) if row else None

    def ensure_run(self, batch: str, date: str) -> RunRow:
        """The run for (batch, date), created if new. Call inside a transaction."""
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
        self._write(
            "UPDATE runs SET state = ?, updated_at = ? WHERE id = ?",
            (state.value, time.time(), run_id),
        )

    def runs(self, batch: str | None = None, limit: int = 50) -> list[RunRow]:
        if batch:
            rows = self.conn.execute(
                "SELECT * FROM runs WHERE batch = ? ORDER BY date DESC, id DESC LIMIT ?",
                (batch, limit),
            )
        else:
            rows = self.conn.execute(
                "SELECT * FROM runs ORDER BY updated_at DESC LIMIT ?", (limit,)
            )
        return [RunRow(**r) for r in rows]

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

    def end_launch(self, launch_id: int, run_id: int, state: RunState, message: str | None) -> None:
        self._write(
            "UPDATE launches SET state = ?, ended_at = ?, message = ? WHERE id = ?",
            (state.value, time.time(), message, launch_id),
        )
        self.set_run_state(run_id, state)

    def launches(self, run_id: int) -> list[LaunchRow]:
        rows = self.conn.execute(
            "SELECT * FROM launches WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [LaunchRow(**r) for r in rows]

    def launches_of_runs(self, run_ids: list[int]) -> dict[int, list[LaunchRow]]:
        out: dict[int, list[LaunchRow]] = {i: [] for i in run_ids}
        if not run_ids:
            return out
        marks = ",".join("?" * len(run_ids))
        for r in self.conn.execute(
            f"SELECT * FROM launches WHERE run_id IN ({marks}) ORDER BY id", run_ids
        ):
            out[r["run_id"]].append(LaunchRow(**r))
        return out

    def live_launch(self, batch: str) -> LaunchRow | None:
        row = self.conn.execute(
            "SELECT * FROM launches WHERE batch = ? AND state = ? ORDER BY id DESC LIMIT 1",
            (batch, LIVE),
        ).fetchone()
        return LaunchRow(**row) if row else None

    def reap_dead_launches(self, batch: str) -> list[LaunchRow]:
        """Mark every launch of `batch` still recorded live as crashed.

        Call only while holding the batch's lock: then no such launch can be alive. Its
        running attempts and steps become interrupted, except those sent to a remote queue:
        they may well go on without the runner, so they stay running until a launch of
        their run re-attaches to them (engine.py). Call inside a transaction.
        """
        dead = [
            LaunchRow(**r)
            for r in self.conn.execute(
                "SELECT * FROM launches WHERE batch = ? AND state = ?", (batch, LIVE)
            )
        ]
        now = time.time()
        for launch in dead:
            self._write(
                "UPDATE attempts SET state = ?, ended_at = ?, message = ? "
                "WHERE launch_id = ? AND state = ? AND remote_id IS NULL",
                (StepState.INTERRUPTED.value, now, "the runner died while this ran",
                 launch.id, StepState.RUNNING.value),
            )
            remote = {a.step for a in self.running_attempts(launch.run_id) if a.remote_id}
            for row in self.conn.execute(
                "SELECT name FROM steps WHERE run_id = ? AND state = ?",
                (launch.run_id, StepState.RUNNING.value),
            ).fetchall():
                now_state = after_runner_died(StepState.RUNNING, remote=row[0] in remote)
                if now_state is not StepState.RUNNING:
                    self.set_step_state(
                        launch.run_id, row[0], StepState.RUNNING, now_state,
                        launch.id, "interrupted: the runner died while it ran",
                    )
            self._write(
                "UPDATE launches SET state = ?, ended_at = ?, message = ? WHERE id = ?",
                (DEAD_LAUNCH_STATE.value, now, "found dead by a later launch", launch.id),
            )
            self.set_run_state(launch.run_id, DEAD_LAUNCH_STATE)
        return dead

    # -- steps ---------------------------------------------------------------------------

    def sync_steps(self, run_id: int, steps: Iterable[Any]) -> dict[str, StepState]:
        """Record the batch's steps for this run (new ones pending); return every state.

        Call inside a transaction. `steps` are batch.Step objects.
        """
        now = time.time()
        states = self.step_states(run_id)
        new = [
            (run_id, s.name, s.position, s.kind, json.dumps(list(s.after)), s.describe(),
             StepState.PENDING.value, now)
            for s in steps
            if s.name not in states
        ]
        if new:
            try:
                self.conn.executemany(
                    "INSERT INTO steps (run_id, name, position, kind, after, command, state, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    new,
                )
            except sqlite3.Error as e:
                raise LedgerError(_describe_error(self.path, e)) from None
            for row in new:
                states[row[1]] = StepState.PENDING
        return states

    def step_states(self, run_id: int) -> dict[str, StepState]:
        return {
            name: StepState(state)
            for name, state in self.conn.execute(
                "SELECT name, state FROM steps WHERE run_id = ?", (run_id,)
            )
        }

    def steps(self, run_id: int) -> list[StepRow]:
        rows = self.conn.execute(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
        )
        return [StepRow(**r) for r in rows]

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
            rows = self.conn.execute(
                "SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run_id,)
            )
        else:
            rows = self.conn.execute(
                "SELECT * FROM attempts WHERE run_id = ? AND step = ? ORDER BY id",
                (run_id, step),
            )
        return [AttemptRow(**r) for r in rows]

    def attempt_counts(self, run_id: int) -> dict[str, int]:
        return {
            step: n
            for step, n in self.conn.execute(
                "SELECT step, max(number) FROM attempts WHERE run_id = ? GROUP BY step",
                (run_id,),
            )
        }

    def running_attempts(self, run_id: int) -> list[AttemptRow]:
        rows = self.conn.execute(
            "SELECT * FROM attempts WHERE run_id = ? AND state = ?",
            (run_id, StepState.RUNNING.value),
        )
        return [AttemptRow(**r) for r in rows]

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

    def marks(self, run_id: int) -> list[MarkRow]:
        rows = self.conn.execute("SELECT * FROM marks WHERE run_id = ? ORDER BY id", (run_id,))
        return [MarkRow(**r) for r in rows]

    # -- history ---------------------------------------------------------------------------

    def state_counts(self, run_ids: list[int]) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {i: {} for i in run_ids}
        if not run_ids:
            return out
        marks = ",".join("?" * len(run_ids))
        for run_id, state, n in self.conn.execute(
            f"SELECT run_id, state, count(*) FROM steps WHERE run_id IN ({marks}) "
            "GROUP BY run_id, state",
            run_ids,
        ):
            out[run_id][state] = n
        return out

    # -- scheduler fires and reports (written by scheduling/daemon.py and reporting/report.py) --------------

    def record_fire(
        self, batch: str, scheduled_at: str, date: str, outcome: str,
        pid: int | None = None, message: str | None = None,
    ) -> None:
        self._write(
            "INSERT INTO fires (batch, scheduled_at, date, outcome, recorded_at, pid, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (batch, scheduled_at, date, outcome, time.time(), pid, message),
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

    def record_report(
        self, run_id: int, launch_id: int | None, channel: str, state: str, tries: int,
        message: str | None,
    ) -> None:
        self._write(
            "INSERT INTO reports (run_id, launch_id, channel, state, tries, at, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, launch_id, channel, state, tries, time.time(), message),
        )

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

    # -- dashboard users and the history grid (read by web/) --------------------------------

    def users(self) -> list[UserRow]:
        return [UserRow(**r) for r in self.conn.execute("SELECT * FROM users ORDER BY name")]

    def get_user(self, name: str) -> UserRow | None:
        row = self.conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return UserRow(**row) if row else None

    def count_users(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM users").fetchone()[0])

    def put_user(self, name: str, password_hash: str, role: str) -> bool:
        """Add a user, or replace its password and role; True if it is new. In a transaction."""
        new = self.get_user(name) is None
        self._write(
            "INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, "
            "role = excluded.role",
            (name, password_hash, role, time.time()),
        )
        return new

    def remove_user(self, name: str) -> bool:
        return self._write("DELETE FROM users WHERE name = ?", (name,)).rowcount == 1

    def fires_of(self, batch: str | None, limit: int) -> list[dict[str, Any]]:
        """The scheduler's latest records (launched, skipped, missed...), newest first: of
        one batch, or of every batch when `batch` is None."""
        if batch is None:
            rows = self.conn.execute("SELECT * FROM fires ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.conn.execute(
                "SELECT * FROM fires WHERE batch = ? ORDER BY id DESC LIMIT ?", (batch, limit)
            )
        return [dict(r) for r in rows]

    def reports_of(self, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Every delivery (mail, webhook) recorded for these runs, oldest first, by run."""
        out: dict[int, list[dict[str, Any]]] = {}
        if not run_ids:
            return out
        marks = ",".join("?" * len(run_ids))
        for r in self.conn.execute(
            f"SELECT * FROM reports WHERE run_id IN ({marks}) ORDER BY id", run_ids
        ):
            out.setdefault(r["run_id"], []).append(dict(r))
        return out

    def history_grid(self, batch: str, nights: int) -> tuple[list[RunRow], list[tuple[str, ...]]]:
        """The last `nights` runs of a batch (newest first) and, for the grid, one row per
        (run, step): run_id, step, position, state, and the last attempt's start and end.

        Two queries whatever the size: the grid of a year of nights must stay fast.
        """
        runs = [
            RunRow(**r)
            for r in self.conn.execute(
                "SELECT * FROM runs WHERE batch = ? ORDER BY date DESC LIMIT ?", (batch, nights)
            )
        ]
        if not runs:
            return runs, []
        oldest = runs[-1].date
        # The last attempt of each (run, step): scanning the attempts once in id order and
        # keeping the last beats a correlated subquery per cell by several times.
        last: dict[tuple[int, str], tuple[float, float | None]] = {}
        for run_id, step, started, ended in self.conn.execute(
            "SELECT a.run_id, a.step, a.started_at, a.ended_at FROM attempts a "
            "JOIN runs r ON r.id = a.run_id WHERE r.batch = ? AND r.date >= ? ORDER BY a.id",
            (batch, oldest),
        ):
            last[(run_id, step)] = (started, ended)
        cells = []
        for run_id, name, position, state in self.conn.execute(
            "SELECT s.run_id, s.name, s.position, s.state FROM runs r JOIN steps s ON s.run_id = r.id "
            "WHERE r.batch = ? AND r.date >= ?",
            (batch, oldest),
        ):
            started, ended = last.get((run_id, name), (None, None))
            cells.append((run_id, name, position, state, started, ended))
        return runs, cells
