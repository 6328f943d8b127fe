"""Who may do what: one visit per request (the ledger opened, the viewer known), and the
rules every endpoint goes through.

Endpoints are plain functions of `(request, visit)` (pages) or `(request, visit, form)`
(buttons); `page` and `action` run them in a worker thread (SQLite reads block) inside
`open_visit`, after the checks their kind needs. For a button, who is asking and whether
they may act is decided before a byte of the body is read; the body itself is capped by
guards.BodyLimit. Middleware (app.py) sees a request before any of this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from overnight.ledger import Ledger
from overnight.web import auth
from overnight.web.site import Dashboard, Viewer

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_FIELDS = 20


@dataclass(frozen=True)
class Visit:
    """One request's view of the night: the ledger (read-only; None before the first run),
    who is asking, and the dashboard's shared parts."""

    request: Request
    dash: Dashboard
    ledger: Ledger | None
    viewer: Viewer

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return self.dash.render(self.request, template, self.viewer, status, **context)

    def known_batch(self, name: str) -> str:
        """A batch the config or the ledger knows, else 404."""
        return self.dash.known_batch(self.ledger, name)

    def audit(self, action: str, target: str | None, outcome: str, detail: str | None = None) -> None:
        self.dash.audit(self.request, self.viewer.name, action, target, outcome, detail)


@contextmanager
def open_visit(request: Request) -> Iterator[Visit]:
    """Open the ledger read-only for this request and know the viewer; close it after.
    A short connection per request: runs writing to the ledger are never held up."""
    dash: Dashboard = request.app.state.dash
    ledger = dash.open_ledger()
    try:
        yield Visit(request, dash, ledger, dash.viewer(request, ledger))
    finally:
        if ledger is not None:
            ledger.close()


def page(*, api: bool = False, anyone: bool = False,
         operators: bool = False) -> Callable[[Callable[..., Response]], Endpoint]:
    """A read-only endpoint. Those who may not read go to the login page (an API: 401);
    `anyone`: no such check (the login page itself); `operators`: viewers get 403."""

    def wrap(fn: Callable[[Request, Visit], Response]) -> Endpoint:
        def work(request: Request) -> Response:
            with open_visit(request) as visit:
                if not anyone and not visit.viewer.may_read:
                    return _log_in_first(request, api)
                if operators and not visit.viewer.may_act:
                    return refuse(403, "only operators may see this page")
                return fn(request, visit)

        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(work, request)

        return endpoint

    return wrap


def action(*, anyone: bool = False) -> Callable[[Callable[..., Response]], Endpoint]:
    """A state-changing POST: an operator, with the session's CSRF token in the form;
    `anyone`: the token is enough (logging in and out). Who asks is known, and refused if
    they may not act, before the body is read."""

    def wrap(fn: Callable[[Request, Visit, FormData], Response]) -> Endpoint:
        def who_refusal(request: Request) -> Response | None:
            if anyone:
                return None
            with open_visit(request) as visit:
                return _who_refusal(visit, fn.__name__)

        def work(request: Request, form: FormData) -> Response:
            with open_visit(request) as visit:
                # Asked again: the user may have been removed while the body came in.
                refused = (None if anyone else _who_refusal(visit, fn.__name__)) or _token_refusal(
                    visit, form, fn.__name__)
                return refused or fn(request, visit, form)

        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            refused = await run_in_threadpool(who_refusal, request)
            if refused is not None:
                return refused
            form = await request.form(max_files=0, max_fields=MAX_FIELDS)
            return await run_in_threadpool(work, request, form)

        return endpoint

    return wrap


def _log_in_first(request: Request, api: bool) -> Response:
    if api:
        return JSONResponse({"error": "log in first"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _who_refusal(visit: Visit, what: str) -> Response | None:
    """Why this viewer may not act, or None."""
    viewer = visit.viewer
    if viewer.user is None:
        if viewer.users_exist:
            return refuse(401, "log in first")
        return refuse(403, "no dashboard users yet: create one with "
                           "`overnight user add NAME --role operator`")
    if not viewer.may_act:
        visit.audit(what, visit.request.url.path, "refused", "a viewer may not act")
        return refuse(403, f"{viewer.name} is a viewer: only operators may do this")
    return None


def _token_refusal(visit: Visit, form: FormData, what: str) -> Response | None:
    if auth.same_token(form.get("csrf"), visit.request.session.get("csrf")):  # type: ignore[arg-type]
        return None
    if visit.viewer.user is not None:
        visit.audit(what, visit.request.url.path, "refused", "missing or wrong CSRF token")
    return refuse(403, "missing or wrong CSRF token: reload the page and try again")


def refuse(status: int, why: str, headers: dict[str, str] | None = None) -> Response:
    return Response(why + "\n", status_code=status, media_type="text/plain", headers=headers)
