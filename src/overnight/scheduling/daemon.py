"""The scheduler daemon: launches each batch at its schedule, in its own process.

The decisions are a pure function (`plan_fires`) of the fires due since the batch's
cursor, the instant, the catch-up policy and whether the batch is live; `Scheduler`
applies them: it launches `overnight run BATCH --date D` in a new session (so stopping or
killing the daemon never touches a running night), and records every fire, miss and skip
in the ledger together with the new cursor, in one transaction.

The cursor (per batch, in the ledger) is the instant up to which every fire has been dealt
with. After downtime, the fires between it and now are the ones missed. The first time the
daemon sees a batch, it starts watching from that moment: nothing before it counts as
missed.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from overnight.commandline import CommandLine
from overnight.config import Config, load_config
from overnight.errors import AlreadyRunning, LedgerError, OvernightError
from overnight.ledger import Ledger
from overnight.lock import holder
from overnight.loop import EventLoop
from overnight.scheduling.cron import Fire, Schedule, ScheduleError, fires_between, next_fire
from overnight.scheduling.schedules import format_instant, schedules
from overnight.statefolder import StateFolder

# Fire outcomes, as recorded in the ledger's `fires` table.
LAUNCHED = "launched"                # started on time
CAUGHT_UP = "caught_up"              # started late: missed while the daemon was down or asleep
MISSED = "missed"                    # never started: catch-up policy, window, or superseded
SKIPPED_RUNNING = "skipped_running"  # not started: the batch's previous launch was still live
FAILED_TO_LAUNCH = "failed_to_launch"

# A fire handled within this long of its time is on time; later, it was missed (the daemon
# was down, the machine asleep, or the clock stepped forward) and the catch-up policy decides.
LATE_GRACE = 300.0
# The longest sleep: a wall clock that jumps (suspend, an NTP step) is noticed this soon.
TICK = 60.0
# How often to look again while caught-up fires wait for the batch's live launch to end.
QUEUE_POLL = 5.0


@dataclass(frozen=True)
class Decision:
    fire: Fire
    outcome: str
    message: str | None = None

    @property
    def launches(self) -> bool:
        return self.outcome in (LAUNCHED, CAUGHT_UP)


@dataclass(frozen=True)
class Plan:
    decisions: list[Decision]
    handled_until: float | None  # the batch's new cursor (a Unix time); None: unchanged
    waiting: bool = False        # fires wait for the batch's live launch to end (catchup = all)


def plan_fires(
    due: Sequence[Fire], now: datetime, *, catchup: str, window: float, live: str | None
) -> Plan:
    """What to do with the fires due since the cursor (oldest first), at instant `now`.

    `live` describes the batch's live launch, or is None when the batch is not running.
    At most one fire is started per batch: two launches of one batch cannot run at once.
    """
    if not due:
        return Plan([], now.timestamp())
    if catchup == "all":
        return _plan_all(due, now, live)
    now_ts = now.timestamp()
    last = due[-1]

    def why_not(fire: Fire) -> str:
        age = now_ts - fire.at.timestamp()
        if age <= LATE_GRACE:
            return f"superseded by the fire at {format_instant(last.at)}"
        if catchup == "none":
            return "the scheduler was not running then, and catchup = none"
        if age > window:
            return f"the scheduler was not running then; older than catchup_window ({_hours(window)})"
        return f"superseded by the fire at {format_instant(last.at)}"

    decisions = [Decision(f, MISSED, why_not(f)) for f in due[:-1]]
    age = now_ts - last.at.timestamp()
    if age <= LATE_GRACE or (catchup == "latest" and age <= window):
        decisions.append(_start(last, now_ts, live))
    else:
        decisions.append(Decision(last, MISSED, why_not(last)))
    return Plan(decisions, now_ts)


def _plan_all(due: Sequence[Fire], now: datetime, live: str | None) -> Plan:
    """Every missed date, oldest first, one launch at a time; the cursor stays before the
    first fire still waiting, so a restarted daemon carries on with the same queue."""
    now_ts = now.timestamp()
    last_of_date = {f.date: i for i, f in enumerate(due)}
    decisions: list[Decision] = []
    handled: float | None = None
    for i, fire in enumerate(due):
        if last_of_date[fire.date] != i:
            later = due[last_of_date[fire.date]]
            decisions.append(Decision(
                fire, MISSED, f"{fire.date} runs once, with the fire at {format_instant(later.at)}"
            ))
            handled = fire.at.timestamp()
            continue
        final = i == len(due) - 1
        if live is not None and not (final and now_ts - fire.at.timestamp() <= LATE_GRACE):
            return Plan(decisions, handled, waiting=True)  # a queue: wait for the live launch
        decisions.append(_start(fire, now_ts, live))
        if final:
            return Plan(decisions, now_ts)
        return Plan(decisions, fire.at.timestamp(), waiting=True)
    return Plan(decisions, now_ts)


def _start(fire: Fire, now_ts: float, live: str | None) -> Decision:
    if live is not None:
        return Decision(fire, SKIPPED_RUNNING, f"still running: {live}")
    late = now_ts - fire.at.timestamp() > LATE_GRACE
    return Decision(fire, CAUGHT_UP if late else LAUNCHED)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m"


def log_line(message: str, stream: TextIO | None = None) -> None:
    """One line on stderr (the journal under systemd), with the local time."""
    stream = stream or sys.stderr
    stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S %z')} overnight scheduler: {message}\n")
    stream.flush()


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
        self.children: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
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

    # -- one pass: pure decisions, then launches and records ------------------------------

    def loop_once(self, now: datetime) -> list[Decision]:
        """Handle every fire due at `now` (aware); return what was decided."""
        self.reap()
        self._prune_now_and_then()
        now_ts = now.timestamp()
        done: list[tuple[str, Decision, int | None, str | None]] = []
        self.waiting.clear()
        for name, schedule in self.schedules.items():
            cursor = self.cursors.get(name)
            if cursor is None or cursor >= now_ts:
                # New batch: watch from now. A cursor ahead of now: the clock went back;
                # fires up to the cursor were handled already, and never fire twice.
                self.cursors[name] = max(cursor or now_ts, now_ts)
                continue
            due = fires_between(schedule, datetime.fromtimestamp(cursor, UTC), now)
            bc = self.config.batches[name]
            plan = plan_fires(
                due, now, catchup=bc.catchup, window=bc.catchup_window,
                live=self._live(name) if due else None,
            )
            for decision in plan.decisions:
                pid, message = None, decision.message
                if decision.launches:
                    try:
                        pid, log_path = self._launch(name, decision.fire)
                        message = f"log: {log_path}"
                    except OSError as e:
                        decision = Decision(decision.fire, FAILED_TO_LAUNCH, f"cannot start: {e}")
                        message = decision.message
                # The date first: `overnight history` shows the fire's time and this message.
                done.append((name, decision, pid, f"for {decision.fire.date}: {message}"))
            if plan.handled_until is not None:
                self.cursors[name] = plan.handled_until
            if plan.waiting:
                self.waiting.add(name)
        for name, decision, pid, message in done:
            self._tell(name, decision, pid, message)  # first: the log keeps it if the ledger fails
        with self.ledger.transaction():
            for name, decision, pid, message in done:
                fire = decision.fire
                self.ledger.record_fire(
                    name, fire.at.isoformat(), fire.date.isoformat(), decision.outcome, pid, message
                )
            for name in self.schedules:
                self.ledger.save_schedule_cursor(name, self.cursors[name])
        return [d for _, d, _, _ in done]

    def _live(self, name: str) -> str | None:
        """Who runs the batch now, or None. A child just launched counts before it has
        taken the batch's lock."""
        for pid, (batch, proc) in self.children.items():
            if batch == name and proc.poll() is None:
                return f"pid {pid}, launched by this scheduler"
        info = holder(self.config.state_dir, name)
        if info is None:
            return None
        return (
            f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} "
            f"(for {info.get('date')})"
        )

    def _launch(self, name: str, fire: Fire) -> tuple[int, str]:
        config = self.config
        assert config.path is not None
        stamp = fire.at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        log_path = config.state.scheduler_log(name, fire.date.isoformat(), stamp)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = CommandLine.of(config).argv("run", name, "--date", fire.date.isoformat(), program=self.command)
        env = dict(os.environ, OVERNIGHT_TRIGGER="scheduled", OVERNIGHT_LAUNCHED_BY="scheduler")
        env.pop("OVERNIGHT_CLOCK_SKEW", None)
        with open(log_path, "ab") as out:
            out.write(
                f"# fire {format_instant(fire.at)} for {fire.date}: {json.dumps(argv)}\n".encode()
            )
            out.flush()
            proc = subprocess.Popen(
                argv, cwd=config.base_dir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.children[proc.pid] = (name, proc)
        return proc.pid, log_path

    def _tell(self, name: str, decision: Decision, pid: int | None, message: str | None) -> None:
        what = f"{name} (fire {format_instant(decision.fire.at)}) {message}"
        if decision.launches:
            verb = "launched" if decision.outcome == LAUNCHED else "caught up: launched"
            self.log(f"{verb} {what}, pid {pid}")
        else:
            self.log(f"{decision.outcome.replace('_', ' ')}: {what}")

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
        """Collect launched children that have ended, so none stays a zombie."""
        for pid, (name, proc) in list(self.children.items()):
            code = proc.poll()
            if code is not None:
                del self.children[pid]
                self.log(f"{name} (pid {pid}) ended with exit code {code}")

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
                    # The cursors in memory have moved on, so no fire is launched twice.
                    self.log(f"could not record in the ledger, carrying on: {e}")
                if self._signals:
                    continue
                loop.run_once(max_wait=self.sleep_for(self.clock()))
        finally:
            loop.close()
        self.reap()
        running = ", ".join(f"{n} (pid {p})" for p, (n, _) in self.children.items())
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
