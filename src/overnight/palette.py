"""How each state looks wherever it is shown: the terminal, the mailed report, the
dashboard's badges and its SVG. One tone per state, and one table of what each tone
looks like in every medium.
"""

from __future__ import annotations

from typing import NamedTuple


class Tone(NamedTuple):
    background: str  # a badge's background, an SVG shape's fill (dashboard and mail)
    text: str  # the text drawn on that background
    ansi: str  # the terminal's SGR colour code (status, history, list on a tty)


TONES: dict[str, Tone] = {
    "ok": Tone("#2f9e44", "#fff", "32"),
    "adopted": Tone("#8ce99a", "#1b4332", "32"),  # done, but not by overnight: a paler success
    "bad": Tone("#e03131", "#fff", "31"),
    "timeout": Tone("#a61e4d", "#fff", "31"),
    "run": Tone("#1c7ed6", "#fff", "36"),
    "blocked": Tone("#fab005", "#fff", "33"),
    "warn": Tone("#f08c00", "#fff", "33"),
    "crash": Tone("#9c36b5", "#fff", "35"),
    "skip": Tone("#adb5bd", "#fff", "2"),
    "pending": Tone("#dee2e6", "#495057", "2"),
}

# Every step, attempt, launch and run state, in the order a legend lists them.
STATE_TONE: dict[str, str] = {
    "succeeded": "ok",
    "adopted": "adopted",
    "failed": "bad",
    "timed_out": "timeout",
    "running": "run",
    "blocked": "blocked",
    "cancelled": "warn",
    "interrupted": "crash",
    "crashed": "crash",
    "skipped": "skip",
    "pending": "pending",
}

# What the dashboard's legend shows ("crashed" looks like "interrupted").
LEGEND = [state for state in STATE_TONE if state != "crashed"]


def tone(state: str) -> Tone | None:
    """How a state looks; None for a state this table does not know."""
    name = STATE_TONE.get(state)
    return TONES[name] if name else None


def state_css() -> str:
    """The dashboard's colours: a variable per tone (`--bad`...) and the `.s-STATE` rules
    (badges take the background, SVG shapes the fill)."""
    variables = "; ".join(f"--{name}: {t.background}" for name, t in TONES.items())
    rules = [f":root {{ {variables}; }}"]
    for state, name in STATE_TONE.items():
        rules.append(
            f".s-{state} {{ background: var(--{name}); fill: var(--{name}); color: {TONES[name].text}; }}"
        )
    return "\n".join(rules) + "\n"
