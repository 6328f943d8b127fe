"""Heartbeat pings: the dead-man switch of healthchecks.io, Cronitor and friends.

A batch with `ping_url` tells the monitor `<url>/start` when a launch starts, `<url>`
when the night succeeds and `<url>/fail` when it does not (with a short text of what
failed as the body). A monitor that hears nothing by the expected time raises the alarm:
that covers the machine that was switched off, which nothing on it can report. Each ping
has a bounded time, is recorded like a report (channel `ping:start`, `ping:success`,
`ping:fail`), and never changes the night's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overnight.ledger import Ledger
    from overnight.readmodel.run import RunView

PING_TIMEOUT = 10.0          # in all, retries included (as a webhook's: webhooks.post)
MAX_BODY = 10_000            # characters of the failure text


@dataclass(frozen=True)
class Pinged:
    what: str                # start | success | fail
    url: str
    sent: bool
    tries: int
    reason: str | None


def ping_address(url: str, what: str) -> str:
    """`<url>/start`, `<url>` or `<url>/fail` (healthchecks.io's convention)."""
    base = url.rstrip("/")
    return base if what == "success" else f"{base}/{what}"


def ping(url: str, what: str, body: str = "", timeout: float = PING_TIMEOUT) -> Pinged:
    """POST `body` to the ping address of `what`; a few tries within `timeout`. Never raises."""
    from overnight.reporting.webhooks import post

    address = ping_address(url, what)
    tried = post(address, body.encode(), "text/plain; charset=utf-8", timeout, "the monitor")
    return Pinged(what, address, tried.ok, tried.tries, tried.reason)


def record_ping(ledger: Ledger, run_id: int, launch_id: int | None, pinged: Pinged) -> None:
    with ledger.transaction():
        ledger.record_report(
            run_id, launch_id, f"ping:{pinged.what}", "sent" if pinged.sent else "not_sent",
            pinged.tries, pinged.url if pinged.sent else pinged.reason,
        )


def failure_text(view: RunView) -> str:
    """What failed, in a few lines: the body of `<url>/fail`."""
    lines = [f"{view.batch} for {view.date}: {view.state}"]
    for s in view.steps:
        if s.failed:
            lines.append(f"{s.name}: {s.state}" + (f": {s.message}" if s.message else ""))
    blocked = [s.name for s in view.steps if s.state == "blocked"]
    if blocked:
        lines.append(f"blocked ({len(blocked)}): {', '.join(blocked)}")
    return "\n".join(lines)[:MAX_BODY] + "\n"


def ping_end(ledger: Ledger, url: str, run_id: int, launch_id: int) -> Pinged | None:
    """After a launch: `<url>` when its run succeeded, `<url>/fail` with what failed
    otherwise; recorded. None when the run is not in the ledger."""
    from overnight.readmodel.run import run_view

    run = ledger.get_run(run_id)
    if run is None:
        return None
    view = run_view(ledger, run)
    if view.state == "succeeded":
        pinged = ping(url, "success")
    else:
        pinged = ping(url, "fail", failure_text(view))
    record_ping(ledger, run_id, launch_id, pinged)
    return pinged
