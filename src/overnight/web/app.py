"""The dashboard: a Starlette app over the ledger, read-only except for what it launches.

Each request opens the ledger read-only for as long as it needs it, so runs writing to
it are never held up. Nothing is run inside the server: buttons start `overnight`
processes (see actions.py). Every name in a request (batch, date, step, attempt) is
looked up in the configuration or the ledger; what is not found there is a 404, and log
files are opened only at the path the ledger recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from overnight import views
from overnight.config import Config
from overnight.errors import OvernightError
from overnight.ledger import Ledger, RunRow
from overnight.web import actions, auth, svg
from overnight.web.access import SecurityHeaders, action, page, refuse
from overnight.web.site import HERE, Dashboard, Viewer, flash, local_path, valid_date

_LOG_CHUNK = 256 * 1024
MAX_NIGHTS = 3650


# -- the app -------------------------------------------------------------------------------


def create_app(config: Config) -> Starlette:
    dash = Dashboard(config)

    # -- login -------------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        def work() -> Response:
            ledger = dash.open_ledger()
            try:
                viewer = dash.viewer(request, ledger)
            finally:
                if ledger is not None:
                    ledger.close()
            back = local_path(request.query_params.get("next"))
            return dash.render(request, "login.html", viewer, next=back)

        return await run_in_threadpool(work)

    async def login(request: Request) -> Response:
        form = await request.form()

        def work() -> Response:
            ledger = dash.open_ledger()
            try:
                if not auth.same_token(form.get("csrf"), request.session.get("csrf")):
                    return refuse(403, "missing or wrong CSRF token: reload the page and try again")
                name, password = form.get("name"), form.get("password")
                user = ledger.get_user(name) if ledger is not None and isinstance(name, str) else None
                good = (
                    user is not None and isinstance(password, str)
                    and auth.check_password(password, user.password_hash)
                )
                if user is None or not good:
                    request.session.pop("user", None)
                    return dash.render(
                        request, "login.html", Viewer(None, True), status=401,
                        next=local_path(form.get("next")), error="wrong name or password",
                    )
                request.session.clear()  # no session fixation: a fresh session and token
                request.session["user"] = user.name
                request.session["csrf"] = auth.new_csrf_token()
                return RedirectResponse(local_path(form.get("next")), status_code=303)
            finally:
                if ledger is not None:
                    ledger.close()

        return await run_in_threadpool(work)

    async def logout(request: Request) -> Response:
        form = await request.form()
        if not auth.same_token(form.get("csrf"), request.session.get("csrf")):
            return refuse(403, "missing or wrong CSRF token: reload the page and try again")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- batches -----------------------------------------------------------------------

    @page(dash)
    def batches(request: Request, ledger: Ledger | None, viewer: Viewer) -> Response:
        rows = views.batch_rows(config, ledger)
        for row in rows:
            live = ledger.live_launch(row["batch"]) if ledger else None
            row["live"] = live
            row["live_date"] = ledger.get_run(live.run_id).date if (ledger and live) else None  # type: ignore[union-attr]
            row["default_date"] = config.default_date(row["batch"]).isoformat()
            fires = ledger.fires_of(row["batch"], 1) if ledger else []
            row["fire"] = fires[0] if fires else None
        return dash.render(request, "batches.html", viewer, rows=rows)

    # -- a run -------------------------------------------------------------------------

    def run_context(ledger: Ledger | None, batch: str, day: str) -> dict[str, Any]:
        run = ledger.find_run(batch, day) if ledger else None
        if run is None or ledger is None:
            return {"batch": batch, "date": day, "run": None, "details": None, "live": False,
                    "gantt": "", "dag": "", "who": {}, "now": time.time()}
        details = views.run_details(ledger, run)
        live_launch = ledger.live_launch(batch)
        live = live_launch is not None and live_launch.run_id == run.id
        base = f"/run/{quote(batch)}/{day}"
        who = {la["id"]: la for la in details["launches"]}
        return {
            "batch": batch, "date": day, "run": run, "details": details, "live": live, "who": who,
            "now": time.time(),
            "gantt": Markup(
                svg.gantt(details["steps"], time.time(), lambda s, n: f"{base}/log/{quote(s)}/{n}")
            ),
            "dag": Markup(svg.dag(details["steps"], lambda s: f"#step-{quote(s)}")),
        }

    @page(dash)
    def latest_run(request: Request, ledger: Ledger | None, viewer: Viewer) -> Response:
        batch = dash.known_batch(ledger, request.path_params["batch"])
        run = ledger.latest_run(batch) if ledger else None
        day = run.date if run else config.default_date(batch).isoformat()
        return RedirectResponse(f"/run/{quote(batch)}/{day}", status_code=303)

    @page(dash)
    def run_page(request: Request, ledger: Ledger | None, viewer: Viewer) -> Response:
        batch = dash.known_batch(ledger, request.path_params["batch"])
        day = valid_date(request.path_params["date"])
        ctx = run_context(ledger, batch, day)
        return dash.render(request, "run.html", viewer, **ctx)

    @page(dash, api=True)
    def run_live(request: Request, ledger: Ledger | None, viewer: Viewer) -> Response:
        batch = dash.known_batch(ledger, request.path_params["batch"])
        day = valid_date(request.path_params["date"])
        ctx = run_context(ledger, batch, day)
        ctx.update(viewer=viewer, csrf=dash.csrf(request))
        run: RunRow | None = ctx["run"]
        return JSONResponse({
            "state": run.state if run else "not started",
            "live": ctx["live"],
            "steps": dash.fragment("_steps.html", **ctx),
            "launches": dash.fragment("_launches.html", **ctx),
            "gantt": str(ctx["gantt"]),
            "dag": str(ctx["dag"]),
        })

    # -- logs: located through the ledger, never from the request -----------------------

    def find_attempt(ledger: Ledger | None, request: Request) -> tuple[str, str, Any]:
        batch = dash.known_batch(ledger, request.path_params["batch"])
        day = valid_date(request.path_params["date"])
        step = request.path_params["step"]
        run = ledger.find_run(batch, day) if ledger else None
        if run is None or ledger is None:
            raise HTTPException(404, "no such run")
        number = request.path_params["attempt"]
        chosen = [a for a in ledger.attempts(run.id, step) if a.number == number]
        if not chosen:
            raise HTTPException(404, "no such attempt")
        return batch, day, chosen[-1]

    @page(dash)
    def log_page(request: Request, ledger: Ledger | None, viewer: Viewer) -> Response:
        batch, day, attempt = find_attempt(ledger, request)
        size = _size(attempt.log_path)
        others = ledger.attempts(attempt.run_id, attempt.step) if ledger else []
        return dash.render(
            request, "log.html", viewer, batch=batch, date=day, attempt=attempt, others=others,
            start=max(0, size - _LOG_CHUNK), size=size,
        )

    @page(dash, api=True)
    def log_tail(request: Request, ledger: Ledger | None, viewer: Viewer) -> Response:
        _, _, attempt = find_attempt(ledger, request)
        offset_text = request.query_params.get("offset", "0")
        if not offset_text.isdigit():
            raise HTTPException(404, "no such offset")
        offset = int(offset_text)
        data = b""
        if attempt.log_path:
            try:
                with open(attempt.log_path, "rb") as f:
                    size = f.seek(0, 2)
                    if offset > size:  # the file was replaced: start again
                        offset = 0
                    f.seek(offset)
                    data = f.read(_LOG_CHUNK)
            except OSError:
                pass
        finished = attempt.ended_at is not None
        return Response(
            data, media_type="application/octet-stream",
            headers={"X-Next-Offset": str(offset + len(data)), "X-Finished": "1" if finished else "0",
                     "X-State": attempt.state,
                     "Cache-Control": "no-store"},
        )

    # -- history -----------------------------------------------------------------------

    @page(dash)
    def history(request: Request, ledger: Ledger | None, viewer: Viewer) -> Response:
        batch = dash.known_batch(ledger, request.path_params["batch"])
        nights_text = request.query_params.get("nights", "60")
        if not nights_text.isdigit():
            raise HTTPException(404, "no such number of nights")
        nights = max(1, min(MAX_NIGHTS, int(nights_text)))
        runs, cells = ledger.history_grid(batch, nights) if ledger else ([], [])
        fires = ledger.fires_of(batch, 20) if ledger else []
        return dash.render(request, "history.html", viewer, batch=batch, nights=nights, fires=fires,
                           **history_context(batch, runs, cells))

    # -- actions -----------------------------------------------------------------------

    def done(request: Request, outcome: actions.Outcome, to: str) -> Response:
        flash(request, outcome.ok, outcome.message)
        return RedirectResponse(to, status_code=303)

    def let_finishing_launch_go(ledger: Ledger | None, batch: str) -> None:
        """A launch the ledger already shows ended may hold the batch's lock a moment longer
        (sending its report): wait for it briefly rather than be refused for nothing."""
        if ledger is None or ledger.live_launch(batch) is None:
            actions.wait_for_lock(config, batch, 5.0)

    @action(dash)
    def launch(request: Request, ledger: Ledger | None, viewer: Viewer, form: Any) -> Response:
        batch = dash.configured_batch(request.path_params["batch"])
        day = valid_date(form.get("date"))
        let_finishing_launch_go(ledger, batch)
        outcome = actions.start(
            config, viewer.name or "", f"run {batch} for {day}", ["run", batch, "--date", day],
            wait=actions.RUN_START, holds=batch,
        )
        return done(request, outcome, f"/run/{quote(batch)}/{day}")

    @action(dash)
    def resume(request: Request, ledger: Ledger | None, viewer: Viewer, form: Any) -> Response:
        batch = dash.configured_batch(request.path_params["batch"])
        run = ledger.latest_run(batch) if ledger else None
        if run is None:
            raise HTTPException(404, "no run to resume")
        let_finishing_launch_go(ledger, batch)
        outcome = actions.start(config, viewer.name or "", f"resume {batch} for {run.date}",
                                ["run", batch, "--date", run.date], wait=actions.RUN_START, holds=batch)
        return done(request, outcome, f"/run/{quote(batch)}/{run.date}")

    @action(dash)
    def cancel(request: Request, ledger: Ledger | None, viewer: Viewer, form: Any) -> Response:
        batch = dash.configured_batch(request.path_params["batch"])
        outcome = actions.start(config, viewer.name or "", f"cancel {batch}", ["cancel", batch], wait=5)
        return done(request, outcome, local_path(form.get("back")))

    @action(dash)
    def backfill(request: Request, ledger: Ledger | None, viewer: Viewer, form: Any) -> Response:
        batch = dash.configured_batch(request.path_params["batch"])
        first, last = valid_date(form.get("from")), valid_date(form.get("to"))
        outcome = actions.start(config, viewer.name or "", f"backfill {batch} {first}..{last}",
                                ["backfill", batch, "--from", first, "--to", last])
        return done(request, outcome, "/")

    def step_of_run(ledger: Ledger | None, batch: str, day: str, step: object) -> str:
        run = ledger.find_run(batch, day) if ledger else None
        if run is None or ledger is None or not isinstance(step, str):
            raise HTTPException(404, "no such step")
        if step not in ledger.step_states(run.id):
            raise HTTPException(404, "no such step")
        return step

    @action(dash)
    def rerun(request: Request, ledger: Ledger | None, viewer: Viewer, form: Any) -> Response:
        batch = dash.configured_batch(request.path_params["batch"])
        day = valid_date(request.path_params["date"])
        step = step_of_run(ledger, batch, day, form.get("step"))
        args = ["run", batch, "--date", day, "--rerun"]
        downstream = form.get("downstream") == "1"
        if downstream:
            args.append("--downstream")
        what = f"re-run {step}" + (" and what depends on it" if downstream else "")
        let_finishing_launch_go(ledger, batch)
        outcome = actions.start(
            config, viewer.name or "", what, [*args, "--", step], wait=actions.RUN_START, holds=batch
        )
        return done(request, outcome, f"/run/{quote(batch)}/{day}")

    @action(dash)
    def mark(request: Request, ledger: Ledger | None, viewer: Viewer, form: Any) -> Response:
        batch = dash.configured_batch(request.path_params["batch"])
        day = valid_date(request.path_params["date"])
        step = step_of_run(ledger, batch, day, form.get("step"))
        what = form.get("action")
        if what not in ("done", "skip"):
            raise HTTPException(404, "no such mark")
        reason = str(form.get("reason") or "").strip()
        if not reason:
            why = actions.Outcome(False, f"mark {step}: say why")
            return done(request, why, f"/run/{quote(batch)}/{day}")
        args = ["mark", batch, "--date", day, f"--{what}", "--reason", reason[:500]]
        if form.get("downstream") == "1":
            args.append("--downstream")
        let_finishing_launch_go(ledger, batch)
        outcome = actions.start(
            config, viewer.name or "", f"mark {step} {what}", [*args, "--", step], wait=20
        )
        return done(request, outcome, f"/run/{quote(batch)}/{day}")

    async def ledger_trouble(request: Request, exc: Exception) -> Response:
        """The ledger cannot be read (damaged, newer schema...): say so in one line."""
        return refuse(503, f"overnight: {exc}")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        detail = getattr(exc, "detail", "not found")
        if request.method == "GET" and not request.url.path.endswith(("/live", "/tail")):
            html = dash.env.get_template("error.html").render(
                request=request, viewer=Viewer(None, True), csrf="", flashes=[], status=status, detail=detail,
            )
            return HTMLResponse(html, status_code=status)
        return refuse(status, str(detail))

    routes = [
        Route("/", batches),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/run/{batch}", latest_run),
        Route("/run/{batch}/{date}", run_page),
        Route("/run/{batch}/{date}/live", run_live),
        Route("/run/{batch}/{date}/log/{step}/{attempt:int}", log_page),
        Route("/run/{batch}/{date}/log/{step}/{attempt:int}/tail", log_tail),
        Route("/run/{batch}/{date}/rerun", rerun, methods=["POST"]),
        Route("/run/{batch}/{date}/mark", mark, methods=["POST"]),
        Route("/history/{batch}", history),
        Route("/batch/{batch}/launch", launch, methods=["POST"]),
        Route("/batch/{batch}/resume", resume, methods=["POST"]),
        Route("/batch/{batch}/cancel", cancel, methods=["POST"]),
        Route("/batch/{batch}/backfill", backfill, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    secret = auth.session_secret(config.state.web_secret)
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=secret, session_cookie="overnight_session",
                   max_age=14 * 86400, same_site="lax"),
    ]
    return Starlette(
        routes=routes, middleware=middleware,
        exception_handlers={HTTPException: http_error, OvernightError: ledger_trouble},
    )


def history_context(batch: str, runs: list[RunRow], cells: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The grid and the duration bars from ledger.history_grid's two lists."""
    day_of = {r.id: r.date for r in runs}
    age = {r.id: i for i, r in enumerate(runs)}  # 0: the newest night
    # Rows: the newest night's steps in its order, then steps only older nights had.
    newest_position: dict[str, tuple[int, int]] = {}
    states: dict[tuple[str, str], str] = {}
    durations: dict[tuple[str, str], float | None] = {}
    for run_id, step, position, state, started, ended in cells:
        day = day_of.get(run_id)
        if day is None:
            continue
        states[(day, step)] = state
        durations[(day, step)] = (ended - started) if (started is not None and ended is not None) else None
        seen = newest_position.get(step)
        if seen is None or age[run_id] < seen[0]:
            newest_position[step] = (age[run_id], position)
    names = sorted(newest_position, key=lambda s: (*newest_position[s], s))
    dates = [(r.date, r.state) for r in runs]
    base = f"/run/{quote(batch)}"
    grid = svg.history_grid(dates, names, states, lambda d: f"{base}/{d}")
    recent = [d for d, _ in dates[:30]][::-1]
    bars = []
    for name in names:
        points = [(durations.get((d, name)), states.get((d, name), "pending")) for d in recent]
        known = [p for p, _ in points if p is not None]
        bars.append({
            "step": name,
            "last": known[-1] if known else None,
            "median": sorted(known)[len(known) // 2] if known else None,
            "longest": max(known) if known else None,
            "svg": Markup(svg.duration_bars(points)),
        })
    return {"runs": runs, "grid": Markup(grid), "bars": bars, "recent": len(recent)}


def _size(path: str | None) -> int:
    try:
        return Path(path).stat().st_size if path else 0
    except OSError:
        return 0
