"""The dashboard's shared parts: who is asking, the ledger (read per request, written only
for sessions and the audit record), rendering pages on the batch's clock, and checking the
names a request carries (batch, date) against the configuration and the ledger."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from overnight import palette
from overnight.config import Config
from overnight.durations import format_duration
from overnight.ledger import Ledger, UserRow
from overnight.readmodel.run import unsent
from overnight.web import auth, clock, sessions
from overnight.web.throttle import Throttle

HERE = Path(__file__).parent
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER = re.compile(r"[0-9]{1,15}")


class Viewer:
    """Who is asking, and what they may do."""

    def __init__(self, user: UserRow | None, users_exist: bool, session: str | None = None) -> None:
        self.user = user
        self.users_exist = users_exist
        self.session = session  # the hash of their session's id, while it is good

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


# Times on the page's batch's clock (`zone` in the page's context), or on the one given.
@pass_context
def _clock(ctx: Any, ts: float | None, zone: tzinfo | None = None) -> str:
    return clock.clock(ts, zone or ctx["zone"])


@pass_context
def _short(ctx: Any, ts: float | None, zone: tzinfo | None = None, day_of: float | None = None) -> str:
    return clock.short(ts, zone or ctx["zone"], day_of)


@pass_context
def _instant(ctx: Any, text: str | None, zone: tzinfo | None = None) -> str:
    return clock.instant(text, zone or ctx["zone"])


class Dashboard:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.throttle = Throttle()
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["clock"] = _clock
        self.env.filters["instant"] = _instant
        self.env.filters["short"] = _short
        self.env.filters["dur"] = format_duration
        self.env.filters["q"] = lambda s: quote(str(s), safe="")
        self.env.filters["unsent"] = unsent
        self.env.globals["legend"] = palette.LEGEND
        self.env.globals["zone_of"] = self.zone
        auth.stand_in_hash()  # made now, so the first unknown name costs no more than later ones

    def zone(self, batch: str | None = None) -> tzinfo:
        """The batch's clock (the configuration's default zone for no batch)."""
        return self.config.zone_for(batch)

    # -- the ledger: one short read-only connection per request ---------------------------

    def open_ledger(self) -> Ledger | None:
        if not self.config.state.ledger.exists():
            return None
        return Ledger.open(self.config.state.ledger, readonly=True)

    @contextmanager
    def writing(self) -> Iterator[Ledger]:
        """A short writable connection, in one transaction: sessions and the audit record
        are all the dashboard ever writes."""
        ledger = Ledger.open(self.config.state.ledger)
        try:
            with ledger.transaction():
                yield ledger
        finally:
            ledger.close()

    def viewer(self, request: Request, ledger: Ledger | None) -> Viewer:
        if ledger is None:
            return Viewer(None, False)
        users_exist = ledger.count_users() > 0
        sid = request.session.get("sid")
        if not users_exist or not isinstance(sid, str):
            return Viewer(None, users_exist)
        id_hash, now = sessions.hash_id(sid), time.time()
        session = ledger.get_session(id_hash)
        if session is None or not sessions.alive(session, now):
            return Viewer(None, users_exist)
        user = ledger.get_user(session.user)
        if user is not None and sessions.needs_touch(session, now):
            with self.writing() as w:
                w.touch_session(id_hash, now)
        return Viewer(user, users_exist, id_hash if user else None)

    def start_session(self, request: Request, user: str) -> None:
        """A fresh session (a new id and CSRF token: no fixation) for `user`."""
        sid, now = sessions.new_session_id(), time.time()
        with self.writing() as w:
            w.forget_sessions(*sessions.forget_before(now))
            w.start_session(sessions.hash_id(sid), user, now)
        request.session.clear()
        request.session["sid"] = sid
        request.session["csrf"] = auth.new_csrf_token()

    def end_session(self, request: Request, viewer: Viewer) -> None:
        if viewer.session is not None:
            with self.writing() as w:
                w.end_session(viewer.session)
        request.session.clear()

    def audit(self, request: Request, who: str | None, action: str, target: str | None,
              outcome: str, detail: str | None = None) -> None:
        """One entry in the audit record (nothing to write to before the ledger exists)."""
        if not self.config.state.ledger.exists():
            return
        with self.writing() as w:
            w.record_audit(time.time(), who, client_address(request), action, target, outcome,
                           detail[:500] if detail else None)

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
        ctx.setdefault("zone", self.zone(ctx.get("batch")))
        html = self.env.get_template(name).render(
            request=request, viewer=viewer, csrf=self.csrf(request), flashes=flashes, **ctx
        )
        return HTMLResponse(html, status_code=status)

    def fragment(self, name: str, **ctx: Any) -> str:
        ctx.setdefault("zone", self.zone(ctx.get("batch")))
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


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def valid_date(text: object) -> str:
    if isinstance(text, str) and _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise HTTPException(404, "no such date")


def number(text: object, what: str, default: int | None = None) -> int:
    """A whole number from a request (ASCII digits, a sane length), else 400."""
    if text is None and default is not None:
        return default
    if isinstance(text, str) and _NUMBER.fullmatch(text):
        return int(text)
    raise HTTPException(400, f"{what}: a whole number, please")


def plain_text(text: object, what: str, longest: int) -> str:
    """A line of text from a form: no control characters (a NUL cannot go into a command's
    arguments), at most `longest` characters, else 400."""
    value = str(text or "").strip()
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value):
        raise HTTPException(400, f"{what}: control characters are not allowed")
    if len(value) > longest:
        raise HTTPException(400, f"{what}: at most {longest} characters")
    return value


def flash(request: Request, ok: bool, message: str) -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], ["ok" if ok else "error", message]]


def local_path(text: object, default: str = "/") -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if (isinstance(text, str) and text.startswith("/") and not text.startswith("//") and "\\" not in text
            and text.isprintable() and len(text) <= 2000):
        return text
    return default
