"""Logging in and out of the dashboard (users: `overnight user add`).

A login is throttled per name tried and per client address (throttle.py) before its
password is looked at, and costs one scrypt whether the name exists or not (auth.check_login).
Every login, failure, refusal and logout goes into the audit record.
"""

from __future__ import annotations

import math
import time

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from overnight.web import auth
from overnight.web.access import Visit, action, page
from overnight.web.site import Viewer, client_address, local_path
from overnight.web.throttle import address_key

LONGEST_NAME = 200


@page(anyone=True)
def login_page(request: Request, visit: Visit) -> Response:
    return visit.render("login.html", next=local_path(request.query_params.get("next")))


def _again(request: Request, visit: Visit, form: FormData, status: int, error: str,
           headers: dict[str, str] | None = None) -> Response:
    response = visit.dash.render(request, "login.html", Viewer(None, True), status=status,
                                 next=local_path(form.get("next")), error=error)
    response.headers.update(headers or {})
    return response


@action(anyone=True)
def login(request: Request, visit: Visit, form: FormData) -> Response:
    name, password = form.get("name"), form.get("password")
    name = name[:LONGEST_NAME] if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    dash, now = visit.dash, time.time()
    keys = (f"name:{name}", address_key(client_address(request)))
    verdict = dash.throttle.admit(keys, now)
    if not verdict.admitted:
        if verdict.first_refusal:  # once per lockout: refused tries cost an attacker nothing
            dash.audit(request, name, "login", None, "throttled", f"wait {verdict.wait:.0f} s")
        wait = math.ceil(verdict.wait)
        return _again(request, visit, form, 429, f"too many failed logins: try again in {wait} s",
                      {"Retry-After": str(wait)})
    user = visit.ledger.get_user(name) if visit.ledger is not None and name else None
    if not auth.check_login(password, user.password_hash if user else None) or user is None:
        request.session.pop("sid", None)
        dash.audit(request, name, "login", None, "failed", None if user else "no such user")
        return _again(request, visit, form, 401, "wrong name or password")
    dash.throttle.forgive(keys, now, clear=[keys[0]])
    dash.start_session(request, user.name)
    dash.audit(request, user.name, "login", None, "ok")
    return RedirectResponse(local_path(form.get("next")), status_code=303)


@action(anyone=True)
def logout(request: Request, visit: Visit, form: FormData) -> Response:
    if visit.viewer.user is not None:
        visit.audit("logout", None, "ok")
    visit.dash.end_session(request, visit.viewer)
    return RedirectResponse("/login", status_code=303)
