"""The dashboard: a Starlette app over the ledger, read-only except for what it launches.

Endpoints are module-level functions (pages.py, buttons.py, login.py) that share what
hangs off `app.state` (the Dashboard: config, templates); every one of them goes through
access.py's `open_visit` (the ledger opened read-only, the viewer known). Nothing is run
inside the server: buttons start `overnight` processes (actions.py).

Rules that hold for every request belong in MIDDLEWARE, which sees a request before any
endpoint and before any body is read.
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

from overnight.config import Config
from overnight.errors import OvernightError
from overnight.web import auth, buttons, login, metrics, pages
from overnight.web.access import SecurityHeaders, refuse
from overnight.web.site import HERE, Dashboard, Viewer


async def ledger_trouble(request: Request, exc: Exception) -> Response:
    """The ledger cannot be read (damaged, newer schema...): say so in one line."""
    return refuse(503, f"overnight: {exc}")


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
    Route("/login", login.login_page, methods=["GET"]),
    Route("/login", login.login, methods=["POST"]),
    Route("/logout", login.logout, methods=["POST"]),
    Route("/run/{batch}", pages.latest_run),
    Route("/run/{batch}/{date}", pages.run_page),
    Route("/run/{batch}/{date}/live", pages.run_live),
    Route("/run/{batch}/{date}/log/{step}/{attempt:int}", pages.log_page),
    Route("/run/{batch}/{date}/log/{step}/{attempt:int}/tail", pages.log_tail),
    Route("/run/{batch}/{date}/rerun", buttons.rerun, methods=["POST"]),
    Route("/run/{batch}/{date}/mark", buttons.mark, methods=["POST"]),
    Route("/history/{batch}", pages.history),
    Route("/batch/{batch}/launch", buttons.launch, methods=["POST"]),
    Route("/batch/{batch}/resume", buttons.resume, methods=["POST"]),
    Route("/batch/{batch}/cancel", buttons.cancel, methods=["POST"]),
    Route("/batch/{batch}/backfill", buttons.backfill, methods=["POST"]),
    Route("/metrics", metrics.metrics),
    Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
]

EXCEPTION_HANDLERS = {HTTPException: http_error, OvernightError: ledger_trouble}


def middleware(config: Config) -> list[Middleware]:
    """Outermost first: what every request passes through before its endpoint."""
    return [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=auth.session_secret(config.state.web_secret),
                   session_cookie="overnight_session", max_age=14 * 86400, same_site="lax"),
    ]


def create_app(config: Config) -> Starlette:
    app = Starlette(routes=ROUTES, middleware=middleware(config), exception_handlers=EXCEPTION_HANDLERS)
    app.state.dash = Dashboard(config)
    return app
