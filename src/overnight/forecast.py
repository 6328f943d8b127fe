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
from collections.abc import Container, Iterable, Mapping, Sequence
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
    no_worker: Container[str] = frozenset(),
    needs: Mapping[str, Mapping[str, int]] | None = None,
    capacities: Mapping[str, int] | None = None,
) -> Forecast:
    """Play the rest of the launch forward from `now`.

    `remaining`: the steps the launch still has to finish (running or pending), in
    declaration order; `waiting`: per pending step, its prerequisites not done yet among
    the steps the launch runs (the runner's own count); `running`: per running step, the
    seconds it has run; `usual`: per step with history, its usual duration in seconds.
    As in the runner, a step in `no_worker` (a wait step) holds no worker, and a step that
    `needs` units of a resource pool starts only when its pool (of `capacities` units)
    has them free, letting the next ready step take the worker meanwhile.
    """
    play = _Playback(now, list(remaining), usual, rank, dependents, workers, no_worker,
                     needs or {}, capacities or {})
    play.left = {n: waiting.get(n, 0) for n in play.order if n not in running}
    for name, elapsed in running.items():
        if name in play.order:
            play.start(name, now + max(0.0, usual.get(name, 0.0) - elapsed))
    for name, count in play.left.items():
        if count == 0:
            play.make_ready(name)
    play.claim()
    while play.ends:
        play.settle_next()
        play.claim()
    unknown = tuple(n for n in play.order if n not in usual)
    if not play.finished:
        return Forecast(now, now, unknown, ())
    last = max(play.finished, key=lambda n: (play.finished[n], play.order[n]))
    return Forecast(now, play.finished[last], unknown, _chain_to(last, play.because))


class _Playback:
    """The runner's loop on a simulated clock: the state `predict_finish` plays forward."""

    def __init__(
        self, now: float, remaining: list[str], usual: Mapping[str, float], rank: Mapping[str, int],
        dependents: Mapping[str, Sequence[str]], workers: int, no_worker: Container[str],
        needs: Mapping[str, Mapping[str, int]], capacities: Mapping[str, int],
    ) -> None:
        self.order = {name: i for i, name in enumerate(remaining)}
        self.usual, self.rank, self.dependents = usual, rank, dependents
        self.no_worker, self.needs = no_worker, needs
        self.units = dict(capacities)             # free units per pool
        self.free = workers                       # below zero when re-attached steps outnumber them
        self.clock = now
        self.left: dict[str, int] = {}            # per pending step, prerequisites not done
        self.ends: list[tuple[float, int, str]] = []  # (end, declaration index, step)
        self.ready: list[tuple[int, int, str]] = []   # (rank, declaration index, step)
        self.ready_waits: list[tuple[int, int, str]] = []  # the same, of steps holding no worker
        self.finished: dict[str, float] = {}
        self.because: dict[str, str | None] = {}  # the end that let each step start (None: at once)
        self.released_by: dict[str, str] = {}     # the prerequisite whose end made it ready
        self.freed: dict[str, str] = {}           # per pool, a step just settled that gave units back
        self.ended_now: str | None = None

    def make_ready(self, name: str) -> None:
        index = self.order[name]
        entry = (self.rank.get(name, index), index, name)
        heapq.heappush(self.ready_waits if name in self.no_worker else self.ready, entry)

    def start(self, name: str, end: float) -> None:
        if name not in self.no_worker:
            self.free -= 1
        wants = self.needs.get(name) if self.needs else None
        if wants:
            for pool, count in wants.items():
                if pool in self.units:
                    self.units[pool] -= count
        heapq.heappush(self.ends, (end, self.order[name], name))
        # Made ready by an end just settled (at this instant): that end is what it waited
        # on. Ready earlier: it waited for a worker or pool units, which an end just gave.
        before = self.released_by.get(name)
        if before is None or self.finished.get(before) != self.clock:
            pools = [self.freed[p] for p in wants if p in self.freed] if wants else None
            before = pools[0] if pools else self.ended_now
        self.because[name] = before

    def pools_allow(self, name: str) -> bool:
        wants = self.needs.get(name) if self.needs else None
        return not wants or all(self.units.get(pool, count) >= count for pool, count in wants.items())

    def claim(self) -> None:
        """Start what may start now, as Runner._claim_ready does: every ready wait step (it
        holds no worker), then the others lowest rank first while a worker is free; one
        whose pool is full waits beside them without holding a worker."""
        usual, clock = self.usual, self.clock
        while self.ready_waits:
            name = heapq.heappop(self.ready_waits)[2]
            self.start(name, clock + usual.get(name, 0.0))
        parked = []
        while self.ready and self.free > 0:
            entry = heapq.heappop(self.ready)
            if self.pools_allow(entry[2]):
                self.start(entry[2], clock + usual.get(entry[2], 0.0))
            else:
                parked.append(entry)
        for entry in parked:
            heapq.heappush(self.ready, entry)

    def settle_next(self) -> None:
        """Every step that ends at the next instant, together, as the runner settles a wave."""
        ends, finished, left, dependents = self.ends, self.finished, self.left, self.dependents
        clock = self.clock = ends[0][0]
        if self.needs:
            self.freed = {}
        while ends and ends[0][0] == clock:
            name = heapq.heappop(ends)[2]
            finished[name] = clock
            self.ended_now = name
            if name not in self.no_worker:
                self.free += 1
            wants = self.needs.get(name) if self.needs else None
            if wants:
                for pool, count in wants.items():
                    if pool in self.units:
                        self.units[pool] += count
                        self.freed[pool] = name
            for dep in dependents.get(name, ()):
                if dep in left:
                    left[dep] -= 1
                    if left[dep] == 0:
                        self.released_by[dep] = name
                        self.make_ready(dep)


def _chain_to(last: str, because: Mapping[str, str | None]) -> tuple[str, ...]:
    chain = [last]
    seen = {last}
    while (before := because.get(chain[-1])) is not None and before not in seen:
        chain.append(before)
        seen.add(before)
    return tuple(reversed(chain))
