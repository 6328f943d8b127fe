"""A schedule written in the wall time of the zone cron runs in (Debian's cron ignores
CRON_TZ): fixed instants, real zones."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from overnight.scheduling.cron import Schedule
from overnight.scheduling.crontab import in_machine_zone
from overnight.scheduling.schedules import parse_instant

UTC_ZONE = Schedule.parse("0 1 * * *", "UTC").zone
WINTER, SUMMER = "2026-12-01T12:00:00+00:00", "2026-07-01T12:00:00+00:00"


def at(text: str) -> datetime:
    return parse_instant(text, "test")


# America/Chicago, 2026-2027: CDT (UTC-5) until 1 November 2026, CST (UTC-6) until 14 March
# 2027, then CDT again.
@pytest.mark.parametrize(
    ("expr", "zone", "now", "fields", "changes_on"),
    [
        # Winter: 23:00 CST Monday to Friday is 05:00 UTC Tuesday to Saturday.
        ("0 23 * * 1-5", "America/Chicago", WINTER, "0 5 * * 2,3,4,5,6", date(2027, 3, 15)),
        # Summer: an hour earlier in UTC; it changes with the first fire after 1 November.
        ("0 23 * * 1-5", "America/Chicago", SUMMER, "0 4 * * 2,3,4,5,6", date(2026, 11, 2)),
        # 01:00 on 14 March is still CST (clocks change at 02:00); the 15th's is CDT.
        ("0 1 * * *", "America/Chicago", WINTER, "0 7 * * *", date(2027, 3, 15)),
        # Sunday (0 or 7) 04:15 in Kolkata (UTC+5:30 all year) is Saturday 22:45 UTC.
        ("15 4 * * 7", "Asia/Kolkata", WINTER, "45 22 * * 6", None),
        ("30 12 1 * *", "Asia/Kolkata", WINTER, "0 7 1 * *", None),
    ],
)
def test_a_schedule_moves_to_the_machines_wall_time(expr, zone, now, fields, changes_on):
    line = in_machine_zone(Schedule.parse(expr, zone), UTC_ZONE, at(now))
    assert (line.fields, line.problem, line.changes_on) == (fields, None, changes_on)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("0 23 1 * *", "a day of month cannot move with it"),
        ("0 23 * 6 *", "a day of month cannot move with it"),
        ("0 23 * * 5L", "a last or nth weekday of the month cannot move with it"),
        ("0 23 * * 1#2", "a last or nth weekday of the month cannot move with it"),
    ],
)
def test_what_cannot_move_across_midnight_is_said_not_written(expr, problem):
    line = in_machine_zone(Schedule.parse(expr, "America/Chicago"), UTC_ZONE, at(WINTER))
    assert line.fields is None and problem in (line.problem or "")
