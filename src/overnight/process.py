"""Starting and stopping step processes on this machine.

Every command step runs in a session (a process group) of its own and, where the cgroup
net is in force, in a cgroup of its own (killnet.py), so a timeout or a cancel stops all it
started, grandchildren included, and whatever it leaves behind when it exits goes with it.
Python steps run each attempt in a fresh process forked from a template (callables.py).
The sentinel (sentinel.py) cleans up if the runner itself dies.
All this without a preexec_fn, which would turn every spawn into a full fork.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

from overnight.batch import Step
from overnight.callables import CallableExecutor
from overnight.executor import Job, Outcome, start_failure
from overnight.killnet import ProcessGroupNet
from overnight.loop import EventLoop, Timer
from overnight.sentinel import TOKEN_VARIABLE, Sentinel, close_fds_except, kill_group
from overnight.states import StepState

__all__ = ["KILL_GRACE", "TOKEN_VARIABLE", "LocalExecutor", "Sentinel", "close_fds_except", "kill_group"]

KILL_GRACE = float(os.environ.get("OVERNIGHT_KILL_GRACE", "5"))


# -- command steps -----------------------------------------------------------------------


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    pidfd: int
    group: str | None
    kill_timer: Timer | None = None


class LocalExecutor:
    """Runs command steps as child processes, and callable steps in fresh processes."""

    def __init__(self, loop: EventLoop, sentinel: Sentinel, steps: dict[str, Step],
                 net: ProcessGroupNet | None = None, workers: int = 1) -> None:
        self.loop = loop
        self.sentinel = sentinel
        self.net = net or ProcessGroupNet(sentinel.token)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        # Python attempts kept ready: twice as many as may start at once, within reason
        spares = 2 * min(workers, 4) + 2
        self.callables = CallableExecutor(loop, sentinel, self.net, steps, KILL_GRACE, spares)
        if any(s.func is not None and s.queue is None and s.wait is None for s in steps.values()):
            self.callables.start_template()  # now: before any thread exists (a remote queue's)
        self._found: dict[tuple[str, str], str | None] = {}

    def start(self, job: Job) -> None:
        # The attempt's own token (the launch's, and which attempt): what leaves the step's
        # group but keeps its environment is still found by it. A step that may leave
        # processes running has none, so that the launch's end spares them.
        if job.step.leave_running:
            job.env.pop(TOKEN_VARIABLE, None)
        else:
            job.env[TOKEN_VARIABLE] = f"{self.sentinel.token}/{job.step.name}.{job.number}"
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
        group = None
        try:
            group = self.net.step_group(job.step.name, job.number)
            with self.net.spawning_into(group):
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
        except (OSError, ValueError) as e:  # ValueError: what loading lets through by mistake
            if group is not None:
                self.net.step_ended(0, group, False)
            if isinstance(e, OSError):
                message = start_failure(e, None if isinstance(command, str) else command[0], executable)
            else:
                message = f"cannot start: {e}"
            os.write(log_fd, f"overnight: {message}\n".encode())
            os.close(log_fd)
            self._fail_soon(job, message, 127)
            return
        os.close(log_fd)
        self.sentinel.watch(process.pid)
        pidfd = os.pidfd_open(process.pid)
        job.handle = _Running(process, pidfd, group)
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
        # Whatever the step left behind goes with it (reaping comes after, so the group's
        # id cannot have been reused).
        self.net.step_ended(pid, running.group, job.step.leave_running, job.env.get(TOKEN_VARIABLE))
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
        pid, group, token = running.process.pid, running.group, job.env.get(TOKEN_VARIABLE)
        if force:
            self.net.stop(pid, group, signal.SIGKILL, token)
            return
        self.net.stop(pid, group, signal.SIGTERM, token)
        if running.kill_timer is None:
            running.kill_timer = self.loop.call_later(
                KILL_GRACE, lambda: self.net.stop(pid, group, signal.SIGKILL, token))

    def close(self) -> None:
        self.callables.close()
        os.close(self.devnull)
