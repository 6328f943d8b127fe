"""What the ledger says about a run, read once, as the planner's input (planner.Snapshot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from overnight.ledger import Ledger
from overnight.planner import RunningAttempt, Snapshot
from overnight.states import StepState


def read_snapshot(
    ledger: Ledger,
    run_id: int,
    *,
    states: Mapping[str, StepState] | None = None,
    live_launch: int | None = None,
    dead_launches: Sequence[int] = (),
    history: Mapping[str, Sequence[float]] | None = None,
) -> Snapshot:
    """The run's step states, attempts left running and attempt numbers used, and the
    durations of its steps in recent nights (`history`, from read_history, when the caller
    has read it; the planner orders ready steps by them).

    `states` when the caller has just read them (the runner, from recording the steps).
    Who set each state is read only when some step is done: it is shown only for those
    ("skip (succeeded in launch 3)"), and a first launch of a long batch need not pay for it.
    """
    if states is None:
        states = ledger.step_states(run_id)
    set_by = (
        {row.name: row.launch_id for row in ledger.steps(run_id)}
        if any(s.is_done for s in states.values()) else {}
    )
    running = tuple(
        RunningAttempt(
            step=a.step, attempt_id=a.id, number=a.number, launch_id=a.launch_id,
            started_at=a.started_at, log_path=a.log_path, remote_id=a.remote_id,
        )
        for a in ledger.running_attempts(run_id)
    )
    return Snapshot(
        states=states, set_by=set_by, running=running, attempts=ledger.attempt_counts(run_id),
        live_launch=live_launch, dead_launches=tuple(dead_launches), history=history or {},
        marked=ledger.marked_steps(run_id),
    )


def read_history(ledger: Ledger, batch: str, run_date: str) -> dict[str, list[float]]:
    """Each step's successful attempt durations in the batch's latest nights before
    `run_date`: what the planner weighs the critical path with (planner.usual_durations)."""
    return ledger.step_durations(batch, run_date)
