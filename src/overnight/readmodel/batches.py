"""Every batch at a glance: `status` without a batch, `list`, the dashboard's first page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from overnight.ledger import Ledger
from overnight.readmodel.liveness import Liveness, liveness

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.readmodel.history import FireView
    from overnight.readmodel.outlook import ForecastView
    from overnight.readmodel.run import LaunchView


@dataclass(eq=False)
class LatestRun:
    """A batch's latest run, as `status` without a batch lists it."""

    batch: str
    date: str | None
    state: str | None
    live_launch: int | None


@dataclass(eq=False)
class BatchView:
    """A configured batch: its schedule, its latest run and its last completed date."""

    batch: str
    module: str
    schedule: str | None
    timezone: str | None
    next: str | None
    last_date: str | None
    last_state: str | None
    last_completed: str | None


@dataclass(eq=False)
class BoardRow(BatchView):
    """A batch on the dashboard's first page: what `list` says, and what is running now."""

    live: LaunchView | None
    live_date: str | None
    default_date: str
    fire: FireView | None
    forecast: ForecastView | None   # the live run's predicted finish and deadline


def latest_runs(config: Config, ledger: Ledger | None) -> list[LatestRun]:
    names = sorted(set(config.batches) | set(ledger.batches() if ledger else []))
    if ledger is None:
        return [LatestRun(name, None, None, None) for name in names]
    live = liveness(ledger)
    rows = []
    for name in names:
        run = ledger.latest_run(name)
        launch = live.live_launch(ledger, name)
        rows.append(LatestRun(
            batch=name, date=run.date if run else None,
            state=live.run_state(name, run.state) if run else None,
            live_launch=launch.id if launch else None,
        ))
    return rows


def batch_views(config: Config, ledger: Ledger | None, live: Liveness | None = None) -> list[BatchView]:
    if ledger is not None and live is None:
        live = liveness(ledger)
    return [_batch_view(config, ledger, live, name) for name in sorted(config.batches)]


def _batch_view(config: Config, ledger: Ledger | None, live: Liveness | None, name: str) -> BatchView:
    bc = config.batches[name]
    run = ledger.latest_run(name) if ledger else None
    return BatchView(
        batch=name, module=bc.module, schedule=bc.schedule, timezone=bc.timezone or config.timezone,
        next=next_fire_text(config, name), last_date=run.date if run else None,
        last_state=live.run_state(name, run.state) if run and live else None,
        last_completed=ledger.last_completed_date(name) if ledger else None,
    )


def board(config: Config, ledger: Ledger | None) -> list[BoardRow]:
    from overnight.readmodel.history import fire_view
    from overnight.readmodel.outlook import forecast_view
    from overnight.readmodel.run import launch_view

    live = liveness(ledger) if ledger else None
    rows = []
    for view in batch_views(config, ledger, live):
        launch = live.live_launch(ledger, view.batch) if ledger and live else None
        run = ledger.get_run(launch.run_id) if ledger and launch else None
        fires = ledger.fires_of(view.batch, 1) if ledger else []
        ahead = ledger.latest_forecasts([run.id]).get(run.id) if ledger and run else None
        rows.append(BoardRow(
            **view.__dict__,
            live=launch_view(launch, live, ledger.launch_numbers(launch.run_id)[launch.id])
            if ledger and launch and live else None,
            live_date=run.date if run else None,
            default_date=config.default_date(view.batch).isoformat(),
            fire=fire_view(fires[0]) if fires else None,
            forecast=forecast_view(ahead, launch.id if launch else None),
        ))
    return rows


def next_fire_text(config: Config, batch: str) -> str | None:
    """The next fire time of a scheduled batch, as `list` and the dashboard show it."""
    if not config.batches[batch].schedule:
        return None
    from overnight.scheduling.schedules import next_fire_for

    return next_fire_for(config, batch)
