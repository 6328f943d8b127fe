"""Batch-to-batch: `after = ["all"]` in a batch's table of overnight.toml.

A launch of `backups` for a date waits, its steps unstarted, until the run of `all` for the
same date has succeeded, then goes on within RECHECK seconds; it says what it waits for in
its launch's record (`status`, the dashboard). If that run failed (or was cancelled, or
its runner died), or has not succeeded within `wait_up_to`, the launch ends blocked: its
steps are recorded blocked with the reason, and the launch failed (exit 1). The operator
can pass `--ignore-after`. Cycles between batches are refused when the config is read
(`find_cycle`). The rule is the pure `judge_after`; the rest reads the ledger and locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overnight.durations import format_duration
from overnight.states import RunState

# Seconds between two looks at the runs waited for. Their launches are other processes,
# with nothing to wake this one; the ledger read is a few indexed queries.
RECHECK = 0.5


@dataclass(frozen=True)
class OtherRun:
    """The run of a batch this one comes after, for the same date, as seen now."""

    batch: str
    state: RunState | None   # as recorded; None: no run of it for the date yet
    live: bool               # a launch of it is alive now (its lock is held)


@dataclass(frozen=True)
class AfterVerdict:
    go: bool
    waiting: str | None = None   # what the launch waits for, as status says it
    blocked: str | None = None   # why the launch ends blocked


def judge_after(others: Sequence[OtherRun], run_date: str) -> AfterVerdict:
    """Whether a launch of a batch with `after = [...]` may start its steps: when each run
    it comes after has succeeded; it waits while one is running or has not started; it is
    blocked when one ended otherwise (failed, cancelled, or its runner died)."""
    waiting: list[str] = []
    for other in others:
        if other.live or other.state is None:
            how = "is running" if other.live else "has not started"
            waiting.append(f"batch {other.batch} (its run for {run_date} {how})")
        elif other.state is not RunState.SUCCEEDED:
            ended = RunState.CRASHED if other.state is RunState.RUNNING else other.state
            return AfterVerdict(False, blocked=f"batch {other.batch} for {run_date} {ended}")
    if waiting:
        return AfterVerdict(False, waiting="waiting for " + ", ".join(waiting))
    return AfterVerdict(True)


@dataclass(frozen=True)
class AfterBatches:
    """What a launch of a batch waits for: the runs of `batches` for its date."""

    state_dir: Path
    batches: Sequence[str]
    wait_up_to: float

    def look(self, ledger: Any, run_date: str) -> AfterVerdict:
        from overnight.lock import holder

        others = []
        for batch in self.batches:
            run = ledger.find_run(batch, run_date)
            others.append(OtherRun(batch, RunState(run.state) if run else None,
                                   holder(self.state_dir, batch) is not None))
        return judge_after(others, run_date)

    def too_late(self, run_date: str) -> str:
        names = ", ".join(f"batch {b}" for b in self.batches)
        return f"{names} for {run_date} had not succeeded within {format_duration(self.wait_up_to)}"


def wait_for_batches(
    gate: AfterBatches, ledger: Any, run_date: str, launch_id: int, *,
    sleep: Callable[[float], None], cancelled: Callable[[], bool], said: Callable[[str], None],
) -> str | None:
    """Wait until the launch may start its steps: None when it may (or it was cancelled
    meanwhile), else why it ends blocked. `sleep(s)` waits in the runner's event loop (a
    signal ends it at once); `said` tells the operator what it waits for, once each."""
    deadline = time.monotonic() + gate.wait_up_to
    noted = None
    while not cancelled():
        verdict = gate.look(ledger, run_date)
        if verdict.go or verdict.blocked:
            if noted is not None:
                with ledger.transaction():
                    ledger.set_launch_message(launch_id, None)
            return verdict.blocked
        left = deadline - time.monotonic()
        if left <= 0:
            return gate.too_late(run_date)
        if verdict.waiting != noted:
            noted = verdict.waiting
            with ledger.transaction():
                ledger.set_launch_message(launch_id, noted)
            said(noted or "")
        sleep(min(RECHECK, left))
    return None


def find_cycle(after: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle of batches each waiting for the next, as names ending where it started."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: no cycle through it
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for other in after.get(name, ()):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (found := visit(other)):
                return found
        path.pop()
        state[name] = 2
        return None

    for name in after:
        if name not in state and (found := visit(name)):
            return found
    return None
