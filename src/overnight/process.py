"""Starting and stopping step processes on this machine, and the sentinel that cleans up.

Every step runs in a process group of its own (a new session), so a timeout or a cancel
stops the whole group, grandchildren included. If the runner itself dies (kill -9, OOM),
a small sentinel process forked at the start of the launch notices (its pipe from the
runner reaches end-of-file) and kills every group the runner told it about, plus any
process that still carries this launch's token in its environment: that covers a step
started in the instant between fork and the runner telling the sentinel its group.
The runner tells it the groups through a small shared memory table, not pipe messages:
a pipe write wakes the sentinel, and on a 2-core machine that wakeup (twice per step)
preempted the runner and its new child for about 0.9 ms per step in all. A table write
costs nothing; the sentinel reads the table only once the runner is gone. The pipe stays,
for the end-of-file that says so (and for the rare group that finds no free slot).
All this instead of a preexec_fn, which would turn every spawn into a full fork.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from overnight.batch import Context, Step
from overnight.executor import Job, Outcome, start_failure
from overnight.loop import EventLoop, Timer
from overnight.states import StepState

TOKEN_VARIABLE = "OVERNIGHT_LAUNCH_TOKEN"
SENTINEL_SLOTS = 4096  # process groups alive at once (steps + callable workers); more go by pipe
KILL_GRACE = float(os.environ.get("OVERNIGHT_KILL_GRACE", "5"))


def close_fds_except(keep: Iterable[int]) -> None:
    """In a freshly forked child: drop every inherited descriptor but `keep`.

    The runner's lock file, ledger, selector and pipes must not live on in a child, or
    the lock would outlast the runner and the sentinel would never see end-of-file.
    """
    keep = set(keep)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _redirect_stdio_to_devnull(stdin_only: bool = False) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    if not stdin_only:
        os.dup2(null, 1)
        os.dup2(null, 2)
    if null > 2:
        os.close(null)


def _flush_std_streams() -> None:
    # Buffered output would otherwise be written twice: once by us, once by the child.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


class Sentinel:
    """A forked watcher that kills the launch's process groups if the runner dies."""

    def __init__(self) -> None:
        self.token = f"{os.getpid()}-{os.urandom(8).hex()}"
        # Shared with the sentinel across the fork (an anonymous mapping is MAP_SHARED):
        # one 4-byte slot per live group, 0 when free.
        self._table = mmap.mmap(-1, SENTINEL_SLOTS * 4)
        self._slots: dict[int, int] = {}
        self._free = list(range(SENTINEL_SLOTS - 1, -1, -1))
        read_fd, write_fd = os.pipe()
        _flush_std_streams()
        pid = os.fork()
        if pid == 0:  # the sentinel
            try:
                os.setsid()  # out of the runner's group: `kill -- -PGID` must not reach it
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                    signal.signal(sig, signal.SIG_IGN)
                signal.set_wakeup_fd(-1)
                close_fds_except({0, 1, 2, read_fd})
                _redirect_stdio_to_devnull()
                _sentinel_main(read_fd, self.token.encode(), self._table)
            finally:
                os._exit(0)
        os.close(read_fd)
        os.set_inheritable(write_fd, False)
        self.pid = pid
        self._fd: int | None = write_fd

    def watch(self, pgid: int) -> None:
        if self._fd is None:
            return
        if self._free:
            slot = self._free.pop()
            self._slots[pgid] = slot
            self._table[slot * 4:slot * 4 + 4] = pgid.to_bytes(4, "little")
        else:
            os.write(self._fd, b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        if self._fd is None:
            return
        slot = self._slots.pop(pgid, None)
        if slot is not None:
            self._table[slot * 4:slot * 4 + 4] = b"\0\0\0\0"
            self._free.append(slot)
        else:
            os.write(self._fd, b"-%d\n" % pgid)

    def close(self) -> None:
        """A clean end: the sentinel exits without killing anything."""
        if self._fd is not None:
            try:
                os.write(self._fd, b"bye\n")
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self._table.close()


def _sentinel_main(fd: int, token: bytes, table: mmap.mmap) -> None:
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
    data = table[:]
    for offset in range(0, len(data), 4):
        pgid = int.from_bytes(data[offset:offset + 4], "little")
        if pgid:
            groups.add(pgid)
    for pgid in groups:
        kill_group(pgid)
    for _ in range(5):
        found = _processes_with_token(token)
        if not found:
            break
        for pid in found:
            try:
                kill_group(os.getpgid(pid))
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a step's whole process group (gone already, or not ours: nothing to do)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _processes_with_token(token: bytes) -> list[int]:
    marker = TOKEN_VARIABLE.encode() + b"=" + token + b"\0"
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker in f.read() + b"\0":
                    found.append(int(name))
        except OSError:
            continue
    return found


# -- command steps -----------------------------------------------------------------------


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    pidfd: int
    kill_timer: Timer | None = None


class LocalExecutor:
    """Runs command steps as child processes, and callable steps in forked workers."""

    def __init__(self, loop: EventLoop, sentinel: Sentinel, steps: dict[str, Step]) -> None:
        self.loop = loop
        self.sentinel = sentinel
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.callables = CallableWorkers(loop, sentinel, steps)
        self._found: dict[tuple[str, str], str | None] = {}

    def start(self, job: Job) -> None:
        if job.step.func is not None:
            self.callables.start(job)
            return
        command = job.step.render_command(job.date)
        try:
            log_fd = os.open(job.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as e:
            self._fail_soon(job, f"cannot open its log {job.log_path}: {e.strerror}")
            return
        executable = None
        if not isinstance(command, str) and "/" not in command[0]:
            executable = self._resolve(command[0], job.env)
        try:
            process = subprocess.Popen(
                command,
                executable=executable,
                shell=isinstance(command, str),
                stdin=self.devnull,
                stdout=log_fd,
                stderr=log_fd,
                cwd=job.cwd,
                env=job.env,
                start_new_session=True,
            )
        except OSError as e:
            message = start_failure(e, None if isinstance(command, str) else command[0], executable)
            os.write(log_fd, f"overnight: {message}\n".encode())
            os.close(log_fd)
            self._fail_soon(job, message, 127)
            return
        os.close(log_fd)
        self.sentinel.watch(process.pid)
        pidfd = os.pidfd_open(process.pid)
        job.handle = _Running(process, pidfd)
        self.loop.add_reader(pidfd, lambda: self._exited(job))

    def _resolve(self, name: str, env: dict[str, str]) -> str | None:
        """Where a bare program name is on the step's PATH, looked up once per launch.

        Otherwise every spawn searches PATH again, and the child tries execve in each
        folder before the right one (eight failures before /usr/bin/true here) while the
        runner waits for it: about 0.1 ms per step. Only for a PATH of absolute folders
        (a relative one depends on the step's cwd); not found: Popen searches and reports.
        """
        path = env.get("PATH", os.defpath)
        key = (name, path)
        if key not in self._found:
            found = None
            folders = path.split(os.pathsep)
            if all(os.path.isabs(folder) for folder in folders):
                for folder in folders:
                    candidate = os.path.join(folder, name)
                    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                        found = candidate
                        break
            self._found[key] = found
        return self._found[key]

    def _fail_soon(self, job: Job, message: str, exit_code: int | None = None) -> None:
        """The step could not start: report it from the loop, not from inside start()."""
        outcome = Outcome(StepState.FAILED, exit_code, message, time.time())
        self.loop.call_later(0, lambda: job.done(job, outcome))  # type: ignore[misc]

    def _exited(self, job: Job) -> None:
        running: _Running = job.handle
        ended = time.time()
        self.loop.remove_reader(running.pidfd)
        os.close(running.pidfd)
        if running.kill_timer:
            running.kill_timer.cancel()
        pid = running.process.pid
        # Whatever the step left behind in its group goes with it (reaping comes after, so
        # the group's id cannot have been reused).
        kill_group(pid)
        exit_code = running.process.wait()
        self.sentinel.forget(pid)
        job.done(job, job.outcome_for_exit(exit_code, ended))  # type: ignore[misc]

    def stop(self, job: Job, reason: str, force: bool = False) -> None:
        if job.step.func is not None:
            self.callables.stop(job, reason, force)
            return
        running: _Running | None = job.handle
        if running is None:
            return
        job.stop_reason = job.stop_reason or reason
        pid = running.process.pid
        if force:
            kill_group(pid, signal.SIGKILL)
            return
        kill_group(pid, signal.SIGTERM)
        if running.kill_timer is None:
            running.kill_timer = self.loop.call_later(KILL_GRACE, lambda: kill_group(pid))

    def close(self) -> None:
        self.callables.close()
        os.close(self.devnull)


# -- callable steps ----------------------------------------------------------------------


class _Worker:
    """A forked child that runs callable steps one at a time, in a group of its own."""

    def __init__(self, loop: EventLoop, steps: dict[str, Step]) -> None:
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        _flush_std_streams()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.setsid()
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                close_fds_except({0, 1, 2, cmd_r, res_w})
                _redirect_stdio_to_devnull(stdin_only=True)
                _worker_main(steps, cmd_r, res_w)
            except BaseException:  # noqa: BLE001 - the child must never return into the runner
                code = 70
            finally:
                os._exit(code)
        os.close(cmd_r)
        os.close(res_w)
        for fd in (cmd_w, res_r):
            os.set_inheritable(fd, False)
        self.pid = pid
        self.cmd_w = cmd_w
        self.res_r = res_r
        self.pidfd = os.pidfd_open(pid)
        self.job: Job | None = None
        self.buffer = b""
        self.kill_timer: Timer | None = None

    def send(self, job: Job) -> None:
        self.job = job
        message = {
            "step": job.step.name,
            "attempt": job.number,
            "date": job.date.isoformat(),
            "run_id": job.run_id,
            "log": job.log_path,
            "cwd": job.cwd,
            "env": job.env,
        }
        os.write(self.cmd_w, json.dumps(message).encode() + b"\n")

    def close(self) -> None:
        for fd in (self.cmd_w, self.res_r, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass


class CallableWorkers:
    def __init__(self, loop: EventLoop, sentinel: Sentinel, steps: dict[str, Step]) -> None:
        self.loop = loop
        self.sentinel = sentinel
        self.steps = steps
        self.idle: list[_Worker] = []

    def start(self, job: Job) -> None:
        worker = self.idle.pop() if self.idle else self._spawn()
        job.handle = worker
        worker.send(job)

    def _spawn(self) -> _Worker:
        worker = _Worker(self.loop, self.steps)
        self.sentinel.watch(worker.pid)
        self.loop.add_reader(worker.res_r, lambda: self._answered(worker))
        self.loop.add_reader(worker.pidfd, lambda: self._died(worker))
        return worker

    def _answered(self, worker: _Worker) -> None:
        try:
            data = os.read(worker.res_r, 65536)
        except OSError:
            data = b""
        if not data:
            return  # the worker is dying; _died reports it
        worker.buffer += data
        if b"\n" not in worker.buffer:
            return
        line, worker.buffer = worker.buffer.split(b"\n", 1)
        job, worker.job = worker.job, None
        if job is None:
            return
        result = json.loads(line)
        ended = time.time()
        if result["ok"]:
            outcome = Outcome(StepState.SUCCEEDED, 0, None, ended)
        else:
            outcome = Outcome(StepState.FAILED, 1, result["message"], ended)
        if job.stop_reason:
            # It finished by itself just as it was being stopped: the worker may be
            # half-killed, so it is not reused.
            self._retire(worker)
        else:
            self.idle.append(worker)
        job.done(job, outcome)  # type: ignore[misc]

    def _died(self, worker: _Worker) -> None:
        job, worker.job = worker.job, None
        exit_status = _reap(worker.pid)
        self._retire(worker)
        if job is not None:
            # Killed by a signal: said as for a command step (outcome_for_exit).
            message = None if job.stop_reason or exit_status < 0 else "the step's process died"
            outcome = job.outcome_for_exit(exit_status, time.time(), message)
            if outcome.state is StepState.SUCCEEDED:  # exited 0 without answering
                outcome = Outcome(StepState.FAILED, 0, "the step's process exited early", outcome.ended_at)
            job.done(job, outcome)  # type: ignore[misc]

    def _retire(self, worker: _Worker) -> None:
        self.loop.remove_reader(worker.res_r)
        self.loop.remove_reader(worker.pidfd)
        if worker.kill_timer:
            worker.kill_timer.cancel()
        kill_group(worker.pid)
        _reap(worker.pid)
        self.sentinel.forget(worker.pid)
        if worker in self.idle:
            self.idle.remove(worker)
        worker.close()

    def stop(self, job: Job, reason: str, force: bool = False) -> None:
        worker: _Worker | None = job.handle
        if worker is None or worker.job is not job:
            return
        job.stop_reason = job.stop_reason or reason
        if force:
            kill_group(worker.pid)
            return
        kill_group(worker.pid, signal.SIGTERM)
        if worker.kill_timer is None:
            worker.kill_timer = self.loop.call_later(KILL_GRACE, lambda: kill_group(worker.pid))

    def close(self) -> None:
        for worker in list(self.idle):
            self._retire(worker)


def _reap(pid: int) -> int:
    """Exit status as subprocess reports it: the code, or minus the signal number."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return -signal.SIGKILL
    return os.waitstatus_to_exitcode(status)


def _worker_main(steps: dict[str, Step], cmd_fd: int, result_fd: int) -> None:
    logger_handler = logging.StreamHandler(sys.stderr)
    logger_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    )
    with os.fdopen(cmd_fd, "rb") as commands:
        for line in commands:
            message = json.loads(line)
            result = _run_callable(steps[message["step"]], message, logger_handler)
            os.write(result_fd, json.dumps(result).encode() + b"\n")


def _apply_env(env: dict[str, str]) -> None:
    """Make os.environ equal to `env`, touching only what differs (from one step to the
    next in a worker, usually OVERNIGHT_STEP and OVERNIGHT_ATTEMPT): clearing and refilling
    it cost ~0.3 ms per step."""
    current = os.environ
    for key in [k for k in current if k not in env]:
        del current[key]
    for key, value in env.items():
        if current.get(key) != value:
            current[key] = value


def _run_callable(step: Step, message: dict, handler: logging.Handler) -> dict:
    try:
        log_fd = os.open(message["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        return {"ok": False, "message": f"cannot open its log file {message['log']}: {e.strerror or e}"}
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    _apply_env(message["env"])
    # A logger of its own, outside logging's registry: getLogger() of a new name clears
    # the cache of every logger registered so far, O(steps run) per step in a long batch.
    logger = logging.Logger(f"overnight.step.{step.name}", logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    context = Context(
        date=date.fromisoformat(message["date"]),
        batch=step.batch,
        step=step.name,
        attempt=message["attempt"],
        run_id=message["run_id"],
        log=logger,
    )
    try:
        os.chdir(message["cwd"])
        assert step.func is not None
        step.func(context)
        result = {"ok": True}
    except SystemExit as e:
        ok = e.code in (None, 0)
        result = {"ok": ok, "message": f"exited with {e.code}"}
    except BaseException as e:  # noqa: BLE001 - any failure of the step is its outcome
        traceback.print_exc()
        text = str(e).strip().splitlines()
        result = {"ok": False, "message": f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")}
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return result
