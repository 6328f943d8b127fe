"""A night started by the scheduler or a cron line that finds its batch taken (exit 3).

The scheduler looks before it launches, but a manual run can take the batch between its
look and the launch's lock; a cron line never looks. Either way the fire is recorded, so
no night is lost in silence: the scheduler's fire (OVERNIGHT_FIRE_ID) goes back to the
queue (`overlap = "queue"`) for the next pass to launch once the batch is free, or is
skipped and reported (`"skip"`); a cron line cannot wait (nothing would launch it later),
so its fire is recorded skipped and reported.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

from overnight.config import Config
from overnight.errors import OvernightError
from overnight.scheduling.plan import QUEUED, SKIPPED_RUNNING


def batch_was_busy(config: Config, batch: str, day: date, holder: str, trigger: str) -> None:
    """Record the fire of this launch as queued or skipped, and report a skip. Never
    raises: the exit code stays 3."""
    from overnight.ledger import Ledger
    from overnight.reporting.notice import send_due
    from overnight.reporting.report import warn

    fire_id = os.environ.get("OVERNIGHT_FIRE_ID", "")
    bc = config.batches.get(batch)
    queue = trigger == "scheduled" and fire_id.isdigit() and (bc is None or bc.overlap == "queue")
    try:
        ledger = Ledger.open(config.state.ledger)
    except OvernightError as e:
        warn(f"the busy batch is not recorded: {e}")
        return
    try:
        with ledger.transaction():
            if trigger == "scheduled" and fire_id.isdigit():
                reported = int(fire_id)
                if queue:
                    ledger.settle_fire(reported, QUEUED, os.getpid(),
                                       f"for {day}: waits for the batch to be free: {holder}")
                else:
                    why = f"for {day}: the batch was busy: {holder}; overlap = skip"
                    ledger.settle_fire(reported, SKIPPED_RUNNING, os.getpid(), why, report=True)
            else:
                reported = ledger.record_fire(
                    batch, datetime.now(tz=UTC).isoformat(timespec="seconds"), day.isoformat(),
                    SKIPPED_RUNNING, os.getpid(), f"for {day}: started by {trigger} while the batch was "
                    f"busy: {holder}", report=True,
                )
        if not queue:
            send_due(config, ledger, [reported], say=warn)
    except OvernightError as e:
        warn(f"the busy batch is not recorded: {e}")
    finally:
        ledger.close()
