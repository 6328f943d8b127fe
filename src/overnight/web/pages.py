"""The dashboard's pages: batches, a run, its logs, the history; all read-only.

Every name in a request (batch, date, step, attempt) is looked up in the configuration or
the ledger; what is not found there is a 404, and log files are opened only at the path
the ledger recorded.
"""

from __future__ import annotations

import time
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from overnight.ledger import Ledger
from overnight.readmodel.batches import board
from overnight.readmodel.grid import GridView, grid_view
from overnight.readmodel.history import fire_views
from overnight.readmodel.liveness import liveness
from overnight.readmodel.run import RunView, attempt_seen, run_view
from overnight.web import svg
from overnight.web.access import Visit, page
from overnight.web.site import number, valid_date

LOG_CHUNK = 256 * 1024
MAX_NIGHTS = 3650


@page()
def batches(request: Request, visit: Visit) -> Response:
    return visit.render("batches.html", rows=board(visit.dash.config, visit.ledger))


# -- a run -----------------------------------------------------------------------------------


def run_context(ledger: Ledger | None, batch: str, day: str, zone: tzinfo) -> dict[str, Any]:
    run = ledger.find_run(batch, day) if ledger else None
    if run is None or ledger is None:
        return {"batch": batch, "date": day, "run": None, "details": None, "live": False,
                "gantt": "", "dag": "", "who": {}, "now": time.time(), "usual": {}, "running_long": set()}
    alive = liveness(ledger)
    details = run_view(ledger, run, alive)
    live_launch = alive.live_launch(ledger, batch)
    live = live_launch is not None and live_launch.run_id == run.id
    base = f"/run/{quote(batch)}/{day}"
    who = {la.id: la for la in details.launches}
    ahead = details.forecast if details.forecast is not None and details.forecast.live else None
    return {
        "batch": batch, "date": day, "run": run, "details": details, "live": live, "who": who,
        "now": time.time(), "usual": ahead.usual if ahead else {},
        "running_long": {a.step for a in details.alerts if a.kind == "long"},
        "gantt": Markup(
            svg.gantt(details.steps, time.time(), lambda s, n: f"{base}/log/{quote(s)}/{n}", zone)
        ),
        "dag": Markup(svg.dag(details.steps, lambda s: f"#step-{quote(s)}")),
    }


@page()
def latest_run(request: Request, visit: Visit) -> Response:
    batch = visit.known_batch(request.path_params["batch"])
    run = visit.ledger.latest_run(batch) if visit.ledger else None
    day = run.date if run else visit.dash.config.default_date(batch).isoformat()
    return RedirectResponse(f"/run/{quote(batch)}/{day}", status_code=303)


@page()
def run_page(request: Request, visit: Visit) -> Response:
    batch = visit.known_batch(request.path_params["batch"])
    day = valid_date(request.path_params["date"])
    return visit.render("run.html", **run_context(visit.ledger, batch, day, visit.dash.zone(batch)))


@page(api=True)
def run_live(request: Request, visit: Visit) -> Response:
    batch = visit.known_batch(request.path_params["batch"])
    day = valid_date(request.path_params["date"])
    ctx = run_context(visit.ledger, batch, day, visit.dash.zone(batch))
    ctx.update(viewer=visit.viewer, csrf=visit.dash.csrf(request))
    details: RunView | None = ctx["details"]
    return JSONResponse({
        "state": details.state if details else "not started",
        "live": ctx["live"],
        "steps": visit.dash.fragment("_steps.html", **ctx),
        "launches": visit.dash.fragment("_launches.html", **ctx),
        "outlook": visit.dash.fragment("_outlook.html", **ctx),
        "gantt": str(ctx["gantt"]),
        "dag": str(ctx["dag"]),
    })


# -- logs: located through the ledger, never from the request ---------------------------------


def find_attempt(request: Request, visit: Visit) -> tuple[str, str, Any]:
    batch = visit.known_batch(request.path_params["batch"])
    day = valid_date(request.path_params["date"])
    step = request.path_params["step"]
    ledger = visit.ledger
    run = ledger.find_run(batch, day) if ledger else None
    if run is None or ledger is None:
        raise HTTPException(404, "no such run")
    text = request.path_params["attempt"]
    if not isinstance(text, str) or not text.isdigit() or not text.isascii() or len(text) > 9:
        raise HTTPException(404, "no such attempt")
    chosen = [a for a in ledger.attempts(run.id, step) if a.number == int(text)]
    if not chosen:
        raise HTTPException(404, "no such attempt")
    return batch, day, attempt_seen(ledger, run, chosen[-1])


@page()
def log_page(request: Request, visit: Visit) -> Response:
    batch, day, attempt = find_attempt(request, visit)
    size = _size(attempt.log_path)
    others = visit.ledger.attempts(attempt.run_id, attempt.step) if visit.ledger else []
    return visit.render("log.html", batch=batch, date=day, attempt=attempt, others=others,
                        start=max(0, size - LOG_CHUNK), size=size)


@page(api=True)
def log_tail(request: Request, visit: Visit) -> Response:
    _, _, attempt = find_attempt(request, visit)
    offset = number(request.query_params.get("offset"), "offset", default=0)
    data = b""
    if attempt.log_path:
        try:
            with open(attempt.log_path, "rb") as f:
                size = f.seek(0, 2)
                if offset > size:  # the file was replaced: start again
                    offset = 0
                f.seek(offset)
                data = f.read(LOG_CHUNK)
        except OSError:
            pass
    finished = attempt.ended_at is not None or attempt.state != "running"
    return Response(
        data, media_type="application/octet-stream",
        headers={"X-Next-Offset": str(offset + len(data)), "X-Finished": "1" if finished else "0",
                 "X-State": attempt.state, "Cache-Control": "no-store"},
    )


def _size(path: str | None) -> int:
    try:
        return Path(path).stat().st_size if path else 0
    except OSError:
        return 0


# -- history ------------------------------------------------------------------------------------


@page()
def history(request: Request, visit: Visit) -> Response:
    batch = visit.known_batch(request.path_params["batch"])
    nights = max(1, min(MAX_NIGHTS, number(request.query_params.get("nights"), "nights", default=60)))
    ledger = visit.ledger
    grid = grid_view(ledger, batch, nights) if ledger else GridView([], [], {}, {})
    fires = fire_views(ledger, ledger.fires_of(batch, 20)) if ledger else []
    return visit.render("history.html", batch=batch, nights=nights, fires=fires,
                        **history_context(batch, grid))


def history_context(batch: str, grid: GridView) -> dict[str, Any]:
    """The grid and the duration bars of the history page."""
    base = f"/run/{quote(batch)}"
    svg_grid = svg.history_grid(grid.nights, grid.steps, grid.states, lambda d: f"{base}/{d}")
    recent = [d for d, _ in grid.nights[:30]][::-1]
    bars = []
    for name in grid.steps:
        points = [(grid.durations.get((d, name)), grid.states.get((d, name), "pending")) for d in recent]
        known = [p for p, _ in points if p is not None]
        bars.append({
            "step": name,
            "last": known[-1] if known else None,
            "median": sorted(known)[len(known) // 2] if known else None,
            "longest": max(known) if known else None,
            "svg": Markup(svg.duration_bars(points)),
        })
    return {"runs": grid.nights, "grid": Markup(svg_grid), "bars": bars, "recent": len(recent)}
