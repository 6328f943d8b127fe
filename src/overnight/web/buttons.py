"""The dashboard's buttons: each POST starts an `overnight` command (actions.py) as its
operator, records it in the audit record, says how it went in a flash message, and
redirects back."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from overnight.readmodel.run import run_view
from overnight.rerun import RerunListing, rerun_listing
from overnight.web import actions
from overnight.web.access import Visit, action
from overnight.web.site import flash, local_path, plain_text, valid_date


def _done(visit: Visit, what: str, target: str, outcome: actions.Outcome, to: str) -> Response:
    visit.audit(what, target, "ok" if outcome.ok else "failed", outcome.message)
    flash(visit.request, outcome.ok, outcome.message)
    return RedirectResponse(to, status_code=303)


def _start(visit: Visit, what: str, args: list[str], **how: Any) -> actions.Outcome:
    """Start `overnight ARGS` as this operator (`how`: actions.start's wait and holds)."""
    return actions.start(visit.dash.config, visit.viewer.name or "", what, args, **how)


def _let_finishing_launch_go(visit: Visit, batch: str) -> None:
    """A launch the ledger already shows ended may hold the batch's lock a moment longer
    (sending its report): wait for it briefly rather than be refused for nothing."""
    if visit.ledger is None or visit.ledger.live_launch(batch) is None:
        actions.wait_for_lock(visit.dash.config, batch, 5.0)


MAX_REASON = 500


def _run_path(batch: str, day: str) -> str:
    return f"/run/{quote(batch)}/{day}"


@action()
def launch(request: Request, visit: Visit, form: FormData) -> Response:
    batch = visit.dash.configured_batch(request.path_params["batch"])
    day = valid_date(form.get("date"))
    _let_finishing_launch_go(visit, batch)
    outcome = _start(visit, f"run {batch} for {day}", ["run", batch, "--date", day],
                     wait=actions.RUN_START, holds=batch)
    return _done(visit, "launch", f"{batch} {day}", outcome, _run_path(batch, day))


@action()
def resume(request: Request, visit: Visit, form: FormData) -> Response:
    batch = visit.dash.configured_batch(request.path_params["batch"])
    run = visit.ledger.latest_run(batch) if visit.ledger else None
    if run is None:
        raise HTTPException(404, "no run to resume")
    _let_finishing_launch_go(visit, batch)
    outcome = _start(visit, f"resume {batch} for {run.date}", ["run", batch, "--date", run.date],
                     wait=actions.RUN_START, holds=batch)
    return _done(visit, "resume", f"{batch} {run.date}", outcome, _run_path(batch, run.date))


@action()
def cancel(request: Request, visit: Visit, form: FormData) -> Response:
    batch = visit.dash.configured_batch(request.path_params["batch"])
    outcome = _start(visit, f"cancel {batch}", ["cancel", batch], wait=5)
    return _done(visit, "cancel", batch, outcome, local_path(form.get("back")))


@action()
def backfill(request: Request, visit: Visit, form: FormData) -> Response:
    batch = visit.dash.configured_batch(request.path_params["batch"])
    first, last = valid_date(form.get("from")), valid_date(form.get("to"))
    outcome = _start(visit, f"backfill {batch} {first}..{last}",
                     ["backfill", batch, "--from", first, "--to", last])
    return _done(visit, "backfill", f"{batch} {first}..{last}", outcome, "/")


def _step_of_run(visit: Visit, batch: str, day: str, step: object) -> str:
    ledger = visit.ledger
    run = ledger.find_run(batch, day) if ledger else None
    if run is None or ledger is None or not isinstance(step, str):
        raise HTTPException(404, "no such step")
    if step not in ledger.step_states(run.id):
        raise HTTPException(404, "no such step")
    return step


def _rerun_listing(visit: Visit, batch: str, day: str, step: str, downstream: bool) -> RerunListing:
    """What the re-run runs again, from the steps as the ledger last recorded them."""
    ledger = visit.ledger
    run = ledger.find_run(batch, day) if ledger else None
    assert ledger is not None and run is not None  # _step_of_run found the step in it
    return rerun_listing(run_view(ledger, run).steps, [step], downstream)


@action()
def rerun(request: Request, visit: Visit, form: FormData) -> Response:
    batch = visit.dash.configured_batch(request.path_params["batch"])
    day = valid_date(request.path_params["date"])
    step = _step_of_run(visit, batch, day, form.get("step"))
    downstream = form.get("downstream") == "1"
    if form.get("confirmed") != "1":
        listing = _rerun_listing(visit, batch, day, step, downstream)
        if listing.needs_a_yes:  # as `overnight run --rerun` at a terminal: list, warn, ask
            return visit.render("rerun.html", batch=batch, date=day, step=step, downstream=downstream,
                                listing=listing)
    args = ["run", batch, "--date", day, "--rerun", *(["--downstream"] if downstream else []), "--", step]
    what = f"re-run {step}" + (" and what depends on it" if downstream else "")
    _let_finishing_launch_go(visit, batch)
    outcome = _start(visit, what, args, wait=actions.RUN_START, holds=batch)
    action = "rerun --downstream" if downstream else "rerun"
    return _done(visit, action, f"{batch} {day} {step}", outcome, _run_path(batch, day))


@action()
def mark(request: Request, visit: Visit, form: FormData) -> Response:
    batch = visit.dash.configured_batch(request.path_params["batch"])
    day = valid_date(request.path_params["date"])
    step = _step_of_run(visit, batch, day, form.get("step"))
    what = form.get("action")
    if what not in ("done", "skip"):
        raise HTTPException(404, "no such mark")
    reason = plain_text(form.get("reason"), "reason", MAX_REASON)
    target = f"{batch} {day} {step}"
    if not reason:
        return _done(visit, f"mark {what}", target, actions.Outcome(False, f"mark {step}: say why"),
                     _run_path(batch, day))
    args = ["mark", batch, "--date", day, f"--{what}", "--reason", reason]
    if form.get("downstream") == "1":
        args.append("--downstream")
    _let_finishing_launch_go(visit, batch)
    outcome = _start(visit, f"mark {step} {what}", [*args, "--", step], wait=20)
    return _done(visit, f"mark {what}", target, outcome, _run_path(batch, day))
