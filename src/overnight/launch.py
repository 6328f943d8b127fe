"""What a launch is asked to do (RunOptions) and what it says it did (LaunchResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from overnight.states import RunState


@dataclass
class RunOptions:
    date: date
    workers: int = 1
    rerun: list[str] = field(default_factory=list)
    downstream: bool = False
    fresh: bool = False
    fail_fast: bool = False
    ignore_after: bool = False   # start without waiting for the batches of after= (config)
    trigger: str = "manual"
    launched_by: str = "unknown"


@dataclass
class LaunchResult:
    run_id: int
    launch_id: int
    state: RunState
    exit_code: int
    counts: dict[str, int]
    held: list[str]
    elapsed: float


def options_record(opts: RunOptions) -> dict[str, object]:
    """The options as the launch's record keeps them (what differs from a plain run)."""
    record: dict[str, object] = {"workers": opts.workers}
    if opts.rerun:
        record["rerun"] = opts.rerun
        record["downstream"] = opts.downstream
    if opts.fresh:
        record["fresh"] = True
    if opts.fail_fast:
        record["fail_fast"] = True
    if opts.ignore_after:
        record["ignore_after"] = True
    return record
