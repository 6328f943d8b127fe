"""A launch that could not start is a failed launch: recorded, shown and reported.

A night started by the scheduler or a cron line (or with --mail) whose batch module no
longer imports, whose definition is wrong or whose configuration is refused would
otherwise exit 2 with one line that nobody reads at 1am. It is recorded instead as a
launch of that (batch, date) that failed before any step ran, with that line, so
`status`, `history`, `list` and the dashboard show it, and it is reported like any
failed night (the batch's mail policy, the webhooks). The exit code stays 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from overnight.states import RunState

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import Ledger


@dataclass(frozen=True)
class NotStarted:
    """What report.after_launch needs of a launch: its run, itself and its state."""

    run_id: int
    launch_id: int
    state: RunState = RunState.FAILED


def record_not_started(
    ledger: Ledger, batch: str, day: date, error: str, *, trigger: str, launched_by: str,
    pid: int | None = None,
) -> NotStarted:
    with ledger.transaction():
        run_id, launch_id = ledger.record_not_started(
            batch, day.isoformat(), trigger=trigger, launched_by=launched_by,
            message=f"could not start: {error}", pid=pid,
        )
    return NotStarted(run_id, launch_id)


def record_and_report(
    config: Config, batch: str, day: date, error: str, *, trigger: str, launched_by: str,
    mail: bool | None, batch_arg: str | None = None, pid: int | None = None,
) -> NotStarted | None:
    """Record the launch that could not start and send its report. Never raises: a ledger
    that cannot be written is one more line on stderr, and the exit code stays the
    caller's. Returns what was recorded, or None."""
    from overnight.errors import OvernightError
    from overnight.ledger import Ledger
    from overnight.reporting.report import after_launch, warn

    try:
        ledger = Ledger.open(config.state.ledger)
    except OvernightError as e:
        warn(f"the launch that could not start is not recorded: {e}")
        return None
    try:
        recorded = record_not_started(
            ledger, batch, day, error, trigger=trigger, launched_by=launched_by, pid=pid
        )
        after_launch(config, batch, ledger, recorded, mail, batch_arg=batch_arg, trigger=trigger)
        return recorded
    except OvernightError as e:
        warn(f"the launch that could not start is not recorded: {e}")
        return None
    finally:
        ledger.close()
