"""Ready-made `when=` predicates over cron's day rules (pure: no clock, no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from overnight.errors import DefinitionError


def cron_days(rule: str, *, next_day: bool = False) -> Callable[[date], bool]:
    """A `when=`: true on the days a crontab day rule ("DOM MONTH DOW", e.g. "* * 1-5")
    matches, with cron's own meaning of it (when both DOM and DOW are restricted, either
    one matching is enough).

    `next_day=True`: the rule is about the day after the run's date. A night run at 01:00
    is for yesterday's date by default, so the day cron fired a 01:45 line on is the run's
    date plus one: "* * 1-5" then means the nights dated Sunday to Thursday.
    """
    from cronsim import CronSim, CronSimError

    expression = f"0 0 {rule}"
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except (CronSimError, ValueError) as e:
        raise DefinitionError(f"cron_days({rule!r}): not a crontab day rule ({e})") from None
    shift = timedelta(days=1 if next_day else 0)

    def when(day: date) -> bool:
        fired = day + shift
        midnight = datetime(fired.year, fired.month, fired.day)
        # The first match after the minute before that midnight is that midnight, if any.
        return next(CronSim(expression, midnight - timedelta(minutes=1))) == midnight

    when.__qualname__ = when.__name__ = f"cron_days({rule!r}{', next_day=True' if next_day else ''})"
    return when
