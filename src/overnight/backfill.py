"""`overnight backfill`: a batch once per date over a range, each date an ordinary run.

Each date is one `overnight run BATCH --date D --no-mail` in a child process: the same
lock, ledger, resume and exit codes as a run by hand, so re-issuing a backfill skips the
dates and steps already done. At the end, one digest report covers the whole range.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from overnight.commandline import CommandLine
from overnight.config import Config
from overnight.errors import ConfigError
from overnight.ledger import Ledger

MAX_DATES = 3660  # ten years of nights: more is surely a typo in --from or --to
DIGEST_TAIL_LINES = 20


@dataclass
class DateResult:
    date: date
    exit_code: int | None   # None: not run (an earlier date stopped the backfill)
    already_done: bool = False  # done before this backfill: no launch was needed

    @property
    def state(self) -> str:
        if self.already_done:
            return "already done"
        return {None: "not run", 0: "succeeded", 1: "failed", 3: "already running",
                130: "cancelled"}.get(self.exit_code, f"error (exit code {self.exit_code})")


def date_range(first: date, last: date, backward: bool) -> list[date]:
    if first > last:
        raise ConfigError(f"--from {first} is after --to {last}: give the older date as --from")
    count = (last - first).days + 1
    if count > MAX_DATES:
        raise ConfigError(f"--from {first} --to {last} is {count} dates; at most {MAX_DATES} at once")
    dates = [first + timedelta(days=i) for i in range(count)]
    return dates[::-1] if backward else dates


def run_command(config: Config, batch_arg: str, day: date, workers: int | None) -> list[str]:
    more = ["--workers", str(workers)] if workers is not None else []
    # The backfill itself has refused a range after today unless told --allow-future.
    return CommandLine.of(config).argv(
        "run", batch_arg, "--date", day.isoformat(), "--no-mail", "--allow-future", *more
    )


def is_done(config: Config, batch: str, day: date, steps: set[str]) -> bool:
    """True when the ledger says every step of this batch is done for `day`.

    Such a date needs no launch at all. Comparing step names (not just the run's state)
    means a step added to the batch since then still gets its run."""
    if not config.state.ledger.exists():
        return False
    ledger = Ledger.open(config.state.ledger, readonly=True)
    try:
        run = ledger.find_run(batch, day.isoformat())
        if run is None or run.state != "succeeded":
            return False
        states = ledger.step_states(run.id)
        return steps <= states.keys() and all(s.is_done for s in states.values())
    finally:
        ledger.close()


def run_dates(
    config: Config, batch: str, batch_arg: str, steps: set[str], dates: list[date], keep_going: bool,
    workers: int | None, env: dict[str, str],
) -> list[DateResult]:
    """Run each date in turn, passing the output through; stop as the options say."""
    results = [DateResult(d, None) for d in dates]
    total = len(dates)
    for i, result in enumerate(results, 1):
        if is_done(config, batch, result.date, steps):
            result.exit_code, result.already_done = 0, True
            print(f"date {i} of {total}: {result.date} already done", flush=True)
            continue
        print(f"date {i} of {total}: {result.date} ...", flush=True)
        result.exit_code = _run_one(run_command(config, batch_arg, result.date, workers), env)
        print(f"date {i} of {total}: {result.date} {result.state}", flush=True)
        if result.exit_code == 1 and keep_going:
            continue
        if result.exit_code != 0:
            break
    return results


def _run_one(command: list[str], env: dict[str, str]) -> int:
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    # SIGTERM to the backfill stops the date in progress cleanly (the run records it
    # cancelled) instead of leaving it running unwatched. Ctrl-C reaches both already.
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                continue  # the child got the same SIGINT; wait for it to record that
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 - code if code < 0 else code


def tally(results: list[DateResult]) -> str:
    """`2 succeeded, 1 failed (2026-10-02), 1 not run`: the dates that did not succeed
    named, those a stop left unrun counted apart (nothing is wrong with them)."""
    ok = sum(1 for r in results if r.exit_code == 0)
    failed = [r.date.isoformat() for r in results if r.exit_code not in (0, None)]
    not_run = sum(1 for r in results if r.exit_code is None)
    parts = [f"{ok} succeeded"]
    if failed:
        parts.append(f"{len(failed)} failed ({', '.join(sorted(failed))})")
    if not_run:
        parts.append(f"{not_run} not run")
    return ", ".join(parts)


def exit_code(results: list[DateResult]) -> int:
    for r in results:
        if r.exit_code in (2, 3, 130):
            return r.exit_code  # type: ignore[return-value]
    return 0 if all(r.exit_code == 0 for r in results) else 1


def digest(
    config: Config, ledger: Ledger | None, batch: str, results: list[DateResult], again: str
) -> tuple[str, str, dict[str, Any]]:
    """Subject, text and JSON summary of the whole backfill."""
    dates = sorted(r.date for r in results)
    span = f"{dates[0]} to {dates[-1]}"
    ok = sum(1 for r in results if r.exit_code == 0)
    bad = len(results) - ok
    failed = sum(1 for r in results if r.exit_code not in (0, None))
    not_run = bad - failed
    if bad == 0:
        subject = f"Overnight backfill {span}: {batch}: succeeded ({len(results)} dates)"
    else:
        counted = ", ".join([f"{failed} failed"] * bool(failed) + [f"{not_run} not run"] * bool(not_run))
        subject = f"Overnight backfill {span}: {batch}: failed ({len(results)} dates: {counted})"
    lines = [f"backfill of {batch}, {span}: {tally(results)}", ""]
    per_date, failed_summary = _per_date(ledger, batch, results)
    lines += per_date
    if bad:
        lines += ["", "What to do:", "  Fix the cause, then run the same backfill again "
                  "(dates and steps already done are skipped):", f"    {again}"]
    summary = {
        "batch": batch, "from": str(dates[0]), "to": str(dates[-1]), "subject": subject,
        "state": "succeeded" if bad == 0 else "failed",
        "dates": [{"date": r.date.isoformat(), "state": r.state} for r in results],
        "failed": failed_summary, "resume": again if bad else None,
        "text": "\n".join([subject] + [f"- {f['date']} {f['step']}: {f['state']}" for f in failed_summary]
                          + ([f"To resume: {again}"] if bad else [])),
    }
    return subject, "\n".join(lines) + "\n", summary


def _per_date(
    ledger: Ledger | None, batch: str, results: list[DateResult]
) -> tuple[list[str], list[dict[str, Any]]]:
    """A line per date with its steps counted by state; under each date that did not
    succeed, its failed steps with the end of their logs."""
    from overnight.readmodel.history import step_counts
    from overnight.readmodel.run import run_view
    from overnight.reporting.report import tail

    runs = {r.date: ledger.find_run(batch, r.date.isoformat()) for r in results} if ledger else {}
    counts = step_counts(ledger, [run for run in runs.values() if run]) if ledger else {}
    lines, failed = [], []
    for r in results:
        run = runs.get(r.date)
        tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.get(run.id, {}).items())) if run else ""
        lines.append(f"  {r.date}  {r.state}" + (f"  ({tally})" if run else ""))
        if run is None or ledger is None or r.exit_code in (0, None):
            continue
        for step in run_view(ledger, run).steps:
            if not step.failed:
                continue
            failed.append({"date": r.date.isoformat(), "step": step.name, "state": step.state,
                           "message": step.message, "log_path": step.log_path})
            lines.append(f"      {step.name}: {step.state}: {step.message or ''}".rstrip())
            lines.append(f"        log: {step.log_path or '(none)'}")
            lines += [f"        | {line}" for line in (tail(step.log_path, DIGEST_TAIL_LINES) or [])]
    return lines, failed


def again_command(config: Config, batch_arg: str, first: date, last: date, backward: bool,
                  keep_going: bool) -> str:
    words = ["backfill", batch_arg, "--from", first.isoformat(), "--to", last.isoformat()]
    words += ["--backward"] * backward + ["--keep-going"] * keep_going
    return CommandLine.of(config).hint(*words, anywhere=True)
