"""The audit record, for operators: who logged in (or failed to), from where, and who did
what with the buttons, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from overnight.web.access import Visit, page
from overnight.web.site import number

PER_PAGE = 100


@page(operators=True)
def audit_page(request: Request, visit: Visit) -> Response:
    before = request.query_params.get("before")
    before_id = number(before, "before") if before is not None else None
    entries = visit.ledger.audit_entries(PER_PAGE + 1, before_id) if visit.ledger else []
    more = len(entries) > PER_PAGE
    return visit.render("audit.html", entries=entries[:PER_PAGE], more=more, before=before_id)
