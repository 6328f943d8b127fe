"""Schedules against real zones at fixed instants: no clock, no sleeping, no patching.

The 2026 transitions used below, as zoneinfo reports them:

America/New_York
    2026-03-08 02:00 EST (-05:00) -> 03:00 EDT (-04:00), at 07:00 UTC: 02:00-02:59 never happen
    2026-11-01 02:00 EDT (-04:00) -> 01:00 EST (-05:00), at 06:00 UTC: 01:00-01:59 happen twice
Europe/London
    2026-03-29 01:00 GMT (+00:00) -> 02:00 BST (+01:00), at 01:00 UTC: 01:00-01:59 never happen
    2026-10-25 02:00 BST (+01:00) -> 01:00 GMT (+00:00), at 01:00 UTC: 01:00-01:59 happen twice
Australia/Lord_Howe (daylight saving moves the clocks by 30 minutes)
    2026-04-05 02:00 +11:00 -> 01:30 +10:30, at 2026-04-04 15:00 UTC: 01:30-01:59 happen twice
    2026-10-04 02:00 +10:30 -> 02:30 +11:00, at 2026-10-03 15:30 UTC: 02:00-02:29 never happen
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from overnight.scheduling.cron import Fire, Schedule, ScheduleError, fires_between, next_fire

NY, LONDON, LORD_HOWE = "America/New_York", "Europe/London", "Australia/Lord_Howe"

# The nights on which the clocks change, by zone: (spring forward, fall back).
NIGHTS = {
    NY: (date(2026, 3, 8), date(2026, 11, 1)),
    LONDON: (date(2026, 3, 29), date(2026, 10, 25)),
    LORD_HOWE: (date(2026, 10, 4), date(2026, 4, 5)),
}


def night_of(schedule: Schedule, day: date) -> list[Fire]:
    """The fires from noon the day before `day` to noon on `day`, local time."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=schedule.zone)
    return fires_between(schedule, noon - timedelta(days=1), noon)


def instants(fires: list[Fire]) -> list[str]:
    return [fire.at.isoformat() for fire in fires]


# (zone, expression, night, the fire instant under "shift"); the time falls in the gap.
IN_SPRING_GAP = [
    (NY, "30 2 * * *", date(2026, 3, 8), "2026-03-08T03:00:00-04:00"),
    (NY, "0 2 * * *", date(2026, 3, 8), "2026-03-08T03:00:00-04:00"),
    (LONDON, "30 1 * * *", date(2026, 3, 29), "2026-03-29T02:00:00+01:00"),
    (LONDON, "45 1 * * *", date(2026, 3, 29), "2026-03-29T02:00:00+01:00"),
    (LORD_HOWE, "0 2 * * *", date(2026, 10, 4), "2026-10-04T02:30:00+11:00"),
    (LORD_HOWE, "15 2 * * *", date(2026, 10, 4), "2026-10-04T02:30:00+11:00"),
]

# (zone, expression, night, first occurrence, second occurrence); the time is repeated.
IN_REPEATED_HOUR = [
    (NY, "30 1 * * *", date(2026, 11, 1), "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"),
    (LONDON, "30 1 * * *", date(2026, 10, 25), "2026-10-25T01:30:00+01:00", "2026-10-25T01:30:00+00:00"),
    (LORD_HOWE, "30 1 * * *", date(2026, 4, 5), "2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+10:30"),
    (LORD_HOWE, "45 1 * * *", date(2026, 4, 5), "2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30"),
]

# (zone, expression, night, the fire instant); on a transition night, but clear of it.
CLEAR_OF_TRANSITION = [
    (NY, "30 1 * * *", date(2026, 3, 8), "2026-03-08T01:30:00-05:00"),
    (NY, "30 2 * * *", date(2026, 11, 1), "2026-11-01T02:30:00-05:00"),
    (LONDON, "30 2 * * *", date(2026, 3, 29), "2026-03-29T02:30:00+01:00"),
    (LONDON, "30 2 * * *", date(2026, 10, 25), "2026-10-25T02:30:00+00:00"),
    (LORD_HOWE, "30 1 * * *", date(2026, 10, 4), "2026-10-04T01:30:00+10:30"),
    (LORD_HOWE, "30 2 * * *", date(2026, 10, 4), "2026-10-04T02:30:00+11:00"),  # the gap's end
    (LORD_HOWE, "30 2 * * *", date(2026, 4, 5), "2026-04-05T02:30:00+10:30"),
    (LORD_HOWE, "15 1 * * *", date(2026, 4, 5), "2026-04-05T01:15:00+11:00"),
]

POLICIES = [(gap, repeat) for gap in ("shift", "skip") for repeat in ("first", "last")]


def case_id(case: tuple) -> str:
    zone, expr, night = case[:3]
    return f"{zone}|{expr}|{night}"


@pytest.mark.parametrize("case", IN_SPRING_GAP, ids=case_id)
@pytest.mark.parametrize("repeat", ["first", "last"])
def test_spring_gap_shift_fires_once_at_gap_end(case, repeat):
    zone, expr, night, expected = case
    schedule = Schedule.parse(expr, zone, gap="shift", repeat=repeat)

    fires = night_of(schedule, night)

    assert instants(fires) == [expected]
    assert fires[0].nominal.time() == datetime.strptime(expr, "%M %H * * *").time()


@pytest.mark.parametrize("case", IN_SPRING_GAP, ids=case_id)
@pytest.mark.parametrize("repeat", ["first", "last"])
def test_spring_gap_skip_does_not_fire_that_night(case, repeat):
    zone, expr, night, _ = case
    schedule = Schedule.parse(expr, zone, gap="skip", repeat=repeat)

    assert night_of(schedule, night) == []
    nights_around = fires_between(
        schedule,
        datetime.combine(night - timedelta(days=2), datetime.min.time(), schedule.zone),
        datetime.combine(night + timedelta(days=2), datetime.min.time(), schedule.zone),
    )
    assert [fire.nominal.date() for fire in nights_around] == [
        night - timedelta(days=2),
        night - timedelta(days=1),
        night + timedelta(days=1),
    ]


@pytest.mark.parametrize("case", IN_REPEATED_HOUR, ids=case_id)
@pytest.mark.parametrize("gap", ["shift", "skip"])
def test_fall_back_first_fires_once_at_first_occurrence(case, gap):
    zone, expr, night, first, _ = case
    schedule = Schedule.parse(expr, zone, gap=gap, repeat="first")

    assert instants(night_of(schedule, night)) == [first]


@pytest.mark.parametrize("case", IN_REPEATED_HOUR, ids=case_id)
@pytest.mark.parametrize("gap", ["shift", "skip"])
def test_fall_back_last_fires_once_at_second_occurrence(case, gap):
    zone, expr, night, _, second = case
    schedule = Schedule.parse(expr, zone, gap=gap, repeat="last")

    assert instants(night_of(schedule, night)) == [second]


@pytest.mark.parametrize("case", CLEAR_OF_TRANSITION, ids=case_id)
@pytest.mark.parametrize(("gap", "repeat"), POLICIES)
def test_time_clear_of_the_transition_fires_as_usual(case, gap, repeat):
    zone, expr, night, expected = case
    schedule = Schedule.parse(expr, zone, gap=gap, repeat=repeat)

    assert instants(night_of(schedule, night)) == [expected]


@pytest.mark.parametrize("zone", NIGHTS)
@pytest.mark.parametrize("expr", ["30 2 * * *", "30 1 * * *", "0 2 * * *", "45 1 * * *"])
@pytest.mark.parametrize(("gap", "repeat"), POLICIES)
def test_fixed_time_fires_once_a_night_and_never_zero_unless_skipped(zone, expr, gap, repeat):
    schedule = Schedule.parse(expr, zone, gap=gap, repeat=repeat)
    in_gap = {(case[0], case[1]) for case in IN_SPRING_GAP}
    spring, fall = NIGHTS[zone]
    skipped = gap == "skip" and (zone, expr) in in_gap

    assert len(night_of(schedule, spring)) == (0 if skipped else 1)
    assert len(night_of(schedule, fall)) == 1


@pytest.mark.parametrize(
    ("zone", "night", "expected"),
    [
        (NY, date(2026, 11, 1), [
            "2026-11-01T00:30:00-04:00",
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ]),
        (LONDON, date(2026, 10, 25), [
            "2026-10-25T00:30:00+01:00",
            "2026-10-25T01:00:00+01:00",
            "2026-10-25T01:30:00+01:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T01:30:00+00:00",
            "2026-10-25T02:00:00+00:00",
        ]),
        (LORD_HOWE, date(2026, 4, 5), [
            "2026-04-05T00:30:00+11:00",
            "2026-04-05T01:00:00+11:00",
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ]),
    ],
    ids=[NY, LONDON, LORD_HOWE],
)
@pytest.mark.parametrize("repeat", ["first", "last"])
def test_interval_schedule_fires_in_both_copies_of_repeated_hour(zone, night, expected, repeat):
    schedule = Schedule.parse("*/30 * * * *", zone, repeat=repeat)
    start = datetime.combine(night, datetime.min.time(), schedule.zone)

    fires = fires_between(schedule, start, start + timedelta(hours=len(expected) / 2 + 1))

    assert instants(fires)[: len(expected)] == expected
    gaps = {b.at.timestamp() - a.at.timestamp() for a, b in zip(fires, fires[1:], strict=False)}
    assert gaps == {1800}  # every half hour of real time, both copies included


@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        (NY, "2026-03-08T05:45Z", "2026-03-08T07:15Z", [
            "2026-03-08T01:00:00-05:00", "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"
        ]),
        (LONDON, "2026-03-29T00:15Z", "2026-03-29T01:45Z", [
            "2026-03-29T00:30:00+00:00", "2026-03-29T02:00:00+01:00", "2026-03-29T02:30:00+01:00"
        ]),
        (LORD_HOWE, "2026-10-03T14:45Z", "2026-10-03T16:15Z", [
            "2026-10-04T01:30:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T03:00:00+11:00"
        ]),
    ],
    ids=[NY, LONDON, LORD_HOWE],
)
@pytest.mark.parametrize("gap", ["shift", "skip"])
def test_interval_schedule_does_not_make_up_the_spring_gap(zone, start, end, expected, gap):
    schedule = Schedule.parse("*/30 * * * *", zone, gap=gap)

    fires = fires_between(schedule, datetime.fromisoformat(start), datetime.fromisoformat(end))

    assert instants(fires) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("@hourly", ["01:00:00-04:00", "01:00:00-05:00", "02:00:00-05:00"]),
        ("0 * * * *", ["01:00:00-04:00", "01:00:00-05:00", "02:00:00-05:00"]),
        ("0 */1 * * *", ["01:00:00-04:00", "01:00:00-05:00", "02:00:00-05:00"]),
        ("0 */2 * * *", ["02:00:00-05:00"]),
    ],
)
@pytest.mark.parametrize("repeat", ["first", "last"])
def test_hour_wildcard_or_step_fires_as_an_interval(expr, expected, repeat):
    schedule = Schedule.parse(expr, NY, repeat=repeat)
    start = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)  # 00:30 EDT

    fires = fires_between(schedule, start, start + timedelta(hours=3))

    assert schedule.is_interval
    assert [fire.at.isoformat()[11:] for fire in fires] == expected


def test_interval_schedule_keeps_wall_times_just_after_a_half_hour_fall_back():
    """cronsim 2.8 given an aware start skips 02:15 here; placing wall times ourselves does not."""
    schedule = Schedule.parse("15 */2 * * *", LORD_HOWE)

    fires = fires_between(
        schedule,
        datetime(2026, 4, 4, 13, tzinfo=UTC),  # 00:00 +11:00
        datetime(2026, 4, 4, 18, 30, tzinfo=UTC),  # 05:00 +10:30
    )

    assert instants(fires) == [
        "2026-04-05T00:15:00+11:00",
        "2026-04-05T02:15:00+10:30",
        "2026-04-05T04:15:00+10:30",
    ]


@pytest.mark.parametrize(
    ("expr", "gap", "repeat", "start", "missing"),
    [
        ("30 1 * * *", "shift", "first", date(2026, 10, 29), None),
        ("30 1 * * *", "shift", "last", date(2026, 10, 29), None),
        ("30 2 * * *", "shift", "first", date(2026, 3, 5), None),
        ("30 2 * * *", "skip", "first", date(2026, 3, 5), date(2026, 3, 7)),
    ],
)
def test_a_week_across_a_transition_has_one_fire_per_night(expr, gap, repeat, start, missing):
    schedule = Schedule.parse(expr, NY, gap=gap, repeat=repeat)
    begin = datetime.combine(start, datetime.min.time(), schedule.zone)

    fires = fires_between(schedule, begin, begin + timedelta(days=7))

    dates = [start + timedelta(days=n - 1) for n in range(7)]
    assert [fire.date for fire in fires] == [d for d in dates if d != missing]


def test_minute_wildcard_with_fixed_hour_is_a_time_of_day():
    """Unlike Debian cron, `*/15 1` fires once per wall time in the repeated hour."""
    schedule = Schedule.parse("*/15 1 * * *", NY, repeat="last")

    fires = night_of(schedule, date(2026, 11, 1))

    assert not schedule.is_interval
    assert instants(fires) == [
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:15:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T01:45:00-05:00",
    ]


@pytest.mark.parametrize(
    ("zone", "expr", "night", "expected"),
    [
        (NY, "0,30 2,3 * * *", date(2026, 3, 8), [("03:00:00-04:00", "02:00"), ("03:30:00-04:00", "03:30")]),
        (NY, "*/15 2 * * *", date(2026, 3, 8), [("03:00:00-04:00", "02:00")]),
        (LORD_HOWE, "0,15,30,45 2 * * *", date(2026, 10, 4), [
            ("02:30:00+11:00", "02:00"), ("02:45:00+11:00", "02:45")
        ]),
    ],
    ids=["shifted-onto-real", "all-shifted", "half-hour-gap"],
)
def test_shifted_fire_never_collides_with_another_fire(zone, expr, night, expected):
    schedule = Schedule.parse(expr, zone, gap="shift")

    fires = night_of(schedule, night)

    assert [(f.at.isoformat()[11:], f.nominal.strftime("%H:%M")) for f in fires] == expected


def test_two_copies_of_a_repeated_time_are_different_fires():
    """Python compares datetimes sharing a tzinfo by wall time; Fire compares by instant."""
    schedule = Schedule.parse("*/30 * * * *", NY)
    fires = fires_between(
        schedule,
        datetime(2026, 11, 1, 5, 15, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 45, tzinfo=UTC),
    )
    first, second = (f for f in fires if f.nominal == datetime(2026, 11, 1, 1, 30))

    assert first.at == second.at  # the pitfall: same wall time, same tzinfo
    assert first != second
    assert len({first, second}) == 2


@pytest.mark.parametrize(
    ("expr", "zone", "offset", "after", "expected_at", "expected_date"),
    [
        ("0 1 * * *", NY, 1, "2026-11-27T00:00:00-05:00", "2026-11-27T01:00:00-05:00", date(2026, 11, 26)),
        ("0 1 * * *", NY, 0, "2026-11-27T00:00:00-05:00", "2026-11-27T01:00:00-05:00", date(2026, 11, 27)),
        ("0 1 * * *", NY, 2, "2026-11-27T00:00:00-05:00", "2026-11-27T01:00:00-05:00", date(2026, 11, 25)),
        # 23:00 in New York is already the next day in UTC; the date is the local one.
        ("0 23 * * *", NY, 0, "2026-11-27T12:00:00+00:00", "2026-11-27T23:00:00-05:00", date(2026, 11, 27)),
        # 08:00 in Tokyo is still the previous day in UTC.
        ("0 8 * * *", "Asia/Tokyo", 1, "2026-11-26T20:00Z", "2026-11-27T08:00:00+09:00", date(2026, 11, 26)),
        # A shifted fire keeps the date it was scheduled for.
        ("30 2 * * *", NY, 1, "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00", date(2026, 3, 7)),
    ],
)
def test_business_date_is_scheduled_local_date_minus_offset(
    expr, zone, offset, after, expected_at, expected_date
):
    schedule = Schedule.parse(expr, zone, date_offset_days=offset)

    fire = next_fire(schedule, datetime.fromisoformat(after))

    assert fire.at.isoformat() == expected_at
    assert fire.date == expected_date


def test_fires_between_covers_a_week_of_nights():
    schedule = Schedule.parse("0 1 * * *", "America/Chicago")
    start = datetime(2026, 11, 23, tzinfo=UTC)

    fires = fires_between(schedule, start, start + timedelta(days=7))

    assert instants(fires) == [f"2026-11-{day}T01:00:00-06:00" for day in range(23, 30)]
    assert [fire.date for fire in fires] == [date(2026, 11, day) for day in range(22, 29)]


def test_fires_between_excludes_start_and_includes_end():
    schedule = Schedule.parse("0 1 * * *", NY)
    first = datetime(2026, 11, 24, 1, tzinfo=schedule.zone)
    last = datetime(2026, 11, 26, 1, tzinfo=schedule.zone)

    fires = fires_between(schedule, first, last)

    assert instants(fires) == ["2026-11-25T01:00:00-05:00", "2026-11-26T01:00:00-05:00"]
    assert fires_between(schedule, last, first) == []


@pytest.mark.parametrize(
    ("expr", "repeat", "after_utc", "expected"),
    [
        ("0 1 * * *", "first", "2026-11-27T05:59:59+00:00", "2026-11-27T01:00:00-05:00"),
        ("0 1 * * *", "first", "2026-11-27T06:00:00+00:00", "2026-11-28T01:00:00-05:00"),
        # 05:45 UTC is 01:45 EDT; the next half hour on the clock is 01:00 EST.
        ("*/30 * * * *", "first", "2026-11-01T05:45:00+00:00", "2026-11-01T01:00:00-05:00"),
        ("30 1 * * *", "first", "2026-11-01T05:45:00+00:00", "2026-11-02T01:30:00-05:00"),
        ("30 1 * * *", "last", "2026-11-01T05:45:00+00:00", "2026-11-01T01:30:00-05:00"),
        ("30 1 * * *", "last", "2026-11-01T05:30:00+00:00", "2026-11-01T01:30:00-05:00"),
        ("30 2 * * *", "first", "2026-03-08T06:59:59+00:00", "2026-03-08T03:00:00-04:00"),
        ("30 2 * * *", "first", "2026-03-08T07:00:00+00:00", "2026-03-09T02:30:00-04:00"),
    ],
)
def test_next_fire_is_strictly_after_an_instant_given_in_utc(expr, repeat, after_utc, expected):
    schedule = Schedule.parse(expr, NY, repeat=repeat)

    fire = next_fire(schedule, datetime.fromisoformat(after_utc))

    assert fire.at.isoformat() == expected
    assert fire.at.tzinfo is schedule.zone


def test_next_fire_gives_the_same_answer_whatever_zone_after_is_in():
    schedule = Schedule.parse("*/30 * * * *", LORD_HOWE)
    after = datetime(2026, 4, 4, 14, 50, tzinfo=UTC)  # 01:50 +11:00, in the repeated half hour

    answers = {
        next_fire(schedule, after.astimezone(ZoneInfo(name))).at.isoformat()
        for name in ("UTC", NY, LORD_HOWE, "Asia/Kolkata")
    }

    assert answers == {"2026-04-05T01:30:00+10:30"}


def test_next_fire_rejects_a_naive_instant():
    schedule = Schedule.parse("0 1 * * *", NY)

    with pytest.raises(ValueError, match="aware"):
        next_fire(schedule, datetime(2026, 11, 27, 1))


@pytest.mark.parametrize(
    ("expr", "nominal"),
    [
        ("@daily", datetime(2026, 11, 28, 0, 0)),
        ("@midnight", datetime(2026, 11, 28, 0, 0)),
        ("@hourly", datetime(2026, 11, 27, 13, 0)),
        ("@weekly", datetime(2026, 11, 29, 0, 0)),
        ("@monthly", datetime(2026, 12, 1, 0, 0)),
        ("@yearly", datetime(2027, 1, 1, 0, 0)),
        ("@annually", datetime(2027, 1, 1, 0, 0)),
        ("0 1 * * MON-FRI", datetime(2026, 11, 30, 1, 0)),
        ("0 1 L * *", datetime(2026, 11, 30, 1, 0)),
    ],
)
def test_aliases_and_cron_extensions_are_accepted(expr, nominal):
    schedule = Schedule.parse(expr, NY)

    fire = next_fire(schedule, datetime(2026, 11, 27, 12, 30, tzinfo=schedule.zone))

    assert fire.nominal == nominal


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"expr": "61 * * * *"}, "schedule", "schedule '61 * * * *': minute 61 is out of range 0-59"),
        ({"expr": "0 24 * * *"}, "schedule", "schedule '0 24 * * *': hour 24 is out of range 0-23"),
        ({"expr": "0 1 1-32 * *"}, "schedule", "day-of-month 32 is out of range 1-31"),
        ({"expr": "0 1 * 13 *"}, "schedule", "month 13 is out of range 1-12"),
        ({"expr": "0 1 * * 8"}, "schedule", "day-of-week 8 is out of range 0-7"),
        ({"expr": "0 1 30 2 *"}, "schedule", "day-of-month 30 never occurs in month 2"),
        ({"expr": "*/0 * * * *"}, "schedule", "minute '*/0' is not valid"),
        ({"expr": "0 1 * *"}, "schedule", "expected 5 fields"),
        ({"expr": "0 0 1 * * *"}, "schedule", "got 6"),
        ({"expr": ""}, "schedule", "got 0"),
        ({"expr": "every night"}, "schedule", "got 2"),
        ({"expr": "a b c d e"}, "schedule", "minute 'a' is not valid"),
        ({"expr": "@reboot"}, "schedule", "schedule '@reboot': unknown alias"),
        ({"timezone": "Mars/Olympus"}, "timezone", "timezone 'Mars/Olympus': unknown time zone"),
        ({"timezone": ""}, "timezone", "timezone '': must be an IANA time zone name"),
        ({"timezone": "../etc/passwd"}, "timezone", "unknown time zone"),
        ({"gap": "later"}, "dst_gap", "dst_gap 'later': must be one of shift, skip"),
        ({"repeat": "both"}, "dst_repeat", "dst_repeat 'both': must be one of first, last"),
        ({"date_offset_days": "1"}, "date_offset_days", "must be a whole number"),
    ],
)
def test_parse_rejects_bad_settings_naming_field_and_value(kwargs, field, message):
    settings = {"expr": "0 1 * * *", "timezone": NY, **kwargs}

    with pytest.raises(ScheduleError) as caught:
        Schedule.parse(**settings)

    assert caught.value.field == field
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_constructing_a_schedule_directly_validates_it():
    with pytest.raises(ScheduleError, match="minute 61"):
        Schedule("61 * * * *", ZoneInfo(NY))
    with pytest.raises(ScheduleError) as caught:
        Schedule("0 1 * * *", NY)  # a name, not a ZoneInfo
    assert caught.value.field == "timezone"


def test_schedule_keeps_expression_and_expands_alias():
    schedule = Schedule.parse("@daily", NY)

    assert schedule.expr == "@daily"
    assert schedule.cron == "0 0 * * *"
    assert schedule == Schedule.parse("@daily", NY)
