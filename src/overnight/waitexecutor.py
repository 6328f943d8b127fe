"""Running wait steps: each check a real process, nothing held between checks.

To the runner a wait step is one job (one attempt, running from its first check to its
end) run by this executor; it holds no worker. Each check is started through the
executor of plain steps (a command or a callable, in a process of its own, its output
appended to the attempt's log), as a copy of the job; between checks there is only a
timer. What each check's end means is the planner's rule (planner.after_check); this
module keeps the clocks. A wait step interrupted by a crash is run again by the next
launch like any idempotent step: it goes back to waiting, with its whole timeout.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

from overnight.durations import format_duration
from overnight.executor import Executor, Job, Outcome
from overnight.loop import EventLoop, Timer
from overnight.planner import after_check, out_of_time_state
from overnight.states import StepState
from overnight.waits import WaitSpec


@dataclass
class _Waiting:
    job: Job
    spec: WaitSpec
    checks: int = 0
    check: Job | None = None          # the check running now
    next_check: Timer | None = None
    deadline: Timer | None = None
    out_of_time: bool = False
    cancelled: bool = False


class WaitExecutor:
    """Runs the wait steps of a launch; `checks` runs each check."""

    def __init__(self, loop: EventLoop, checks: Executor) -> None:
        self.loop = loop
        self.checks = checks
        self.waiting: dict[str, _Waiting] = {}

    def start(self, job: Job) -> None:
        assert job.step.wait is not None
        w = _Waiting(job, job.step.wait)
        self.waiting[job.step.name] = w
        w.deadline = self.loop.call_later(w.spec.timeout, lambda: self._out_of_time(w))
        if w.spec.initial_delay:
            _note(job, f"first check in {format_duration(w.spec.initial_delay)}")
            w.next_check = self.loop.call_later(w.spec.initial_delay, lambda: self._check(w))
        else:
            self._check(w)

    def _check(self, w: _Waiting) -> None:
        w.next_check = None
        w.checks += 1
        _note(w.job, f"check {w.checks}")
        env = dict(w.job.env)
        env["OVERNIGHT_CHECK"] = str(w.checks)
        w.check = replace(w.job, env=env, handle=None, stop_reason=None,
                          done=lambda _check, outcome: self._checked(w, outcome))
        self.checks.start(w.check)

    def _checked(self, w: _Waiting, outcome: Outcome) -> None:
        w.check = None
        final = after_check(w.spec, outcome.state, out_of_time=w.out_of_time, cancelled=w.cancelled)
        if final is None:
            said = outcome.message or outcome.state.value
            _note(w.job, f"not yet ({said}); next check in {format_duration(w.spec.every)}")
            w.next_check = self.loop.call_later(w.spec.every, lambda: self._check(w))
            return
        self._end(w, final, outcome.ended_at)

    def _out_of_time(self, w: _Waiting) -> None:
        w.deadline = None
        w.out_of_time = True
        if w.check is not None:
            self.checks.stop(w.check, "timeout")  # its end comes back through _checked
            return
        self._end(w, out_of_time_state(w.spec), time.time())

    def _end(self, w: _Waiting, state: StepState, ended: float) -> None:
        for timer in (w.next_check, w.deadline):
            if timer is not None:
                timer.cancel()
        del self.waiting[w.job.step.name]
        message = None
        if state is StepState.SUCCEEDED:
            _note(w.job, f"ready after {w.checks} check{'s' if w.checks != 1 else ''}")
        elif state is StepState.CANCELLED:
            message = "cancelled while waiting"
        else:
            message = f"not ready after {format_duration(w.spec.timeout)} ({w.checks} checks)"
            if state is StepState.SKIPPED:
                message += ": skipped, as on_timeout says"
            _note(w.job, message)
        w.job.done(w.job, Outcome(state, 0 if state is StepState.SUCCEEDED else None,  # type: ignore[misc]
                                  message, ended))

    def stop(self, job: Job, reason: str, force: bool = False) -> None:
        w = self.waiting.get(job.step.name)
        if w is None or w.job is not job:
            return
        if reason == "timeout":
            self._out_of_time(w)
            return
        w.cancelled = True
        if w.check is not None:
            self.checks.stop(w.check, "cancel", force)
        else:
            self._end(w, StepState.CANCELLED, time.time())

    def close(self) -> None:
        """The checks' executor is closed by its owner; nothing of ours outlives a launch."""
        for w in list(self.waiting.values()):
            for timer in (w.next_check, w.deadline):
                if timer is not None:
                    timer.cancel()
        self.waiting.clear()


def _note(job: Job, text: str) -> None:
    """A line of the runner's own in the step's log, between the checks' output."""
    line = f"overnight: {time.strftime('%H:%M:%S')} {text}\n".encode()
    try:
        fd = os.open(job.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # the check itself reports a log it cannot open
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
