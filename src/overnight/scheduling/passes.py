"""One pass of the scheduler over one batch, decided before anything is done: what the
daemon and `scheduler --once` then apply, and what `scheduler --once --dry-run` prints.

It reads the ledger (the batch's queue, the records a clock that went back must not fire
again, whether a waiting night was done meanwhile) and never writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from overnight.config import Config
from overnight.ledger import FireRow, Ledger
from overnight.scheduling.cron import Fire, Schedule, fires_between
from overnight.scheduling.plan import Decision, plan_fires
from overnight.scheduling.schedules import format_instant
from overnight.states import RunState


@dataclass
class BatchPass:
    name: str
    now: datetime
    cursor: float | None                    # as found; None: the first pass for the batch
    note: str | None = None                 # the clock read before the cursor: re-anchored
    launch_queued: FireRow | None = None    # a waiting fire to launch now: the batch is free
    done_meanwhile: list[FireRow] = field(default_factory=list)  # waiting fires whose run succeeded
    decisions: list[Decision] = field(default_factory=list)
    waiting: int = 0                        # fires still queued after this pass

    @property
    def first(self) -> bool:
        return self.cursor is None

    @property
    def launching(self) -> Decision | None:
        """The fire due now that starts at once (the batch free, nothing queued before it)."""
        return next((d for d in self.decisions if d.launches), None)


def plan_pass(
    config: Config, ledger: Ledger | None, name: str, schedule: Schedule, cursor: float | None,
    now: datetime, busy: Callable[[str], str | None],
) -> BatchPass:
    """What one pass at `now` does for batch `name`. `busy(name)` says who holds the
    batch (None: free); it is asked only when something could start."""
    now_ts = now.timestamp()
    p = BatchPass(name, now, cursor)
    if cursor is None:
        return p  # the first time: watch from now, nothing before counts as missed
    if cursor > now_ts:
        # The clock went back (an NTP step, a correction after a jump forward, a --now in
        # the past): watch again from now. Fires already recorded up to the cursor are not
        # fired again (recorded_spans); any other fire in that stretch still will be.
        p.note = (
            f"the clock reads {format_instant(now.astimezone(schedule.zone))}, before the "
            f"instant up to which fires were handled ({format_instant(_local(cursor, schedule))}): "
            "watching again from now; fires already recorded in between do not fire again"
        )
        cursor = now_ts
    holder = _Holder(busy, name)
    if ledger is not None:
        _plan_queue(p, ledger, holder)
    due = fires_between(schedule, datetime.fromtimestamp(cursor, UTC), now) if cursor < now_ts else []
    if due and ledger is not None:
        due = _not_recorded(due, ledger.recorded_spans(name, cursor, now_ts))
    if due:
        bc = config.batches[name]
        p.decisions = plan_fires(
            due, now, catchup=bc.catchup, window=bc.catchup_window, busy=holder.ask(), overlap=bc.overlap
        )
    p.waiting += sum(1 for d in p.decisions if d.waits and not d.launches)
    return p


class _Holder:
    """Who holds the batch, asked once, and only if needed."""

    def __init__(self, busy: Callable[[str], str | None], name: str) -> None:
        self.busy, self.name = busy, name
        self.asked = False
        self.answer: str | None = None

    def ask(self) -> str | None:
        if not self.asked:
            self.asked, self.answer = True, self.busy(self.name)
        return self.answer

    def take(self, what: str) -> None:
        self.asked, self.answer = True, what


def _plan_queue(p: BatchPass, ledger: Ledger, holder: _Holder) -> None:
    """The oldest waiting fire starts when the batch is free; one whose run succeeded
    while it waited (someone ran that date) has nothing left to do."""
    queued = ledger.queued_fires(p.name)
    for i, row in enumerate(queued):
        if holder.ask() is not None:
            p.waiting = len(queued) - i
            return
        run = ledger.find_run(p.name, row.date)
        if run is not None and run.state == RunState.SUCCEEDED.value:
            p.done_meanwhile.append(row)
            continue
        p.launch_queued = row
        holder.take(f"the queued fire for {row.date}, launched now")
        p.waiting = len(queued) - i - 1
        return


def _not_recorded(due: list[Fire], spans: list[tuple[float, float]]) -> list[Fire]:
    if not spans:
        return due
    return [f for f in due if not any(a <= f.at.timestamp() <= b for a, b in spans)]


def _local(ts: float, schedule: Schedule) -> datetime:
    return datetime.fromtimestamp(ts, schedule.zone)


def holder_text(state_dir: Path, name: str) -> str | None:
    """Who holds the batch's lock, in words, or None when it is free."""
    from overnight.lock import holder

    info = holder(state_dir, name)
    if info is None:
        return None
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} (for {info.get('date')})"
