"""Whose runner is alive, and what a dead runner's records read as: the one rule
(states.after_runner_died) that the next launch applies when it records them."""

from __future__ import annotations

from pathlib import Path

from overnight.ledger import LaunchRow, Ledger
from overnight.states import DEAD_LAUNCH_STATE, RunState, StepState, after_runner_died

RUNNING = RunState.RUNNING.value


class Liveness:
    """Whether a batch's runner is alive (someone holds its lock), asked once per batch."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._alive: dict[str, bool] = {}

    def alive(self, batch: str) -> bool:
        if batch not in self._alive:
            from overnight.lock import holder

            self._alive[batch] = holder(self.state_dir, batch) is not None
        return self._alive[batch]

    def run_state(self, batch: str, recorded: str) -> str:
        """A run's or launch's state as a reader should see it: recorded running with
        nobody holding the batch is what the next launch will record, crashed."""
        if recorded != RUNNING or self.alive(batch):
            return recorded
        return DEAD_LAUNCH_STATE.value

    def live_launch(self, ledger: Ledger, batch: str) -> LaunchRow | None:
        """The launch of `batch` that is running now, if its runner is alive."""
        launch = ledger.live_launch(batch)
        return launch if launch is not None and self.alive(batch) else None


def liveness(ledger: Ledger) -> Liveness:
    return Liveness(ledger.path.parent)


def step_seen(recorded: str, run_state: str, remote: bool) -> str:
    """A step's (or attempt's) state as seen: in a run whose runner died, the one rule."""
    if run_state != DEAD_LAUNCH_STATE.value:
        return recorded
    return after_runner_died(StepState(recorded), remote=remote).value
