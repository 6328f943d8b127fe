"""`overnight scheduler --once --now T --dry-run`: what a pass at T would do and why,
decided exactly as the daemon decides (passes.plan_pass), with nothing launched, recorded
or created: the ledger is opened read-only, or not at all when there is none yet."""

from __future__ import annotations

from datetime import datetime

from overnight.config import Config
from overnight.ledger import Ledger
from overnight.scheduling.cron import Schedule, ScheduleError, next_fire
from overnight.scheduling.passes import BatchPass, holder_text, plan_pass
from overnight.scheduling.plan import describe
from overnight.scheduling.schedules import format_instant, schedules


def preview(config: Config, now: datetime) -> str:
    ledger = Ledger.open_untouched(config.state.ledger) if config.state.ledger.exists() else None
    try:
        cursors = ledger.schedule_cursors() if ledger else {}
        out = [f"dry run of a pass at {now.isoformat()}: nothing is launched or recorded"]
        for name, schedule in schedules(config).items():
            p = plan_pass(config, ledger, name, schedule, cursors.get(name), now,
                          lambda batch: holder_text(config.state_dir, batch))
            out += [f"{name}: {line}" for line in _lines(p, schedule)]
        return "\n".join(out) + "\n"
    finally:
        if ledger is not None:
            ledger.close()


def _lines(p: BatchPass, schedule: Schedule) -> list[str]:
    when = format_instant(p.now.astimezone(schedule.zone))
    if p.first:
        return [f"first pass: would start watching from {when}; nothing before it counts as missed",
                _next(p, schedule)]
    out = []
    if p.note:
        out.append(f"would re-anchor its cursor: {p.note}")
    out += [f"the queued fire for {row.date}: would record it done: its run succeeded meanwhile"
            for row in p.done_meanwhile]
    if p.launch_queued is not None:
        row = p.launch_queued
        out.append(f"would launch the queued fire of {row.scheduled_at} for {row.date}: the batch is free")
    for d in p.decisions:
        at = format_instant(d.fire.at)
        if d.launches:
            how = "on time" if d.outcome == "launched" else "late: a catch-up"
            out.append(f"would launch the fire at {at} for {d.fire.date} ({how})")
        else:
            told = "; and report it" if d.report else ""
            out.append(f"would record {d.outcome.replace('_', ' ')} (fire {at}): {describe(d)}{told}")
    if not out:
        out.append(f"nothing due at {when}")
    if p.waiting:
        out.append(f"{p.waiting} queued fire(s) would still wait for the batch to be free")
    out.append(_next(p, schedule))
    return out


def _next(p: BatchPass, schedule: Schedule) -> str:
    try:
        fire = next_fire(schedule, p.now)
    except ScheduleError:
        return "never fires again"
    return f"next fire {format_instant(fire.at)} for {fire.date}"
