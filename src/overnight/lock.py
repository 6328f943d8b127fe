"""One live launch per batch and ledger: a lock taken on the ledger file itself.

The lock is an open-file-description lock (``F_OFD_SETLK``) on one byte of ledger.db, at an
offset far beyond anything SQLite locks, chosen by the batch's name. It is keyed by the
ledger it protects, not by how its folder is spelled: a second state folder whose
ledger.db is the same file (a symlink, a bind mount, another spelling of the path) finds
the same lock, and no folder can be deleted to get around it. The kernel releases it when
its holder dies, so a stale holder never blocks (no pid-file guessing).

Beside the real ledger, ``locks/BATCH.lock`` describes the holder (pid, host, since, date)
for the messages, and what each launch's kill net was (its cgroup, its token), so that the
next launch can empty what a dead one left behind. It is a description only: deleting it
lets nobody in.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from overnight.errors import AlreadyRunning, LedgerError
from overnight.statefolder import StateFolder

LOCK_BASE = 1 << 40  # SQLite's own locks are near 1 GiB: far below


def lock_offset(batch: str) -> int:
    """The byte of the ledger that stands for `batch` (a 40-bit hash: no two batches of one
    ledger meet by chance)."""
    return LOCK_BASE + int.from_bytes(hashlib.blake2b(batch.encode(), digest_size=5).digest(), "big")


def ledger_file(state_dir: Path) -> Path:
    return StateFolder(state_dir).ledger


def lock_path(state_dir: Path, batch: str) -> Path:
    """The holder's description, in the state folder of the ledger's real file (whatever
    the spelling of the path it was reached by)."""
    return StateFolder(Path(os.path.realpath(ledger_file(state_dir))).parent).batch_lock(batch)


def ledger_key(state_dir: Path) -> str:
    """A short name for the ledger's identity (device and inode), e.g. for cgroup folders."""
    st = os.stat(ledger_file(state_dir))
    return hashlib.blake2b(f"{st.st_dev}:{st.st_ino}".encode(), digest_size=4).hexdigest()


def _flock_struct(kind: int, start: int) -> bytes:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)
    return struct.pack("hhqqi", kind, os.SEEK_SET, start, 1, 0)


class BatchLock:
    def __init__(self, state_dir: Path, batch: str) -> None:
        self.state_dir = state_dir
        self.ledger = ledger_file(state_dir)
        self.batch = batch
        self.fd: int | None = None
        self.info: dict[str, Any] = {}
        self.leftovers: list[dict[str, Any]] = []   # kill nets of earlier holders, to empty

    @property
    def path(self) -> Path:
        return lock_path(self.state_dir, self.batch)

    def acquire(self, run_date: str) -> None:
        if os.path.lexists(self.ledger) and not self.ledger.is_file():
            raise LedgerError(f"{self.ledger}: is not a file: move it aside, or point state_dir elsewhere")
        try:
            self.ledger.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.ledger, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise LedgerError(
                f"{self.ledger}: cannot open the ledger to lock the batch ({e.strerror}): check the "
                "owner and mode of the state directory"
            ) from None
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK, lock_offset(self.batch)))
        except OSError:
            os.close(fd)
            raise AlreadyRunning(f"batch {self.batch!r} is already running: {self._describe()}") from None
        self.fd = fd
        previous = _read_file(self.path) or {}
        self.leftovers = list(previous.get("leftovers") or [])
        if previous.get("net"):
            self.leftovers.append({k: previous[k] for k in ("net", "cgroup", "token") if k in previous})
        self.info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "date": run_date,
            "leftovers": self.leftovers,  # kept until a launch has emptied them
        }
        self._write()

    def note(self, **fields: Any) -> None:
        """Add to the holder's description (e.g. its kill net, once it has one)."""
        self.info.update(fields)
        self._write()

    def _write(self) -> None:
        try:
            self.path.parent.mkdir(exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.info))
            os.replace(tmp, self.path)
        except OSError:
            pass  # the lock holds anyway; only the description of the holder is missing

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _describe(self) -> str:
        info = _read_holder(self.path, self.ledger, lock_offset(self.batch))
        if not info:
            return "another process holds its lock"
        return (
            f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}"
            f" (for {info.get('date')})"
        )


def holder(state_dir: Path, batch: str) -> dict | None:
    """The live holder of the batch's lock, or None if nobody holds it.

    Reads /proc/locks rather than trying the lock: a probe would itself hold the lock for
    an instant, and a launch starting in that instant would be turned away.
    """
    ledger = ledger_file(state_dir)
    try:
        if _lock_line(ledger, lock_offset(batch)) not in _lines("/proc/locks"):
            return None
    except OSError:
        return None
    return _read_holder(lock_path(state_dir, batch), ledger, lock_offset(batch)) or {"pid": None}


def _lock_line(ledger: Path, offset: int) -> str:
    """How /proc/locks (and /proc/PID/fdinfo) show the lock: device:inode and offset."""
    st = os.stat(ledger)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    return f"OFDLCK ADVISORY WRITE -1 {device}:{st.st_ino} {offset}"


def _lines(path: str) -> set[str]:
    """The lock lines of a /proc file, without their numbers ("1:"), waiters left out."""
    found = set()
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if "->" in fields or "OFDLCK" not in fields:
                    continue
                start = fields.index("OFDLCK")
                found.add(" ".join(fields[start:start + 6]))
    except OSError:
        pass
    return found


def _holds(pid: object, wanted: str) -> bool:
    """Whether process `pid` holds the lock (its fdinfo shows it): the description is only
    believed of its true holder, never of one that came before it."""
    if not isinstance(pid, int):
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return False
    return any(wanted in _lines(f"/proc/{pid}/fdinfo/{fd}") for fd in fds)


def _read_file(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_holder(path: Path, ledger: Path, offset: int) -> dict | None:
    try:
        wanted = _lock_line(ledger, offset)
    except OSError:
        return None
    for _ in range(20):  # the holder describes itself just after taking the lock
        info = _read_file(path)
        if info and _holds(info.get("pid"), wanted):
            return info
        found = _find_holder(wanted)
        if found is not None:  # it reached the ledger by another name (a hard link)
            pid, ledger_path = found
            info = _read_file(StateFolder(ledger_path.parent).batch_lock(path.stem))
            if info and info.get("pid") == pid:
                return info
        time.sleep(0.005)
    return None


def _find_holder(wanted: str) -> tuple[int, Path] | None:
    """The process that holds the lock, and the path it opened the ledger by."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            if wanted in _lines(f"/proc/{entry}/fdinfo/{fd}"):
                try:
                    return int(entry), Path(os.readlink(f"/proc/{entry}/fd/{fd}"))
                except OSError:
                    return None
    return None
