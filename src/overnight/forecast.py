"""When will the night be done: the runner's own launch, played forward on usual durations.

A pure function of what the runner knows at a step boundary: which steps are still to
finish, what each still waits for, how long the running ones have run, each step's usual
duration (the median of its last successful attempts), the runner's order among ready
steps (planner's rank) and its worker limit. Nothing here reads the clock or the ledger:
`now` is an argument, so the rules are tested with fixed instants (tests/test_forecast.py).

The play-forward is the runner's own loop on a simulated clock: steps that end at the
same instant are settled together, each releases its dependents, and free workers take
the ready steps lowest rank first, exactly as `Runner._claim_ready` does. So the estimate
follows the runner's ordering whatever it becomes (declaration order, priority=, the
critical path), without a second copy of it here.

What it does not know it says: a step without history counts as 0 s and makes the
estimate partial ("at least 05:40; 3 steps have no history"); a running step that has
outrun its median counts as ending now; retries are not predicted.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median

# How many of a step's latest successful attempts "usual" is the median of.
HISTORY_ATTEMPTS = 14


@dataclass(frozen=True)
class Forecast:
    made_at: float                   # the instant the prediction was made (Unix time)
    finish: float                    # predicted end of the launch; a lower bound when partial
    unknown: tuple[str, ...]         # steps still to finish that have no history (counted 0 s)
    critical_path: tuple[str, ...]   # the chain the finish waits on, first to last

    @property
    def partial(self) -> bool:
        return bool(self.unknown)


def usual_durations(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each step's usual duration: the median of the successful attempts in `history`
    (its latest HISTORY_ATTEMPTS, newest first). Steps without any are left out."""
    return {name: median(seconds[:HISTORY_ATTEMPTS]) for name, seconds in history.items() if seconds}


def predict_finish(
    *,
    now: float,
    remaining: Iterable[str],
    waiting: Mapping[str, int],
    running: Mapping[str, float],
    usual: Mapping[str, float],
    rank: Mapping[str, int],
    dependents: Mapping[str, Sequence[str]],
    workers: int,
) -> Forecast:
    """Play the rest of the launch forward from `now`.

    `remaining`: the steps the launch still has to finish (running or pending), in
    declaration order; `waiting`: per pending step, its prerequisites not done yet among
    the steps the launch runs (the runner's own count); `running`: per running step, the
    seconds it has run; `usual`: per step with history, its usual duration in seconds.
    """
    order = {name: i for i, name in enumerate(remaining)}
    unknown = tuple(n for n in order if n not in usual)
    left = {n: waiting.get(n, 0) for n in order if n not in running}
    ends: list[tuple[float, int, str]] = []   # (end, declaration index, step): the simulated runs
    finished: dict[str, float] = {}
    because: dict[str, str | None] = {}      # the end that let each step start (None: at once)
    released_by: dict[str, str] = {}         # the prerequisite whose end made it ready
    for name, elapsed in running.items():
        if name in order:
            end = now + max(0.0, usual.get(name, 0.0) - elapsed)
            heapq.heappush(ends, (end, order[name], name))
            because[name] = None
    ready = [(rank.get(n, order[n]), order[n], n) for n, count in left.items() if count == 0]
    heapq.heapify(ready)
    free = workers - len(ends)  # below zero when re-attached steps outnumber the workers
    clock, ended_now = now, None

    def claim() -> None:
        nonlocal free
        while ready and free > 0:
            _, index, name = heapq.heappop(ready)
            free -= 1
            heapq.heappush(ends, (clock + usual.get(name, 0.0), index, name))
            # Made ready by the end just settled: that end is what it waited on. Ready
            # earlier: it waited for a worker, which the end just settled gave it.
            because[name] = released_by.get(name) if released_by.get(name) in settled else ended_now

    settled: set[str] = set()
    claim()
    while ends:
        clock = ends[0][0]
        settled = set()
        while ends and ends[0][0] == clock:
            _, _, name = heapq.heappop(ends)
            finished[name] = clock
            settled.add(name)
            ended_now = name
            free += 1
            for dep in dependents.get(name, ()):
                if dep in left:
                    left[dep] -= 1
                    if left[dep] == 0:
                        released_by[dep] = name
                        heapq.heappush(ready, (rank.get(dep, order[dep]), order[dep], dep))
        claim()
    if not finished:
        return Forecast(now, now, unknown, ())
    last = max(finished, key=lambda n: (finished[n], order[n]))
    return Forecast(now, finished[last], unknown, _chain_to(last, because))


def _chain_to(last: str, because: Mapping[str, str | None]) -> tuple[str, ...]:
    chain = [last]
    seen = {last}
    while (before := because.get(chain[-1])) is not None and before not in seen:
        chain.append(before)
        seen.add(before)
    return tuple(reversed(chain))
