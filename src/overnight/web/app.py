"""The dashboard: a Starlette app over the ledger. It writes only its sessions and the
audit record; runs, marks and the rest are written by the commands its buttons start.

Endpoints are module-level functions (pages.py, buttons.py, login.py, audit.py) that share
what hangs off `app.state` (the Dashboard: config, templates, the login throttle); every
one of them goes through access.py's `open_visit` (the ledger opened read-only, the viewer
known). Nothing is run inside the server: buttons start `overnight` processes (actions.py).

Rules that hold for every request belong in `middleware` (guards.py), which sees a request
before any endpoint and before any body is read.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from overnight import palette
from overnight.config import Config
from overnight.errors import OvernightError
from overnight.web import audit, auth, buttons, guards, login, metrics, pages, sessions
from overnight.web.access import refuse
from overnight.web.guards import BodyLimit, HttpsCookies, PublicNeedsUsers, SecurityHeaders
from overnight.web.site import HERE, Dashboard, Viewer


async def ledger_trouble(request: Request, exc: Exception) -> Response:
    """The ledger cannot be read (damaged, newer schema...): say so in one line."""
    dash = request.app.state.dash
    return refuse(503, guards.ledger_trouble(exc, dash.config.state.ledger, request.app.state.public))


async def state_colours(request: Request) -> Response:
    """The colour of each state (palette.py) as a stylesheet: the pages' Content-Security-Policy
    refuses inline styles, so they come from here like app.css."""
    return Response(palette.state_css(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


async def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    detail = getattr(exc, "detail", "not found")
    if request.method == "GET" and not request.url.path.endswith(("/live", "/tail")):
        html = request.app.state.dash.env.get_template("error.html").render(
            request=request, viewer=Viewer(None, True), csrf="", flashes=[], status=status, detail=detail,
        )
        return HTMLResponse(html, status_code=status)
    return refuse(status, str(detail))


ROUTES = [
    Route("/", pages.batches),
    Route("/states.css", state_colours),
    Route("/login", login.login_page, methods=["GET"]),
    Route("/login", login.login, methods=["POST"]),
    Route("/logout", login.logout, methods=["POST"]),
    Route("/run/{batch}", pages.latest_run),
    Route("/run/{batch}/{date}", pages.run_page),
    Route("/run/{batch}/{date}/live", pages.run_live),
    Route("/run/{batch}/{date}/log/{step}/{attempt}", pages.log_page),
    Route("/run/{batch}/{date}/log/{step}/{attempt}/tail", pages.log_tail),
    Route("/run/{batch}/{date}/rerun", buttons.rerun, methods=["POST"]),
    Route("/run/{batch}/{date}/mark", buttons.mark, methods=["POST"]),
    Route("/history/{batch}", pages.history),
    Route("/batch/{batch}/launch", buttons.launch, methods=["POST"]),
    Route("/batch/{batch}/resume", buttons.resume, methods=["POST"]),
    Route("/batch/{batch}/cancel", buttons.cancel, methods=["POST"]),
    Route("/batch/{batch}/backfill", buttons.backfill, methods=["POST"]),
    Route("/audit", audit.audit_page),
    Route("/metrics", metrics.metrics),
    Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
]

EXCEPTION_HANDLERS = {HTTPException: http_error, OvernightError: ledger_trouble}


def middleware(config: Config, public: bool) -> list[Middleware]:
    """Outermost first: what every request passes through before its endpoint. `public`:
    the server listens beyond loopback."""
    return [
        Middleware(SecurityHeaders),
        Middleware(HttpsCookies),
        Middleware(PublicNeedsUsers, public=public, ledger=config.state.ledger),
        Middleware(BodyLimit),
        # The cookie carries the session's id, CSRF token and flash messages, signed; what
        # the id is worth is decided by the ledger on every request (site.Dashboard.viewer).
        Middleware(SessionMiddleware, secret_key=auth.session_secret(config.state.web_secret),
                   session_cookie="overnight_session", max_age=sessions.LIFETIME, same_site="lax"),
    ]


def create_app(config: Config, public: bool = False) -> Starlette:
    app = Starlette(routes=ROUTES, middleware=middleware(config, public),
                    exception_handlers=EXCEPTION_HANDLERS)
    app.state.dash = Dashboard(config)
    app.state.public = public
    return app
