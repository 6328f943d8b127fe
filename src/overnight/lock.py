"""One live launch per batch: an flock on a small file, released by the kernel when the
holder dies, so a stale holder never blocks (no pid-file guessing)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from overnight.errors import AlreadyRunning, LedgerError
from overnight.statefolder import StateFolder


class BatchLock:
    def __init__(self, state_dir: Path, batch: str) -> None:
        self.path = StateFolder(state_dir).batch_lock(batch)
        self.batch = batch
        self.fd: int | None = None

    def acquire(self, run_date: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise LedgerError(
                f"{self.path}: cannot create the lock file ({e.strerror}): check the owner and "
                "mode of the state directory"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise AlreadyRunning(f"batch {self.batch!r} is already running: {holder}") from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "date": run_date,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError:
            pass  # the lock holds anyway; only the description of the holder is missing
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def holder(state_dir: Path, batch: str) -> dict | None:
    """The live holder of the batch's lock, or None if nobody holds it.

    Reads /proc/locks rather than trying the lock: a probe would itself hold the lock for
    an instant, and a launch starting in that instant would be turned away.
    """
    path = StateFolder(state_dir).batch_lock(batch)
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not _is_locked(st.st_dev, st.st_ino):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {"pid": None}
    try:
        return _read(fd) or {"pid": None}
    finally:
        os.close(fd)


def _is_locked(dev: int, ino: int) -> bool:
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if "->" in fields:  # a waiter, not a holder
                    continue
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
                    return True
    except OSError:
        pass
    return False


def _read(fd: int) -> dict | None:
    for _ in range(20):  # the holder writes its name just after taking the lock
        data = os.pread(fd, 4096, 0)
        if data:
            try:
                return json.loads(data)
            except ValueError:
                pass
        time.sleep(0.005)
    return None


def _describe(fd: int) -> str:
    info = _read(fd)
    if not info:
        return "another process holds its lock"
    return (
        f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}"
        f" (for {info.get('date')})"
    )
