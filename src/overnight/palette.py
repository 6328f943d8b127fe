"""How each state looks wherever it is shown: the terminal, the mailed report, the
dashboard's badges and its SVG. One tone per state, one colour per tone, one table each.
"""

from __future__ import annotations

# Every step, attempt, launch and run state, in the order a legend lists them.
STATE_TONE: dict[str, str] = {
    "succeeded": "ok",
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

# Per tone: the badge's background and the text drawn on it (dashboard and mail alike).
TONE_COLOURS: dict[str, tuple[str, str]] = {
    "ok": ("#2f9e44", "#fff"),
    "bad": ("#e03131", "#fff"),
    "timeout": ("#a61e4d", "#fff"),
    "run": ("#1c7ed6", "#fff"),
    "blocked": ("#fab005", "#fff"),
    "warn": ("#f08c00", "#fff"),
    "crash": ("#9c36b5", "#fff"),
    "skip": ("#adb5bd", "#fff"),
    "pending": ("#dee2e6", "#495057"),
}

# Per tone: the SGR code of the terminal's colour (status, history, list on a tty).
TONE_ANSI: dict[str, str] = {
    "ok": "32", "bad": "31", "timeout": "31", "run": "36", "blocked": "33", "warn": "33",
    "crash": "35", "skip": "2", "pending": "2",
}

# What the dashboard's legend shows ("crashed" reads like "interrupted").
LEGEND = [state for state in STATE_TONE if state != "crashed"]


def colours(state: str) -> tuple[str, str] | None:
    """(background, text) of a state's badge; None for a state this table does not know."""
    tone = STATE_TONE.get(state)
    return TONE_COLOURS[tone] if tone else None


def ansi(state: str) -> str | None:
    tone = STATE_TONE.get(state)
    return TONE_ANSI[tone] if tone else None


def state_css() -> str:
    """The dashboard's colours: a variable per tone (`--bad`...) and the `.s-STATE` rules
    (badges take the background, SVG shapes the fill)."""
    tones = "; ".join(f"--{tone}: {background}" for tone, (background, _) in TONE_COLOURS.items())
    rules = [f":root {{ {tones}; }}"]
    for state, tone in STATE_TONE.items():
        text = TONE_COLOURS[tone][1]
        rules.append(f".s-{state} {{ background: var(--{tone}); fill: var(--{tone}); color: {text}; }}")
    return "\n".join(rules) + "\n"
