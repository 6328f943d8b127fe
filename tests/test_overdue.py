"""When the scheduler sends "missed deadline" itself: fixed instants."""

from __future__ import annotations

import pytest

from overnight.scheduling.overdue import RUNNER_GRACE, missed_news

DEADLINE = 1_800_000_000.0
AFTER = DEADLINE + 30


@pytest.mark.parametrize(("now", "state", "live", "watched", "news"), [
    (DEADLINE - 1, None, False, True, None),             # not yet
    (AFTER, None, False, True, "not started"),           # no run at all
    (AFTER, None, False, False, None),                   # before the scheduler watched it: not its news
    (AFTER, "succeeded", False, True, None),             # done in time (or late: it is done)
    (AFTER, "running", True, True, None),                # its live runner sends its own
    (DEADLINE + RUNNER_GRACE, "running", True, True, "not finished"),  # ... and has not: the scheduler does
    (AFTER, "crashed", False, True, "crashed"),          # the runner died: nobody else will say it
    (AFTER, "failed", False, True, "failed"),            # failed and not resumed in time
    (AFTER, "cancelled", False, True, "cancelled"),
])
def test_the_scheduler_sends_missed_deadline_for_the_nights_no_runner_reports(
    now: float, state: str | None, live: bool, watched: bool, news: str | None
) -> None:
    assert missed_news(DEADLINE, now, state, live, watched=watched) == news
