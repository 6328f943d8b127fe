"""The scheduler's decisions: a pure function of the fires due, the instant, the catch-up
and overlap policies and whether the batch is busy. Real zones, fixed instants, no clock."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from overnight.scheduling.cron import Schedule, fires_between
from overnight.scheduling.plan import (
    CAUGHT_UP,
    LAUNCHED,
    MISSED,
    QUEUED,
    SKIPPED_RUNNING,
    describe,
    plan_fires,
)

SIX_HOURS = 6 * 3600.0


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def due(expr: str, zone: str, start: str, end: str, **kw) -> list:
    return fires_between(Schedule.parse(expr, zone, **kw), utc(start), utc(end))


def outcomes(decisions) -> list[tuple[str, str, int]]:
    """(date, outcome, how many fires) of each decision."""
    return [(d.fire.date.isoformat(), d.outcome, d.count) for d in decisions]


# Daily 01:00 in New York (EST, UTC-5 in late November). The daemon was down from the
# 24th at noon; fires at 06:00Z on the 25th, 26th and 27th were due while it was away.
DOWN = dict(expr="0 1 * * *", zone="America/New_York", start="2026-11-24T12:00:00")


@pytest.mark.parametrize(
    ("catchup", "now", "expected"),
    [
        # Back two hours after the last fire: latest runs that one (its date is the 26th,
        # the scheduled time's, not the 27th of the clock); the older two are one gap.
        ("latest", "2026-11-27T08:00:00", [("2026-11-24", MISSED, 2), ("2026-11-26", CAUGHT_UP, 1)]),
        # Back seven hours later: outside the 6h window, nothing runs; one record of the gap.
        ("latest", "2026-11-27T13:00:00", [("2026-11-24", MISSED, 3)]),
        ("none", "2026-11-27T08:00:00", [("2026-11-24", MISSED, 3)]),
        # all: every date, oldest first, one at a time: the others wait in the queue.
        ("all", "2026-11-27T13:00:00",
         [("2026-11-24", CAUGHT_UP, 1), ("2026-11-25", QUEUED, 1), ("2026-11-26", QUEUED, 1)]),
    ],
)
def test_it_applies_the_catchup_policy_to_fires_missed_while_down(catchup, now, expected):
    fires = due(DOWN["expr"], DOWN["zone"], DOWN["start"], now)
    assert len(fires) == 3
    decisions = plan_fires(fires, utc(now), catchup=catchup, window=SIX_HOURS, busy=None)
    assert outcomes(decisions) == expected
    assert all(d.report == (d.outcome == MISSED) for d in decisions)


def test_a_gap_of_misses_is_one_decision_that_says_how_many_and_from_when_to_when():
    """A daily batch whose cursor is three years old: one record, not a thousand."""
    fires = due("0 1 * * *", "UTC", "2023-11-27T12:00:00", "2026-11-27T12:00:00")
    assert len(fires) == 1096
    [gap] = plan_fires(fires, utc("2026-11-27T12:00:00"), catchup="latest", window=SIX_HOURS, busy=None)
    assert (gap.outcome, gap.count, gap.report) == (MISSED, 1096, True)
    assert (gap.fire.date.isoformat(), gap.until.date.isoformat()) == ("2023-11-27", "2026-11-26")
    assert describe(gap) == (
        "1,096 fires from 2023-11-28 01:00 +00:00 to 2026-11-27 01:00 +00:00 (for 2023-11-27 to "
        "2026-11-26): the scheduler was not running then; older than catchup_window (6h)"
    )


def test_all_queues_the_later_dates_behind_the_first_whatever_the_overlap():
    now = utc("2026-11-27T13:00:00")
    fires = due(DOWN["expr"], DOWN["zone"], DOWN["start"], "2026-11-27T13:00:00")
    for overlap in ("queue", "skip"):
        decisions = plan_fires(fires, now, catchup="all", window=SIX_HOURS, busy=None, overlap=overlap)
        assert [d.outcome for d in decisions] == [CAUGHT_UP, QUEUED, QUEUED]
        assert "waits its turn: the fire for 2026-11-24 goes first" in decisions[1].message


def test_all_runs_each_missed_date_once_when_a_schedule_fires_several_times_a_day():
    """Every six hours, for yesterday: fires share a date; the date runs once, and the
    others are not lost nights (no report). (overnight.toml refuses such a schedule; the
    rule still holds for the pure function.)"""
    fires = due("0 */6 * * *", "UTC", "2026-11-26T00:00:00", "2026-11-27T12:00:00")
    # 06, 12, 18 on the 26th (date 25th); 00, 06, 12 on the 27th (date 26th)
    decisions = plan_fires(fires, utc("2026-11-27T12:00:00"), catchup="all", window=0, busy=None)
    assert outcomes(decisions) == [
        ("2026-11-25", MISSED, 2), ("2026-11-25", CAUGHT_UP, 1),
        ("2026-11-26", MISSED, 2), ("2026-11-26", QUEUED, 1),
    ]
    assert "runs once" in decisions[0].message and not decisions[0].report


@pytest.mark.parametrize("catchup", ["latest", "none", "all"])
def test_a_fire_on_time_while_the_batch_is_busy_waits_in_the_queue_or_is_skipped(catchup):
    fires = due("0 1 * * *", "UTC", "2026-11-27T00:30:00", "2026-11-27T01:00:01")
    busy = "pid 42 on host since 2026-11-26 01:00 (for 2026-11-25)"
    now = utc("2026-11-27T01:00:01")
    [queued] = plan_fires(fires, now, catchup=catchup, window=SIX_HOURS, busy=busy)
    assert (queued.outcome, queued.report) == (QUEUED, False)
    assert "waits for the batch to be free: pid 42" in queued.message
    [skipped] = plan_fires(fires, now, catchup=catchup, window=SIX_HOURS, busy=busy, overlap="skip")
    assert (skipped.outcome, skipped.report) == (SKIPPED_RUNNING, True)
    assert "pid 42" in skipped.message and "overlap = skip" in skipped.message


@pytest.mark.parametrize("catchup", ["latest", "none", "all"])
def test_a_fire_on_time_is_launched_whatever_the_policy_and_window(catchup):
    fires = due("30 2 * * *", "America/New_York", "2026-03-08T05:00:00", "2026-03-08T07:00:02")
    # 02:30 does not exist on 2026-03-08 in New York: shifted to 03:00 EDT = 07:00Z.
    assert [f.at.isoformat() for f in fires] == ["2026-03-08T03:00:00-04:00"]
    decisions = plan_fires(fires, utc("2026-03-08T07:00:02"), catchup=catchup, window=0, busy=None)
    assert outcomes(decisions) == [("2026-03-07", LAUNCHED, 1)]


def test_a_clock_that_stepped_forward_makes_the_skipped_fires_missed_not_on_time():
    """Suspended at 00:55, woken at 03:10: the 01:00 fire is late, and latest catches it up."""
    fires = due("0 1 * * *", "UTC", "2026-11-27T00:55:00", "2026-11-27T03:10:00")
    now = utc("2026-11-27T03:10:00")
    assert outcomes(plan_fires(fires, now, catchup="latest", window=SIX_HOURS, busy=None)) == [
        ("2026-11-26", CAUGHT_UP, 1)
    ]
    assert outcomes(plan_fires(fires, now, catchup="none", window=SIX_HOURS, busy=None)) == [
        ("2026-11-26", MISSED, 1)
    ]


def test_only_the_last_of_several_due_fires_starts_and_the_others_say_why():
    fires = due("*/10 * * * *", "UTC", "2026-11-27T00:55:00", "2026-11-27T01:21:00")
    decisions = plan_fires(fires, utc("2026-11-27T01:21:00"), catchup="latest", window=SIX_HOURS, busy=None)
    assert [(d.outcome, d.count) for d in decisions] == [(MISSED, 2), (LAUNCHED, 1)]  # 01:00, 01:10; 01:20
    assert decisions[0].message == "superseded by the fire at 2026-11-27 01:20 +00:00"


def test_the_run_date_is_the_scheduled_times_date_not_the_clocks():
    """23:00 at Lord Howe (UTC+11 in November) on the 26th is 12:00Z; caught up two hours
    later, when the local date is already the 27th, it still runs for the 26th."""
    fires = due("0 23 * * *", "Australia/Lord_Howe", "2026-11-26T00:00:00", "2026-11-26T14:00:00",
                date_offset_days=0)
    decisions = plan_fires(fires, utc("2026-11-26T14:00:00"), catchup="latest", window=SIX_HOURS, busy=None)
    assert [(d.fire.date, d.outcome) for d in decisions] == [(date(2026, 11, 26), CAUGHT_UP)]
