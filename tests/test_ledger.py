"""The ledger's file over time: old files upgraded, readers that name their columns, and
the one writer of a run's state checked against its transition table.

Every test here works on a real SQLite file in tmp_path.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
from clikit import Project
from v1ledger import write_v1_ledger

from overnight.errors import InvalidTransition
from overnight.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger
from overnight.ledger.schema import statements
from overnight.states import RUN_TRANSITIONS, RunState, StepState


def schema_of(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """The version and every table and index with its columns, as SQLite reports them."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        shape = []
        for kind, name in conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ):
            pragma = "table_xinfo" if kind == "table" else "index_xinfo"
            columns = [tuple(row[1:]) for row in conn.execute(f"PRAGMA {pragma}({name})")]
            shape.append((kind, name, repr(columns)))
        return version, shape
    finally:
        conn.close()


def fresh_schema(tmp_path: Path) -> tuple[int, list[tuple[str, str]]]:
    fresh = tmp_path / "fresh" / "ledger.db"
    Ledger.open(fresh).close()
    return schema_of(fresh)


# -- upgrades ----------------------------------------------------------------------------


def test_a_v1_ledger_read_by_status_is_upgraded_and_shows_every_record(project: Project) -> None:
    """A reader (`status`, `history`) of a file written by the first release upgrades it
    in place and shows its night as it was recorded."""
    write_v1_ledger(project.ledger_path)
    status = project.status("nightly", "--date", "2026-11-20")
    assert schema_of(project.ledger_path) == fresh_schema(project.root)
    assert status["state"] == "succeeded"
    assert {s["name"]: s["state"] for s in status["steps"]} == {
        "extract": "succeeded", "load": "succeeded", "tidy": "skipped",
    }
    load = next(s for s in status["steps"] if s["name"] == "load")
    assert [(a["number"], a["state"], a["exit_code"]) for a in load["attempts"]] == [
        (1, "failed", 3), (2, "succeeded", 0),
    ]
    assert load["after"] == ["extract"] and load["log_path"] == "/l/l.2"
    assert [(la["id"], la["state"], la["launched_by"]) for la in status["launches"]] == [
        (1, "failed", "cron"), (2, "succeeded", "ann"),
    ]
    assert status["launches"][1]["options"] == {"workers": 2}
    assert [(m["step"], m["from"], m["to"], m["who"]) for m in status["marks"]] == [
        ("tidy", "blocked", "skipped", "ann"),
    ]
    assert [(r["channel"], r["state"]) for r in status["reports"]] == [("mail", "sent")]
    history = project.run("history", "--json")
    assert history.returncode == 0, history.stderr
    assert '"outcome": "launched"' in history.stdout


def test_a_v1_ledger_opened_for_writing_is_upgraded_and_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.db"
    write_v1_ledger(path)
    ledger = Ledger.open(path)
    try:
        assert ledger.get_user("ann") is not None and ledger.count_users() == 1
        assert ledger.fires_of("nightly", 5)[0].outcome == "launched"
        with ledger.transaction():  # the table version 2 added works
            ledger.save_schedule_cursor("nightly", 1234.5)
            run = ledger.ensure_run("nightly", "2026-11-21")
            launch = ledger.start_launch(run.id, "nightly", trigger="manual", launched_by="t", options={})
            ledger.end_launch(launch, run.id, RunState.SUCCEEDED, None)
        assert ledger.schedule_cursors() == {"nightly": 1234.5}
        assert [r.date for r in ledger.runs("nightly")] == ["2026-11-21", "2026-11-20"]
    finally:
        ledger.close()
    assert schema_of(path) == fresh_schema(tmp_path)


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_a_ledger_of_every_older_version_is_brought_to_the_current_schema(
    tmp_path: Path, version: int
) -> None:
    """Migrations are applied from the file's own version, one version at a time: the
    result is the schema a new file gets, whatever version it started from."""
    path = tmp_path / "old" / "ledger.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        for statement in statements(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    Ledger.open(path, readonly=True).close()
    assert schema_of(path) == fresh_schema(tmp_path)


def test_a_migration_is_split_where_sqlite_says_a_statement_ends() -> None:
    script = """
    CREATE TABLE t (note TEXT DEFAULT 'a; b');
    CREATE TRIGGER keep AFTER INSERT ON t BEGIN
        UPDATE t SET note = 'x;y' WHERE rowid = new.rowid;
        DELETE FROM t WHERE note = ';';
    END;
    INSERT INTO t (note) VALUES (';');
    """
    parts = list(statements(script))
    assert len(parts) == 3 and parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END;")
    conn = sqlite3.connect(":memory:")
    for part in parts:
        conn.execute(part)
    assert conn.execute("SELECT note FROM t").fetchall() == [("x;y",)]
    with pytest.raises(ValueError, match="unfinished"):
        list(statements("CREATE TABLE u (a TEXT)"))


# -- readers name their columns ------------------------------------------------------------


def _read_everything(ledger: Ledger) -> list[object]:
    run = ledger.find_run("nightly", "2026-11-20")
    assert run is not None
    return [
        run, ledger.get_run(run.id), ledger.latest_run("nightly"), ledger.runs(), ledger.runs("nightly"),
        ledger.launches(run.id), ledger.launches_of_runs([run.id]), ledger.steps(run.id),
        ledger.attempts(run.id), ledger.attempts(run.id, "load"), ledger.marks(run.id),
        ledger.fires_of(None, 10), ledger.fires_of("nightly", 10), ledger.reports_of([run.id]),
        ledger.users(), ledger.get_user("ann"), ledger.history_grid("nightly", 10),
        ledger.state_counts([run.id]),
    ]


def _rebuild_reversed(conn: sqlite3.Connection, table: str) -> None:
    """The same table with its columns in the opposite order (and its data kept)."""
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")][::-1]
    listed = ", ".join(columns)
    conn.execute(f"CREATE TABLE {table}_new AS SELECT {listed} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {table}_new RENAME TO {table}")


TABLES = ["runs", "launches", "steps", "attempts", "marks", "fires", "reports", "users"]
CHANGES = {
    "an added column": lambda conn, table: conn.execute(
        f"ALTER TABLE {table} ADD COLUMN added_later TEXT DEFAULT 'x'"
    ),
    "columns in another order": _rebuild_reversed,
}


@pytest.mark.parametrize(("table", "change"), list(itertools.product(TABLES, CHANGES)))
def test_readers_see_the_same_records_whatever_else_a_table_holds(
    tmp_path: Path, table: str, change: str
) -> None:
    path = tmp_path / "ledger.db"
    write_v1_ledger(path)
    ledger = Ledger.open(path)
    before = _read_everything(ledger)
    ledger.close()
    conn = sqlite3.connect(path)
    CHANGES[change](conn, table)
    conn.commit()
    conn.close()
    ledger = Ledger.open(path, readonly=True)
    try:
        assert _read_everything(ledger) == before
    finally:
        ledger.close()


# -- one writer of a run's state -----------------------------------------------------------


def _run_in_state(ledger: Ledger, state: RunState) -> int:
    with ledger.transaction():
        run = ledger.ensure_run("b", f"2026-01-{list(RunState).index(state) + 1:02d}")
        if state is not RunState.RUNNING:
            launch = ledger.start_launch(run.id, "b", trigger="manual", launched_by="t", options={})
            if state is RunState.CRASHED:
                ledger.reap_dead_launches("b")
            else:
                ledger.end_launch(launch, run.id, state, None)
    found = ledger.get_run(run.id)
    assert found is not None and found.state == state
    return run.id


@pytest.mark.parametrize(("old", "new"), list(itertools.product(RunState, RunState)))
def test_a_run_state_changes_only_as_the_table_allows(tmp_path: Path, old: RunState, new: RunState) -> None:
    ledger = Ledger.open(tmp_path / "ledger.db")
    try:
        run_id = _run_in_state(ledger, old)
        if new in RUN_TRANSITIONS[old]:
            with ledger.transaction():
                ledger.set_run_state(run_id, new)
            expected = new
        else:
            with pytest.raises(InvalidTransition, match=f"{old} -> {new}"), ledger.transaction():
                ledger.set_run_state(run_id, new)
            expected = old  # refused, and nothing written
        found = ledger.get_run(run_id)
        assert found is not None and found.state == expected
    finally:
        ledger.close()


class Step:
    """What ledger.sync_steps reads from a batch.Step."""

    def __init__(self, name: str, position: int) -> None:
        self.name, self.position, self.kind, self.after, self.idempotent = name, position, "command", (), True

    def describe(self) -> str:
        return self.name


def test_a_dead_launch_is_reaped_into_the_states_the_one_rule_gives(tmp_path: Path) -> None:
    """Its run crashed; its local running step interrupted; its remote one still running."""
    ledger = Ledger.open(tmp_path / "ledger.db")
    try:
        with ledger.transaction():
            run = ledger.ensure_run("b", "2026-01-01")
            launch = ledger.start_launch(run.id, "b", trigger="manual", launched_by="t", options={})
            ledger.sync_steps(run.id, [Step("local", 0), Step("remote", 1), Step("later", 2)])
            for name, remote_id in (("local", None), ("remote", "task-1")):
                ledger.set_step_state(run.id, name, StepState.PENDING, StepState.RUNNING, launch)
                ledger.start_attempt(run.id, name, 1, launch, None, 1.0, remote_id=remote_id)
        with ledger.transaction():
            dead = ledger.reap_dead_launches("b")
        assert [d.id for d in dead] == [launch]
        assert ledger.step_states(run.id) == {
            "local": StepState.INTERRUPTED, "remote": StepState.RUNNING, "later": StepState.PENDING,
        }
        found = ledger.get_run(run.id)
        assert found is not None and found.state == RunState.CRASHED
        assert [la.state for la in ledger.launches(run.id)] == ["crashed"]
        with ledger.transaction():
            assert ledger.reap_dead_launches("b") == []  # once only
    finally:
        ledger.close()


def test_a_crashed_launch_ends_at_its_last_record_not_when_the_crash_was_noticed(tmp_path: Path) -> None:
    """Started at 1000, a step ran from 1010 to 1040, the next started at 1050 and then the
    runner died: the launch ends at 1050, whenever a later launch finds it."""
    ledger = Ledger.open(tmp_path / "ledger.db")
    try:
        with ledger.transaction():
            run = ledger.ensure_run("b", "2026-01-01")
            launch = ledger.start_launch(run.id, "b", trigger="manual", launched_by="t", options={})
            ledger.conn.execute("UPDATE launches SET started_at = 1000 WHERE id = ?", (launch,))
            ledger.sync_steps(run.id, [Step("first", 0), Step("second", 1)])
            first = ledger.start_attempt(run.id, "first", 1, launch, None, 1010.0)
            ledger.finish_attempt(first, StepState.SUCCEEDED, 1040.0, 0, None)
            ledger.start_attempt(run.id, "second", 1, launch, None, 1050.0)
            ledger.set_step_state(run.id, "second", StepState.PENDING, StepState.RUNNING, launch)
            ledger.conn.execute("UPDATE steps SET updated_at = 1050 WHERE run_id = ?", (run.id,))
        with ledger.transaction():
            ledger.reap_dead_launches("b")
        (crashed,) = ledger.launches(run.id)
        assert (crashed.state, crashed.ended_at) == ("crashed", 1050.0)
        second = ledger.attempts(run.id, "second")[0]
        assert (second.state, second.ended_at) == ("interrupted", 1050.0)
    finally:
        ledger.close()


# -- what a person is told, by SQLite's error code ------------------------------------------


def _write_to_a_read_only_open(tmp_path: Path) -> None:
    Ledger.open(tmp_path / "ledger.db").close()
    ledger = Ledger.open(tmp_path / "ledger.db", readonly=True)
    with ledger.transaction():
        ledger.record_fire("b", "x", "2026-01-01", "launched")


def _read_a_missing_file(tmp_path: Path) -> None:
    Ledger.open(tmp_path / "nowhere" / "ledger.db", readonly=True)


def _open_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is a text file, not a ledger\n" * 200)
    Ledger.open(tmp_path / "ledger.db")


def _an_error_whose_words_name_another_fault(tmp_path: Path) -> None:
    """Matching the message's words would take this for a full disk or a read-only file."""
    ledger = Ledger.open(tmp_path / "ledger.db")
    ledger.conn.execute('SELECT * FROM "the disk is full, readonly, malformed"')


ERRORS = {
    "read-only": (_write_to_a_read_only_open, "check the owner and mode of the state directory"),
    "cannot open": (_read_a_missing_file, "cannot open the ledger: check that its folder exists"),
    "not a database": (_open_a_file_that_is_not_a_database, "damaged"),
    "other": (_an_error_whose_words_name_another_fault, "ledger error: no such table"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_the_advice_follows_what_sqlite_reports_not_its_wording(tmp_path: Path, case: str) -> None:
    from overnight.errors import LedgerError

    cause, advice = ERRORS[case]
    with pytest.raises(LedgerError) as raised:
        cause(tmp_path)
    line = str(raised.value)
    assert str(tmp_path) in line and advice in line and "\n" not in line, line
    if case == "other":
        assert "disk is full:" not in line and "permission denied" not in line, line
