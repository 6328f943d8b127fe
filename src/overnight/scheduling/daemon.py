"""The scheduler daemon: launches each batch at its schedule, in its own process.

Each pass decides first (passes.plan_pass, whose rules are the pure plan.plan_fires), then
applies: it records every fire, gap of misses, skip and queued fire in the ledger together
with the batch's new cursor, in one transaction; launches the fire that may start (the
oldest one queued, or the one due now) as `overnight run BATCH --date D` in a new session
(so stopping or killing the daemon never touches a running night) and records it
launched; then sends the report of every fire that did not become a run.

A fire is recorded `queued` before its launch and `launched` after it: killed in between,
the daemon leaves it queued, and the next pass launches it (or finds its night done).

The cursor (per batch, in the ledger) is the instant up to which every fire has been dealt
with. After downtime, the fires between it and now are the ones missed. The first time the
daemon sees a batch, it starts watching from that moment: nothing before it counts as
missed. A cursor is never moved past the clock it is given (`scheduler --once --now`
refuses an instant after the real clock); a cursor found ahead of it is re-anchored.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from overnight.commandline import CommandLine
from overnight.config import Config, load_config
from overnight.errors import AlreadyRunning, LedgerError, OvernightError
from overnight.ledger import Ledger
from overnight.loop import EventLoop
from overnight.scheduling.cron import Schedule, ScheduleError, next_fire
from overnight.scheduling.overdue import next_deadline, send_overdue
from overnight.scheduling.passes import BatchPass, holder_text, plan_pass
from overnight.scheduling.plan import (
    ALREADY_DONE,
    CAUGHT_UP,
    FAILED_TO_LAUNCH,
    LATE_GRACE,
    LAUNCHED,
    QUEUED,
    REANCHORED,
    Decision,
    describe,
)
from overnight.scheduling.schedules import format_instant, schedules
from overnight.statefolder import StateFolder

# The longest sleep: a wall clock that jumps (suspend, an NTP step) is noticed this soon.
TICK = 60.0
# How often to look again while a fire waits for its batch to be free (a launch by someone
# else ends without telling us; our own children wake us at once, by SIGCHLD).
QUEUE_POLL = 2.0


def log_line(message: str, stream: TextIO | None = None) -> None:
    """One line on stderr (the journal under systemd), with the local time."""
    stream = stream or sys.stderr
    stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S %z')} overnight scheduler: {message}\n")
    stream.flush()


@dataclass
class Child:
    """A night this daemon launched, until it has ended and been reaped."""

    batch: str
    date: str
    proc: subprocess.Popen[bytes]
    started: float
    log_path: Path


class Scheduler:
    """The daemon. `loop_once(now)` handles what is due at `now`; `run()` loops until told
    to stop. `command` is how to invoke overnight (tests may give a cheaper program)."""

    def __init__(
        self,
        config_path: str | Path,
        *,
        command: Sequence[str] | None = None,
        log: Callable[[str], None] = log_line,
    ) -> None:
        self.config_path = Path(config_path)
        self.command = list(command) if command else None
        self.log = log
        self.config, self.schedules = self._load()
        self.ledger = Ledger.open(self.config.state.ledger)
        self.cursors = self.ledger.schedule_cursors()
        self.children: dict[int, Child] = {}
        self.waiting: set[str] = set()
        self.pruning: subprocess.Popen[bytes] | None = None  # [retention]: today's prune
        self._signals: list[int] = []
        skew = os.environ.get("OVERNIGHT_CLOCK_SKEW")  # a test hook: seconds added to the clock
        self._skew = timedelta(seconds=float(skew)) if skew else timedelta(0)

    def _load(self) -> tuple[Config, dict[str, Schedule]]:
        config = load_config(str(self.config_path))
        return config, schedules(config)

    def clock(self) -> datetime:
        return datetime.now(tz=UTC) + self._skew

    # -- one pass: decide, record, launch, report ------------------------------------------

    def loop_once(self, now: datetime) -> list[Decision]:
        """Handle every fire due at `now` (aware); return what was decided."""
        from overnight.reporting.notice import send_due

        self.reap()
        self._prune_now_and_then()
        passes = [
            plan_pass(self.config, self.ledger, name, schedule, self.cursors.get(name), now, self._live)
            for name, schedule in self.schedules.items()
        ]
        for p in passes:  # first: the log keeps it if the ledger fails
            self._tell(p)
        starting, reported = self._record(passes)
        for p in passes:
            self.cursors[p.name] = now.timestamp()
            reported += self._start(p, starting.get(p.name))
        self.waiting = {p.name for p in passes if p.waiting}
        send_due(self.config, self.ledger, reported, say=self.log)
        self._watch(now)
        return [d for p in passes for d in p.decisions]

    def _watch(self, now: datetime) -> None:
        """The missed deadlines no runner reports (scheduling/overdue.py), and the metrics
        textfile with this pass as the heartbeat. Neither ever stops the daemon."""
        try:
            send_overdue(self.config, self.ledger, self.schedules, now, self.log)
        except LedgerError:
            raise  # run() says so and carries on
        except Exception as e:  # noqa: BLE001 - an alert must never stop the scheduler
            self.log(f"deadlines not checked in this pass: {e}")
        if self.config.metrics is not None and self.config.metrics.textfile is not None:
            from overnight.metrics import write_textfile

            write_textfile(self.config, self.ledger, self.log, heartbeat=now.timestamp())

    def _record(self, passes: list[BatchPass]) -> tuple[dict[str, int], list[int]]:
        """Every decision of the pass and the new cursors, in one transaction. Returns the
        record of each batch's fire that starts now, and the records that owe a report."""
        starting: dict[str, int] = {}
        reported: list[int] = []
        with self.ledger.transaction():
            for p in passes:
                if p.note:
                    self.ledger.record_note(p.name, p.now.isoformat(), self._today(p), REANCHORED, p.note)
                for d in p.decisions:
                    fire, last = d.fire, d.until
                    fire_id = self.ledger.record_fire(
                        p.name, fire.at.isoformat(), fire.date.isoformat(), QUEUED if d.waits else d.outcome,
                        None, describe(d) if d.message else f"for {fire.date}: starting",
                        at=fire.at.timestamp(), until=last.at.timestamp(), last_date=last.date.isoformat(),
                        count=d.count, report=d.report,
                    )
                    if d.launches:
                        starting[p.name] = fire_id
                    if d.report:
                        reported.append(fire_id)
                for row in p.done_meanwhile:
                    why = f"for {row.date}: its run succeeded while this fire waited"
                    self.ledger.settle_fire(row.id, ALREADY_DONE, None, why)
                self.ledger.save_schedule_cursor(p.name, p.now.timestamp())
        return starting, reported

    def _start(self, p: BatchPass, fire_id: int | None) -> list[int]:
        """Launch the batch's fire that may start; record it launched (or failed to launch:
        then its id is returned, it owes a report)."""
        if p.launch_queued is not None:
            row = p.launch_queued
            fire_id, day, at = row.id, row.date, row.at or p.now.timestamp()
        elif fire_id is not None and (d := p.launching) is not None:
            day, at = d.fire.date.isoformat(), d.fire.at.timestamp()
        else:
            return []
        when = format_instant(datetime.fromtimestamp(at, self.schedules[p.name].zone))
        try:
            pid, log_path = self._launch(p.name, day, at, fire_id)
        except OSError as e:
            message = f"for {day}: cannot start: {e.strerror or e}"
            self.log(f"failed to launch: {p.name} (fire {when}) {message}")
            with self.ledger.transaction():
                self.ledger.settle_fire(fire_id, FAILED_TO_LAUNCH, None, message, report=True)
            return [fire_id]
        late = p.now.timestamp() - at > LATE_GRACE
        queued = " (it waited in the queue)" if p.launch_queued is not None else ""
        verb = "caught up: launched" if late else "launched"
        self.log(f"{verb} {p.name} (fire {when}) for {day}: log: {log_path}{queued}, pid {pid}")
        with self.ledger.transaction():
            self.ledger.mark_fire_launched(fire_id, CAUGHT_UP if late else LAUNCHED, pid,
                                           f"for {day}: log: {log_path}{queued}")
        return []

    def _today(self, p: BatchPass) -> str:
        schedule = self.schedules[p.name]
        local = p.now.astimezone(schedule.zone).date()
        return (local - timedelta(days=schedule.date_offset_days)).isoformat()

    def _live(self, name: str) -> str | None:
        """Who runs the batch now, or None. A child just launched counts before it has
        taken the batch's lock."""
        for pid, child in self.children.items():
            if child.batch == name and child.proc.poll() is None:
                return f"pid {pid}, launched by this scheduler (for {child.date})"
        return holder_text(self.config.state_dir, name)

    def _launch(self, name: str, day: str, at: float, fire_id: int) -> tuple[int, Path]:
        config = self.config
        assert config.path is not None
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")
        log_path = config.state.scheduler_log(name, day, stamp)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = CommandLine.of(config).argv("run", name, "--date", day, program=self.command)
        env = dict(os.environ, OVERNIGHT_TRIGGER="scheduled", OVERNIGHT_LAUNCHED_BY="scheduler",
                   OVERNIGHT_FIRE_ID=str(fire_id))
        env.pop("OVERNIGHT_CLOCK_SKEW", None)
        when = format_instant(datetime.fromtimestamp(at, self.schedules[name].zone))
        with open(log_path, "ab") as out:
            out.write(f"# fire {when} for {day}: {json.dumps(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv, cwd=config.base_dir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.children[proc.pid] = Child(name, day, proc, time.time(), log_path)
        return proc.pid, log_path

    def _tell(self, p: BatchPass) -> None:
        if p.note:
            self.log(f"{p.name}: {p.note}")
        for d in p.decisions:
            if not d.launches:  # a launch is told when it happens
                what = f"{p.name} (fire {format_instant(d.fire.at)}) {describe(d)}"
                self.log(f"{d.outcome.replace('_', ' ')}: {what}")
        for row in p.done_meanwhile:
            self.log(f"{p.name}: the queued fire for {row.date} has nothing left to do: "
                     "its run succeeded meanwhile")

    def _prune_now_and_then(self) -> None:
        """[retention] keep: `overnight prune` once a day, in a process of its own (prune.py).
        By the real clock: it is about files on this disk, whatever instant a pass is for."""
        if self.config.retention is None or (self.pruning is not None and self.pruning.poll() is None):
            return
        from overnight.prune import start_daily_prune

        try:
            started = start_daily_prune(self.config, time.time(), self.command)
        except OSError as e:
            self.log(f"could not start the daily prune: {e}")
            return
        if started is not None:
            self.pruning = started
            self.log(f"pruning what is older than [retention] keep (pid {started.pid}): "
                     f"{self.config.state.prune_log}")

    def reap(self) -> None:
        """Collect launched children that have ended, so none stays a zombie. One that
        could not start and could not record it (its overnight.toml no longer parses) is
        recorded and reported here, with the configuration this daemon holds."""
        for pid, child in list(self.children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[pid]
            self.log(f"{child.batch} (pid {pid}) ended with exit code {code}")
            if code == 2:
                self._not_started(pid, child)

    def _not_started(self, pid: int, child: Child) -> None:
        from overnight.notstarted import record_and_report

        try:
            if self.ledger.launch_by_pid(child.batch, pid, child.started - 1) is not None:
                return  # it recorded (and reported) that it could not start
        except LedgerError:
            return
        error = last_error(child.log_path) or f"exit code 2 (its output: {child.log_path})"
        self.log(f"{child.batch} for {child.date} could not start: {error}")
        record_and_report(self.config, child.batch, date.fromisoformat(child.date), error,
                          trigger="scheduled", launched_by="scheduler", mail=None, pid=pid)

    # -- the daemon ------------------------------------------------------------------------

    def sleep_for(self, now: datetime) -> float:
        """Seconds until the next fire of any batch, at most TICK."""
        wait = TICK
        for schedule in self.schedules.values():
            try:
                fire = next_fire(schedule, now)
            except ScheduleError:
                continue  # never fires again
            wait = min(wait, fire.at.timestamp() - now.timestamp())
        if self.waiting:
            wait = min(wait, QUEUE_POLL)
        deadline = next_deadline(self.config, self.schedules, now)
        if deadline is not None:
            wait = min(wait, deadline - now.timestamp())
        return max(wait, 0.0) + 0.01  # wake just after the instant, not a hair before it

    def reload(self) -> None:
        """SIGHUP: read the configuration again; keep the old one if the new one is bad."""
        try:
            config, scheduled = self._load()
            if config.state.ledger != self.config.state.ledger:
                ledger = Ledger.open(config.state.ledger)
                self.ledger.close()
                self.ledger = ledger
                self.cursors = ledger.schedule_cursors()
        except OvernightError as e:
            self.log(f"configuration not reloaded, keeping the old one: {e}")
            return
        self.config, self.schedules = config, scheduled
        self.log(f"configuration reloaded: {_describe(scheduled)}")

    def run(self) -> int:
        """Loop until SIGTERM or SIGINT; SIGHUP reloads. Returns the exit code."""
        loop = EventLoop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            loop.add_signal_handler(signum, self._signals.append)  # SIGCHLD: reap at once
        self.log(f"started (pid {os.getpid()}): {_describe(self.schedules)}")
        try:
            while True:
                stop = False
                while self._signals:
                    n = self._signals.pop(0)
                    if n == signal.SIGHUP:
                        self.reload()
                    elif n in (signal.SIGTERM, signal.SIGINT):
                        stop = True
                if stop:
                    break
                try:
                    self.loop_once(self.clock())
                except LedgerError as e:
                    # A full disk or a ledger locked too long: say so, and try again soon.
                    # The cursors move only with their records: the fires are planned again.
                    self.log(f"could not record in the ledger, carrying on: {e}")
                if self._signals:
                    continue
                loop.run_once(max_wait=self.sleep_for(self.clock()))
        finally:
            loop.close()
        self.reap()
        running = ", ".join(f"{c.batch} (pid {p})" for p, c in self.children.items())
        self.log("stopped" + (f"; still running on their own: {running}" if running else ""))
        return 0

    def close(self) -> None:
        self.ledger.close()


def _describe(scheduled: dict[str, Schedule]) -> str:
    if not scheduled:
        return "no batch has a schedule"
    return "watching " + ", ".join(f"{n} ({s.expr}, {s.zone.key})" for n, s in scheduled.items())


def hold_scheduler_lock(state: StateFolder) -> int:
    """One scheduler per state directory: two would launch every fire twice."""
    path = state.scheduler_lock
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise LedgerError(f"{path}: cannot create the scheduler's lock file ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise AlreadyRunning(f"a scheduler already runs for {state.root}: {other}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S %z')}".encode(), 0)
    return fd


def last_error(log_path: Path) -> str | None:
    """The last `overnight: ...` line a child printed: why it could not start."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    said = [line[len("overnight: "):] for line in lines if line.startswith("overnight: ")]
    return said[-1].strip()[:1000] if said else None
