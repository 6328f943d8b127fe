"""The courier: a short-lived child of the runner that delivers one piece of news.

    python -m overnight.reporting.courier '{"kind": "alert", "id": 7, "ledger": ..., "config": ...}'
    python -m overnight.reporting.courier '{"kind": "ping", "what": "start", "url": ..., ...}'

The runner starts one per alert (nightwatch.py) and for the `/start` ping, so that a mail
server or a monitor that hangs never holds the night up, and no thread of the runner is
inside a socket when it forks a step's worker. The courier opens the ledger itself and
records what it delivered, sent or not; a line on stderr (the runner's own, so the cron
mail or the journal keeps it) says what could not be sent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def deliver_job(job: dict[str, Any]) -> list[str]:
    """Deliver what `job` says; return a line per delivery that failed."""
    from overnight.ledger import Ledger

    ledger = Ledger.open(Path(job["ledger"]))
    try:
        if job["kind"] == "ping":
            from overnight.reporting.pings import ping, record_ping

            pinged = ping(job["url"], job["what"])
            record_ping(ledger, job["run_id"], job.get("launch_id"), pinged)
            return [] if pinged.sent else [f"ping {pinged.url} not sent: {pinged.reason}"]
        from overnight.config import load_config
        from overnight.reporting.alerts import send_alert

        config = load_config(job["config"]) if job.get("config") else None
        return send_alert(config, ledger, int(job["id"]))
    finally:
        ledger.close()


def main(argv: list[str]) -> int:
    try:
        failures = deliver_job(json.loads(argv[1]))
    except Exception as e:  # noqa: BLE001 - one line, never a traceback in the cron mail
        sys.stderr.write(f"overnight: news about the night could not be sent: {e}\n")
        return 1
    for line in failures:
        sys.stderr.write(f"overnight: {line}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
