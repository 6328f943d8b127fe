"""What `status`, `history` and `list` print: read from the ledger, formatted by hand.

Plain column formatting keeps these commands fast (no rich import); colour only on a tty.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from overnight.durations import format_duration
from overnight.ledger import Ledger, RunRow
from overnight.states import DEAD_LAUNCH_STATE, StepState, after_runner_died

if TYPE_CHECKING:
    from overnight.config import Config

_COLOURS = {
    "succeeded": "32", "failed": "31", "timed_out": "31", "interrupted": "35",
    "cancelled": "33", "blocked": "33", "crashed": "35", "running": "36", "skipped": "2",
    "pending": "2",
}


def _paint(text: str, state: str) -> str:
    if not sys.stdout.isatty() or state not in _COLOURS:
        return text
    return f"\x1b[{_COLOURS[state]}m{text}\x1b[0m"


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _write(text: str) -> None:
    sys.stdout.write(text)



def seen_state(ledger: Ledger, batch: str, state: str) -> str:
    """A state as a reader should see it: a launch recorded running whose runner is gone
    (nobody holds the batch's lock) is shown crashed, as the next launch will record it."""
    if state != "running":
        return state
    from overnight.lock import holder

    return state if holder(ledger.path.parent, batch) is not None else DEAD_LAUNCH_STATE.value

def run_details(ledger: Ledger, run: RunRow) -> dict[str, Any]:
    """Everything about one run, as plain data: what --json prints and the web shows."""
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in ledger.attempts(run.id):
        attempts.setdefault(a.step, []).append(
            {
                "number": a.number,
                "launch_id": a.launch_id,
                "state": a.state,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
                "duration": a.duration,
                "exit_code": a.exit_code,
                "message": a.message,
                "log_path": a.log_path,
                "host": a.host,
                "remote_id": a.remote_id,
            }
        )
    run_state = seen_state(ledger, run.batch, run.state)
    steps = []
    for s in ledger.steps(run.id):
        tried = attempts.get(s.name, [])
        last = tried[-1] if tried else None
        steps.append(
            {
                "name": s.name,
                # A local step of a runner that is gone is interrupted, as the next launch will
                # record; a remote one may still be running on its worker (a resume re-attaches).
                "state": after_runner_died(
                    StepState(s.state), remote=bool(last and last["remote_id"])
                ).value if run_state == DEAD_LAUNCH_STATE else s.state,
                "kind": s.kind,
                "command": s.command,
                "after": s.prerequisites,
                "launch_id": s.launch_id,
                "message": s.message,
                "duration": last["duration"] if last else None,
                "log_path": last["log_path"] if last else None,
                "attempts": tried,
            }
        )
    launches = [
        {
            "id": la.id,
            "state": seen_state(ledger, run.batch, la.state),
            "trigger": la.trigger,
            "launched_by": la.launched_by,
            "host": la.host,
            "pid": la.pid,
            "started_at": la.started_at,
            "ended_at": la.ended_at,
            "options": json.loads(la.options),
            "message": la.message,
        }
        for la in ledger.launches(run.id)
    ]
    marks = [
        {"step": m.step, "action": m.action, "from": m.old_state, "to": m.new_state,
         "who": m.who, "reason": m.reason, "at": m.at}
        for m in ledger.marks(run.id)
    ]
    reports = [
        {"channel": r.channel, "state": r.state, "tries": r.tries, "at": r.at,
         "message": r.message, "launch_id": r.launch_id}
        for r in ledger.reports_of([run.id]).get(run.id, [])
    ]
    return {
        "batch": run.batch,
        "date": run.date,
        "run_id": run.id,
        "state": run_state,
        "steps": steps,
        "launches": launches,
        "marks": marks,
        "reports": reports,
    }


def print_status(ledger: Ledger, run: RunRow, as_json: bool) -> None:
    details = run_details(ledger, run)
    if as_json:
        _write(json.dumps(details, indent=2) + "\n")
        return
    state = details["state"]
    out = [f"{run.batch} for {run.date}: {_paint(state, state)}\n"]
    width = max([4] + [len(s["name"]) for s in details["steps"]])
    out.append(f"  {'STEP':<{width}}  {'STATE':<11}  {'TIME':>8}  TRIES  LAUNCH  NOTE\n")
    for s in details["steps"]:
        note = s["message"] or ""
        if s["state"] in ("failed", "timed_out", "interrupted", "cancelled") and s["log_path"]:
            note = f"{note}  log: {s['log_path']}".strip()
        state = _paint(f"{s['state']:<11}", s["state"])
        out.append(
            f"  {s['name']:<{width}}  {state}  "
            f"{format_duration(s['duration']):>8}  {len(s['attempts']):>5}  "
            f"{s['launch_id'] or '-':>6}  {note}\n"
        )
    for la in details["launches"]:
        took = format_duration(la["ended_at"] - la["started_at"]) if la["ended_at"] else (
            "running" if la["state"] == "running" else "did not finish")
        out.append(
            f"  launch {la['id']}: {_paint(la['state'], la['state'])}, {la['trigger']} by "
            f"{la['launched_by']} on {la['host']} (pid {la['pid']}), {_clock(la['started_at'])}, "
            f"{took}\n"
        )
    for m in details["marks"]:
        why = f": {m['reason']}" if m["reason"] else ""
        out.append(
            f"  mark: {m['step']} {m['from']} -> {m['to']} by {m['who']} at {_clock(m['at'])}{why}\n"
        )
    for r in unsent(details["reports"]):
        out.append(f"  report not sent ({r['channel']}): {r['message']}\n")
    _write("".join(out))


def print_history(ledger: Ledger | None, batch: str | None, limit: int, as_json: bool) -> None:
    runs = ledger.runs(batch, limit) if ledger else []
    ids = [r.id for r in runs]
    launches = ledger.launches_of_runs(ids) if ledger else {}
    counts = ledger.state_counts(ids) if ledger else {}
    fires = ledger.fires_of(batch, limit) if ledger else []
    reports = _reports(ledger, ids) if ledger else {}
    if as_json:
        data = {
            "runs": [
                {
                    "batch": r.batch,
                    "date": r.date,
                    "state": seen_state(ledger, r.batch, r.state),
                    "run_id": r.id,
                    "steps": counts.get(r.id, {}),
                    "launches": [
                        {"id": la.id, "state": seen_state(ledger, r.batch, la.state),
                         "trigger": la.trigger,
                         "launched_by": la.launched_by, "started_at": la.started_at,
                         "ended_at": la.ended_at, "message": la.message}
                        for la in reversed(launches.get(r.id, []))
                    ],
                    "reports": reports.get(r.id, []),
                }
                for r in runs
            ],
            "fires": [f._asdict() for f in fires],
        }
        _write(json.dumps(data, indent=2) + "\n")
        return
    if not runs and not fires:
        _write("no runs yet\n")
        return
    out = []
    for r in runs:
        c = counts.get(r.id, {})
        total = sum(c.values())
        summary = ", ".join(f"{n} {s}" for s, n in sorted(c.items()))
        seen = seen_state(ledger, r.batch, r.state)
        state = _paint(f"{seen:<9}", seen)
        out.append(f"{r.date}  {r.batch:<12} {state}  {total} steps: {summary}\n")
        for la in reversed(launches.get(r.id, [])):
            note = f"  {la.message}" if la.message else ""
            lseen = seen_state(ledger, r.batch, la.state)
            lstate = _paint(f"{lseen:<9}", lseen)
            took = format_duration(la.ended_at - la.started_at) if la.ended_at else (
                "running" if lseen == "running" else "did not finish")
            out.append(
                f"    launch {la.id:<5} {lstate} {la.trigger} by "
                f"{la.launched_by}, {_clock(la.started_at)}, {took}{note}\n"
            )
        for rep in unsent(reports.get(r.id, [])):
            out.append(f"    report not sent ({rep['channel']}): {rep['message']}\n")
    notable = [f for f in fires if f.outcome != "launched"]
    if notable:
        out.append("scheduler:\n")
        for f in notable:
            out.append(
                f"    {f.scheduled_at}  {f.batch:<12} {f.outcome}"
                + (f": {f.message}" if f.message else "") + "\n"
            )
    _write("".join(out))


def unsent(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each channel's latest report, when that one was not sent: a report sent later
    (`overnight report --send`) settles the failures before it."""
    latest = {r["channel"]: r for r in reports}
    return [r for r in latest.values() if r["state"] != "sent"]


def _reports(ledger: Ledger, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    return {
        run_id: [{k: getattr(r, k) for k in ("channel", "state", "message", "at")} for r in rows]
        for run_id, rows in ledger.reports_of(run_ids).items()
    }


def print_overview(config: Config, ledger: Ledger | None, as_json: bool) -> None:
    """`overnight status` with no batch: the latest run of every batch."""
    names = sorted(set(config.batches) | set(ledger.batches() if ledger else []))
    rows = []
    for name in names:
        run = ledger.latest_run(name) if ledger else None
        live = ledger.live_launch(name) if ledger else None
        rows.append({
            "batch": name,
            "date": run.date if run else None,
            "state": seen_state(ledger, name, run.state) if run and ledger else None,
            "live_launch": live.id if live else None,
        })
    if as_json:
        _write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        _write("no batches configured and no runs yet\n")
        return
    for row in rows:
        state = row["state"] or "never run"
        _write(f"{row['batch']:<16} {row['date'] or '-':<10}  {_paint(state, state)}\n")


def print_batch_list(config: Config, ledger: Ledger | None, as_json: bool) -> None:
    rows = batch_rows(config, ledger)
    if as_json:
        _write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        _write("no batches in the configuration (add [batches.NAME] to overnight.toml)\n")
        return
    _write(f"{'BATCH':<16} {'SCHEDULE':<14} {'NEXT':<26} {'LAST RUN':<22} LAST COMPLETED\n")
    for r in rows:
        last = f"{r['last_date']} {r['last_state']}" if r["last_date"] else "-"
        _write(
            f"{r['batch']:<16} {r['schedule'] or '-':<14} {r['next'] or '-':<26} "
            f"{last:<22} {r['last_completed'] or '-'}\n"
        )


def batch_rows(config: Config, ledger: Ledger | None) -> list[dict[str, Any]]:
    rows = []
    for name, bc in sorted(config.batches.items()):
        run = ledger.latest_run(name) if ledger else None
        rows.append({
            "batch": name,
            "module": bc.module,
            "schedule": bc.schedule,
            "timezone": bc.timezone or config.timezone,
            "next": next_fire_text(config, name),
            "last_date": run.date if run else None,
            "last_state": seen_state(ledger, name, run.state) if run and ledger else None,
            "last_completed": ledger.last_completed_date(name) if ledger else None,
        })
    return rows


def next_fire_text(config: Config, batch: str) -> str | None:
    """The next fire time, once the scheduler's schedule module is there."""
    bc = config.batches[batch]
    if not bc.schedule:
        return None
    try:
        from overnight.scheduling.schedules import next_fire_for
    except ImportError:
        return None
    return next_fire_for(config, batch)
