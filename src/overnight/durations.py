"""Durations as operators write them: "90s", "20m", "1h30m", "500ms", or plain seconds."""

from __future__ import annotations

import re

from overnight.errors import DefinitionError

# What a batch module may write for a duration: "90s", "20m", "1h30m", "500ms", or seconds.
Duration = str | int | float

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object, where: str = "duration") -> float:
    """Seconds in `value`, or DefinitionError saying what `where` should look like."""
    if isinstance(value, bool):
        raise DefinitionError(f"{where}: {value!r} is not a duration (use e.g. 90s, 20m, 1h30m)")
    if isinstance(value, (int, float)):
        if value < 0 or value != value or value == float("inf"):
            raise DefinitionError(f"{where}: {value!r} is not a duration of zero or more")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and _PART.sub("", text) == "":
            return sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(text))
        try:
            return parse_duration(float(text), where)
        except ValueError:
            pass
    raise DefinitionError(f"{where}: {value!r} is not a duration (use e.g. 90s, 20m, 1h30m)")


def format_duration(seconds: float | None) -> str:
    """Short and readable: 0.35s, 12.0s, 3m05s, 1h02m."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
