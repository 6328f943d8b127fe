"""The ledger's schema, as the list of migrations that builds it version by version."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

SCHEMA_VERSION = 6

# Entry i takes the schema from version i to version i + 1 (version 0 is an empty file).
# Never edit a released entry: add one. tests/test_ledger.py upgrades real files of every earlier version.
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
    # 3: knowing before 7am. Per launch, the runner's latest prediction of its finish (and
    # the one it made at its start), with the run's deadline; the alerts sent about a night
    # ("will be late", "missed deadline", "running long"), each once: (batch, date, kind,
    # key) is unique, so the runner and the scheduler can never both send one; and every
    # delivery of each, sent or not, as for reports.
    """
    CREATE TABLE forecasts (
        launch_id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        deadline REAL,
        made_at REAL NOT NULL,
        finish REAL,
        first_finish REAL,
        unknown INTEGER NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX forecasts_run ON forecasts (run_id);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        batch TEXT NOT NULL,
        date TEXT NOT NULL,
        run_id INTEGER,
        launch_id INTEGER,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        subject TEXT NOT NULL,
        predicted REAL,
        deadline REAL,
        at REAL NOT NULL,
        state TEXT NOT NULL,
        UNIQUE (batch, date, kind, key)
    );
    CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        tries INTEGER NOT NULL,
        at REAL NOT NULL,
        message TEXT
    );
    CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
    """,
    # 4: no night lost in silence. A fire's instant (`at`, a Unix time: scheduled_at is its
    # wall time), so a clock that went back never fires a recorded time again; one record
    # for a whole gap of misses (`until`, `last_date`, `count`: its last fire, how many);
    # whether a report is owed for it (`report`: 'due' until tried, then 'made'; NULL when
    # the outcome needs none) and every delivery of that report (fire_reports), so no
    # pass repeats it and `overnight report --send` can retry it.
    """
    ALTER TABLE fires ADD COLUMN at REAL;
    ALTER TABLE fires ADD COLUMN until REAL;
    ALTER TABLE fires ADD COLUMN last_date TEXT;
    ALTER TABLE fires ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE fires ADD COLUMN report TEXT;
    UPDATE fires SET at = CAST(strftime('%s', scheduled_at) AS REAL), last_date = date;
    UPDATE fires SET until = at;
    CREATE INDEX fires_batch_at ON fires (batch, at);
    CREATE INDEX fires_report_due ON fires (report) WHERE report = 'due';
    CREATE TABLE fire_reports (
        id INTEGER PRIMARY KEY,
        fire_id INTEGER NOT NULL REFERENCES fires (id),
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        tries INTEGER NOT NULL,
        at REAL NOT NULL,
        message TEXT
    );
    CREATE INDEX fire_reports_fire ON fire_reports (fire_id);
    """,
    # 5: the dashboard's sessions, kept here so that logging out, a new password, a new role
    # or removing a user ends them (a cookie holds only a random id; its SHA-256 is stored),
    # and the audit record of logins and actions.
    """
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        created_at REAL NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions (user);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        who TEXT,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    """,
    # 6: whether each step is idempotent, as its batch module said when it last ran: a
    # reader that does not load the module (the dashboard's re-run, a report) can tell a
    # held step, and warn before running one again.
    """
    ALTER TABLE steps ADD COLUMN idempotent INTEGER NOT NULL DEFAULT 1;
    """,
]


def statements(script: str) -> Iterator[str]:
    """The statements of a migration one by one: `executescript` would commit the
    transaction the migration runs in. SQLite says where a statement ends (a ';' inside
    a string or a trigger body does not end one)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"an unfinished statement in a migration: {pending.strip()[:60]!r}")
