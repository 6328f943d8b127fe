"""When an alert is due and what it says, and what `check` says of a night: fixed instants."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from overnight.lookout import (
    LATE_SLIP,
    finish_text,
    late_alert_due,
    late_key,
    late_subject,
    long_alert_after,
    long_subject,
    missed_subject,
)
from overnight.readmodel.expected import CRITICAL, OK, WARNING, ClockText, NightFacts, judge_night

UTC = ZoneInfo("UTC")
CHICAGO = ZoneInfo("America/Chicago")
DEADLINE = datetime(2026, 11, 27, 6, 0, tzinfo=UTC).timestamp()
NOW = DEADLINE - 3 * 3600  # 03:00


@pytest.mark.parametrize(("finish", "now", "announced", "due"), [
    (DEADLINE - 60, NOW, [], False),                 # on time
    (DEADLINE, NOW, [], False),                      # exactly on time is on time
    (DEADLINE + 1, NOW, [], True),                   # first time past it: once
    (DEADLINE + 600, NOW, [DEADLINE + 1], False),    # slipped 10 minutes more: not again
    (DEADLINE + 1 + LATE_SLIP, NOW, [DEADLINE + 1], True),  # slipped 15 minutes more: again
    (DEADLINE + 1 + LATE_SLIP, NOW, [DEADLINE + 1, DEADLINE + 1 + LATE_SLIP], False),
    (DEADLINE + 60, DEADLINE, [], False),            # the deadline has passed: "missed" is the news
    (DEADLINE - 60, NOW, [DEADLINE + 3600], False),  # back on time after an alert: nothing
    (None, NOW, [], False),                          # nothing has history: no prediction
])
def test_will_be_late_once_then_again_only_after_a_15_minute_slip(
    finish: float | None, now: float, announced: list[float], due: bool
) -> None:
    assert late_alert_due(finish, DEADLINE, now, announced) is due


def test_without_a_deadline_nothing_is_late() -> None:
    assert late_alert_due(DEADLINE + 3600, None, NOW, []) is False


def test_each_late_alert_has_its_own_key_so_the_ledger_makes_each_once() -> None:
    assert [late_key([]), late_key([1.0]), late_key([1.0, 2.0])] == ["1", "2", "3"]


@pytest.mark.parametrize(("usual", "timeout", "after"), [
    (60.0, None, 180.0),       # at three times its median
    (59.9, None, None),        # medians under a minute: too noisy to call long
    (None, None, None),        # no history
    (100.0, 300.0, None),      # its timeout comes first (or at the same moment): that is news enough
    (100.0, 301.0, 300.0),
    (600.0, 3600.0, 1800.0),
])
def test_running_long_at_three_times_the_median_before_any_timeout(
    usual: float | None, timeout: float | None, after: float | None
) -> None:
    assert long_alert_after(usual, timeout) == after


def test_the_subjects_say_the_batch_the_date_and_the_times_in_its_zone() -> None:
    deadline = datetime(2026, 11, 27, 6, 0, tzinfo=CHICAGO).timestamp()
    finish = datetime(2026, 11, 27, 7, 10, tzinfo=CHICAGO).timestamp()
    assert late_subject("all", "2026-11-26", finish, deadline, CHICAGO) == (
        "Overnight for 2026-11-26: all: will be late (predicted 07:10, deadline 06:00)"
    )
    assert late_subject("all", "2026-11-26", finish, deadline, CHICAGO, partial=True) == (
        "Overnight for 2026-11-26: all: will be late (predicted at least 07:10, deadline 06:00)"
    )
    assert missed_subject("all", "2026-11-26", deadline, CHICAGO, "not started") == (
        "Overnight for 2026-11-26: all: missed deadline (06:00, not started)"
    )
    assert long_subject("all", "2026-11-26", "load", 1860, 600) == (
        "Overnight for 2026-11-26: all: running long: load (31m00s, usually 10m00s)"
    )


def test_seconds_show_when_the_deadline_has_them_and_the_date_when_the_day_differs() -> None:
    deadline = datetime(2026, 11, 27, 6, 0, 30, tzinfo=UTC).timestamp()
    finish = datetime(2026, 11, 28, 0, 10, 5, tzinfo=UTC).timestamp()
    assert late_subject("b", "2026-11-26", finish, deadline, UTC) == (
        "Overnight for 2026-11-26: b: will be late (predicted 2026-11-28 00:10:05, deadline 06:00:30)"
    )


def test_the_status_line_of_a_prediction() -> None:
    deadline = datetime(2026, 11, 27, 6, 0, tzinfo=UTC).timestamp()
    at = datetime(2026, 11, 27, 5, 12, tzinfo=UTC).timestamp()
    assert finish_text(at, deadline, False, 0, UTC) == "predicted finish 05:12 (deadline 06:00)"
    assert finish_text(at, deadline, True, 3, UTC) == (
        "predicted finish at least 05:12 (deadline 06:00); 3 steps have no history"
    )
    assert finish_text(at + 3600, deadline, True, 1, UTC) == (
        "predicted finish at least 06:12 (deadline 06:00, late); 1 step has no history"
    )
    assert finish_text(None, deadline, False, 0, UTC) == (
        "no predicted finish yet: no step still to run has history (deadline 06:00)"
    )
    assert finish_text(at, None, False, 0, UTC, now=at) == "predicted finish 05:12"


# -- what `check` says ---------------------------------------------------------------------


def facts(**given: object) -> NightFacts:
    base: dict[str, object] = dict(state=None, summary="", deadline=DEADLINE, overdue_at=DEADLINE,
                                   finished_at=None, predicted=None)
    base.update(given)
    return NightFacts(**base)  # type: ignore[arg-type]


CLOCK = ClockText(UTC, DEADLINE)


@pytest.mark.parametrize(("case", "now", "code", "says", "missed"), [
    (facts(), NOW, OK, "not started yet (deadline 06:00)", False),
    (facts(), DEADLINE, CRITICAL, "not run, and its deadline 06:00 has passed", True),
    (facts(deadline=None, overdue_at=DEADLINE + 86400), DEADLINE + 86400, CRITICAL,
     "not run, and its next fire has passed", False),
    (facts(deadline=None, overdue_at=None), DEADLINE + 86400 * 9, OK, "not started yet", False),
    (facts(state="succeeded", finished_at=NOW), NOW, OK, "succeeded", False),
    (facts(state="succeeded", finished_at=DEADLINE + 60), DEADLINE + 120, OK,
     "succeeded, after its deadline 06:00", True),
    (facts(state="failed", summary="failed (1 of 12)", finished_at=NOW), NOW, CRITICAL,
     "failed (1 of 12)", False),
    (facts(state="crashed", summary="crashed (2 of 3)"), NOW, CRITICAL, "crashed (2 of 3)", False),
    (facts(state="running", predicted=DEADLINE - 600), NOW, OK,
     "running, predicted 05:50 (deadline 06:00)", False),
    (facts(state="running", predicted=DEADLINE + 600), NOW, WARNING,
     "running, predicted 06:10, after its deadline 06:00", False),
    (facts(state="running", predicted=DEADLINE + 600, partial=True), NOW, WARNING,
     "running, predicted at least 06:10, after its deadline 06:00", False),
    (facts(state="running", predicted=DEADLINE + 600), DEADLINE + 1, CRITICAL,
     "running past its deadline 06:00, predicted 06:10", True),
    (facts(state="succeeded", finished_at=NOW, unsent=("mail: connection refused",)), NOW, WARNING,
     "succeeded; not sent: mail: connection refused", False),
    (facts(state="failed", summary="failed (1 of 2)", unsent=("mail: refused",)), NOW, CRITICAL,
     "failed (1 of 2)", False),
])
def test_what_check_says_of_a_night(case: NightFacts, now: float, code: int, says: str, missed: bool) -> None:
    assert judge_night(case, now, CLOCK) == (code, says, missed)
