"""The last nights of a batch by its steps: the dashboard's history grid. Three queries
whatever the number of nights (ledger.history_grid)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from overnight.ledger import GridCell, Ledger, RunRow
from overnight.readmodel.liveness import liveness, step_seen


@dataclass(eq=False)
class GridView:
    """The last nights of a batch by its steps: the dashboard's history page."""

    nights: list[tuple[str, str]]  # (date, the run's state as seen), newest first
    steps: list[str]  # the newest night's steps in its order, then steps only older nights had
    states: dict[tuple[str, str], str]  # (date, step): the step's state as seen
    durations: dict[tuple[str, str], float | None]  # (date, step): its last attempt's


def grid_view(ledger: Ledger, batch: str, nights: int) -> GridView:
    """Three queries whatever the number of nights (ledger.history_grid)."""
    live = liveness(ledger)
    runs, cells = ledger.history_grid(batch, nights)
    return shape_grid(runs, cells, lambda run: live.run_state(run.batch, run.state))


def shape_grid(
    runs: list[RunRow], cells: list[GridCell], run_state: Callable[[RunRow], str]
) -> GridView:
    night = {r.id: (r.date, run_state(r)) for r in runs}
    age = {r.id: i for i, r in enumerate(runs)}  # 0: the newest night
    newest_position: dict[str, tuple[int, int]] = {}
    states: dict[tuple[str, str], str] = {}
    durations: dict[tuple[str, str], float | None] = {}
    for run_id, step, position, state, started, ended, remote_id in cells:
        if run_id not in night:
            continue
        day, seen = night[run_id]
        states[(day, step)] = step_seen(state, seen, remote_id is not None)
        durations[(day, step)] = (ended - started) if (started is not None and ended is not None) else None
        known = newest_position.get(step)
        if known is None or age[run_id] < known[0]:
            newest_position[step] = (age[run_id], position)
    names = sorted(newest_position, key=lambda s: (*newest_position[s], s))
    return GridView([night[r.id] for r in runs], names, states, durations)
