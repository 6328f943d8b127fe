"""Python steps on the runner's side: each attempt a fresh process from the template.

The template process (template.py) is forked once the batch module is imported; the runner
sends it one message per attempt, with the write end of a pipe that belongs to that attempt
alone. The attempt's process (pyattempt.py) says hello with its pid and cgroup, then answers
once, bound to that pid and attempt number; the runner watches the pid (a pidfd) for its
exit. So an answer can only ever be credited to the attempt that gave it, a step that forks
cannot answer for another, and whatever an attempt leaves behind dies with it.
"""

from __future__ import annotations

import array
import json
import marshal
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field

from overnight.batch import Step
from overnight.executor import Job, Outcome
from overnight.killnet import ProcessGroupNet
from overnight.loop import EventLoop, Timer
from overnight.sentinel import TOKEN_VARIABLE, Sentinel, kill_group
from overnight.states import StepState

LOST_BEFORE_START = "its process was lost before it started (the template process died)"
REAP_EVERY = 16  # finished attempts the template reaps in one go (one wakeup for sixteen)


@dataclass(eq=False)
class _Attempt:
    job: Job
    result_r: int
    group: str | None
    pid: int = 0
    pidfd: int = -1
    buffer: bytes = b""
    sent: int = 0                       # times handed to a template (again if one died first)
    finished: bool = False              # job.done was called
    stop_signal: int | None = None      # asked to stop before it said hello
    timers: list[Timer] = field(default_factory=list)


class _TemplateHandle:
    def __init__(self, steps: dict[str, Step], launch_group: str | None, spares: int,
                 env: dict[str, str], slim: bool) -> None:
        from overnight.template import start_template

        self.pid, self.control, self.attempts, self.popen = start_template(
            steps, launch_group, spares, env, slim)
        self.pidfd = os.pidfd_open(self.pid)
        self.status: int | None = None

    def send(self, message: dict, fd: int) -> None:
        """To whichever spare is waiting (or the next one to be ready)."""
        self.attempts.sendmsg([marshal.dumps(message)],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])

    def reap(self, pids: list[int]) -> None:
        try:
            self.control.send(marshal.dumps({"reap": pids}))
        except OSError:
            pass  # it is gone: its children were reparented

    def close(self, kill: bool = False) -> None:
        """End it (EOF on its sockets; SIGKILL to it and its idle spares if it is stuck or
        `kill`) and reap it. Attempts sent that no spare took are dropped with the socket."""
        self.attempts.close()
        self.control.close()
        if kill or not select.select([self.pidfd], [], [], 1.0)[0]:
            kill_group(self.pid)
        try:
            self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        except ChildProcessError:
            pass
        if self.popen is not None:
            self.popen.returncode = self.status  # reaped here: subprocess must not wait for it
        os.close(self.pidfd)


class CallableExecutor:
    def __init__(self, loop: EventLoop, sentinel: Sentinel, net: ProcessGroupNet, steps: dict[str, Step],
                 kill_grace: float, spares: int = 1) -> None:
        self.loop = loop
        self.spares = spares
        self.sentinel = sentinel
        self.net = net
        self.steps = steps
        self.kill_grace = kill_grace
        self.template: _TemplateHandle | None = None
        self.template_env = dict(os.environ)  # what a template (a fork of the runner) starts with
        self.reaps: list[int] = []          # attempts that ended: the template may reap them
        self.live: set[_Attempt] = set()
        self.slim = True                    # False once a slim template could not import the batch

    # -- the template ----------------------------------------------------------------------

    def start_template(self) -> None:
        if self.template is None:
            self.template = _TemplateHandle(self.steps, self.net.launch_group, self.spares,
                                            self.template_env, self.slim)
            template = self.template
            self.sentinel.watch(template.pid)
            self.loop.add_reader(template.pidfd, lambda: self._template_died(template))

    def _template_died(self, template: _TemplateHandle) -> None:
        """Attempts it had not forked yet see end-of-file on their pipes (lost before they
        started); those it had forked live on, watched through their own pids."""
        if template is self.template:  # not a late word of one already replaced
            self._drop_template(kill=False)

    def _drop_template(self, kill: bool) -> None:
        template, self.template = self.template, None
        if template is None:
            return
        self.loop.remove_reader(template.pidfd)
        self.sentinel.forget(template.pid)
        template.close(kill=kill)
        from overnight.template import SLIM_FAILED

        if template.popen is not None and template.status == SLIM_FAILED:
            self.slim = False  # its module imports differently there: a copy of the runner then
        self.reaps.clear()  # its children are no longer its to reap

    # -- starting ----------------------------------------------------------------------------

    def start(self, job: Job) -> None:
        attempt = _Attempt(job, -1, None)
        job.handle = attempt
        self._send(attempt)

    def _send(self, attempt: _Attempt) -> None:
        """Hand the attempt to the template, with a new pipe of its own."""
        job = attempt.job
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        base = self.template_env
        message = {
            "op": "run", "step": job.step.name, "attempt": job.number, "date": job.date.isoformat(),
            "run_id": job.run_id, "log": job.log_path, "cwd": job.cwd,
            # only what differs from the template's environment (usually OVERNIGHT_*)
            "env": {k: v for k, v in job.env.items() if base.get(k) != v},
            "unset": [k for k in base if k not in job.env],
        }
        try:
            for tries in (1, 2):
                self.start_template()
                assert self.template is not None
                try:
                    self.template.send(message, write_fd)
                    break
                except OSError:  # gone, or so stuck that its socket is full: a new one
                    self._drop_template(kill=True)
                    if tries == 2:
                        raise
        except OSError as e:
            os.close(read_fd)
            self._fail_soon(job, f"cannot start its process: {e.strerror or e}")
            return
        finally:
            os.close(write_fd)
        attempt.result_r, attempt.buffer = read_fd, b""
        attempt.sent += 1
        self.live.add(attempt)
        self.loop.add_reader(read_fd, lambda: self._readable(attempt))

    def _fail_soon(self, job: Job, message: str) -> None:
        outcome = Outcome(StepState.FAILED, None, message, time.time())
        self.loop.call_later(0, lambda: job.done(job, outcome))  # type: ignore[misc]

    # -- what the attempt says -------------------------------------------------------------

    def _readable(self, attempt: _Attempt) -> None:
        try:
            data = os.read(attempt.result_r, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.loop.remove_reader(attempt.result_r)
            if not attempt.pid:  # never started: nobody will ever say anything on this pipe
                self._lost_before_start(attempt)
            return
        attempt.buffer += data
        while b"\n" in attempt.buffer:
            line, attempt.buffer = attempt.buffer.split(b"\n", 1)
            self._said(attempt, line)

    def _lost_before_start(self, attempt: _Attempt) -> None:
        """Its template died before the attempt began: no code of the step ran, so it is
        handed to a new template (twice at most), unless it was being stopped anyway."""
        self._cleanup(attempt)
        job = attempt.job
        if job.stop_reason is None and attempt.sent < 3:
            self._send(attempt)
            return
        if job.stop_reason is not None:
            outcome = job.outcome_for_exit(-signal.SIGKILL, time.time())
        else:
            outcome = Outcome(StepState.INTERRUPTED, None, LOST_BEFORE_START, time.time())
        self._finish(attempt, outcome)

    def _said(self, attempt: _Attempt, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return  # not a line of ours (the pipe is ours alone, but be strict)
        if not isinstance(message, dict):
            return
        if "hello" in message and not attempt.pid:
            attempt.group = message.get("group")
            self._hello(attempt, int(message["hello"]))
        elif "ok" in message and not attempt.finished:
            if message.get("pid") != attempt.pid or message.get("attempt") != attempt.job.number:
                return  # an answer from a process that is not this attempt's own
            ended = time.time()
            if message["ok"]:
                outcome = Outcome(StepState.SUCCEEDED, 0, None, ended)
            else:
                outcome = Outcome(StepState.FAILED, 1, message.get("message"), ended)
            self._finish(attempt, outcome)

    def _hello(self, attempt: _Attempt, pid: int) -> None:
        attempt.pid = pid
        try:
            attempt.pidfd = os.pidfd_open(pid)
        except OSError:  # gone already (its template died and it was reaped)
            self._exited(attempt)
            return
        self.sentinel.watch(pid)
        self.loop.add_reader(attempt.pidfd, lambda: self._exited(attempt))
        if attempt.stop_signal is not None:
            self._signal(attempt, attempt.stop_signal)

    def _exited(self, attempt: _Attempt) -> None:
        self._readable(attempt)  # an answer written just before the exit comes first
        if not attempt.finished:
            status = _exit_status(attempt.pid)
            job = attempt.job
            # Killed by a signal: said as for a command step (outcome_for_exit).
            message = None if job.stop_reason or status < 0 else "the step's process died"
            outcome = job.outcome_for_exit(status, time.time(), message)
            if outcome.state is StepState.SUCCEEDED:  # exited 0 without answering
                outcome = Outcome(StepState.FAILED, 0, "the step's process exited without an answer",
                                  outcome.ended_at)
            self._finish(attempt, outcome)
        self._cleanup(attempt)

    def _finish(self, attempt: _Attempt, outcome: Outcome) -> None:
        attempt.finished = True
        attempt.job.done(attempt.job, outcome)  # type: ignore[misc]

    def _cleanup(self, attempt: _Attempt) -> None:
        if attempt not in self.live:
            return
        self.live.discard(attempt)
        for timer in attempt.timers:
            timer.cancel()
        self.loop.remove_reader(attempt.result_r)
        os.close(attempt.result_r)
        if attempt.pid:
            self.loop.remove_reader(attempt.pidfd)
            if attempt.pidfd >= 0:
                os.close(attempt.pidfd)
            # What the step left behind goes with it (before the template reaps the pid).
            self.net.step_ended(attempt.pid, attempt.group, attempt.job.step.leave_running, _token(attempt))
            self.sentinel.forget(attempt.pid)
            if self.template is not None:
                self.reaps.append(attempt.pid)
                if len(self.reaps) >= REAP_EVERY:  # zombies until then: the pids stay reserved
                    self.template.reap(self.reaps)
                    self.reaps = []

    # -- stopping ----------------------------------------------------------------------------

    def stop(self, job: Job, reason: str, force: bool = False) -> None:
        attempt: _Attempt | None = job.handle
        if attempt is None or attempt.finished:
            return
        job.stop_reason = job.stop_reason or reason
        sig = signal.SIGKILL if force else signal.SIGTERM
        if attempt.pid:
            self._signal(attempt, sig)
            return
        attempt.stop_signal = sig
        # Not started yet: its template should fork it at once. If it does not say hello
        # within the grace, the template is stuck (paused?): it is replaced.
        attempt.timers.append(self.loop.call_later(self.kill_grace, lambda: self._stuck(attempt)))

    def _signal(self, attempt: _Attempt, sig: int) -> None:
        self.net.stop(attempt.pid, attempt.group, sig, _token(attempt))
        if sig == signal.SIGTERM:
            attempt.timers.append(self.loop.call_later(self.kill_grace, lambda: self.net.stop(
                attempt.pid, attempt.group, signal.SIGKILL, _token(attempt))))

    def _stuck(self, attempt: _Attempt) -> None:
        if attempt.pid or attempt.finished:
            return
        self._drop_template(kill=True)  # and with it the spare it may have handed the attempt to
        self._readable(attempt)  # a hello that came after all, or the end of the pipe

    def close(self) -> None:
        for attempt in list(self.live):
            if attempt.pid:
                self.net.stop(attempt.pid, attempt.group, signal.SIGKILL, _token(attempt))
            self._cleanup(attempt)
        self._drop_template(kill=False)  # at end-of-file it kills and reaps what is left


def _token(attempt: _Attempt) -> str | None:
    return attempt.job.env.get(TOKEN_VARIABLE)


def _exit_status(pid: int) -> int:
    """How a child of the template ended, read from its zombie's /proc entry (it is not
    our child, so waitpid cannot tell us): the code, or minus the signal number."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return os.waitstatus_to_exitcode(int(fields[-1]))
    except (OSError, ValueError, IndexError):
        return -signal.SIGKILL
