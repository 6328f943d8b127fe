"""What `status`, `history` and `list` print: the read model (readmodel/), formatted by
hand.

Plain column formatting keeps these commands fast (no rich import); colour only on a tty.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from overnight import palette
from overnight.durations import format_duration
from overnight.ledger import Ledger, RunRow
from overnight.readmodel import to_json
from overnight.readmodel.liveness import RUNNING

# Each command imports the views it prints, and no others (defining them costs time).
if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.readmodel.history import HistoryView
    from overnight.readmodel.outlook import ForecastView
    from overnight.readmodel.run import LaunchView, RunView


def _paint(text: str, state: str) -> str:
    look = palette.tone(state)
    if look is None or not sys.stdout.isatty():
        return text
    return f"\x1b[{look.ansi}m{text}\x1b[0m"


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _took(launch: LaunchView) -> str:
    if launch.took is not None:
        return format_duration(launch.took)
    return "running" if launch.state == RUNNING else "did not finish"


def _write(text: str) -> None:
    sys.stdout.write(text)


# What `status` exits with for the run it shows (README, "Exit codes"): a script or a
# monitoring check can gate on it. A run still going is not (yet) a failure.
NOT_SUCCEEDED = frozenset({"failed", "crashed", "cancelled"})


def status_exit_code(states: list[str | None]) -> int:
    return 1 if any(state in NOT_SUCCEEDED for state in states) else 0


def print_status(ledger: Ledger, run: RunRow, as_json: bool) -> int:
    """Print one run's status; return the exit code for it."""
    from overnight.readmodel.run import run_view

    view = run_view(ledger, run)
    _write(to_json(view) if as_json else status_text(view))
    return status_exit_code([view.state])


def status_text(view: RunView) -> str:
    from overnight.readmodel.run import unsent

    waiting = f" ({view.waiting})" if view.waiting else ""
    out = [f"{view.batch} for {view.date}: {_paint(view.state, view.state)}{waiting}\n"]
    ahead = view.forecast if view.forecast is not None and view.forecast.live else None
    if ahead is not None:
        out.append(f"  {outlook_line(ahead)}\n")
    width = max([4] + [len(s.name) for s in view.steps])
    if view.steps:  # none: no launch of it has started (it could not start)
        out.append(f"  {'STEP':<{width}}  {'STATE':<11}  {'TIME':>8}  TRIES  LAUNCH  NOTE\n")
    now = time.time()
    for s in view.steps:
        note = s.waiting or s.message or ""
        if s.host:
            note = f"on {s.host}  {note}".strip()
        if s.failed and s.log_path:
            note = f"{note}  log: {s.log_path}".strip()
        if s.state == RUNNING and s.attempts:
            usual = ahead.usual.get(s.name) if ahead else None
            ran = f"running {format_duration(now - s.attempts[-1].started_at)}"
            note = f"{ran}, usually {format_duration(usual)}" if usual is not None else ran
        out.append(
            f"  {s.name:<{width}}  {_paint(f'{s.state:<11}', s.state)}  "
            f"{format_duration(s.duration):>8}  {len(s.attempts):>5}  "
            f"{s.launch or '-':>6}  {note}\n"
        )
    for la in view.launches:
        net = la.options.get("kill_net")
        note = f": {la.message}" if la.not_started else ""  # why it failed before any step ran
        out.append(
            f"  launch {la.number}: {_paint(la.state, la.state)}, {la.trigger} by "
            f"{la.launched_by} on {la.host} (pid {la.pid}), {_clock(la.started_at)}, {_took(la)}"
            + (f", kill net: {net}" if net else "") + f"{note}\n"
        )
    for m in view.marks:
        why = f": {m.reason}" if m.reason else ""
        out.append(f"  mark: {m.step} {m.from_} -> {m.to} by {m.who} at {_clock(m.at)}{why}\n")
    for r in unsent(view.reports):
        out.append(f"  report not sent ({r.channel}): {r.message}\n")
    for alert in view.alerts:
        out.append(f"  alert at {_clock(alert.at)}: {alert.subject}\n")
        for d in alert.unsent:
            out.append(f"    not sent ({d.channel}): {d.message}\n")
    return "".join(out)


def outlook_line(forecast: ForecastView) -> str:
    """"predicted finish 05:12 (deadline 06:00)", with the critical path when late."""
    from overnight.lookout import finish_text

    f = forecast
    line = finish_text(f.finish, f.deadline, f.partial, f.unknown)
    if f.late and f.critical_path:
        line += f"; critical path: {', '.join(f.critical_path)}"
    return line


def print_history(ledger: Ledger | None, batch: str | None, limit: int, as_json: bool) -> None:
    from overnight.readmodel.history import HistoryView, history_view

    view = history_view(ledger, batch, limit) if ledger else HistoryView([], [])
    if as_json:
        _write(to_json(view))
    elif not view.runs and not view.fires:
        _write("no runs yet\n")
    else:
        _write(history_text(view))


def history_text(view: HistoryView) -> str:
    from overnight.readmodel.run import unsent

    out = []
    for r in view.runs:
        total = sum(r.steps.values())
        summary = ", ".join(f"{n} {s}" for s, n in sorted(r.steps.items()))
        out.append(f"{r.date}  {r.batch:<12} {_paint(f'{r.state:<9}', r.state)}  {total} steps: {summary}\n")
        for la in r.launches:
            note = f"  {la.message}" if la.message else ""
            out.append(
                f"    launch {la.number:<3} {_paint(f'{la.state:<9}', la.state)} {la.trigger} by "
                f"{la.launched_by}, {_clock(la.started_at)}, {_took(la)}{note}\n"
            )
        for rep in unsent(r.reports):
            out.append(f"    report not sent ({rep.channel}): {rep.message}\n")
    notable = [f for f in view.fires if f.outcome != "launched"]
    if notable:
        out.append("scheduler:\n")
        for f in notable:
            why = f": {f.message}" if f.message else ""
            out.append(f"    {f.scheduled_at}  {f.batch:<12} {f.outcome}{why}\n")
            for rep in unsent(f.reports):
                out.append(f"        report not sent ({rep.channel}): {rep.message}\n")
    return "".join(out)


def print_overview(config: Config, ledger: Ledger | None, as_json: bool) -> int:
    """`overnight status` with no batch: the latest run of every batch; the exit code."""
    from overnight.readmodel.batches import latest_runs

    rows = latest_runs(config, ledger)
    if as_json:
        _write(to_json(rows))
    elif not rows:
        _write("no batches configured and no runs yet\n")
    else:
        for row in rows:
            state = row.state or "never run"
            _write(f"{row.batch:<16} {row.date or '-':<10}  {_paint(state, state)}\n")
    return status_exit_code([row.state for row in rows])


def print_batch_list(config: Config, ledger: Ledger | None, as_json: bool) -> None:
    from overnight.readmodel.batches import batch_views

    rows = batch_views(config, ledger)
    if as_json:
        _write(to_json(rows))
        return
    if not rows:
        _write("no batches in the configuration (add [batches.NAME] to overnight.toml)\n")
        return
    _write(f"{'BATCH':<16} {'SCHEDULE':<14} {'NEXT':<26} {'LAST RUN':<22} LAST COMPLETED\n")
    for r in rows:
        last = f"{r.last_date} {r.last_state}" if r.last_date else "-"
        _write(
            f"{r.batch:<16} {r.schedule or '-':<14} {r.next or '-':<26} "
            f"{last:<22} {r.last_completed or '-'}\n"
        )
