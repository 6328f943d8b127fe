"""What to tell a person whose ledger cannot be used, chosen by what SQLite or the OS says
went wrong (its error code), never by the wording of the message."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

_READ_ONLY = frozenset({sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_AUTH})
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_OS_READ_ONLY = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_OS_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def describe_error(path: Path, error: BaseException) -> str:
    """One line: the file, what is wrong, and what to do about it."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        # Extended codes (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED...) keep the primary
        # code in their low byte; the advice depends on the primary code alone.
        return _sqlite_advice(path, None if code is None else code & 0xFF, str(error))
    if isinstance(error, OSError):
        if error.errno in _OS_READ_ONLY:
            return _read_only(path)
        if error.errno in _OS_FULL:
            return _full(path)
    return f"{path}: ledger error: {error}"


def _sqlite_advice(path: Path, code: int | None, text: str) -> str:
    if code in _READ_ONLY:
        return _read_only(path)
    if code == sqlite3.SQLITE_FULL:
        return _full(path)
    if code in _DAMAGED:
        return (
            f"{path}: the ledger is damaged ({text}): move it aside and run again, "
            "or restore it from a backup"
        )
    if code == sqlite3.SQLITE_IOERR:
        # SQLite says no more than this for a full disk met outside a write (a reader that
        # cannot create the -shm file) and for a file-size limit: name what to check.
        return (
            f"{path}: cannot read or write the ledger (disk I/O error): check the disk's free "
            "space, quotas and health, then run the same command again"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return f"{path}: cannot open the ledger: check that its folder exists and is writable"
    return f"{path}: ledger error: {text}"


def _read_only(path: Path) -> str:
    return (
        f"{path}: cannot write the ledger (permission denied or read-only): "
        "check the owner and mode of the state directory"
    )


def _full(path: Path) -> str:
    return f"{path}: the disk is full: free space, then run the same command again"
