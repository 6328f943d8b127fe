"""From overnight.toml to Schedule objects: each batch's cron expression in its zone.

cron.py does the time arithmetic; this module only gathers its inputs from the
configuration (the batch's zone or the [overnight] default, the DST policies, which
business date a fire runs for) and turns a bad value into a one-line ConfigError that
names the file, the batch and the setting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from overnight.errors import ConfigError
from overnight.scheduling.cron import Schedule, ScheduleError, next_fire

if TYPE_CHECKING:
    from overnight.config import Config

# How many days before the scheduled wall-clock date a run's business date is.
DATE_OFFSET_DAYS = {"yesterday": 1, "today": 0}


def schedule_for(config: Config, batch: str) -> Schedule | None:
    """The batch's schedule, or None when it has none; ConfigError if it cannot be used."""
    bc = config.batches[batch]
    if not bc.schedule:
        return None
    where = f"{config.path or 'overnight.toml'}: [batches.{batch}]"
    try:
        zone = config.zone_for(batch)
    except ConfigError as e:
        raise ConfigError(f"{where}: timezone: {e}") from None
    try:
        schedule = Schedule(
            bc.schedule, zone, gap=bc.dst_gap, repeat=bc.dst_repeat,
            date_offset_days=DATE_OFFSET_DAYS[bc.run_date],
        )
    except ScheduleError as e:
        raise ConfigError(f"{where}: {e}") from None
    times = schedule.times_a_day
    if times > 1:
        # Whatever `date` says, every fire of one day is for the same business date: the
        # second would resume a run already done and do nothing, silently.
        raise ConfigError(
            f"{where}: schedule {bc.schedule!r} fires {times} times a day, but a run is one "
            "batch for one business date: every fire after the first would find that date "
            "done; give one time of day, e.g. schedule = \"0 1 * * *\""
        )
    return schedule


def schedules(config: Config) -> dict[str, Schedule]:
    """Every scheduled batch's schedule, all checked: the first bad one raises ConfigError."""
    out = {}
    for name in sorted(config.batches):
        schedule = schedule_for(config, name)
        if schedule is not None:
            out[name] = schedule
    return out


def next_fire_for(config: Config, batch: str, after: datetime | None = None) -> str | None:
    """The batch's next fire time as `overnight list` shows it, e.g. "2026-11-28 01:00 -06:00"."""
    schedule = schedule_for(config, batch)
    if schedule is None:
        return None
    try:
        fire = next_fire(schedule, after or datetime.now(tz=UTC))
    except ScheduleError:
        return None  # an expression that never fires again (a 30 February)
    return format_instant(fire.at)


def format_instant(moment: datetime) -> str:
    """Local wall time with its UTC offset, to the minute (seconds only when not zero)."""
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    clock = "%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M"
    return f"{moment.strftime(clock)} {sign}{hours:02d}:{mins:02d}"


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 instant with its UTC offset (`2026-11-28T01:00:00-06:00`, or `...Z`)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{option} {text}: not an ISO 8601 instant; write e.g. 2026-11-28T01:00:00-06:00"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(
            f"{option} {text}: give the UTC offset too (e.g. {text}+00:00): a wall time alone "
            "is ambiguous on the nights clocks change"
        )
    return moment
