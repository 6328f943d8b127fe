"""The template process: a copy of the runner with the batch module imported, that keeps
fresh attempt processes ready for Python steps.

Forking a Python process costs 1-3 ms on these machines (the child touches much of the
memory it shares with its parent), and moving a process into a cgroup can wait ~12 ms for
the kernel (an RCU grace period). Neither belongs between one step's end and the next
one's start: the template forks each attempt process ahead of time (a "spare"), which puts
itself in a session and a cgroup of its own and waits. When the runner sends an attempt,
the template hands it to a ready spare and forks the next one while the attempt runs.
Every attempt is still a fresh copy of the template: nothing passes from one to the next.

The template reaps its children only when the runner says so (after it has killed what each
left behind), so a finished attempt's pid stays reserved until then. When the runner's end
of the socket closes (a clean end, or the runner died), it kills all it forked and exits.
"""

from __future__ import annotations

import array
import json
import os
import selectors
import signal
import socket
from collections import deque
from dataclasses import dataclass

from overnight.batch import Step
from overnight.sentinel import close_fds_except, flush_std_streams, name_process, redirect_stdio_to_devnull

MAX_MESSAGE = 1 << 20
FDS_SPACE = socket.CMSG_SPACE(array.array("i", [0]).itemsize)
MAX_FAILED_SPARES = 3  # spares that died before they were ready, in a row: stop trying


@dataclass(eq=False)
class _Spare:
    pid: int
    sock: socket.socket
    ready: bool = False


class _Template:
    def __init__(self, runner: socket.socket, steps: dict[str, Step], launch_group: str | None,
                 spares: int) -> None:
        self.runner = runner
        self.steps = steps
        self.launch_group = launch_group
        self.spares_wanted = spares
        self.selector = selectors.DefaultSelector()
        self.selector.register(runner, selectors.EVENT_READ, None)
        self.children: set[int] = set()
        self.spares: list[_Spare] = []
        self.queue: deque[tuple[bytes, int]] = deque()  # attempts waiting for a spare
        self.seq = 0
        self.failed = 0

    def run(self) -> None:
        while True:
            self._top_up()
            for key, _ in self.selector.select():
                if key.data is None:
                    if not self._from_runner():
                        return
                else:
                    self._from_spare(key.data)
            self._dispatch()

    def _from_runner(self) -> bool:
        try:
            data, ancillary, _, _ = self.runner.recvmsg(MAX_MESSAGE, FDS_SPACE)
        except (BlockingIOError, InterruptedError):
            return True
        if not data:
            return False
        message = json.loads(data)
        self._reap(message.get("reap", ()))
        fds = received_fds(ancillary)
        if message.get("op") == "run" and fds:
            self.queue.append((data, fds[0]))
            fds = fds[1:]
        for fd in fds:
            os.close(fd)
        return True

    def _from_spare(self, spare: _Spare) -> None:
        try:
            said = spare.sock.recv(16)
        except OSError:
            said = b""
        if said == b"ready":
            spare.ready = True
            self.failed = 0
            return
        # It died before it was ready (it could not make its cgroup?): reap it, try again.
        self._forget(spare)
        self._reap([spare.pid])
        self.failed += 1

    def _dispatch(self) -> None:
        while self.queue:
            spare = next((s for s in self.spares if s.ready), None)
            if spare is None:
                if self.failed >= MAX_FAILED_SPARES:  # no attempt can start: say so by EOF
                    os.close(self.queue.popleft()[1])
                    continue
                return
            data, fd = self.queue.popleft()
            try:
                spare.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
            except OSError:
                self.queue.appendleft((data, fd))
                self._forget(spare)
                continue
            os.close(fd)
            self._forget(spare)

    def _top_up(self) -> None:
        while len(self.spares) < self.spares_wanted + len(self.queue) and self.failed < MAX_FAILED_SPARES:
            self._fork_spare()

    def _fork_spare(self) -> None:
        from overnight.pyattempt import spare_main

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.seq += 1
        group = f"{self.launch_group}/py.{os.getpid()}.{self.seq}" if self.launch_group else None
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                # What the template holds open beyond stdio: the runner's socket, and its
                # end of each other spare's (known: no need to list /proc/self/fd).
                for fd in [self.runner.fileno(), mine.fileno(), self.selector.fileno()] + [
                        s.sock.fileno() for s in self.spares]:
                    os.close(fd)
                code = spare_main(theirs, self.steps, group)
            finally:
                os._exit(code)
        theirs.close()
        spare = _Spare(pid, mine)
        self.children.add(pid)
        self.spares.append(spare)
        self.selector.register(mine, selectors.EVENT_READ, spare)

    def _forget(self, spare: _Spare) -> None:
        self.spares.remove(spare)
        self.selector.unregister(spare.sock)
        spare.sock.close()

    def _reap(self, pids: object) -> None:
        for pid in pids:  # type: ignore[attr-defined]
            if pid in self.children:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
                self.children.discard(pid)

    def close(self) -> None:
        """The runner is gone (or done): nothing of ours outlives it."""
        for pid in self.children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(list(self.children))


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


def start_template(
    steps: dict[str, Step], launch_group: str | None, spares: int
) -> tuple[int, socket.socket]:
    """Fork the template process. Returns its pid and the runner's end of its socket."""
    import gc

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    flush_std_streams()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            mine.close()
            os.setsid()
            name_process("overnight-tmpl")
            signal.set_wakeup_fd(-1)
            # The template answers to its socket alone; each attempt restores the signal
            # handling of a fresh Python (pyattempt.fresh_signals).
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            for sig in (signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            close_fds_except({0, 1, 2, theirs.fileno()})
            redirect_stdio_to_devnull()
            gc.collect()
            gc.freeze()  # what the template holds is never collected in a child: fewer copied pages
            template = _Template(theirs, steps, launch_group, spares)
            try:
                template.run()
            finally:
                template.close()
        except BaseException:  # noqa: BLE001 - the child must never return into the runner
            code = 70
        finally:
            os._exit(code)
    theirs.close()
    mine.setblocking(False)
    return pid, mine
