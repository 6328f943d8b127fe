"""What the night looks like ahead: the runner's predicted finish against the deadline,
and the alerts sent about the night (each with its deliveries, sent or not)."""

from __future__ import annotations

from dataclasses import dataclass

from overnight.ledger import AlertDeliveryRow, AlertRow, ForecastRow, Ledger
from overnight.readmodel.run import ReportView


@dataclass(eq=False)
class ForecastView:
    """A launch's latest prediction of its finish (Unix times; forecast.py says how)."""

    launch_id: int
    live: bool                    # its launch is running now: the prediction is current
    made_at: float
    finish: float | None          # None: no step still to run has history
    first_finish: float | None    # what it predicted when the launch started
    partial: bool                 # some steps have no history: the finish is "at least"
    unknown: int                  # how many
    unknown_steps: list[str]      # the first of them, by name
    critical_path: list[str]      # the chain of steps the finish waits on
    usual: dict[str, float]       # per running step, its usual duration (median)
    deadline: float | None        # the run's deadline
    late: bool                    # predicted to finish after the deadline


@dataclass(eq=False)
class AlertView:
    kind: str                     # late | missed | long
    subject: str
    at: float
    step: str | None              # a "running long" alert's step
    predicted: float | None
    deadline: float | None
    deliveries: list[ReportView]

    @property
    def unsent(self) -> list[ReportView]:
        """Each channel's latest delivery, when that one was not sent."""
        from overnight.readmodel.run import unsent

        return unsent(self.deliveries)


def forecast_view(row: ForecastRow | None, live_launch: int | None) -> ForecastView | None:
    if row is None:
        return None
    detail = row.details
    late = row.deadline is not None and row.finish is not None and row.finish > row.deadline
    return ForecastView(
        launch_id=row.launch_id, live=row.launch_id == live_launch, made_at=row.made_at,
        finish=row.finish, first_finish=row.first_finish, partial=row.unknown > 0, unknown=row.unknown,
        unknown_steps=list(detail.get("unknown_steps", [])),
        critical_path=list(detail.get("critical_path", [])), usual=dict(detail.get("usual", {})),
        deadline=row.deadline, late=late,
    )


def alert_views(ledger: Ledger, batch: str, date: str) -> list[AlertView]:
    """The alerts sent about one night, oldest first: two queries."""
    rows = ledger.alerts_of(batch, date)
    deliveries = ledger.alert_deliveries([a.id for a in rows])
    return [_alert(a, deliveries.get(a.id, [])) for a in rows]


def _alert(a: AlertRow, deliveries: list[AlertDeliveryRow]) -> AlertView:
    return AlertView(
        kind=a.kind, subject=a.subject, at=a.at, step=a.key if a.kind == "long" else None,
        predicted=a.predicted, deadline=a.deadline,
        deliveries=[
            ReportView(d.channel, d.state, d.tries, d.at, d.message, a.launch_id) for d in deliveries
        ],
    )
