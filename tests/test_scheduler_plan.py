"""The scheduler's decisions: a pure function of the fires due, the instant, the catch-up
policy and whether the batch is live. Real zones, fixed instants, no clock."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from overnight.scheduling.cron import Schedule, fires_between
from overnight.scheduling.daemon import (
    CAUGHT_UP,
    LAUNCHED,
    MISSED,
    SKIPPED_RUNNING,
    plan_fires,
)

SIX_HOURS = 6 * 3600.0


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def due(expr: str, zone: str, start: str, end: str, **kw) -> list:
    return fires_between(Schedule.parse(expr, zone, **kw), utc(start), utc(end))


def outcomes(plan) -> list[tuple[str, str]]:
    return [(d.fire.date.isoformat(), d.outcome) for d in plan.decisions]


# Daily 01:00 in New York (EST, UTC-5 in late November). The daemon was down from the
# 24th at noon; fires at 06:00Z on the 25th, 26th and 27th were due while it was away.
DOWN = dict(expr="0 1 * * *", zone="America/New_York", start="2026-11-24T12:00:00")


@pytest.mark.parametrize(
    ("catchup", "now", "expected"),
    [
        # Back two hours after the last fire: latest runs that one (its date is the 26th,
        # the scheduled time's, not the 27th of the clock), the older ones are recorded.
        ("latest", "2026-11-27T08:00:00",
         [("2026-11-24", MISSED), ("2026-11-25", MISSED), ("2026-11-26", CAUGHT_UP)]),
        # Back seven hours later: outside the 6h window, nothing runs; all recorded.
        ("latest", "2026-11-27T13:00:00",
         [("2026-11-24", MISSED), ("2026-11-25", MISSED), ("2026-11-26", MISSED)]),
        ("none", "2026-11-27T08:00:00",
         [("2026-11-24", MISSED), ("2026-11-25", MISSED), ("2026-11-26", MISSED)]),
        # all: the oldest date first, one at a time; the rest wait for the next passes.
        ("all", "2026-11-27T13:00:00", [("2026-11-24", CAUGHT_UP)]),
    ],
)
def test_it_applies_the_catchup_policy_to_fires_missed_while_down(catchup, now, expected):
    fires = due(DOWN["expr"], DOWN["zone"], DOWN["start"], now)
    assert len(fires) == 3
    plan = plan_fires(fires, utc(now), catchup=catchup, window=SIX_HOURS, live=None)
    assert outcomes(plan) == expected


def test_all_keeps_its_cursor_before_the_next_missed_fire_and_waits():
    now = utc("2026-11-27T13:00:00")
    fires = due(DOWN["expr"], DOWN["zone"], DOWN["start"], "2026-11-27T13:00:00")
    plan = plan_fires(fires, now, catchup="all", window=SIX_HOURS, live=None)
    assert plan.handled_until == fires[0].at.timestamp()
    assert plan.waiting
    # The next pass sees the remaining two; the first one's launch is still live: wait.
    plan = plan_fires(fires[1:], now, catchup="all", window=SIX_HOURS, live="pid 1")
    assert plan.decisions == [] and plan.handled_until is None and plan.waiting
    # It has ended: the second date, and still the cursor stays before the third.
    plan = plan_fires(fires[1:], now, catchup="all", window=SIX_HOURS, live=None)
    assert outcomes(plan) == [("2026-11-25", CAUGHT_UP)]
    assert plan.handled_until == fires[1].at.timestamp()
    plan = plan_fires(fires[2:], now, catchup="all", window=SIX_HOURS, live=None)
    assert outcomes(plan) == [("2026-11-26", CAUGHT_UP)]
    assert plan.handled_until == now.timestamp() and not plan.waiting


def test_all_runs_each_missed_date_once_when_a_schedule_fires_several_times_a_day():
    """Every six hours, for yesterday: four fires share a date; the date runs once."""
    fires = due("0 */6 * * *", "UTC", "2026-11-26T00:00:00", "2026-11-27T12:00:00")
    # 06, 12, 18 on the 26th (date 25th); 00, 06, 12 on the 27th (date 26th)
    plan = plan_fires(fires, utc("2026-11-27T12:00:00"), catchup="all", window=0, live=None)
    assert outcomes(plan) == [
        ("2026-11-25", MISSED), ("2026-11-25", MISSED), ("2026-11-25", CAUGHT_UP),
    ]
    assert "runs once" in plan.decisions[0].message


@pytest.mark.parametrize("catchup", ["latest", "none", "all"])
def test_a_fire_on_time_while_the_batch_is_live_is_skipped_and_recorded(catchup):
    fires = due("0 1 * * *", "UTC", "2026-11-27T00:30:00", "2026-11-27T01:00:01")
    plan = plan_fires(
        fires, utc("2026-11-27T01:00:01"), catchup=catchup, window=SIX_HOURS,
        live="pid 42 on host since 2026-11-26 01:00 (for 2026-11-25)",
    )
    assert outcomes(plan) == [("2026-11-26", SKIPPED_RUNNING)]
    assert "pid 42" in plan.decisions[0].message
    assert plan.handled_until == utc("2026-11-27T01:00:01").timestamp()


@pytest.mark.parametrize("catchup", ["latest", "none", "all"])
def test_a_fire_on_time_is_launched_whatever_the_policy_and_window(catchup):
    fires = due("30 2 * * *", "America/New_York", "2026-03-08T05:00:00", "2026-03-08T07:00:02")
    # 02:30 does not exist on 2026-03-08 in New York: shifted to 03:00 EDT = 07:00Z.
    assert [f.at.isoformat() for f in fires] == ["2026-03-08T03:00:00-04:00"]
    plan = plan_fires(fires, utc("2026-03-08T07:00:02"), catchup=catchup, window=0, live=None)
    assert outcomes(plan) == [("2026-03-07", LAUNCHED)]


def test_a_clock_that_stepped_forward_makes_the_skipped_fires_missed_not_on_time():
    """Suspended at 00:55, woken at 03:10: the 01:00 fire is late, and latest catches it up."""
    fires = due("0 1 * * *", "UTC", "2026-11-27T00:55:00", "2026-11-27T03:10:00")
    plan = plan_fires(fires, utc("2026-11-27T03:10:00"), catchup="latest", window=SIX_HOURS, live=None)
    assert outcomes(plan) == [("2026-11-26", CAUGHT_UP)]
    plan = plan_fires(fires, utc("2026-11-27T03:10:00"), catchup="none", window=SIX_HOURS, live=None)
    assert outcomes(plan) == [("2026-11-26", MISSED)]


def test_only_the_last_of_several_due_fires_starts_and_the_others_say_why():
    fires = due("*/10 * * * *", "UTC", "2026-11-27T00:55:00", "2026-11-27T01:21:00")
    plan = plan_fires(fires, utc("2026-11-27T01:21:00"), catchup="latest", window=SIX_HOURS, live=None)
    assert [d.outcome for d in plan.decisions] == [MISSED, MISSED, LAUNCHED]  # 01:00, 01:10, 01:20
    assert all("superseded by the fire at 2026-11-27 01:20 +00:00" in d.message for d in plan.decisions[:2])


def test_the_run_date_is_the_scheduled_times_date_not_the_clocks():
    """23:00 at Lord Howe (UTC+11 in November) on the 26th is 12:00Z; caught up two hours
    later, when the local date is already the 27th, it still runs for the 26th."""
    fires = due("0 23 * * *", "Australia/Lord_Howe", "2026-11-26T00:00:00", "2026-11-26T14:00:00",
                date_offset_days=0)
    plan = plan_fires(fires, utc("2026-11-26T14:00:00"), catchup="latest", window=SIX_HOURS, live=None)
    assert [(d.fire.date, d.outcome) for d in plan.decisions] == [(date(2026, 11, 26), CAUGHT_UP)]
