"""A batch's schedule as a crontab line for a cron that runs every line in the machine's
zone (Debian's cron ignores CRON_TZ): the same instants, written in that zone's wall time.

Pure: the instant to convert from and both zones are arguments. A schedule is one time of
day (config refuses more), so the line is its minute and hour moved by the difference
between the zones, and its day of week moved with them when that crosses midnight. Two
things cannot be written this way, and are said instead of printed wrong: a day of month
or a month that would have to move across a month's end, and zones that change their
clocks on different days (the line is right only until the next change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from overnight.scheduling.cron import Schedule, ScheduleError, next_fire

# How far ahead to look for a day on which the two zones' difference changes.
HORIZON_DAYS = 400


@dataclass(frozen=True)
class MachineLine:
    fields: str | None        # the five fields in the machine's zone; None: cannot be written
    problem: str | None = None  # why not, or until when it is right
    changes_on: date | None = None  # the first day the difference between the zones changes


def in_machine_zone(schedule: Schedule, machine: ZoneInfo, now: datetime) -> MachineLine:
    minute, hour, dom, month, dow = schedule.cron.split()
    try:
        fire = next_fire(schedule, now)
    except ScheduleError:
        return MachineLine(None, "it never fires again")
    first = _moved(fire.at, machine)
    changes_on = _first_change(schedule, machine, fire.at, first)
    m, h, days = first
    if days and (dom != "*" or month != "*"):
        return MachineLine(None, f"it moves to the {'next' if days > 0 else 'previous'} day in this "
                                 "machine's zone, and a day of month cannot move with it", changes_on)
    if days and (dow := _shift_weekdays(schedule.cron, days)) is None:
        return MachineLine(None, "it moves to another day in this machine's zone, and a last or "
                                 "nth weekday of the month cannot move with it", changes_on)
    return MachineLine(f"{m} {h} {dom} {month} {dow}", None, changes_on)


def _moved(at: datetime, machine: ZoneInfo) -> tuple[int, int, int]:
    """(minute, hour, days later) of the instant `at` on the machine's wall clock, against
    its own wall clock."""
    there = at.astimezone(machine)
    return there.minute, there.hour, (there.date() - at.date()).days


def _first_change(
    schedule: Schedule, machine: ZoneInfo, start: datetime, first: tuple[int, int, int]
) -> date | None:
    moment = start
    limit = start + timedelta(days=HORIZON_DAYS)
    while moment < limit:
        try:
            fire = next_fire(schedule, moment)
        except ScheduleError:
            return None
        if _moved(fire.at, machine) != first:
            return fire.at.date()
        moment = fire.at
    return None


def _shift_weekdays(cron: str, days: int) -> str | None:
    """The day-of-week field `days` later; None for "5L" or "1#2" (of the month: no)."""
    dow = cron.split()[4]
    if dow == "*":
        return "*"
    weekdays = CronSim(cron, datetime(2000, 1, 1)).weekdays  # 0 and 7 = Sunday
    if not all(isinstance(d, int) for d in weekdays):
        return None
    return ",".join(str(d) for d in sorted({(int(d) + days) % 7 for d in weekdays}))
