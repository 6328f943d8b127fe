"""The template process: a small interpreter with the batch module imported (or, for steps
made in the runner's own process, a copy of the runner), that keeps fresh attempt
processes ready for Python steps.

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
import marshal
import os
import selectors
import signal
import socket
import subprocess
import sys
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
        # Made here once, not in each attempt's process (see pyattempt.spare_main).
        from overnight.pyattempt import make_handler

        self.handler = make_handler()
        self.group_json = json.dumps(launch_group)[:-1] if launch_group else ""

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
        self._reap(marshal.loads(data).get("reap", ()))
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
        group = group_json = None
        if self.launch_group:
            name = f"py.{os.getpid()}.{self.seq}"  # nothing to escape: the JSON is the launch's
            group, group_json = f"{self.launch_group}/{name}", f'{self.group_json}/{name}"'.encode()
        # What the template holds open beyond stdio: the runner's control socket, and its
        # end of each spare's socket (known: no need to list /proc/self/fd).
        inherited = [self.control.fileno(), mine.fileno(), self.selector.fileno()] + [
            s.sock.fileno() for s in self.spares]
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                for fd in inherited:
                    os.close(fd)
                code = spare_main(theirs, self.attempts, self.steps, group, group_json or b"null",
                                  self.handler)
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
    steps: dict[str, Step], launch_group: str | None, spares: int,
    env: dict[str, str] | None = None, slim: bool = True,
) -> tuple[int, socket.socket, socket.socket, subprocess.Popen[bytes] | None]:
    """Start the template process. Returns its pid, the runner's end of its control socket,
    the runner's end of the socket attempts are sent on, and its Popen (a slim template).

    Where the steps come from a batch module the loader read, the template is a fresh small
    interpreter that imports that module again (`slim_main`): every attempt is a fork, and
    a fork costs by the pages the parent has mapped and the child writes, so a copy of the
    runner (its ledger, click, SQLite: ~16 MB of heap) costs more per attempt than a
    template that holds only what an attempt needs. Steps made in this process alone (no
    module to import again) get a forked copy of the runner, as before.
    """
    control, control_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    attempts, attempts_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    source = _source_of(steps) if slim else None
    popen = None
    if source is not None:
        popen = _spawn_slim(source, steps, launch_group, spares, env,
                            control_theirs.fileno(), attempts_theirs.fileno())
        pid = popen.pid
    else:
        pid = _fork_template(steps, launch_group, spares, control, attempts, control_theirs, attempts_theirs)
    control_theirs.close()
    attempts_theirs.close()
    control.setblocking(False)
    attempts.setblocking(False)
    return pid, control, attempts, popen


SLIM_FAILED = 78  # a slim template that could not import the batch as the runner did


def _source_of(steps: dict[str, Step]) -> tuple[str, str] | None:
    loader = sys.modules.get("overnight.loader")
    return None if loader is None else loader.source_of(steps)


def _spawn_slim(source: tuple[str, str], steps: dict[str, Step], launch_group: str | None,
                spares: int, env: dict[str, str] | None, control_fd: int, attempts_fd: int,
                ) -> subprocess.Popen[bytes]:
    spec = {
        "path": sys.path, "argv": sys.argv, "ref": source[0], "base": source[1],
        "names": sorted(n for n, s in steps.items() if s.func is not None),
        "control": control_fd, "attempts": attempts_fd, "group": launch_group, "spares": spares,
    }
    code = ("import sys, json; spec = json.loads(sys.argv[1]); sys.path[:] = spec['path']; "
            "from overnight.template import slim_main; slim_main(spec)")
    flush_std_streams()
    return subprocess.Popen(
        [sys.executable, *subprocess._args_from_interpreter_flags(), "-c", code, json.dumps(spec)],
        pass_fds=(control_fd, attempts_fd), start_new_session=True, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def slim_main(spec: dict) -> None:
    """The slim template's process: import the batch as the runner did, then serve."""
    code = SLIM_FAILED
    try:
        name_process("overnight-tmpl")
        sys.argv[:] = spec["argv"]
        control = socket.socket(fileno=spec["control"])
        attempts = socket.socket(fileno=spec["attempts"])
        steps = _reload(spec)
        if steps is not None:
            code = _serve(control, attempts, steps, spec["group"], spec["spares"])
    except BaseException:  # noqa: BLE001 - nothing of a template may reach the runner
        code = 70
    finally:
        os._exit(code)


def _reload(spec: dict) -> dict[str, Step] | None:
    """The runner's callable steps, from the batch module imported here again; None if it
    does not define them all (then the runner falls back to a copy of itself)."""
    from pathlib import Path

    from overnight.loader import load_batch

    try:
        loaded = load_batch(spec["ref"], Path(spec["base"]))
    except BaseException:  # noqa: BLE001 - the module imported differently here
        return None
    sys.path[:] = list(dict.fromkeys(sys.path))  # the loader put its folder first again
    steps = {name: loaded.batch.steps.get(name) for name in spec["names"]}
    if any(step is None or step.func is None for step in steps.values()):
        return None
    return steps  # type: ignore[return-value]


def _fork_template(steps: dict[str, Step], launch_group: str | None, spares: int,
                   control: socket.socket, attempts: socket.socket,
                   control_theirs: socket.socket, attempts_theirs: socket.socket) -> int:
    flush_std_streams()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            control.close()
            attempts.close()
            os.setsid()
            name_process("overnight-tmpl")
            signal.set_wakeup_fd(-1)
            code = _serve(control_theirs, attempts_theirs, steps, launch_group, spares)
        except BaseException:  # noqa: BLE001 - the child must never return into the runner
            code = 70
        finally:
            os._exit(code)
    return pid


def _serve(control: socket.socket, attempts: socket.socket, steps: dict[str, Step],
           launch_group: str | None, spares: int) -> int:
    import gc

    import overnight.killnet  # noqa: F401 - what a spare uses, imported before the freeze
    import overnight.pyattempt  # noqa: F401

    # The template answers to its socket alone; each attempt restores the signal
    # handling of a fresh Python (pyattempt.fresh_signals).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    close_fds_except({0, 1, 2, control.fileno(), attempts.fileno()})
    redirect_stdio_to_devnull()
    gc.collect()
    gc.freeze()  # what the template holds is never collected in a child: fewer copied pages
    template = _Template(control, attempts, steps, launch_group, spares)
    try:
        template.run()
    finally:
        template.close()
    return 0
