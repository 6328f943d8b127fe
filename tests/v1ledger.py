"""A ledger file as the first release (schema version 1) wrote it, with one night in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The schema of version 1 exactly as released (never derived from MIGRATIONS: if someone
# edits a released migration, files written by that release must still open).
V1_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, batch TEXT NOT NULL, date TEXT NOT NULL,
    state TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, UNIQUE (batch, date));
CREATE TABLE launches (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs (id),
    batch TEXT NOT NULL, state TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    started_at REAL NOT NULL, ended_at REAL, trigger TEXT NOT NULL, launched_by TEXT NOT NULL,
    options TEXT NOT NULL, message TEXT);
CREATE INDEX launches_run ON launches (run_id);
CREATE INDEX launches_live ON launches (batch, state);
CREATE TABLE steps (run_id INTEGER NOT NULL REFERENCES runs (id), name TEXT NOT NULL,
    position INTEGER NOT NULL, kind TEXT NOT NULL, after TEXT NOT NULL, command TEXT NOT NULL,
    state TEXT NOT NULL, launch_id INTEGER, message TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, name)) WITHOUT ROWID;
CREATE TABLE attempts (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, step TEXT NOT NULL,
    number INTEGER NOT NULL, launch_id INTEGER NOT NULL, state TEXT NOT NULL,
    started_at REAL NOT NULL, ended_at REAL, exit_code INTEGER, message TEXT, log_path TEXT,
    host TEXT, remote_id TEXT);
CREATE INDEX attempts_run_step ON attempts (run_id, step);
CREATE TABLE marks (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, step TEXT NOT NULL,
    action TEXT NOT NULL, old_state TEXT NOT NULL, new_state TEXT NOT NULL, who TEXT NOT NULL,
    reason TEXT, at REAL NOT NULL);
CREATE INDEX marks_run ON marks (run_id);
CREATE TABLE fires (id INTEGER PRIMARY KEY, batch TEXT NOT NULL, scheduled_at TEXT NOT NULL,
    date TEXT NOT NULL, outcome TEXT NOT NULL, recorded_at REAL NOT NULL, pid INTEGER, message TEXT);
CREATE INDEX fires_batch ON fires (batch, scheduled_at);
CREATE TABLE reports (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, launch_id INTEGER,
    channel TEXT NOT NULL, state TEXT NOT NULL, tries INTEGER NOT NULL, at REAL NOT NULL, message TEXT);
CREATE INDEX reports_run ON reports (run_id);
CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,
    created_at REAL NOT NULL);
"""

# A night of `nightly` as a v1 release recorded it: `load` failed once, then succeeded on
# a second launch after an operator's mark; a report went out and the scheduler fired.
V1_DATA = """
INSERT INTO runs VALUES (1, 'nightly', '2026-11-20', 'succeeded', 1000.0, 2000.0);
INSERT INTO launches VALUES (1, 1, 'nightly', 'failed', 'box', 41, 1000.0, 1100.0, 'scheduled',
    'cron', '{"workers": 1}', NULL);
INSERT INTO launches VALUES (2, 1, 'nightly', 'succeeded', 'box', 42, 1900.0, 2000.0, 'manual',
    'ann', '{"workers": 2}', NULL);
INSERT INTO steps VALUES (1, 'extract', 0, 'command', '[]', 'bin/extract', 'succeeded', 1, NULL, 1050.0);
INSERT INTO steps VALUES (1, 'load', 1, 'command', '["extract"]', 'bin/load', 'succeeded', 2, NULL, 1990.0);
INSERT INTO steps VALUES (1, 'tidy', 2, 'callable', '["load"]', 'tidy()', 'skipped', NULL,
    'marked skip by ann: not tonight', 1950.0);
INSERT INTO attempts VALUES
    (1, 1, 'extract', 1, 1, 'succeeded', 1000.0, 1050.0, 0, NULL, '/l/e.1', 'box', NULL),
    (2, 1, 'load', 1, 1, 'failed', 1050.0, 1100.0, 3, 'exit code 3', '/l/l.1', 'box', NULL),
    (3, 1, 'load', 2, 2, 'succeeded', 1900.0, 1990.0, 0, NULL, '/l/l.2', 'box', NULL);
INSERT INTO marks VALUES (1, 1, 'tidy', 'skip', 'blocked', 'skipped', 'ann', 'not tonight', 1950.0);
INSERT INTO fires VALUES
    (1, 'nightly', '2026-11-21T01:00:00+00:00', '2026-11-20', 'launched', 1000.0, 41, NULL);
INSERT INTO reports VALUES (1, 1, 1, 'mail', 'sent', 1, 1101.0, 'to it@example.com');
INSERT INTO users VALUES ('ann', 'scrypt$x', 'operator', 900.0);
PRAGMA user_version = 1;
"""


def write_v1_ledger(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA + V1_DATA)
    conn.close()
