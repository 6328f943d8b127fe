"""What an alert about a night says, and sending it where the batch's bad news goes.

An alert is recorded (claimed, lookout.py says when) before it is sent: this module
turns the record into a message, mails it and posts it to the [[webhooks]] as a failed
night's report would go (reporting/deliver.py), and records every delivery, sent or not,
beside it. `status`, the dashboard, `check` and the metrics show the ones not sent.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from overnight.durations import format_duration
from overnight.lookout import LATE, LONG, MISSED, finish_text, wall_clock
from overnight.reporting.deliver import Channels, channels_for, deliver

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import AlertRow, Ledger
    from overnight.readmodel.run import RunView

HEADLINES = {LATE: "will be late", MISSED: "has missed its deadline", LONG: "has a step running long"}


@dataclass(frozen=True)
class AlertNews:
    subject: str
    text: str
    summary: dict[str, Any]

    def message(self, sender: str, to: list[str]) -> EmailMessage:
        from overnight.reporting.mailer import text_message

        return text_message(self.subject, sender, to, self.text)


def alert_news(config: Config | None, ledger: Ledger, alert: AlertRow) -> AlertNews:
    """The alert as a message: what is wrong, what the night is waiting on, where to look."""
    from overnight.readmodel.run import run_view

    zone = config.zone_for(alert.batch) if config is not None else None
    run = ledger.get_run(alert.run_id) if alert.run_id is not None else None
    view = run_view(ledger, run) if run is not None else None
    lines = [f"{alert.batch} for {alert.date} {HEADLINES.get(alert.kind, alert.kind)}.", ""]
    lines += _details(alert, view, zone)
    if config is not None:
        from overnight.commandline import CommandLine

        follow = CommandLine.of(config).hint("status", alert.batch, "--date", alert.date, anywhere=True)
        lines += ["", f"To follow it: {follow}"]
    summary = {
        "batch": alert.batch, "date": alert.date, "state": "alert", "alert": alert.kind,
        "subject": alert.subject, "run_id": alert.run_id, "launch_id": alert.launch_id,
        "step": alert.key if alert.kind == LONG else None, "predicted": alert.predicted,
        "deadline": alert.deadline,
        "critical_path": view.forecast.critical_path if view and view.forecast else [],
        "text": "\n".join([alert.subject, *lines[2:]]).strip(),
    }
    return AlertNews(alert.subject, "\n".join(lines) + "\n", summary)


def _details(alert: AlertRow, view: RunView | None, zone: ZoneInfo | None) -> list[str]:
    if view is None:
        deadline = wall_clock(alert.deadline, zone, seconds=False) if alert.deadline else "its deadline"
        return [f"No launch of it had started by {deadline}."]
    out = []
    forecast = view.forecast
    if forecast is not None and forecast.finish is not None:
        out.append(finish_text(forecast.finish, forecast.deadline, forecast.partial, forecast.unknown, zone))
        if forecast.critical_path:
            out.append(f"Critical path (what the finish waits on): {', '.join(forecast.critical_path)}")
    done = sum(1 for s in view.steps if s.done)
    out.append(f"Steps done: {done} of {len(view.steps)}; the run is {view.state}.")
    now = time.time()
    running = [s for s in view.steps if s.state == "running" and s.attempts]
    if running:
        out += ["", "Running now:"]
        for s in running:
            usual = forecast.usual.get(s.name) if forecast else None
            took = format_duration(now - s.attempts[-1].started_at)
            out.append(f"  {s.name}: {took}" + (f", usually {format_duration(usual)}" if usual else ""))
    if forecast is not None and forecast.unknown_steps:
        out += ["", f"Without history (counted as 0 s): {', '.join(forecast.unknown_steps)}"]
    return out


def send_alert(
    config: Config | None, ledger: Ledger, alert_id: int, only: Collection[str] | None = None,
) -> list[str]:
    """Send the recorded alert where the batch's bad news goes (`only`: on these channels,
    "mail" or "webhook:URL": a delivery made again); record each delivery and settle it.
    Returns a line per delivery that failed."""
    alert = ledger.alert(alert_id)
    if alert is None:
        return [f"alert {alert_id} is not in the ledger"]
    where = channels_for(config, alert.batch, failed=True) if config is not None else None
    if where is not None and only is not None:
        where = Channels(where.mail_to if "mail" in only else [],
                         [h for h in where.hooks if f"webhook:{h.url}" in only])
    if where is None or not where.any:
        with ledger.transaction():
            ledger.settle_alert(alert.id)
        return []
    assert config is not None
    news = alert_news(config, ledger, alert)
    sent = deliver(config, where, news.message, news.summary)
    failures = []
    with ledger.transaction():
        if sent.mail is not None:
            ok = sent.mail.sent
            ledger.record_alert_delivery(alert.id, "mail", "sent" if ok else "not_sent", sent.mail.tries,
                                         f"to {', '.join(sent.to)}" if ok else sent.mail.reason)
            if not ok:
                failures.append(f"alert {alert.subject!r} not mailed: {sent.mail.reason}")
        for p in sent.posted:
            state = "sent" if p.sent else "not_sent"
            ledger.record_alert_delivery(alert.id, f"webhook:{p.hook.url}", state, p.tries, p.reason)
            if not p.sent:
                failures.append(f"alert {alert.subject!r} not posted to {p.hook.url}: {p.reason}")
        ledger.settle_alert(alert.id)
    return failures

