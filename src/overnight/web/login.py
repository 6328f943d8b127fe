"""Logging in and out of the dashboard (users: `overnight user add`)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from overnight.web import auth
from overnight.web.access import Visit, action, page
from overnight.web.site import Viewer, local_path


@page(anyone=True)
def login_page(request: Request, visit: Visit) -> Response:
    return visit.render("login.html", next=local_path(request.query_params.get("next")))


@action(anyone=True)
def login(request: Request, visit: Visit, form: FormData) -> Response:
    name, password = form.get("name"), form.get("password")
    user = visit.ledger.get_user(name) if visit.ledger is not None and isinstance(name, str) else None
    if user is None or not isinstance(password, str) or not auth.check_password(password, user.password_hash):
        request.session.pop("user", None)
        return visit.dash.render(request, "login.html", Viewer(None, True), status=401,
                                 next=local_path(form.get("next")), error="wrong name or password")
    request.session.clear()  # no session fixation: a fresh session and token
    request.session["user"] = user.name
    request.session["csrf"] = auth.new_csrf_token()
    return RedirectResponse(local_path(form.get("next")), status_code=303)


@action(anyone=True)
def logout(request: Request, visit: Visit, form: FormData) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
