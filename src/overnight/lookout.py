"""When an alert about a night is due, and what its subject says. Pure: instants are
arguments (Unix times), so each rule is a table of cases (tests/test_lookout.py).

- "will be late": once, when the predicted finish first passes the deadline; again only
  when the prediction slips LATE_SLIP more than the last one announced; never once the
  deadline itself has passed (then "missed deadline" is the news).
- "missed deadline": once, when the deadline passes and the run is not finished.
- "running long": once per step still running at LONG_RATIO times its usual duration,
  for steps whose usual duration is at least LONG_MINIMUM, and only when that comes
  before the step's timeout (the timeout is news enough).

Whoever sends an alert first records it under (batch, date, kind, key): the ledger makes
each one once, whichever process (runner, scheduler) gets there first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

LATE = "late"
MISSED = "missed"
LONG = "long"

LATE_SLIP = 15 * 60.0
LONG_RATIO = 3.0
LONG_MINIMUM = 60.0


def late_alert_due(
    finish: float | None, deadline: float | None, now: float, announced: Sequence[float],
) -> bool:
    """Whether a "will be late" alert goes out for a prediction of `finish` made at `now`;
    `announced`: the predicted finishes earlier "will be late" alerts of the night named."""
    if finish is None or deadline is None or now >= deadline or finish <= deadline:
        return False
    return not announced or finish >= max(announced) + LATE_SLIP


def late_key(announced: Sequence[float]) -> str:
    """The key of the next "will be late" alert: the first is 1, each slip the next."""
    return str(len(announced) + 1)


def long_alert_after(
    usual: float | None, timeout: float | None, minimum: float = LONG_MINIMUM,
) -> float | None:
    """Seconds after its start at which a step still running is "running long", or None."""
    if usual is None or usual < minimum:
        return None
    after = LONG_RATIO * usual
    if timeout is not None and timeout <= after:
        return None
    return after


# -- what the alerts say ----------------------------------------------------------------


def wall_clock(instant: float, zone: ZoneInfo | None, *, seconds: bool, day_of: float | None = None) -> str:
    """An instant as the batch's wall time (`zone`; None: the machine's): 07:10 (07:10:05
    with `seconds`), with its date in front when it falls on another day than `day_of`."""
    moment = datetime.fromtimestamp(instant, zone)
    text = moment.strftime("%H:%M:%S" if seconds else "%H:%M")
    if day_of is not None and datetime.fromtimestamp(day_of, zone).date() != moment.date():
        text = f"{moment.date().isoformat()} {text}"
    return text


def _prefix(batch: str, run_date: str) -> str:
    return f"Overnight for {run_date}: {batch}"


def finish_text(finish: float | None, deadline: float | None, partial: bool, unknown: int,
                zone: ZoneInfo | None = None, now: float | None = None) -> str:
    """"predicted finish 05:12 (deadline 06:00)", "at least 05:40; 3 steps have no history"."""
    fine = deadline is not None and has_seconds(deadline, zone)
    limit = ""
    if deadline is not None:
        late = finish is not None and finish > deadline
        limit = f" (deadline {wall_clock(deadline, zone, seconds=fine)}{', late' if late else ''})"
    if finish is None:
        return f"no predicted finish yet: no step still to run has history{limit}"
    day = deadline if deadline is not None else now
    clock = wall_clock(finish, zone, seconds=fine, day_of=day)
    text = f"predicted finish {'at least ' if partial else ''}{clock}{limit}"
    if partial:
        text += f"; {unknown} step{'s have' if unknown != 1 else ' has'} no history"
    return text


def late_subject(batch: str, run_date: str, finish: float, deadline: float, zone: ZoneInfo,
                 partial: bool = False) -> str:
    fine = has_seconds(deadline, zone)
    at_least = "at least " if partial else ""
    return (
        f"{_prefix(batch, run_date)}: will be late (predicted {at_least}"
        f"{wall_clock(finish, zone, seconds=fine, day_of=deadline)}, "
        f"deadline {wall_clock(deadline, zone, seconds=fine)})"
    )


def missed_subject(batch: str, run_date: str, deadline: float, zone: ZoneInfo, why: str) -> str:
    """`why`: "not finished", "not started", "crashed"..."""
    clock = wall_clock(deadline, zone, seconds=has_seconds(deadline, zone))
    return f"{_prefix(batch, run_date)}: missed deadline ({clock}, {why})"


def long_subject(batch: str, run_date: str, step: str, ran: float, usual: float) -> str:
    from overnight.durations import format_duration

    return (
        f"{_prefix(batch, run_date)}: running long: {step} "
        f"({format_duration(ran)}, usually {format_duration(usual)})"
    )


def has_seconds(instant: float, zone: ZoneInfo | None) -> bool:
    return datetime.fromtimestamp(instant, zone).second != 0
