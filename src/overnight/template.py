"""The template process: a copy of the runner with the batch module imported, that keeps
fresh attempt processes ready for Python steps.

Forking a Python process costs 1-3 ms on these machines (parent and child copy the pages
they write), and moving a process into a cgroup can wait ~12 ms for the kernel (an RCU
grace period). Neither belongs between one step's end and the next one's start, nor does
the template itself: it forks each attempt process ahead of time (a "spare"), which puts
itself in a cgroup of its own and then waits on the socket the runner sends attempts to.
The kernel hands each attempt to one waiting spare; the spare tells the template it took
one, and the template forks the next spare while the attempt runs. Every attempt is a
fresh copy of the template: nothing passes from one to the next.

Until it takes an attempt a spare stays in the template's process group, so killing that
group (the runner replacing a stuck template, the sentinel after the runner's death) ends
the template and its idle spares at once. The template reaps an attempt's process only when
the runner says so (after it has killed what the attempt left behind), so a finished
attempt's pid stays reserved until then. When the runner's end of the control socket
closes (a clean end, or the runner died) it kills all it forked and exits.
"""

from __future__ import annotations

import array
import json
import os
import selectors
import signal
import socket
from dataclasses import dataclass

from overnight.batch import Step
from overnight.sentinel import (
    close_fds_except,
    flush_std_streams,
    kill_group,
    name_process,
    redirect_stdio_to_devnull,
)

MAX_MESSAGE = 1 << 20
FDS_SPACE = socket.CMSG_SPACE(array.array("i", [0]).itemsize)
MAX_FAILED_SPARES = 3  # spares that died before they were ready, in a row: stop trying

# One buffer for every message, allocated once in the template: a fresh 1 MB buffer per
# message would be a fresh mapping to fault in.
_BUFFER = bytearray(MAX_MESSAGE)


def receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors that came with it (b"" at end-of-file)."""
    size, ancillary, flags, _ = sock.recvmsg_into([_BUFFER], FDS_SPACE)
    fds = received_fds(ancillary)
    if flags & socket.MSG_TRUNC:
        for fd in fds:
            os.close(fd)
        raise OSError(f"a message of more than {MAX_MESSAGE} bytes")
    return bytes(memoryview(_BUFFER)[:size]), fds


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


@dataclass(eq=False)
class _Spare:
    pid: int
    sock: socket.socket       # the template's end of the spare's own socket: ready, taken
    ready: bool = False


class _Template:
    def __init__(self, control: socket.socket, attempts: socket.socket, steps: dict[str, Step],
                 launch_group: str | None, spares: int) -> None:
        self.control = control      # from the runner: reap lists; its end-of-file: stop
        self.attempts = attempts    # where spares take their attempt (never read here)
        self.steps = steps
        self.launch_group = launch_group
        self.spares_wanted = spares
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, None)
        self.children: set[int] = set()
        self.spares: list[_Spare] = []
        self.seq = 0
        self.failed = 0

    def run(self) -> None:
        while True:
            # Forked in bursts, down to half: after a fork the template's next write to each
            # page it shares copies that page, once for the burst rather than once per spare.
            if len(self.spares) <= self.spares_wanted // 2:
                while len(self.spares) < self.spares_wanted and self.failed < MAX_FAILED_SPARES:
                    self._fork_spare()
            for key, _ in self.selector.select():
                if key.data is None:
                    if not self._from_runner():
                        return
                else:
                    self._from_spare(key.data)

    def _from_runner(self) -> bool:
        try:
            data = self.control.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return True
        if not data:
            return False
        self._reap(json.loads(data).get("reap", ()))
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
        self._forget(spare)
        if said != b"taken":  # it died before it took one (it could not make its cgroup?)
            self._reap([spare.pid])
            if not spare.ready:
                self.failed += 1

    def _fork_spare(self) -> None:
        from overnight.pyattempt import spare_main

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.seq += 1
        group = f"{self.launch_group}/py.{os.getpid()}.{self.seq}" if self.launch_group else None
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                # What the template holds open beyond stdio: the runner's control socket,
                # and its end of each spare's socket (known: no need to list /proc/self/fd).
                for fd in [self.control.fileno(), mine.fileno(), self.selector.fileno()] + [
                        s.sock.fileno() for s in self.spares]:
                    os.close(fd)
                code = spare_main(theirs, self.attempts, self.steps, group)
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
            kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(list(self.children))


def start_template(
    steps: dict[str, Step], launch_group: str | None, spares: int
) -> tuple[int, socket.socket, socket.socket]:
    """Fork the template process. Returns its pid, the runner's end of its control socket,
    and the runner's end of the socket attempts are sent on."""
    import gc

    control, control_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    attempts, attempts_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    flush_std_streams()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            control.close()
            attempts.close()
            os.setsid()
            name_process("overnight-tmpl")
            signal.set_wakeup_fd(-1)
            # The template answers to its socket alone; each attempt restores the signal
            # handling of a fresh Python (pyattempt.fresh_signals).
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            for sig in (signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            close_fds_except({0, 1, 2, control_theirs.fileno(), attempts_theirs.fileno()})
            redirect_stdio_to_devnull()
            gc.collect()
            gc.freeze()  # what the template holds is never collected in a child: fewer copied pages
            template = _Template(control_theirs, attempts_theirs, steps, launch_group, spares)
            try:
                template.run()
            finally:
                template.close()
        except BaseException:  # noqa: BLE001 - the child must never return into the runner
            code = 70
        finally:
            os._exit(code)
    control_theirs.close()
    attempts_theirs.close()
    control.setblocking(False)
    attempts.setblocking(False)
    return pid, control, attempts
