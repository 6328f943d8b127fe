"""`/metrics`: the figures of metrics.py in Prometheus' text format, for a scraper.

The same rule as every page: who may read the dashboard may read these (a scraper of a
dashboard with users scrapes node_exporter's textfile instead: `[metrics] textfile`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from overnight.web.access import Visit, page

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@page(api=True)
def metrics(request: Request, visit: Visit) -> Response:
    from overnight.metrics import exposition

    return Response(exposition(visit.dash.config, visit.ledger), media_type=CONTENT_TYPE)
