"""An operator's word on a step (done, skip, redo), recorded with who and why."""

from __future__ import annotations

from datetime import date

from overnight.batch import with_downstream
from overnight.errors import ConfigError
from overnight.ledger import Ledger
from overnight.loader import LoadedBatch
from overnight.planner import run_state_after_marks
from overnight.states import RunState, StepState

TARGET = {"done": StepState.SUCCEEDED, "skip": StepState.SKIPPED, "redo": StepState.PENDING}


def apply_mark(
    ledger: Ledger,
    loaded: LoadedBatch,
    run_date: date,
    steps: list[str],
    action: str,
    downstream: bool,
    who: str,
    reason: str | None,
    *,
    resume_hint: str,
) -> list[tuple[str, StepState, StepState]]:
    """Change the steps' states in one transaction. Call while holding the batch's lock.
    `resume_hint`: the command that resumes this run (commandline.py writes it)."""
    batch = loaded.batch
    chosen = with_downstream(steps, batch.dependents()) if downstream else list(dict.fromkeys(steps))
    new = TARGET[action]
    changes: list[tuple[str, StepState, StepState]] = []
    with ledger.transaction():
        if ledger.find_run(batch.name, run_date.isoformat()) is None and not (
            new.is_done and set(chosen) >= set(batch.steps)
        ):
            # A run made by marks has no launch: unless the marks settle every step (the
            # run then succeeded: a night done by hand, or skipped ahead with
            # --allow-future), readers would take it for a night whose runner died.
            raise ConfigError(
                f"batch {batch.name!r} has no run for {run_date.isoformat()} yet: a mark before "
                f"it runs must settle every step (--done or --skip; --downstream from the first); "
                f"to run it: `{resume_hint}`"
            )
        ledger.reap_dead_launches(batch.name)
        run = ledger.ensure_run(batch.name, run_date.isoformat())
        states = ledger.sync_steps(run.id, loaded.order)
        note = f"marked {action} by {who}" + (f": {reason}" if reason else "")
        for name in chosen:
            old = states[name]
            if old is new:
                continue
            if old is StepState.RUNNING:  # on a remote queue, left by a launch that died
                raise ConfigError(
                    f"step {name!r} is still running on its queue since a launch that died: "
                    f"run `{resume_hint}` to collect its result first"
                )
            ledger.record_mark(run.id, name, action, old, new, who, reason)
            ledger.set_step_state(run.id, name, old, new, None, note)
            states[name] = new
            changes.append((name, old, new))
        run_state = run_state_after_marks(states, RunState(run.state), bool(changes))
        if run_state is not None:
            ledger.set_run_state(run.id, run_state)
    return changes
