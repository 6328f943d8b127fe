"""Times as the dashboard shows them: on the batch's clock, with the zone's abbreviation.

A night in America/Chicago is read in Chicago time wherever the server runs ("01:00:03
CST"), as `overnight list` and the schedule speak of it. Pure: the zone is an argument.
"""

from __future__ import annotations

from datetime import datetime, tzinfo


def clock(ts: float | None, zone: tzinfo, seconds: bool = True) -> str:
    """`2026-11-26 01:00:03 CST`; "-" for no time."""
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts, zone)
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def short(ts: float | None, zone: tzinfo, day_of: float | None = None) -> str:
    """`05:12 CST` (seconds only when not zero), with the date in front when it is another
    day than `day_of`'s: a predicted finish, a deadline."""
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts, zone)
    text = moment.strftime("%H:%M:%S %Z" if moment.second else "%H:%M %Z")
    if day_of is not None and datetime.fromtimestamp(day_of, zone).date() != moment.date():
        text = f"{moment.date().isoformat()} {text}"
    return text


def instant(text: str | None, zone: tzinfo) -> str:
    """An instant written with its UTC offset (the scheduler's fire times, `list`'s next
    fire: `2026-11-28T01:00:00-06:00`, `2026-11-28 01:00 -06:00`) on the batch's clock."""
    if not text:
        return "-"
    try:
        moment = datetime.fromisoformat(text.replace(" -", "-").replace(" +", "+"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return clock(moment.timestamp(), zone, seconds=moment.second != 0)


def wall(ts: float, zone: tzinfo, fmt: str) -> str:
    """`ts` on the zone's clock in `fmt` (strftime)."""
    return datetime.fromtimestamp(ts, zone).strftime(fmt)


def offset(ts: float, zone: tzinfo) -> float:
    """Seconds the zone's clock is ahead of UTC at `ts`: ticks fall on its round times."""
    delta = datetime.fromtimestamp(ts, zone).utcoffset()
    return delta.total_seconds() if delta is not None else 0.0
