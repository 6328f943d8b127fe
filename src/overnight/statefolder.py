"""The state folder (`state_dir`): the one place that knows where each file lives in it.

    ledger.db                           the ledger (runs, launches, attempts, users...)
    locks/BATCH.lock                    who holds the batch, and the kill net of its launch
                                        (the lock itself is on ledger.db: lock.py)
    resources/POOL/UNIT.lock            a unit of a [resources] pool, held by an flock (resources.py)
    scheduler.lock                      one scheduler per state folder
    web-secret                          the key that signs the dashboard's session cookies
    logs/BATCH/DATE/STEP.N.log          each attempt's output
    logs/scheduler/BATCH/DATE-AT.log    what the scheduler's launches printed
    logs/cron/BATCH.log                 what the lines of `overnight cron` printed
    logs/web/STAMP-COMMAND-...log       what the dashboard's buttons started printed
    logs/prune.log                      what the scheduler's daily prune said ([retention])
    remote-logs/BATCH/DATE/STEP.N.ID.log  on a worker host: the output of the steps it ran

The layout is part of what users rely on (their log rotation, their backups, state
folders written by earlier versions), so it changes only with a migration.

(Plain classes, not dataclasses: every command imports this, and making a dataclass
costs about a millisecond of start-up.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class RunLogs:
    """The folder of one run's logs (a batch for a date) and the files in it."""

    __slots__ = ("folder",)

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def attempt(self, step: str, number: int, tag: str = "") -> str:
        # A string, not a Path: the runner builds one per attempt on its hot path.
        return f"{self.folder}/{step}.{number}{'.' + tag if tag else ''}.log"

    def fallback(self, step: str) -> str:
        """Where a step's output is said to be when no attempt recorded a file."""
        return f"{self.folder}/{step}.log"


class StateFolder:
    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.db"

    def batch_lock(self, batch: str) -> Path:
        return self.root / "locks" / f"{batch}.lock"

    @property
    def resources(self) -> Path:
        """The folder of the [resources] pools: POOL/UNIT.lock, one file per unit."""
        return self.root / "resources"

    @property
    def scheduler_lock(self) -> Path:
        # Not in locks/, where a batch may be named "scheduler".
        return self.root / "scheduler.lock"

    @property
    def web_secret(self) -> Path:
        return self.root / "web-secret"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def run_logs(self, batch: str, day: str) -> RunLogs:
        return RunLogs(self.logs / batch / day)

    @property
    def remote_logs(self) -> Path:
        """On a worker host: the logs of every step this host ran (remote/logs.py prunes)."""
        return self.root / "remote-logs"

    def worker_run_logs(self, batch: str, day: str) -> RunLogs:
        """On a worker host: the logs of the steps of one run that this host ran."""
        return RunLogs(self.remote_logs / batch / day)

    def scheduler_log(self, batch: str, day: str, stamp: str) -> Path:
        return self.logs / "scheduler" / batch / f"{day}-{stamp}.log"

    def cron_log(self, batch: str) -> Path:
        return self.logs / "cron" / f"{batch}.log"

    @property
    def prune_log(self) -> Path:
        """What the scheduler's daily prunes said; its time is when the last one started."""
        return self.logs / "prune.log"

    def web_launch_log(self, command: str) -> Path:
        """A new file for the output of one command the dashboard starts."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        unique = f"{os.getpid()}-{time.monotonic_ns() % 10**6}"
        return self.logs / "web" / f"{stamp}-{command}-{unique}.log"
