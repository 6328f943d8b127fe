"""Cron schedules in a time zone: when a batch fires, and which business date it runs for.

Pure time arithmetic. Every function takes the instant it reasons about as an argument and
never reads the clock, so each rule is tested with fixed instants in real zones.

How a cron expression meets daylight saving time (the product contract, design.md):

- Spring forward: wall times inside the gap never happen. A fixed-time schedule whose time
  falls in the gap fires once, at the first valid moment after the gap ("shift"), or not at
  all that night ("skip").
- Fall back: wall times in the repeated hour happen twice. A fixed-time schedule fires once,
  at the first ("first") or the second ("last") occurrence; never twice.
- A schedule whose hour field starts with `*` (`*/30 * * * *`, `0 */2 * * *`, `@hourly`)
  is an interval, not a time of day: it fires at every real instant whose wall time matches,
  so in both copies of the repeated hour and at no wall time inside the gap. This is what
  Debian cron and cronsim do with a `*` in the hour field. (They also treat a `*` in the
  minute field alone, like `*/15 1 * * *`, as an interval; we do not: a fixed hour is a time
  of day, and a time of day in the gap must still run once under "shift".)
- Two wall times that land on the same instant (a shifted 02:30 and a real 03:00) make one
  fire, the earlier-named one.

cronsim parses and matches the expression. We iterate it over naive wall-clock times (in
that mode it does no DST handling of its own) and place each wall time on the time line
ourselves, with the policies above.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from overnight.config import DstGap, DstRepeat

# The words of overnight.toml's dst_gap and dst_repeat (config.py states them once).
GAP_POLICIES = get_args(DstGap)
REPEAT_POLICIES = get_args(DstRepeat)

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# (name, lowest, highest) of the five fields, in order; the names are cronsim's own.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)


class ScheduleError(ValueError):
    """A schedule setting that cannot be used; `field` names the setting."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        super().__init__(f"{field} {value!r}: {problem}")
        self.field = field
        self.value = value


@dataclass(frozen=True)
class Schedule:
    """A cron expression in a time zone, with the daylight saving policies.

    Constructing one validates it; `Schedule.parse` also looks the zone up by name.
    """

    expr: str
    zone: ZoneInfo
    gap: str = "shift"
    repeat: str = "first"
    date_offset_days: int = 1
    cron: str = field(init=False, repr=False, compare=False)  # five fields, alias expanded

    def __post_init__(self) -> None:
        if not isinstance(self.zone, ZoneInfo):
            raise ScheduleError("timezone", self.zone, "must be a zoneinfo.ZoneInfo")
        _check_choice("dst_gap", self.gap, GAP_POLICIES)
        _check_choice("dst_repeat", self.repeat, REPEAT_POLICIES)
        if type(self.date_offset_days) is not int:
            raise ScheduleError("date_offset_days", self.date_offset_days, "must be a whole number")
        object.__setattr__(self, "cron", _cron_fields(self.expr))

    @classmethod
    def parse(
        cls,
        expr: str,
        timezone: str,
        gap: str = "shift",
        repeat: str = "first",
        date_offset_days: int = 1,
    ) -> Schedule:
        """Build a schedule from configuration values; raise ScheduleError naming the bad one."""
        return cls(expr, _zone(timezone), gap, repeat, date_offset_days)

    @property
    def times_a_day(self) -> int:
        """How many wall times of a day the expression names (its minutes times its hours)."""
        sim = CronSim(self.cron, datetime(2000, 1, 1))
        return len(sim.minutes) * len(sim.hours)

    @property
    def is_interval(self) -> bool:
        """True when the hour field starts with `*`: fires in both copies of a repeated hour."""
        return self.cron.split()[1].startswith("*")


@dataclass(frozen=True, eq=False)
class Fire:
    """One time a schedule fires.

    `at` is aware and in the schedule's zone. Careful: Python compares two datetimes that
    share a tzinfo by wall time alone, ignoring `fold`, so 01:30 EDT == 01:30 EST there.
    Compare `at` with `.timestamp()` or against a UTC datetime. Fire itself compares and
    hashes by the real instant.
    """

    at: datetime  # the instant it fires
    date: date  # the business date it runs for, from the scheduled wall-clock date
    nominal: datetime  # naive wall time the expression named (02:30 even if shifted to 03:00)

    def _key(self) -> tuple[float, date, datetime]:
        return (self.at.timestamp(), self.date, self.nominal)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fire):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def next_fire(schedule: Schedule, after: datetime) -> Fire:
    """The first fire strictly after the aware instant `after` (in any zone)."""
    for fire in _fires(schedule, after):
        return fire
    raise ScheduleError("schedule", schedule.expr, f"never fires after {after.isoformat()}")


def fires_between(schedule: Schedule, start: datetime, end: datetime) -> list[Fire]:
    """Every fire with start < at <= end, in order; both bounds aware, in any zone."""
    _require_aware(end, "end")
    fires = []
    for fire in _fires(schedule, start):
        if fire.at.timestamp() > end.timestamp():
            break
        fires.append(fire)
    return fires


def _fires(schedule: Schedule, after: datetime) -> Iterator[Fire]:
    """Every fire strictly after `after`, in order, never two at one instant."""
    _require_aware(after, "after")
    local = after.astimezone(schedule.zone)
    start = local.replace(tzinfo=None) - _lookback(local)
    previous = after.timestamp()
    for at, nominal in _placed(schedule, start):
        if at.timestamp() <= previous:
            continue  # before `after`, or a shifted time landing on a fire already made
        previous = at.timestamp()
        yield Fire(at, nominal.date() - timedelta(days=schedule.date_offset_days), nominal)


def _placed(schedule: Schedule, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """(instant, wall time) for each wall time after the naive `start`, in order of instant.

    An instant may come twice in a row (two wall times shifted out of one gap).
    """
    zone, interval = schedule.zone, schedule.is_interval
    # Second copies of repeated wall times, for interval schedules: a heap by instant. They
    # come after later first copies (01:30 EST is after 01:45 EDT), so they wait here.
    later: list[tuple[float, datetime, datetime]] = []
    for wall in CronSim(schedule.cron, start):
        first = wall.replace(tzinfo=zone, fold=0)
        second = wall.replace(tzinfo=zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            at = first  # the usual case: the wall time happens exactly once
        elif _exists(first):  # fall back: the wall time happens twice
            if interval:
                at = first
                heapq.heappush(later, (second.timestamp(), second, wall))
            else:
                at = first if schedule.repeat == "first" else second
        elif interval or schedule.gap == "skip":  # spring forward: never happens
            continue
        else:
            at = _gap_end(wall, zone)
        while later and later[0][0] < at.timestamp():
            _, copy, copy_wall = heapq.heappop(later)
            yield copy, copy_wall
        yield at, wall
    while later:  # cronsim gave up (no match in 50 years)
        _, copy, copy_wall = heapq.heappop(later)
        yield copy, copy_wall


def _lookback(local: datetime) -> timedelta:
    """How far before `local`'s wall time a later instant's wall time can read.

    Only when clocks go back within the next day: just after 01:45 EDT comes 01:30 EST.
    """
    tomorrow = (local + timedelta(days=1)).astimezone(local.tzinfo)
    return max(local.utcoffset() - tomorrow.utcoffset(), timedelta(0))


def _exists(aware: datetime) -> bool:
    """False for a wall time that a spring-forward gap skips."""
    round_trip = aware.astimezone(UTC).astimezone(aware.tzinfo)
    return round_trip.replace(tzinfo=None) == aware.replace(tzinfo=None)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a spring-forward gap that skips the naive `wall` ends (03:00 EDT)."""
    # PEP 495: read with fold=1, a wall time in a gap takes the offset from after the jump,
    # which puts it before the jump; with fold=0 it takes the offset from before, after it.
    # The jump lies between; find it to the second.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    old = datetime.fromtimestamp(lo, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == old:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, zone)


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment.isoformat()}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ScheduleError(name, value, f"must be one of {', '.join(choices)}")


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone", name, "must be an IANA time zone name like 'Europe/Paris'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            "timezone", name, "unknown time zone; use an IANA name like 'America/Chicago'"
        ) from None


def _cron_fields(expr: str) -> str:
    """Validate a cron expression; return its five fields with an alias expanded."""
    if not isinstance(expr, str):
        raise ScheduleError("schedule", expr, "must be a string")
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise ScheduleError("schedule", expr, f"unknown alias; use one of {', '.join(ALIASES)}")
        return ALIASES[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise ScheduleError(
            "schedule",
            expr,
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}",
        )
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as e:
        raise ScheduleError("schedule", expr, _explain(parts, str(e))) from None
    return text


def _explain(parts: list[str], message: str) -> str:
    """Turn cronsim's "Bad minute" into which value of which field is wrong."""
    for (name, lowest, highest), token in zip(_FIELDS, parts, strict=True):
        if message != f"Bad {name}":
            continue
        # Numbers that name values (not the step after "/" or the nth after "#").
        for number in re.findall(r"(?<![/#\d])\d+", token):
            if not lowest <= int(number) <= highest:
                return f"{name} {int(number)} is out of range {lowest}-{highest}"
        if name == "day-of-month" and re.fullmatch(r"[\d,-]+", token):
            return f"day-of-month {token} never occurs in month {parts[3]}"
        return f"{name} {token!r} is not valid (values {lowest}-{highest}, *, a-b, a,b, */n)"
    return message
