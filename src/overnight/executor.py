"""Where steps run: the interface the runner talks to, and what passes across it.

The runner (engine.py) decides what runs when; an executor only starts a job, stops it
when asked, and reports exactly one Outcome for it through ``job.done``. Local processes
implement it in process.py; a remote queue can implement the same three methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from overnight.batch import Step
from overnight.states import StepState


@dataclass
class Outcome:
    state: StepState            # succeeded, failed, timed_out, cancelled or interrupted
    exit_code: int | None
    message: str | None
    ended_at: float
    started_at: float | None = None   # when the executor knows better than the runner
    host: str | None = None           # where it ran, when that was another host (a remote step)


@dataclass
class Job:
    """One attempt of one step."""

    step: Step
    run_id: int
    launch_id: int
    number: int                 # attempt number within the run (1, 2, ...)
    date: date
    log_path: str
    env: dict[str, str]
    cwd: str
    started_at: float = 0.0
    attempt_id: int = 0
    remote_id: str | None = None
    stop_reason: str | None = None     # "timeout" or "cancel" once stop() was called
    done: Callable[[Job, Outcome], None] | None = None
    ran_on: Callable[[Job, str], None] | None = None   # told the host, once a remote worker has it
    handle: Any = field(default=None, repr=False)

    def outcome_for_exit(self, exit_code: int, ended_at: float, message: str | None = None) -> Outcome:
        """How a finished process's exit status reads, given why (if) it was stopped."""
        if self.stop_reason == "timeout":
            return Outcome(StepState.TIMED_OUT, exit_code, message or _timeout_message(self), ended_at)
        if self.stop_reason == "cancel":
            return Outcome(StepState.CANCELLED, exit_code, message or "cancelled", ended_at)
        if exit_code == 0:
            return Outcome(StepState.SUCCEEDED, 0, None, ended_at)
        if exit_code < 0:
            # Killed by a signal overnight did not send (the OOM killer, an operator, a
            # crash): not the step's own exit status, so an interruption.
            why = message or f"killed by signal {-exit_code}"
            return Outcome(StepState.INTERRUPTED, exit_code, why, ended_at)
        return Outcome(StepState.FAILED, exit_code, message or f"exit code {exit_code}", ended_at)


def _timeout_message(job: Job) -> str:
    return f"timed out after {job.step.timeout:g}s"


class Executor(Protocol):
    def start(self, job: Job) -> None:
        """Start the job; later call ``job.done(job, outcome)`` exactly once."""

    def stop(self, job: Job, reason: str, force: bool = False) -> None:
        """Stop a started job (reason "timeout" or "cancel"); its Outcome follows."""

    def close(self) -> None:
        """Release everything; no job is running any more."""


class RemoteExecutor(Executor, Protocol):
    """An executor whose jobs outlive the runner (a remote queue): it can pick them up again."""

    def prepare(self, job: Job) -> None:
        """Name the job's task (job.remote_id) before its start is recorded."""

    def reattach(self, job: Job) -> None:
        """Watch a job an earlier launch started; later call ``job.done`` exactly once."""
