"""What keeps a launch's processes on a leash: its kill net (killnet.py) and its sentinel
(sentinel.py), set up before anything runs and taken down at a clean end.

Before anything runs, what a dead launch of the batch left behind is emptied (its cgroup,
its token's processes: a process whose sentinel died with its runner must never run beside
its second copy). The sentinel is forked outside the launch's cgroup; the runner watches it
and starts another, with the same token, groups and cgroup, if it dies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from overnight import killnet
from overnight.sentinel import TOKEN_VARIABLE, Sentinel

if TYPE_CHECKING:
    from overnight.lock import BatchLock
    from overnight.loop import EventLoop
    from overnight.progress import Progress


class Guard:
    def __init__(self, net: killnet.ProcessGroupNet, sentinel: Sentinel, lock: BatchLock | None,
                 progress: Progress) -> None:
        self.net = net
        self.sentinel = sentinel
        self.lock = lock
        self.progress = progress
        self.loop: EventLoop | None = None

    @classmethod
    def open(cls, batch: str, state_dir: Path, lock: BatchLock | None, progress: Progress) -> Guard:
        from overnight.lock import ledger_key

        token = f"{os.getpid()}-{os.urandom(8).hex()}"
        key = ledger_key(state_dir) if (state_dir / "ledger.db").exists() else "x"
        net = killnet.open_net(batch, key, token)
        if lock is not None:
            found = killnet.empty_leftovers(batch, key, lock.leftovers, net.launch_group)
            if found:
                progress.leftovers_emptied(found)
        cgroup = net.launch_group if isinstance(net, killnet.CgroupNet) else None
        sentinel = Sentinel(token, cgroup=cgroup, origin=getattr(net, "origin", None))
        net = killnet.enter(net)  # the sentinel stays outside the launch's group
        if lock is not None:
            lock.note(leftovers=[], **net.record())
        progress.kill_net(net.describe())
        return cls(net, sentinel, lock, progress)

    def environment(self, batch: str, day: date, run_id: int, launch_id: int) -> dict[str, str]:
        """What every step of the launch finds in its environment, the launch's token too
        (each attempt's own is added when it starts: process.py)."""
        return dict(
            os.environ, OVERNIGHT_BATCH=batch, OVERNIGHT_DATE=day.isoformat(), OVERNIGHT_RUN_ID=str(run_id),
            OVERNIGHT_LAUNCH_ID=str(launch_id), **{TOKEN_VARIABLE: self.sentinel.token},
        )

    def watch(self, loop: EventLoop, give_up: Callable[[str], None]) -> None:
        """From now on a dead sentinel is replaced at once; if no new one can be started,
        `give_up(why)` (the runner cancels cleanly: it never runs without one)."""
        self.loop = loop
        self.give_up = give_up
        loop.add_reader(self.sentinel.pidfd, self._sentinel_died)

    def _sentinel_died(self) -> None:
        assert self.loop is not None
        self.loop.remove_reader(self.sentinel.pidfd)
        try:
            self.sentinel.restart()
        except OSError as e:
            self.progress.sentinel_lost(f"cannot start a new sentinel ({e.strerror}): cancelling")
            self.give_up("the sentinel died")
            return
        self.loop.add_reader(self.sentinel.pidfd, self._sentinel_died)
        self.progress.sentinel_lost("the sentinel died: a new one watches this launch")

    def close(self) -> None:
        """A clean end: what is left in the net is killed, the sentinel told goodbye, and the
        lock file no longer points the next launch at anything of this one."""
        if self.loop is not None:
            self.loop.remove_reader(self.sentinel.pidfd)
        self.net.close()
        self.sentinel.close()
        if self.lock is not None:
            self.lock.note(net=None, cgroup=None, token=None)

