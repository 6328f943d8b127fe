"""What the scheduler does with the fires due since a batch's cursor: a pure function of
those fires, the instant, the batch's catch-up and overlap policies and whether the batch
is busy. No clock, no ledger: every rule is tested with fixed instants.

Every fire ends as one record, and every fire that does not become a run is reported:

- a fire that can start now is `launched` (on time) or `caught_up` (late);
- one that must wait (the batch is busy and `overlap = "queue"`, or an earlier date of
  `catchup = "all"` goes first) is `queued`: kept in the ledger and launched as soon as the
  batch is free, by whichever pass of the scheduler (daemon or `--once`) finds it free;
- one that finds the batch busy with `overlap = "skip"` is `skipped_running`, reported;
- the others are `missed`, reported; consecutive misses for the same reason are one
  record ("missed 8,871 fires from ... to ..."), not one per fire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from overnight.scheduling.cron import Fire
from overnight.scheduling.schedules import format_instant

# Fire outcomes, as recorded in the ledger's `fires` table.
LAUNCHED = "launched"                # started on time
CAUGHT_UP = "caught_up"              # started late: missed while the daemon was down or asleep
QUEUED = "queued"                    # waits for the batch to be free; launched by a later pass
MISSED = "missed"                    # never started: catch-up policy or window; a gap of them
SKIPPED_RUNNING = "skipped_running"  # not started: the batch was busy and overlap = "skip"
FAILED_TO_LAUNCH = "failed_to_launch"  # the process could not be started
ALREADY_DONE = "already_done"        # a queued fire whose run succeeded while it waited
REANCHORED = "reanchored"            # not a fire: the clock read before the cursor (a note)

# The outcomes of a fire that did not become a run: each is reported once.
REPORTED = frozenset({MISSED, SKIPPED_RUNNING, FAILED_TO_LAUNCH})

# A fire handled within this long of its time is on time; later, it was missed (the daemon
# was down, the machine asleep, or the clock stepped forward) and the catch-up policy decides.
LATE_GRACE = 300.0


@dataclass(frozen=True)
class Decision:
    fire: Fire                  # the fire, or the first fire of a gap
    outcome: str
    message: str | None = None
    last: Fire | None = None    # a gap: its last fire
    count: int = 1              # how many fires this decision stands for
    report: bool = False        # a report is owed: the night will not run

    @property
    def launches(self) -> bool:
        return self.outcome in (LAUNCHED, CAUGHT_UP)

    @property
    def waits(self) -> bool:
        """Recorded queued: launched now (`launches`) or by a later pass."""
        return self.launches or self.outcome == QUEUED

    @property
    def until(self) -> Fire:
        return self.last or self.fire


def plan_fires(
    due: Sequence[Fire], now: datetime, *, catchup: str, window: float, busy: str | None,
    overlap: str = "queue",
) -> list[Decision]:
    """What to do with the fires due since the cursor (oldest first), at instant `now`.

    `busy` says who holds the batch (a live launch, or a queued fire launched first), or
    is None when it is free. At most one fire starts now: two launches of one batch
    cannot run at once; the others wait in the queue or are skipped, by `overlap`.
    """
    if not due:
        return []
    now_ts = now.timestamp()
    starters = _starters(due, now_ts, catchup, window)
    decisions: list[Decision] = []
    first: Fire | None = None
    for fire in due:
        if fire in starters and busy is None and first is not None:
            # catchup = all: the later dates wait their turn, whatever overlap says.
            decisions.append(Decision(fire, QUEUED, f"waits its turn: the fire for {first.date} goes first"))
        elif fire in starters:
            decisions.append(_start(fire, now_ts, busy, overlap))
            first = first or fire
        else:
            # Not a lost night when its date runs anyway, with a later fire.
            at = fire.at.timestamp()
            runs_anyway = any(s.date == fire.date and s.at.timestamp() > at for s in starters)
            why = _why_not(fire, due, starters, now_ts, catchup, window)
            decisions.append(Decision(fire, MISSED, why, report=not runs_anyway))
    return _gaps(decisions)


def _starters(due: Sequence[Fire], now_ts: float, catchup: str, window: float) -> set[Fire]:
    last = due[-1]
    age = now_ts - last.at.timestamp()
    if catchup == "all":
        # Every missed date, once: with its last fire (a schedule that fired twice for it).
        return {fire for fire in {f.date: f for f in due}.values()}
    if age <= LATE_GRACE or (catchup == "latest" and age <= window):
        return {last}
    return set()


def _start(fire: Fire, now_ts: float, busy: str | None, overlap: str) -> Decision:
    if busy is None:
        late = now_ts - fire.at.timestamp() > LATE_GRACE
        return Decision(fire, CAUGHT_UP if late else LAUNCHED)
    if overlap == "skip":
        return Decision(fire, SKIPPED_RUNNING, f"the batch was busy: {busy}; overlap = skip", report=True)
    return Decision(fire, QUEUED, f"waits for the batch to be free: {busy}")


def _why_not(
    fire: Fire, due: Sequence[Fire], starters: set[Fire], now_ts: float, catchup: str, window: float
) -> str:
    later = [s for s in starters if s.at.timestamp() > fire.at.timestamp()]
    same_date = [s for s in later if s.date == fire.date]
    if same_date and catchup == "all":
        return f"{fire.date} runs once, with the fire at {format_instant(same_date[0].at)}"
    age = now_ts - fire.at.timestamp()
    if age <= LATE_GRACE or (later and catchup == "latest" and age <= window):
        return f"superseded by the fire at {format_instant(due[-1].at)}"
    if catchup == "none":
        return "the scheduler was not running then, and catchup = none"
    return f"the scheduler was not running then; older than catchup_window ({_hours(window)})"


def _gaps(decisions: list[Decision]) -> list[Decision]:
    """Consecutive misses for the same reason as one decision: one record per gap."""
    out: list[Decision] = []
    for d in decisions:
        prev = out[-1] if out else None
        if prev is not None and d.outcome == MISSED == prev.outcome and d.message == prev.message:
            out[-1] = Decision(prev.fire, MISSED, prev.message, d.fire, prev.count + 1, prev.report)
        else:
            out.append(d)
    return out


def describe(decision: Decision) -> str:
    """The decision in words, for the log, `history` and the dry run."""
    d = decision
    if d.count == 1:
        return f"for {d.fire.date}: {d.message}" if d.message else f"for {d.fire.date}"
    assert d.last is not None
    return (
        f"{d.count:,} fires from {format_instant(d.fire.at)} to {format_instant(d.last.at)} "
        f"(for {d.fire.date} to {d.last.date}): {d.message}"
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m"
