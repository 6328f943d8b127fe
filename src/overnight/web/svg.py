"""Server-rendered SVG: the night's timeline, the dependency graph, the history grid.

Pure functions from the read model (readmodel.run.StepView, readmodel.grid.GridView)
to markup strings. They are built with list joins rather than a template: the grid of a
year of nights has tens of thousands of cells and must render in milliseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING

from overnight.durations import format_duration

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


def gantt(
    steps: Sequence[StepView],
    now: float,
    log_link: Callable[[str, int], str],
    width: int = 900,
) -> str:
    """Every attempt of every step on one time axis: gaps and parallelism at a glance."""
    spans = [
        (a.started_at, a.ended_at if a.ended_at is not None else now)
        for s in steps for a in s.attempts
    ]
    label_w, row_h, top = 170, 18, 26
    height = top + row_h * max(1, len(steps)) + 6
    if not spans:
        return (
            f'<svg class="gantt" width="{label_w + width}" height="40" role="img">'
            '<text x="4" y="24" class="muted">nothing has run yet</text></svg>'
        )
    t0 = min(s for s, _ in spans)
    t1 = max(max(e for _, e in spans), t0 + 1)
    scale = width / (t1 - t0)
    out = [
        f'<svg class="gantt" width="{label_w + width + 10}" height="{height}" '
        f'viewBox="0 0 {label_w + width + 10} {height}" role="img" aria-label="timeline">'
    ]
    step = _tick_step(t1 - t0)
    first = (int(t0) // step + 1) * step
    clock = "%H:%M:%S" if step < 60 else "%H:%M"
    out.append(f'<text x="{label_w}" y="12" class="tick">{time.strftime(clock, time.localtime(t0))}</text>')
    for tick in range(first, int(t1) + 1, step):
        x = label_w + (tick - t0) * scale
        if x - label_w < 60:
            continue
        out.append(
            f'<line x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{height}" class="grid"/>'
            f'<text x="{x:.1f}" y="12" class="tick" text-anchor="middle">'
            f"{time.strftime(clock, time.localtime(tick))}</text>"
        )
    for row, s in enumerate(steps):
        y = top + row * row_h
        out.append(
            f'<text x="{label_w - 6}" y="{y + 12}" class="label" text-anchor="end">{_attr(s.name)}</text>'
        )
        for a in s.attempts:
            end = a.ended_at if a.ended_at is not None else now
            x = label_w + (a.started_at - t0) * scale
            w = max(2.0, (end - a.started_at) * scale)
            tip = (
                f'{s.name} attempt {a.number}: {a.state}, '
                f'{format_duration(end - a.started_at)}'
            )
            out.append(
                f'<a href="{_attr(log_link(s.name, a.number))}"><title>{_attr(tip)}</title>'
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" rx="2" '
                f'class="s-{_attr(a.state)}"/></a>'
            )
    out.append("</svg>")
    return "".join(out)


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


def history_grid(
    dates: Sequence[tuple[str, str]],
    step_names: Sequence[str],
    cells: dict[tuple[str, str], str],
    run_link: Callable[[str], str],
) -> str:
    """Nights (columns, newest first) by steps (rows), each cell coloured by the step's state.

    `dates` is [(date, run state)], `cells` maps (date, step) to the step's state.
    """
    label_w, cw, ch, top = 170, 12, 15, 74
    width = label_w + cw * len(dates) + 4
    height = top + ch * len(step_names) + 4
    out = [
        f'<svg class="grid" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'data-geometry="{label_w} {cw} {ch} {top}">'
    ]
    for row, name in enumerate(step_names):
        out.append(
            f'<text x="{label_w - 6}" y="{top + row * ch + 11}" class="label" text-anchor="end">'
            f"{_attr(name)}</text>"
        )
    for col, (day, state) in enumerate(dates):
        x = label_w + col * cw
        if col % 7 == 0:
            out.append(
                f'<text x="{x + 9}" y="{top - 16}" class="tick" transform="rotate(-60 {x + 9} {top - 16})">'
                f"{day}</text>"
            )
        parts = [
            f'<a href="{_attr(run_link(day))}">'
            f'<rect x="{x}" y="{top - 12}" width="{cw - 2}" height="8" class="run s-{_attr(state)}"/>'
        ]
        # One path per state per night, not one shape per cell: a year of nights by 50 steps
        # is 18,000 cells, and the browser lays out a few hundred paths far faster.
        shapes: dict[str, list[str]] = {}
        for row, name in enumerate(step_names):
            cell = cells.get((day, name))
            if cell is not None:
                shapes.setdefault(cell, []).append(f"M{x} {top + row * ch}h{cw - 2}v{ch - 2}h{2 - cw}z")
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
        "cells": ["".join(_CODE.get(cells.get((d, n), ""), ".") for n in step_names) for d, _ in dates],
        "codes": {v: k for k, v in _CODE.items()},
    }
    # "</" cannot appear in JSON from these names (validated), but escape it anyway.
    out.append(
        '<script type="application/json" class="grid-data">'
        + json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        + "</script>"
    )
    return "".join(out)


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
