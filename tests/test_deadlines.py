"""A deadline's wall time placed on the time line, with fixed instants in real zones.

America/New_York in 2026: clocks spring forward on 2026-03-08 at 02:00 EST (to 03:00 EDT)
and fall back on 2026-11-01 at 02:00 EDT (to 01:00 EST).
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from overnight.scheduling.cron import Schedule
from overnight.scheduling.deadlines import (
    deadline_after,
    fire_for_date,
    following_fire,
    latest_fire,
    parse_wall_time,
)

NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(("text", "wanted"), [
    ("06:00", time(6, 0)), ("6:00", time(6, 0)), ("23:59:59", time(23, 59, 59)),
    ("00:00", time(0, 0)), (" 05:30 ", time(5, 30)),
])
def test_it_reads_hh_mm_and_hh_mm_ss(text: str, wanted: time) -> None:
    assert parse_wall_time(text) == wanted


@pytest.mark.parametrize("text", ["banana", "24:00", "25:00", "06:60", "06:00:60", "06", "6h", "06:00+01:00",
                                  "", "06:00:00:00", "０６:００", "6:０0"])
def test_it_rejects_what_is_not_a_time_of_day(text: str) -> None:
    assert parse_wall_time(text) is None


def test_the_deadline_is_the_first_such_wall_time_strictly_after_the_anchor() -> None:
    fire = datetime(2026, 11, 27, 1, 0, tzinfo=NY)
    assert deadline_after(fire, time(6, 0), NY) == datetime(2026, 11, 27, 6, 0, tzinfo=NY)
    assert deadline_after(fire, time(0, 30), NY) == datetime(2026, 11, 28, 0, 30, tzinfo=NY)
    assert deadline_after(fire, time(1, 0), NY) == datetime(2026, 11, 28, 1, 0, tzinfo=NY)  # not at it


def test_seconds_count() -> None:
    start = datetime(2026, 11, 27, 6, 0, 10, tzinfo=UTC)
    assert deadline_after(start, time(6, 0, 30), UTC) == datetime(2026, 11, 27, 6, 0, 30, tzinfo=UTC)
    assert deadline_after(start, time(6, 0, 5), UTC) == datetime(2026, 11, 28, 6, 0, 5, tzinfo=UTC)


def test_the_zone_is_the_batchs_whatever_zone_the_anchor_is_given_in() -> None:
    fire = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)  # 01:00 in New York
    wanted = datetime(2026, 11, 27, 11, 0, tzinfo=UTC).timestamp()
    assert deadline_after(fire, time(6, 0), NY).timestamp() == wanted


def test_a_deadline_inside_the_spring_gap_is_the_first_moment_after_it() -> None:
    fire = datetime(2026, 3, 8, 1, 0, tzinfo=NY)
    got = deadline_after(fire, time(2, 30), NY)
    assert got.timestamp() == datetime(2026, 3, 8, 7, 0, tzinfo=UTC).timestamp()  # 03:00 EDT


def test_a_deadline_in_the_repeated_hour_is_its_first_occurrence() -> None:
    fire = datetime(2026, 11, 1, 0, 30, tzinfo=NY)
    got = deadline_after(fire, time(1, 30), NY)
    assert got.timestamp() == datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp()  # 01:30 EDT


def test_the_latest_fire_at_or_before_now() -> None:
    daily = Schedule("0 1 * * *", NY)
    now = datetime(2026, 11, 27, 9, 0, tzinfo=NY)
    fire = latest_fire(daily, now)
    assert fire is not None and fire.at == datetime(2026, 11, 27, 1, 0, tzinfo=NY)
    assert fire.date == date(2026, 11, 26)
    at_fire = latest_fire(daily, datetime(2026, 11, 27, 1, 0, tzinfo=NY))
    assert at_fire is not None and at_fire.at == datetime(2026, 11, 27, 1, 0, tzinfo=NY)
    monthly = Schedule("0 1 1 * *", NY)
    found = latest_fire(monthly, now)
    assert found is not None and found.at == datetime(2026, 11, 1, 1, 0, tzinfo=NY)


def test_the_fire_of_a_date_and_the_one_after_it() -> None:
    daily = Schedule("0 1 * * *", NY)
    fire = fire_for_date(daily, date(2026, 11, 26))
    assert fire is not None and fire.at == datetime(2026, 11, 27, 1, 0, tzinfo=NY)
    after = following_fire(daily, fire)
    assert after is not None and after.at == datetime(2026, 11, 28, 1, 0, tzinfo=NY)
    same_day = Schedule("0 23 * * *", NY, date_offset_days=0)
    late = fire_for_date(same_day, date(2026, 11, 26))
    assert late is not None and late.at == datetime(2026, 11, 26, 23, 0, tzinfo=NY)
    weekdays = Schedule("0 1 * * 1-5", NY)
    assert fire_for_date(weekdays, date(2026, 11, 27)) is None  # a Friday's night runs on Saturday: never
