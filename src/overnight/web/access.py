"""Who may do what: one visit per request (the ledger opened, the viewer known), the rules
every endpoint goes through, and the headers every page is sent with.

Endpoints are plain functions of `(request, visit)` (pages) or `(request, visit, form)`
(buttons); `page` and `action` run them in a worker thread (SQLite reads block) inside
`open_visit`, after the checks their kind needs. Middleware (app.py) sees a request before
any of this, and before any body is read.
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


def page(*, api: bool = False, anyone: bool = False) -> Callable[[Callable[..., Response]], Endpoint]:
    """A read-only endpoint. Those who may not read go to the login page (an API: 401);
    `anyone`: no such check (the login page itself)."""

    def wrap(fn: Callable[[Request, Visit], Response]) -> Endpoint:
        def work(request: Request) -> Response:
            with open_visit(request) as visit:
                if not anyone and not visit.viewer.may_read:
                    return _log_in_first(request, api)
                return fn(request, visit)

        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(work, request)

        return endpoint

    return wrap


def action(*, anyone: bool = False) -> Callable[[Callable[..., Response]], Endpoint]:
    """A state-changing POST: an operator, with the session's CSRF token in the form;
    `anyone`: the token is enough (logging in and out)."""

    def wrap(fn: Callable[[Request, Visit, FormData], Response]) -> Endpoint:
        def work(request: Request, form: FormData) -> Response:
            with open_visit(request) as visit:
                return _refusal(request, visit.viewer, form, anyone) or fn(request, visit, form)

        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            return await run_in_threadpool(work, request, form)

        return endpoint

    return wrap


def _log_in_first(request: Request, api: bool) -> Response:
    if api:
        return JSONResponse({"error": "log in first"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _refusal(request: Request, viewer: Viewer, form: FormData, anyone: bool) -> Response | None:
    """Why this POST may not go on, or None. Who asks comes before the token is looked at."""
    if not anyone and viewer.user is None:
        if viewer.users_exist:
            return refuse(401, "log in first")
        return refuse(403, "no dashboard users yet: create one with "
                           "`overnight user add NAME --role operator`")
    if not auth.same_token(form.get("csrf"), request.session.get("csrf")):  # type: ignore[arg-type]
        return refuse(403, "missing or wrong CSRF token: reload the page and try again")
    if not anyone and not viewer.may_act:
        return refuse(403, f"{viewer.name} is a viewer: only operators may do this")
    return None


# Only our own files may script or style a page, no page may be framed, and the browser
# must not guess content types: a second line of defence behind autoescaping.
_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
     b"base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def refuse(status: int, why: str) -> Response:
    return Response(why + "\n", status_code=status, media_type="text/plain")
