"""The sentinel: a small forked process that cleans up if the runner dies.

If the runner dies (kill -9, OOM), the sentinel notices (its pipe from the runner reaches
end-of-file) and kills what the launch started: the launch's cgroup when the cgroup net is
in force, every process group the runner told it about, and any process that still carries
this launch's token in its environment (a step started in the instant between fork and the
runner telling the sentinel its group, or one that left its group with ``setsid``).
The runner tells it the groups through a small shared memory table, not pipe messages:
a pipe write wakes the sentinel, and on a 2-core machine that wakeup (twice per step)
preempted the runner and its new child for about 0.9 ms per step in all. A table write
costs nothing; the sentinel reads the table only once the runner is gone. The pipe stays,
for the end-of-file that says so (and for the rare group that finds no free slot).

The runner watches its sentinel in turn (``pidfd``): a sentinel that dies is replaced at
once with the same token, groups and cgroup, so the runner never runs without one.
"""

from __future__ import annotations

import mmap
import os
import signal
import sys
from collections.abc import Iterable

TOKEN_VARIABLE = "OVERNIGHT_LAUNCH_TOKEN"
SENTINEL_SLOTS = 4096  # process groups alive at once (steps + callable attempts); more go by pipe


def close_fds_except(keep: Iterable[int]) -> None:
    """In a freshly forked child: drop every inherited descriptor but `keep`.

    The runner's lock, ledger, selector and pipes must not live on in a child, or the
    lock would outlast the runner and the sentinel would never see end-of-file.
    """
    keep = set(keep)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def redirect_stdio_to_devnull(stdin_only: bool = False) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    if not stdin_only:
        os.dup2(null, 1)
        os.dup2(null, 2)
    if null > 2:
        os.close(null)


_prctl = None


def name_process(name: str) -> None:
    """Give this process a name `ps` and /proc/PID/comm show (at most 15 bytes)."""
    global _prctl
    if _prctl is None:  # looked up once (in the template, before it forks attempts)
        import ctypes

        try:
            _prctl = ctypes.CDLL(None).prctl
        except (OSError, AttributeError):
            _prctl = False
    if _prctl:
        _prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def flush_std_streams() -> None:
    # Buffered output would otherwise be written twice: once by us, once by the child.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


class Sentinel:
    """A forked watcher that kills the launch's processes if the runner dies."""

    def __init__(
        self, token: str | None = None, cgroup: str | None = None, origin: str | None = None
    ) -> None:
        self.token = token or f"{os.getpid()}-{os.urandom(8).hex()}"
        self.cgroup = cgroup    # the launch's cgroup, when the cgroup net is in force
        self.origin = origin    # the cgroup the sentinel lives in (outside the launch's)
        self._slots: dict[int, int] = {}
        self._free = list(range(SENTINEL_SLOTS - 1, -1, -1))
        self._fd: int | None = None
        self.restarts = 0
        self._fork()

    def _fork(self) -> None:
        # Shared with the sentinel across the fork (an anonymous mapping is MAP_SHARED):
        # one 4-byte slot per live group, 0 when free.
        self._table = mmap.mmap(-1, SENTINEL_SLOTS * 4)
        for pgid, slot in self._slots.items():
            self._table[slot * 4:slot * 4 + 4] = pgid.to_bytes(4, "little")
        read_fd, write_fd = os.pipe()
        flush_std_streams()
        pid = os.fork()
        if pid == 0:  # the sentinel
            try:
                os.setsid()  # out of the runner's group: `kill -- -PGID` must not reach it
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                    signal.signal(sig, signal.SIG_IGN)
                signal.set_wakeup_fd(-1)
                close_fds_except({0, 1, 2, read_fd})
                redirect_stdio_to_devnull()
                name_process("overnight-sent")
                if self.origin is not None:
                    _leave_launch_group(self.origin)
                _sentinel_main(read_fd, self.token.encode(), self._table, self.cgroup)
            finally:
                os._exit(0)
        os.close(read_fd)
        os.set_inheritable(write_fd, False)
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self._fd = write_fd

    def restart(self) -> None:
        """The sentinel died: reap it and start another that knows everything it knew."""
        self._close_fds()
        _reap(self.pid)
        self.restarts += 1
        self._fork()

    def watch(self, pgid: int) -> None:
        if self._fd is None:
            return
        if self._free:
            slot = self._free.pop()
            self._slots[pgid] = slot
            self._table[slot * 4:slot * 4 + 4] = pgid.to_bytes(4, "little")
        else:
            self._tell(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        if self._fd is None:
            return
        slot = self._slots.pop(pgid, None)
        if slot is not None:
            self._table[slot * 4:slot * 4 + 4] = b"\0\0\0\0"
            self._free.append(slot)
        else:
            self._tell(b"-%d\n" % pgid)

    def _tell(self, line: bytes) -> None:
        try:
            os.write(self._fd, line)  # type: ignore[arg-type]
        except OSError:
            pass  # it died: the runner's watch on it starts another, from the table

    def close(self) -> None:
        """A clean end: the sentinel goes without killing anything.

        SIGKILL after the goodbye rather than a wait for it to leave by itself: a sentinel
        paused with SIGSTOP would never read the goodbye, and the runner would wait forever.
        """
        if self._fd is None:
            return
        self._tell(b"bye\n")
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(self.pid)
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._fd, self.pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = None
        self._table.close()

    def fd(self) -> int | None:
        return self._fd


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _leave_launch_group(origin: str) -> None:
    from overnight.killnet import join

    try:
        join(origin)
    except OSError:
        pass


def _sentinel_main(fd: int, token: bytes, table: mmap.mmap, cgroup: str | None) -> None:
    groups: set[int] = set()  # learned by pipe; the table holds the rest
    pending = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line == b"bye":
                return
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
    # The runner is gone without saying goodbye: nothing of its launch may survive it.
    # It can no longer write the table, so what the table holds now is final.
    if cgroup is not None:
        from overnight.killnet import kill_cgroup

        kill_cgroup(cgroup)
    data = table[:]
    for offset in range(0, len(data), 4):
        pgid = int.from_bytes(data[offset:offset + 4], "little")
        if pgid:
            groups.add(pgid)
    for pgid in groups:
        kill_group(pgid)
    kill_token_holders(token.decode())
    if cgroup is not None:
        from overnight.killnet import remove_tree

        remove_tree(cgroup)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a step's whole process group (gone already, or not ours: nothing to do)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_token_holders(token: str) -> int:
    """Kill every process (and its group) that carries the launch token. Returns how many."""
    killed = 0
    for _ in range(5):
        found = processes_with_token(token)
        if not found:
            break
        for pid in found:
            try:
                kill_group(os.getpgid(pid))
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def processes_with_token(token: str) -> list[int]:
    """Processes whose environment carries `token`, or an attempt's token of that launch
    (TOKEN/STEP.N)."""
    marker = f"{TOKEN_VARIABLE}={token}".encode() + b"\0"
    attempts = f"{TOKEN_VARIABLE}={token}/".encode()
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                data = f.read() + b"\0"
            if marker in data or attempts in data:
                found.append(int(name))
        except OSError:
            continue
    return found
