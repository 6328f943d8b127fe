"""What Prometheus scrapes: node_exporter's textfile (`[metrics] textfile`) and the
dashboard's `/metrics`, from one registry built from the read model.

prometheus_client does the exposition format and the atomic textfile write (a temporary
file renamed over the old one: a reader never sees half a file). It is imported here
only: it costs about 0.1 s at import, which no other command pays (pip install
'overnight[metrics]', or the web extra).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from overnight.states import RunState

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import Ledger

RUN_STATES = [s.value for s in RunState] + ["never_run"]


def build_registry(config: Config, ledger: Ledger | None, *, now: float | None = None,
                   heartbeat: float | None = None) -> Any:
    """A CollectorRegistry with every batch's figures. `heartbeat`: the scheduler's pass
    (when it is the writer); otherwise the last pass the ledger records."""
    from prometheus_client import CollectorRegistry, Enum, Gauge

    from overnight.readmodel.expected import check_night
    from overnight.readmodel.liveness import liveness
    from overnight.readmodel.run import run_view, unsent

    now = time.time() if now is None else now
    registry = CollectorRegistry()

    def gauge(name: str, doc: str) -> Gauge:
        return Gauge(name, doc, ["batch"], registry=registry)

    last_success = gauge("overnight_last_success_timestamp_seconds",
                         "When the batch last finished a night that succeeded.")
    state = Enum("overnight_last_run_state", "The state of the batch's latest run.", ["batch"],
                 states=RUN_STATES, registry=registry)
    duration = gauge("overnight_last_run_duration_seconds",
                     "How long the latest run's latest launch took (so far).")
    predicted = gauge("overnight_predicted_finish_timestamp_seconds", "A live run's predicted finish.")
    deadline = gauge("overnight_deadline_timestamp_seconds", "A live run's deadline.")
    missed = gauge("overnight_deadline_missed", "1 when the expected night missed its deadline.")
    failures = gauge("overnight_report_failures", "Reports, alerts and pings of the latest run not sent.")
    code = gauge("overnight_check_status", "What `overnight check` says: 0 OK, 1 WARNING, 2 CRITICAL.")
    live = liveness(ledger) if ledger is not None else None
    for batch in sorted(set(config.batches) | set(ledger.batches() if ledger else [])):
        run = ledger.latest_run(batch) if ledger is not None else None
        view = run_view(ledger, run, live) if ledger is not None and run is not None else None
        state.labels(batch).state(view.state if view else "never_run")
        success = ledger.last_success(batch) if ledger is not None else None
        if success is not None:
            last_success.labels(batch).set(success)
        if view is not None and view.launches:
            la = view.launches[-1]
            duration.labels(batch).set(la.took if la.took is not None else now - la.started_at)
        forecast = view.forecast if view is not None else None
        if forecast is not None and forecast.live:
            if forecast.finish is not None:
                predicted.labels(batch).set(forecast.finish)
            if forecast.deadline is not None:
                deadline.labels(batch).set(forecast.deadline)
        if view is not None:
            failures.labels(batch).set(len(unsent(view.reports)) + sum(len(a.unsent) for a in view.alerts))
        if batch in config.batches:
            night = check_night(config, ledger, batch, None, now)
            missed.labels(batch).set(1 if night.missed else 0)
            code.labels(batch).set(night.code)
    beat = heartbeat if heartbeat is not None else (ledger.scheduler_heartbeat() if ledger else None)
    if beat is not None:
        Gauge("overnight_scheduler_heartbeat_timestamp_seconds", "When the scheduler last made a pass.",
              registry=registry).set(beat)
    return registry


def exposition(config: Config, ledger: Ledger | None) -> bytes:
    """The registry in Prometheus' text format (the dashboard's /metrics)."""
    from prometheus_client import generate_latest

    return generate_latest(build_registry(config, ledger))


def write_textfile(config: Config, ledger: Ledger | None, warn: Callable[[str], None],
                   heartbeat: float | None = None) -> bool:
    """Rewrite [metrics] textfile atomically. A failure is one line through `warn`, never
    an exception: metrics must not change a night's outcome or stop the scheduler."""
    assert config.metrics is not None and config.metrics.textfile is not None
    path = config.metrics.textfile
    try:
        from prometheus_client import write_to_textfile

        write_to_textfile(str(path), build_registry(config, ledger, heartbeat=heartbeat))
    except Exception as e:  # noqa: BLE001 - a full disk or a missing folder: say so, carry on
        warn(f"metrics not written to {path}: {e}")
        return False
    return True
