"""Rules for every request, as ASGI middleware: each sees a request before any endpoint,
and before any of its body is read (app.py lists them, outermost first).

- SecurityHeaders: what every response is sent with (CSP, no framing, no sniffing; HSTS
  over HTTPS).
- HttpsCookies: over HTTPS every cookie is `Secure`.
- PublicNeedsUsers: a dashboard listening beyond loopback with no users refuses every
  request, whenever the users went away (removed, or the ledger moved aside).
- BodyLimit: a body is small, urlencoded, and read no further than MAX_BODY bytes; more
  is refused with 413 whether it was declared (Content-Length) or streamed (chunked).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from overnight.errors import OvernightError

MAX_BODY = 8 * 1024  # the largest form (a mark with its reason) is well under 1 KiB
FORM = b"application/x-www-form-urlencoded"

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
_HSTS = (b"strict-transport-security", b"max-age=31536000")


def ledger_trouble(exc: Exception, ledger: Path, public: bool) -> str:
    """The one line a request gets when the ledger cannot be read. Beyond loopback anyone
    may read it: it names the file, not where it lives (the server's log has the whole
    line, for whoever runs it)."""
    text = f"overnight: {exc}"
    if not public:
        return text
    print(text, file=sys.stderr, flush=True)
    for spelling in {str(ledger.resolve()), str(ledger)}:
        text = text.replace(spelling, ledger.name)
    return text


async def _answer(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})


def _is_https(scope: Any) -> bool:
    return scope.get("scheme") == "https"


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [*_HEADERS, _HSTS] if _is_https(scope) else _HEADERS

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HttpsCookies:
    """Over HTTPS (served with --certfile, or behind a trusted proxy that says so) a cookie
    must never travel over plain HTTP: add `Secure` to every Set-Cookie."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _is_https(scope):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v + b"; Secure") if k.lower() == b"set-cookie" and b"; secure" not in v.lower()
                    else (k, v)
                    for k, v in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)


class PublicNeedsUsers:
    """Beyond loopback, no users means no dashboard: checked on every request, because the
    last user may be removed, or the ledger moved aside, after the server started."""

    def __init__(self, app: Any, public: bool, ledger: Path) -> None:
        self.app, self.public, self.ledger = app, public, ledger

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.public:
            await self.app(scope, receive, send)
            return
        try:
            users = await run_in_threadpool(self._count_users)
        except OvernightError as e:
            await _answer(send, 503, ledger_trouble(e, self.ledger, public=True))
            return
        if users == 0:
            await _answer(send, 403, "overnight web: this dashboard listens beyond this machine and has "
                                     "no users, so it shows nothing: add one with "
                                     "`overnight user add NAME --role operator`")
            return
        await self.app(scope, receive, send)

    def _count_users(self) -> int:
        from overnight.ledger import Ledger

        if not self.ledger.exists():
            return 0
        ledger = Ledger.open(self.ledger, readonly=True)
        try:
            return ledger.count_users()
        finally:
            ledger.close()


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int = MAX_BODY) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        too_big = declared is not None and (
            not declared.isdigit() or len(declared) > 12 or int(declared) > self.max_bytes)
        if too_big:
            await _answer(send, 413, f"a request body may be at most {self.max_bytes} bytes")
            return
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["method"] == "POST" and kind not in (FORM, b"") and (declared != b"0"):
            await _answer(send, 415, "only application/x-www-form-urlencoded forms are accepted")
            return
        seen = 0
        # A body still coming in when the answer goes out (a refusal, a 413) is not read to
        # its end: the connection is closed instead, so the sender cannot go on streaming.
        unread = (declared not in (None, b"0")) or b"transfer-encoding" in headers

        async def limited() -> Any:
            nonlocal seen, unread
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                unread = unread and message.get("more_body", False)
                if seen > self.max_bytes:
                    # The endpoint reading the body stops here; the error handler answers 413.
                    raise HTTPException(413, f"a request body may be at most {self.max_bytes} bytes")
            return message

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.start" and unread:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, limited, send_closing)
