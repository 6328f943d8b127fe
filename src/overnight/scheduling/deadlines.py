"""A batch's deadline (`deadline = "06:00"`): the wall time by which its night must be done.

A run's deadline is the first such wall time, in the batch's zone, after the run's
scheduled fire (after its first launch's start when it was started by hand). The wall
time is placed on the time line by the same rules as a schedule's (scheduling/cron.py):
inside a spring-forward gap it means the first moment after the gap; in a repeated hour,
its first occurrence. Pure: every function takes the instant it reasons about.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # cron (and cronsim) load when a deadline is placed, not when one is checked
    from overnight.scheduling.cron import Fire, Schedule

_WALL_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?", re.ASCII)

# How far back to look for a schedule's latest fire: a daily one is found in the first
# window, a monthly or yearly one in a later one (schedules fire at most daily).
_LOOKBACK = (timedelta(days=2), timedelta(days=9), timedelta(days=33), timedelta(days=400))


def parse_wall_time(text: str) -> time | None:
    """"06:00" or "06:00:30" as a time of day; None when it is not one."""
    match = _WALL_TIME.fullmatch(text.strip())
    if match is None:
        return None
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def deadline_after(anchor: datetime, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant strictly after `anchor` (aware) whose wall time in `zone` is `wall`."""
    from overnight.scheduling.cron import Schedule, next_fire

    daily = Schedule(f"{wall.minute} {wall.hour} * * *", zone, gap="shift", repeat="first")
    seconds = timedelta(seconds=wall.second)
    return next_fire(daily, anchor - seconds).at + seconds


def latest_fire(schedule: Schedule, now: datetime) -> Fire | None:
    """The schedule's last fire at or before `now` (aware), or None in the last 400 days."""
    from overnight.scheduling.cron import fires_between

    for back in _LOOKBACK:
        fires = fires_between(schedule, now - back, now)
        if fires:
            return fires[-1]
    return None


def following_fire(schedule: Schedule, fire: Fire) -> Fire | None:
    """The fire after `fire`, or None when the expression never fires again."""
    from overnight.scheduling.cron import ScheduleError, next_fire

    try:
        return next_fire(schedule, fire.at)
    except ScheduleError:
        return None


def fire_for_date(schedule: Schedule, run_date: date) -> Fire | None:
    """The fire that runs for the business date `run_date` (the first, if several do)."""
    from overnight.scheduling.cron import fires_between

    midnight = datetime.combine(run_date, time(0), tzinfo=schedule.zone)
    start = midnight + timedelta(days=schedule.date_offset_days) - timedelta(days=1)
    for fire in fires_between(schedule, start, start + timedelta(days=3)):
        if fire.date == run_date:
            return fire
    return None
