"""The ledger's file: opening it, upgrading its schema, transactions, and the one place
where an SQLite error becomes a LedgerError that names the file and says what to do.

The connection is in autocommit mode and every change happens inside ``transaction()``
(``BEGIN IMMEDIATE``), in WAL mode with ``synchronous=FULL``: when a transaction returns,
its records survive a power loss.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

from overnight.errors import LedgerError
from overnight.ledger.advice import describe_error
from overnight.ledger.schema import MIGRATIONS, SCHEMA_VERSION, statements

Row = TypeVar("Row")
BUSY_TIMEOUT_MS = 30_000


class _Cursor(sqlite3.Cursor):
    """A cursor whose every SQLite error (a damaged page met while reading, a full disk)
    becomes one LedgerError naming the file, wherever in the program the query runs."""

    def _guard(self, call, *args):  # noqa: ANN001, ANN202
        try:
            return call(*args)
        except sqlite3.Error as e:
            raise LedgerError(describe_error(self.connection.ledger_path, e)) from None  # type: ignore[attr-defined]

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


class Database:
    """One SQLite file and one connection to it; use it from one thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.host = socket.gethostname()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open_untouched(cls, path: Path) -> Self:
        """Read-only, and without creating the -wal and -shm files a reader in WAL mode
        makes when no writer has them open: for a dry run that must change no file. With a
        writer at work (its -wal exists) it reads as any reader does."""
        if os.path.exists(f"{path}-wal"):
            return cls.open(path, readonly=True)
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None, factory=_Connection
            )
            conn.ledger_path = path  # type: ignore[attr-defined]
            ledger = cls(path, conn)
            if ledger._version() != SCHEMA_VERSION:
                conn.close()
                return cls.open(path, readonly=True)  # an older schema is upgraded first
            return ledger
        except (sqlite3.Error, OSError) as e:
            raise LedgerError(describe_error(path, e)) from None

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Self:
        if os.path.lexists(path) and not path.is_file():
            # SQLite would call a folder here "unable to open" or "disk I/O error".
            raise LedgerError(f"{path}: is not a file: move it aside, or point state_dir elsewhere")
        try:
            conn = _connect(path, readonly)
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
            raise LedgerError(describe_error(path, e)) from None

    def _prepare(self, readonly: bool) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LedgerError(f"{self.path}: cannot switch the ledger to WAL mode ({mode})")
        c.execute("PRAGMA synchronous = FULL")
        version = self._version()
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: written by a newer overnight (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade overnight, or point state_dir elsewhere"
            )
        if version < SCHEMA_VERSION:
            if readonly:
                raise _NeedsUpgrade
            self._upgrade()
        # A quick check that catches a file replaced by garbage with a valid header.
        c.execute("SELECT count(*) FROM runs WHERE id = 0").fetchone()

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _upgrade(self) -> None:
        """Apply the missing migrations in one transaction. The version is read again under
        the write lock: another process may have upgraded the file since we looked."""
        with self.transaction():
            for version in range(self._version(), SCHEMA_VERSION):
                self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Take the schema from `version` to `version + 1`."""
        for statement in statements(MIGRATIONS[version]):
            self.conn.execute(statement)
        self.conn.execute(f"PRAGMA user_version = {version + 1}")

    def close(self) -> None:
        self.conn.close()

    # -- transactions and statements -------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing; the write lock is taken at BEGIN, so no upgrade deadlock."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise LedgerError(describe_error(self.path, e)) from None
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
            raise LedgerError(describe_error(self.path, e)) from None

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, tuple(params))

    def _write_many(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def _one(self, make: Callable[[Any], Row], sql: str, params: Iterable[Any] = ()) -> Row | None:
        row = self.conn.execute(sql, tuple(params)).fetchone()
        return make(row) if row is not None else None

    def _all(self, make: Callable[[Any], Row], sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return [make(row) for row in self.conn.execute(sql, tuple(params))]


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10, factory=_Connection
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, factory=_Connection)
    conn.ledger_path = path  # type: ignore[attr-defined]
    return conn


def placeholders(values: list[Any]) -> str:
    """`?, ?, ?` for an `IN (...)` over these values."""
    return ",".join("?" * len(values))
