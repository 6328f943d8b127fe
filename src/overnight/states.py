"""Step, attempt, launch and run states; the tables of allowed step and run transitions."""

from __future__ import annotations

from enum import StrEnum

from overnight.errors import InvalidTransition


class StepState(StrEnum):
    PENDING = "pending"          # not started in this launch yet (or waiting for a retry)
    RUNNING = "running"          # an attempt is executing
    SUCCEEDED = "succeeded"      # finished successfully (or an operator marked it done)
    FAILED = "failed"            # its last attempt failed and no retry is left
    TIMED_OUT = "timed_out"      # its last attempt ran past its timeout and was stopped
    INTERRUPTED = "interrupted"  # the runner died while it ran; found by the next launch
    CANCELLED = "cancelled"      # stopped by SIGINT/SIGTERM or `overnight cancel`
    BLOCKED = "blocked"          # a prerequisite did not succeed
    SKIPPED = "skipped"          # its `when` was false, or an operator said skip
    ADOPTED = "adopted"          # its work was done before overnight ran it (adopt_if: Luigi's output)

    @property
    def is_done(self) -> bool:
        """Done steps let their dependents go on and are not run again by a resume."""
        return self in (StepState.SUCCEEDED, StepState.SKIPPED, StepState.ADOPTED)


class RunState(StrEnum):
    """The state of a run (one batch for one date), and of each launch of it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"      # the runner died; the next launch found it


# The step states that count as "failed" wherever a person is told about a run (status
# notes, the report's "Failed" list and subject, backfill's digest): it ran and did not
# succeed. Blocked and pending steps did not run; they are counted apart.
FAILED_STATES = frozenset(
    {StepState.FAILED, StepState.TIMED_OUT, StepState.INTERRUPTED, StepState.CANCELLED}
)

S = StepState

# Every state change of a step goes through check_step_transition (called by the ledger's
# one writer); anything not listed here is a bug.
STEP_TRANSITIONS: dict[StepState, frozenset[StepState]] = {
    # FAILED: its when= raised or exited, so it never started
    S.PENDING: frozenset({S.RUNNING, S.SKIPPED, S.BLOCKED, S.SUCCEEDED, S.PENDING, S.FAILED, S.ADOPTED}),
    # running -> skipped: a wait step whose time ran out with on_timeout="skip".
    S.RUNNING: frozenset(
        {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.INTERRUPTED, S.CANCELLED, S.PENDING, S.SKIPPED}
    ),
    # A resume, a --rerun, --fresh or an operator's mark can take any settled state back.
    S.SUCCEEDED: frozenset({S.PENDING, S.SKIPPED}),
    S.SKIPPED: frozenset({S.PENDING, S.SUCCEEDED}),
    # Adopted once, the ledger is its record: a --rerun, --fresh or a mark may change it.
    S.ADOPTED: frozenset({S.PENDING, S.SUCCEEDED, S.SKIPPED}),
    S.FAILED: frozenset({S.PENDING, S.SUCCEEDED, S.SKIPPED}),
    S.TIMED_OUT: frozenset({S.PENDING, S.SUCCEEDED, S.SKIPPED}),
    S.INTERRUPTED: frozenset({S.PENDING, S.SUCCEEDED, S.SKIPPED}),
    S.CANCELLED: frozenset({S.PENDING, S.SUCCEEDED, S.SKIPPED}),
    S.BLOCKED: frozenset({S.PENDING, S.SUCCEEDED, S.SKIPPED}),
}


def after_runner_died(state: StepState, *, remote: bool) -> StepState:
    """What a step that a dead runner left in `state` is now.

    The one rule behind what the next launch records (the ledger's reap of dead launches)
    and what readers show before that launch comes (status, history, the dashboard). A
    local step died with its runner (the sentinel kills it); a step sent to a remote queue
    may still be running on its worker, and a later launch re-attaches to it.
    """
    if state is StepState.RUNNING and not remote:
        return StepState.INTERRUPTED
    return state


# A launch recorded live whose runner is gone, and its run, read and are recorded as this.
DEAD_LAUNCH_STATE = RunState.CRASHED


def check_step_transition(step: str, old: StepState, new: StepState) -> None:
    if new not in STEP_TRANSITIONS[old]:
        raise InvalidTransition(f"step {step!r}: {old} -> {new} is not allowed")


# -- run states: one table, one writer (ledger.set_run_state) -------------------------------

R = RunState

# A run is created running (by its first launch, or by a mark), and follows its launches:
# a launch starts it running and ends it succeeded, failed or cancelled; a launch whose
# runner died is found by the next one and recorded crashed. An operator's mark settles
# a run that is not live: succeeded once every step is done, failed when a done step is
# taken back. Anything not listed here is a bug.
_SETTLED_NEXT = frozenset({R.RUNNING, R.SUCCEEDED, R.FAILED})
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    # running -> running: a run just created (recorded running) gets its first launch.
    R.RUNNING: frozenset({R.RUNNING, R.SUCCEEDED, R.FAILED, R.CANCELLED, R.CRASHED}),
    R.SUCCEEDED: _SETTLED_NEXT,
    R.FAILED: _SETTLED_NEXT,
    R.CANCELLED: _SETTLED_NEXT,
    R.CRASHED: _SETTLED_NEXT,
}


def check_run_transition(run: str, old: RunState, new: RunState) -> None:
    if new not in RUN_TRANSITIONS[old]:
        raise InvalidTransition(f"run {run}: {old} -> {new} is not allowed")
