"""Who may do what: decorators for the endpoints, and the headers every page is sent with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from overnight.web import auth
from overnight.web.site import Dashboard

Endpoint = Callable[..., Any]
Wrapped = Callable[[Request], Awaitable[Response]]


def page(dash: Dashboard, *, api: bool = False) -> Callable[[Endpoint], Wrapped]:
    """A read-only endpoint: anonymous people go to the login page (or get 401 from an API)."""

    def wrap(fn: Endpoint) -> Wrapped:
        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            def work() -> Response:
                ledger = dash.open_ledger()
                try:
                    viewer = dash.viewer(request, ledger)
                    if not viewer.may_read:
                        if api:
                            return JSONResponse({"error": "log in first"}, status_code=401)
                        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
                    return fn(request, ledger, viewer)
                finally:
                    if ledger is not None:
                        ledger.close()

            return await run_in_threadpool(work)

        return endpoint

    return wrap


def action(dash: Dashboard) -> Callable[[Endpoint], Wrapped]:
    """A state-changing POST: an operator, with the session's CSRF token in the form."""

    def wrap(fn: Endpoint) -> Wrapped:
        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            form = await request.form()

            def work() -> Response:
                ledger = dash.open_ledger()
                try:
                    viewer = dash.viewer(request, ledger)
                    if viewer.user is None:
                        why = "log in first" if viewer.users_exist else (
                            "no dashboard users yet: create one with "
                            "`overnight user add NAME --role operator`"
                        )
                        return refuse(401 if viewer.users_exist else 403, why)
                    if not auth.same_token(form.get("csrf"), request.session.get("csrf")):
                        return refuse(403, "missing or wrong CSRF token: reload the page and try again")
                    if not viewer.may_act:
                        return refuse(403, f"{viewer.name} is a viewer: only operators may do this")
                    return fn(request, ledger, viewer, form)
                finally:
                    if ledger is not None:
                        ledger.close()

            return await run_in_threadpool(work)

        return endpoint

    return wrap


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


