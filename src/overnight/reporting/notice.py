"""The report of a fire that did not become a run: missed, skipped because the batch was
busy, or failed to launch. No night is lost in silence: each such record in the ledger
owes one report (`fires.report = 'due'`), sent once by mail (the batch's `mail` policy,
as for a failed night) and to the webhooks, each delivery recorded; a delivery that failed
is sent again by `overnight report BATCH --date D --send`.

Whoever records the fire sends its report right after (the scheduler's pass, a cron
line's launch); a report still owed long after its record (its sender died) is sent by
the next pass of the scheduler.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from overnight.commandline import CommandLine
from overnight.reporting.deliver import Delivered, channels_for, deliver

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import FireRow, Ledger

# What the subject says after the batch's name, by outcome.
HEADLINES = {
    "missed": "missed, not run",
    "skipped_running": "skipped: the batch was busy",
    "failed_to_launch": "failed to launch",
}
# A report (or an alert) still owed this long after its record: its sender died; the
# scheduler sends it.
ABANDONED_AFTER = 900.0


def abandoned_after(env: Mapping[str, str]) -> float:
    """ABANDONED_AFTER, or OVERNIGHT_REPORT_ABANDONED_AFTER (seconds: a test hook)."""
    try:
        return max(0.0, float(env["OVERNIGHT_REPORT_ABANDONED_AFTER"]))
    except (KeyError, ValueError):
        return ABANDONED_AFTER


@dataclass(frozen=True)
class Notice:
    batch: str
    dates: str
    subject: str
    text: str
    summary: dict[str, Any]

    def message(self, sender: str, to: list[str]) -> EmailMessage:
        from overnight.reporting.mailer import text_message

        return text_message(self.subject, sender, to, self.text)


def build_notice(config: Config, fire: FireRow) -> Notice:
    last = fire.last_date or fire.date
    dates = fire.date if last == fire.date else f"{fire.date} to {last}"
    headline = HEADLINES.get(fire.outcome, fire.outcome.replace("_", " "))
    if fire.count > 1:
        headline = f"{headline} ({fire.count:,} fires)"
    subject = f"Overnight for {dates}: {fire.batch}: {headline}"
    line = CommandLine.of(config)
    if last == fire.date:
        todo = f"To run it now: {line.resume_hint(fire.batch, fire.date, anywhere=True)}"
    else:
        todo = "To run those dates: " + line.hint(
            "backfill", fire.batch, "--from", fire.date, "--to", last, anywhere=True
        )
    text = [
        f"{fire.batch} for {dates}: not run ({fire.outcome.replace('_', ' ')}).",
        f"Scheduled at {fire.scheduled_at}: {fire.message or fire.outcome}",
        "",
        "What to do:",
        f"  {todo}",
        "",
        f"The scheduler's records: {line.hint('history', fire.batch, anywhere=True)}",
    ]
    summary = {
        "batch": fire.batch, "date": fire.date, "last_date": last, "state": fire.outcome,
        "count": fire.count, "scheduled_at": fire.scheduled_at, "message": fire.message,
        "run_id": None, "launch_id": None, "fire_id": fire.id, "subject": subject,
        "resume": todo, "text": f"{subject}\n- {fire.message or fire.outcome}\n{todo}",
    }
    return Notice(fire.batch, dates, subject, "\n".join(text) + "\n", summary)


def send_notice(config: Config, ledger: Ledger, fire: FireRow) -> Delivered | None:
    """Send the fire's report where the batch's news goes; record every delivery and that
    the report was made (so no later pass sends it again). None: nowhere to send it."""
    where = channels_for(config, fire.batch, failed=True)
    if not where.any:
        with ledger.transaction():
            ledger.settle_fire_report(fire.id)
        return None
    notice = build_notice(config, fire)
    sent = deliver(config, where, notice.message, notice.summary)
    with ledger.transaction():
        if sent.mail is not None:
            record_mail(ledger, fire.id, sent.mail, sent.to)
        for p in sent.posted:
            ledger.record_fire_report(fire.id, f"webhook:{p.hook.url}", "sent" if p.sent else "not_sent",
                                      p.tries, p.reason)
        ledger.settle_fire_report(fire.id)
    return sent


def record_mail(ledger: Ledger, fire_id: int, delivery: Any, to: list[str]) -> None:
    ledger.record_fire_report(fire_id, "mail", "sent" if delivery.sent else "not_sent", delivery.tries,
                              f"to {', '.join(to)}" if delivery.sent else delivery.reason)


def send_due(
    config: Config, ledger: Ledger, mine: Collection[int] = (), *,
    say: Callable[[str], None] | None = None, now: float | None = None,
) -> int:
    """Send the reports owed for the fires `mine` (recorded by the caller) and those
    abandoned by a sender that died. `say` gets one line per delivery that failed.
    Returns how many reports were made."""
    now = time.time() if now is None else now
    patience = abandoned_after(os.environ)
    made = 0
    for fire in ledger.fires_with_report_due():
        if fire.id not in mine and now - fire.recorded_at < patience:
            continue  # its own sender is on it
        sent = send_notice(config, ledger, fire)
        made += 1
        if sent is None or say is None:
            continue
        later = CommandLine.of(config).hint("report", fire.batch, "--date", fire.date, "--send")
        if sent.mail is not None and not sent.mail.sent:
            say(f"report of {fire.batch} for {fire.date} ({fire.outcome}) not sent: {sent.mail.reason} "
                f"(recorded; to send it later: {later})")
        for p in sent.posted:
            if not p.sent:
                say(f"webhook {p.hook.url} not posted ({fire.batch} for {fire.date}): {p.reason}")
    return made
