"""The retry rule that mail and webhooks share, on a fixed clock (no real sleeping)."""

from __future__ import annotations

from overnight.reporting.retry import GiveUp, TryAgain, with_retries


class Clock:
    """A clock that moves only when slept on, or when a try takes time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def attempts(clock: Clock, outcomes: list[Exception | None], took: float = 0.0):  # noqa: ANN201
    """An attempt that fails as `outcomes` says, one entry a try; records the seconds left."""
    lefts: list[float | None] = []

    def attempt(left: float | None) -> None:
        lefts.append(left)
        clock.now += took
        outcome = outcomes[len(lefts) - 1]
        if outcome is not None:
            raise outcome

    return attempt, lefts


def test_a_failure_that_may_pass_is_tried_after_each_pause_until_one_succeeds() -> None:
    clock = Clock()
    attempt, _ = attempts(clock, [TryAgain("refused"), TryAgain("refused"), None])
    tried = with_retries(attempt, (1.0, 2.0, 4.0), clock=lambda: clock.now, sleep=clock.sleep)
    assert (tried.ok, tried.tries, tried.reason) == (True, 3, None)
    assert clock.slept == [1.0, 2.0]


def test_after_the_last_pause_one_more_try_then_the_last_reason() -> None:
    clock = Clock()
    attempt, _ = attempts(clock, [TryAgain(f"refused {i}") for i in range(3)])
    tried = with_retries(attempt, (1.0, 2.0), clock=lambda: clock.now, sleep=clock.sleep)
    assert (tried.ok, tried.tries, tried.reason) == (False, 3, "refused 2")
    assert clock.slept == [1.0, 2.0]


def test_a_failure_another_try_would_not_fix_ends_at_once() -> None:
    clock = Clock()
    attempt, _ = attempts(clock, [TryAgain("refused"), GiveUp("login refused"), None])
    tried = with_retries(attempt, (1.0, 2.0, 4.0), clock=lambda: clock.now, sleep=clock.sleep)
    assert (tried.ok, tried.tries, tried.reason) == (False, 2, "login refused")
    assert clock.slept == [1.0]


def test_no_pauses_means_one_try() -> None:
    clock = Clock()
    attempt, _ = attempts(clock, [TryAgain("refused"), None])
    tried = with_retries(attempt, (), clock=lambda: clock.now, sleep=clock.sleep)
    assert (tried.ok, tried.tries, tried.reason) == (False, 1, "refused")


def test_a_deadline_bounds_every_try_and_no_pause_runs_past_it() -> None:
    """Each try gets only the time left; a pause that would end at or past the deadline
    is not taken, so the whole never outlasts the deadline by more than a pause."""
    clock = Clock()
    attempt, lefts = attempts(clock, [TryAgain("5xx")] * 5, took=1.5)
    tried = with_retries(attempt, (0.5, 1.0, 1.0, 1.0), deadline=clock.now + 5.0,
                         clock=lambda: clock.now, sleep=clock.sleep)
    # tries at 100 (5.0 left), 102 (3.0 left), after 103.5 only 1.5 left: the 1.0 pause ends at
    # 104.5, so a third try with 0.5 left; then too little for another pause.
    assert lefts == [5.0, 3.0, 0.5]
    assert clock.slept == [0.5, 1.0]
    assert (tried.ok, tried.tries, tried.reason) == (False, 3, "5xx")
    assert clock.now <= 100.0 + 5.0 + 1.5


def test_a_deadline_already_past_tries_nothing() -> None:
    clock = Clock()
    attempt, lefts = attempts(clock, [None])
    tried = with_retries(attempt, (1.0,), deadline=clock.now, clock=lambda: clock.now, sleep=clock.sleep)
    assert (tried.ok, tried.tries, tried.reason) == (False, 0, "not tried") and lefts == []
