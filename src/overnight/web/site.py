"""The dashboard's shared parts: who is asking, rendering pages, and checking the names a
request carries (batch, date) against the configuration and the ledger."""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from overnight import palette
from overnight.config import Config
from overnight.durations import format_duration
from overnight.ledger import Ledger, UserRow
from overnight.web import auth

HERE = Path(__file__).parent
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Viewer:
    """Who is asking, and what they may do."""

    def __init__(self, user: UserRow | None, users_exist: bool) -> None:
        self.user = user
        self.users_exist = users_exist

    @property
    def name(self) -> str | None:
        return self.user.name if self.user else None

    @property
    def may_read(self) -> bool:
        # With no users at all (only possible on a loopback address) the dashboard is a
        # read-only window; launching always needs a user.
        return self.user is not None or not self.users_exist

    @property
    def may_act(self) -> bool:
        return self.user is not None and self.user.role == "operator"


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


class Dashboard:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["clock"] = _clock
        self.env.filters["dur"] = format_duration
        self.env.filters["q"] = lambda s: quote(str(s), safe="")
        self.env.globals["state_css"] = Markup(palette.state_css())
        self.env.globals["legend"] = palette.LEGEND

    # -- the ledger, one short read-only connection per request ---------------------------

    def open_ledger(self) -> Ledger | None:
        if not self.config.state.ledger.exists():
            return None
        return Ledger.open(self.config.state.ledger, readonly=True)

    def viewer(self, request: Request, ledger: Ledger | None) -> Viewer:
        if ledger is None:
            return Viewer(None, False)
        name = request.session.get("user")
        user = ledger.get_user(name) if isinstance(name, str) else None
        return Viewer(user, ledger.count_users() > 0)

    # -- rendering -------------------------------------------------------------------------

    def csrf(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = request.session["csrf"] = auth.new_csrf_token()
        return token

    def render(
        self, request: Request, name: str, viewer: Viewer, status: int = 200, **ctx: Any
    ) -> HTMLResponse:
        flashes = request.session.pop("flash", [])
        html = self.env.get_template(name).render(
            request=request, viewer=viewer, csrf=self.csrf(request), flashes=flashes, **ctx
        )
        return HTMLResponse(html, status_code=status)

    def fragment(self, name: str, **ctx: Any) -> str:
        return self.env.get_template(name).render(**ctx)

    # -- names from the request, checked against the config and the ledger ----------------

    def known_batch(self, ledger: Ledger | None, name: str) -> str:
        if name in self.config.batches or (ledger is not None and name in ledger.batches()):
            return name
        raise HTTPException(404, "no such batch")

    def configured_batch(self, name: str) -> str:
        if name in self.config.batches:
            return name
        raise HTTPException(404, "no such batch")


def valid_date(text: object) -> str:
    if isinstance(text, str) and _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise HTTPException(404, "no such date")


def flash(request: Request, ok: bool, message: str) -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], ["ok" if ok else "error", message]]


def local_path(text: object, default: str = "/") -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if isinstance(text, str) and text.startswith("/") and not text.startswith("//") and "\\" not in text:
        return text
    return default


