"""Server-rendered SVG: the night's timeline, the dependency graph, the history grid.

Pure functions from the read model (readmodel.run.StepView, readmodel.grid.GridView)
to markup strings. They are built with list joins rather than a template: the grid of a
year of nights has tens of thousands of cells and must render in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from html import escape
from typing import TYPE_CHECKING

from overnight.durations import format_duration
from overnight.web.clock import offset, wall

if TYPE_CHECKING:
    from overnight.readmodel.run import StepView

# Tick spacings a person reads easily, in seconds.
_TICKS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def _attr(text: object) -> str:
    return escape(str(text), quote=True)


def _tick_step(span: float, wanted: int = 8) -> int:
    for step in _TICKS:
        if span / step <= wanted:
            return step
    return _TICKS[-1]


LABEL_W, ROW_H, TOP = 190, 20, 24
# Ticks closer than this to either end of the axis are left out: their labels would run
# into the start label, or off the page.
_EDGE = 7.0


def _short(name: str, most: int = 28) -> str:
    return name if len(name) <= most else name[: most - 1] + "…"


def gantt(
    steps: Sequence[StepView],
    now: float,
    log_link: Callable[[str, int], str],
    zone: tzinfo | None = None,
) -> str:
    """Every attempt of every step on one time axis: gaps and parallelism at a glance.

    Two pictures side by side: the step names at a fixed width, and the bars across the
    rest of the page, placed in percent of its width so they fill it at any size, with
    whole tick labels on the batch's clock.
    """
    zone = zone or UTC
    spans = [
        (a.started_at, a.ended_at if a.ended_at is not None else now)
        for s in steps for a in s.attempts
    ]
    if not spans:
        return '<p class="muted gantt-empty">nothing has run yet</p>'
    height = TOP + ROW_H * max(1, len(steps)) + 4
    t0 = min(s for s, _ in spans)
    t1 = max(max(e for _, e in spans), t0 + 1)

    def pct(t: float) -> float:
        return (t - t0) / (t1 - t0) * 100

    names = [f'<svg class="gantt-names" width="{LABEL_W}" height="{height}" aria-hidden="true">']
    bars = [f'<svg class="gantt-bars" width="100%" height="{height}" role="img" aria-label="timeline">']
    step = _tick_step(t1 - t0)
    clock = "%H:%M:%S" if step < 60 else "%H:%M"
    bars.append(f'<text x="0" y="12" class="tick">{_attr(wall(t0, zone, clock + " %Z"))}</text>')
    shift = offset(t0, zone)  # ticks on the zone's round times, not UTC's
    first = (int(t0 + shift) // step + 1) * step - shift
    for tick in range(int(first), int(t1) + 1, step):
        x = pct(tick)
        if x < _EDGE * 2 or x > 100 - _EDGE:
            continue
        bars.append(
            f'<line x1="{x:.2f}%" y1="16" x2="{x:.2f}%" y2="{height}" class="grid"/>'
            f'<text x="{x:.2f}%" y="12" class="tick" text-anchor="middle">{wall(tick, zone, clock)}</text>'
        )
    for row, s in enumerate(steps):
        y = TOP + row * ROW_H
        names.append(
            f'<text x="{LABEL_W - 8}" y="{y + 13}" class="label" text-anchor="end">'
            f"<title>{_attr(s.name)}</title>{_attr(_short(s.name))}</text>"
        )
        for a in s.attempts:
            end = a.ended_at if a.ended_at is not None else now
            tip = f"{s.name} attempt {a.number}: {a.state}, {format_duration(end - a.started_at)}"
            x, w = pct(a.started_at), max(0.2, pct(end) - pct(a.started_at))
            bars.append(
                f'<a href="{_attr(log_link(s.name, a.number))}"><title>{_attr(tip)}</title>'
                f'<rect x="{x:.3f}%" y="{y + 3}" width="{w:.3f}%" height="{ROW_H - 6}" rx="2" '
                f'class="s-{_attr(a.state)}"/></a>'
            )
    names.append("</svg>")
    bars.append("</svg>")
    return f'<div class="gantt">{"".join(names)}{"".join(bars)}</div>'


def layers(steps: Sequence[StepView]) -> dict[str, int]:
    """Each step's layer: the length of the longest path to it from a step with no
    prerequisites. Steps arrive in dependency order (the ledger's positions)."""
    layer: dict[str, int] = {}
    for s in steps:
        layer[s.name] = 1 + max((layer[p] for p in s.after if p in layer), default=-1)
    return layer


def dag(steps: Sequence[StepView], step_link: Callable[[str], str]) -> str:
    """The dependency graph, top to bottom, one row per layer."""
    layer = layers(steps)
    rows: dict[int, list[str]] = {}
    for s in steps:
        rows.setdefault(layer[s.name], []).append(s.name)
    node_w, node_h, gap_x, gap_y = 150, 30, 20, 34
    widest = max((len(r) for r in rows.values()), default=1)
    width = widest * (node_w + gap_x) + gap_x
    height = len(rows) * (node_h + gap_y) + gap_y
    where: dict[str, tuple[float, float]] = {}
    for depth, names in rows.items():
        offset = (width - len(names) * (node_w + gap_x) + gap_x) / 2
        for i, name in enumerate(names):
            where[name] = (offset + i * (node_w + gap_x), gap_y / 2 + depth * (node_h + gap_y))
    out = [f'<svg class="dag" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for s in steps:
        x2, y2 = where[s.name]
        for p in s.after:
            if p not in where:
                continue
            x1, y1 = where[p]
            ax, ay, bx, by = x1 + node_w / 2, y1 + node_h, x2 + node_w / 2, y2
            mid = (ay + by) / 2
            out.append(
                f'<path d="M{ax:.0f},{ay:.0f} C{ax:.0f},{mid:.0f} {bx:.0f},{mid:.0f} {bx:.0f},{by - 4:.0f}" '
                'class="edge" marker-end="url(#arrow)"/>'
            )
    out.append(
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="4" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrow"/></marker></defs>'
    )
    for s in steps:
        x, y = where[s.name]
        name = s.name if len(s.name) <= 20 else s.name[:19] + "…"
        out.append(
            f'<a href="{_attr(step_link(s.name))}"><title>{_attr(s.name)}: {_attr(s.state)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{node_w}" height="{node_h}" rx="6" '
            f'class="node s-{_attr(s.state)}"/>'
            f'<text x="{x + node_w / 2:.0f}" y="{y + 19:.0f}" text-anchor="middle" class="nodetext">'
            f"{_attr(name)}</text></a>"
        )
    out.append("</svg>")
    return "".join(out)


GRID_ROW, GRID_TOP, WIDEST_NIGHT = 20, 14, 64


def _grid_header(dates: Sequence[tuple[str, str]], width: int) -> str:
    """The nights' dates above the grid, slanted, at percent positions: they stay over their
    columns however wide the page makes the grid."""
    every = max(1, -(-len(dates) // 60))  # at most 60 labels: they need ~14 px each
    out = [f'<svg class="grid-dates" width="{width}" height="70" aria-hidden="true">']
    for col, (day, _) in enumerate(dates):
        if col % every == 0:
            x = (col + 0.5) / len(dates) * 100
            out.append(f'<svg x="{x:.3f}%" y="66" overflow="visible">'
                       f'<text class="tick" transform="rotate(-60)">{day}</text></svg>')
    out.append("</svg>")
    return "".join(out)


def history_grid(
    dates: Sequence[tuple[str, str]],
    step_names: Sequence[str],
    cells: dict[tuple[str, str], str],
    run_link: Callable[[str], str],
) -> str:
    """Nights (columns, newest first) by steps (rows), each cell coloured by the step's state.

    `dates` is [(date, run state)], `cells` maps (date, step) to the step's state. The
    columns stretch to the page (a night is one unit of the picture's width, drawn at
    most WIDEST_NIGHT pixels wide); rows keep their height; names sit in a column of their own.
    """
    n = max(1, len(dates))
    width, height = n * WIDEST_NIGHT, GRID_TOP + GRID_ROW * len(step_names)
    names = [f'<svg class="grid-names" width="{LABEL_W}" height="{height}" aria-hidden="true">'
             f'<text x="{LABEL_W - 8}" y="9" class="label muted" text-anchor="end">the night</text>']
    for row, name in enumerate(step_names):
        names.append(
            f'<text x="{LABEL_W - 8}" y="{GRID_TOP + row * GRID_ROW + 14}" class="label" text-anchor="end">'
            f"<title>{_attr(name)}</title>{_attr(_short(name))}</text>"
        )
    names.append("</svg>")
    dense = " dense" if n > 150 else ""  # too narrow for a gap between nights
    out = [
        f'<svg class="grid{dense}" width="{width}" height="{height}" viewBox="0 0 {n} {height}" '
        f'preserveAspectRatio="none" role="img" data-geometry="{GRID_TOP} {GRID_ROW}">'
    ]
    for col, (day, state) in enumerate(dates):
        parts = [
            f'<a href="{_attr(run_link(day))}">'
            f'<path d="M{col} 0h1v10h-1z" class="run s-{_attr(state)}"/>'
        ]
        # One path per state per night, not one shape per cell: a year of nights by 50 steps
        # is 18,000 cells, and the browser lays out a few hundred paths far faster.
        shapes: dict[str, list[str]] = {}
        for row, name in enumerate(step_names):
            cell = cells.get((day, name))
            if cell is not None:
                shapes.setdefault(cell, []).append(f"M{col} {GRID_TOP + row * GRID_ROW}h1v{GRID_ROW - 2}h-1z")
        for cell, boxes in shapes.items():
            parts.append(f'<path d="{"".join(boxes)}" class="c s-{_attr(cell)}"/>')
        parts.append("</a>")
        out.append("".join(parts))
    out.append("</svg>")
    # What the page's script needs to name the cell under the pointer: one letter per cell.
    data = {
        "dates": [d for d, _ in dates],
        "runs": [_CODE.get(state, "?") for _, state in dates],
        "steps": list(step_names),
        "cells": ["".join(_CODE.get(cells.get((d, name), ""), ".") for name in step_names) for d, _ in dates],
        "codes": {v: k for k, v in _CODE.items()},
    }
    # "</" cannot appear in JSON from these names (validated), but escape it anyway.
    script = (
        '<script type="application/json" class="grid-data">'
        + json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        + "</script>"
    )
    side = f'<div class="grid-side"><div class="grid-corner"></div>{"".join(names)}</div>'
    return (f'<div class="grid-wrap">{side}'
            f'<div class="grid-cols">{_grid_header(dates, width)}{"".join(out)}</div>{script}</div>')


_CODE = {
    "succeeded": "s", "failed": "f", "timed_out": "t", "interrupted": "i", "cancelled": "c",
    "blocked": "b", "running": "r", "skipped": "k", "pending": "p", "crashed": "x", "adopted": "a",
}


def duration_bars(points: Sequence[tuple[float | None, str]], width: int = 180, height: int = 26) -> str:
    """One step's duration over the last nights (oldest left), each bar coloured by state."""
    longest = max((d for d, _ in points if d), default=0.0) or 1.0
    bar = width / max(1, len(points))
    out = [f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, (duration, state) in enumerate(points):
        if duration is None:
            continue
        h = max(1.0, duration / longest * (height - 2))
        out.append(
            f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(1.0, bar - 1):.1f}" '
            f'height="{h:.1f}" class="s-{_attr(state)}"/>'
        )
    out.append("</svg>")
    return "".join(out)
