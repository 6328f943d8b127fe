"""Where steps run: the interface the runner talks to, and what passes across it.

The runner (engine.py) decides what runs when; an executor only starts a job, stops it
when asked, and reports exactly one Outcome for it through ``job.done``. Local processes
implement it in process.py; a remote queue can implement the same three methods.
"""

from __future__ import annotations

import os
import re
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
        # Killed by a signal overnight did not send (the OOM killer, an operator, a crash):
        # not the step's own exit status, so an interruption.
        state = StepState.INTERRUPTED if exit_code < 0 else StepState.FAILED
        return Outcome(state, exit_code, message or exit_message(exit_code, self), ended_at)


def _timeout_message(job: Job) -> str:
    return f"timed out after {job.step.timeout:g}s"


def signal_message(signum: int) -> str:
    """How a step killed by a signal reads, whatever kind of step it was."""
    import signal

    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"killed by signal {signum}"
    return f"killed by {name} (signal {signum})"


def exit_message(exit_code: int, job: Job | None = None) -> str:
    """What a failed exit status means, in the words a person at 2am needs."""
    if exit_code < 0:
        return signal_message(-exit_code)
    if exit_code == 127 and job is not None and job.step.command is not None:
        # The shell's (and our) "not found": name the program, not a bare number.
        return f"command not found: {not_found_name(job)}"
    return f"exit code {exit_code}"


def start_failure(error: OSError, program: str | None, resolved: str | None = None) -> str:
    """Why a step's process could not start (exit code 127): a program that is not there
    reads as the shell says it, anything else (a missing cwd, no permission) as the error."""
    if isinstance(error, FileNotFoundError) and program is not None and error.filename in (program, resolved):
        return f"command not found: {program}"
    return f"cannot start: {error.strerror or error}" + (f": {error.filename}" if error.filename else "")


# The shell's own line for a missing program, at the end of the step's log: dash says
# "sh: 1: NAME: not found", bash "bash: line 1: NAME: command not found".
_NOT_FOUND = re.compile(rb"^(?:\S*sh|\S+): (?:line )?\d+: (.+?): (?:command )?not found\s*$", re.MULTILINE)


def not_found_name(job: Job) -> str:
    """The program a command step could not find: from the shell's message in its log,
    or else the command's first word."""
    try:
        with open(job.log_path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            found = _NOT_FOUND.findall(f.read())
    except OSError:
        found = []
    if found:
        return found[-1].decode("utf-8", "replace")
    command = job.step.command
    if isinstance(command, str):
        words = command.split()
        return words[0] if words else command
    assert command is not None
    return command[0]


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
