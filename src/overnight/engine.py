"""The runner: which step may start, when, and what its end means for the others.

The engine decides; the ledger remembers; executors do the work. Every step starts the
moment its last prerequisite's success is committed: a finished step's record and the
start records of the steps it releases share one transaction (one fsync), and the new
processes are started right after that commit. No polling, no re-reading of the ledger,
no work proportional to the size of the batch per step.
"""

from __future__ import annotations

import heapq
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from overnight.batch import Step, dependents_of
from overnight.executor import Executor, Job, Outcome, RemoteExecutor
from overnight.ledger import Ledger
from overnight.loop import EventLoop, Timer
from overnight.planner import (
    ATTEMPT_DIED_WITH_RUNNER,
    Action,
    LaunchPlan,
    PlanOptions,
    RunningAttempt,
    Snapshot,
    blocked_behind,
    check_when,
    judge_launch,
    plan_launch,
    retries_left,
)
from overnight.process import TOKEN_VARIABLE, LocalExecutor, Sentinel
from overnight.progress import Progress
from overnight.snapshot import read_snapshot
from overnight.statefolder import RunLogs
from overnight.states import RunState, StepState


@dataclass
class RunOptions:
    date: date
    workers: int = 1
    rerun: list[str] = field(default_factory=list)
    downstream: bool = False
    fresh: bool = False
    fail_fast: bool = False
    trigger: str = "manual"
    launched_by: str = "unknown"


@dataclass
class LaunchResult:
    run_id: int
    launch_id: int
    state: RunState
    exit_code: int
    counts: dict[str, int]
    held: list[str]
    elapsed: float


class Runner:
    def __init__(
        self,
        batch_name: str,
        order: list[Step],
        ledger: Ledger,
        *,
        options: RunOptions,
        workdir: Path,
        logs: RunLogs,
        progress: Progress,
        executors: dict[str, Callable[[EventLoop], RemoteExecutor]] | None = None,
    ) -> None:
        self.batch = batch_name
        self.order = order
        self.steps = {s.name: s for s in order}
        self.ledger = ledger
        self.options = options
        self.workdir = workdir
        self.logs = logs
        self.progress = progress
        self.remote_factories = executors or {}
        self.dependents = dependents_of(order)

        self.loop = EventLoop()
        self.state: dict[str, StepState] = {}
        self.waiting: dict[str, int] = {}       # unfinished prerequisites, per runnable step
        self.runnable: frozenset[str] = frozenset()  # the steps this launch means to finish
        self.ready: list[tuple[int, str]] = []  # heap by the planner's rank
        self.rank: dict[str, int] = {}
        self.running: dict[str, Job] = {}
        self.finished: list[tuple[Job, Outcome]] = []  # ended this turn, not yet recorded
        self.prepared: dict[str, str] = {}      # log files made ahead: step -> path
        self.timeouts: dict[str, Timer] = {}
        self.retry_timers: dict[str, Timer] = {}
        self.tries: dict[str, int] = {}         # attempts made in this launch
        self.numbers: dict[str, int] = {}       # attempts made in the run, all launches
        self.held: list[str] = []
        self.reattaching: dict[str, RunningAttempt] = {}  # remote attempts a dead launch left running
        self.notices: list[tuple[str, str]] = []  # (blocked step, cause), told after commit
        self.halted = False                     # --fail-fast tripped: start nothing new
        self.cancelling = 0                     # signals received
        self.run_id = 0
        self.launch_id = 0

    # -- the launch ----------------------------------------------------------------------

    def run(self) -> LaunchResult:
        started = time.monotonic()
        # From here on a signal is a clean cancel: it is noted, the launch is recorded and
        # ends cancelled; installed before _prepare so that no moment is left uncovered.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self.loop.add_signal_handler(sig, self._on_signal)
        try:
            self._prepare()
        except BaseException:
            self.loop.close()
            raise
        sentinel = Sentinel()
        self.base_env = dict(os.environ)
        self.base_env.update(
            OVERNIGHT_BATCH=self.batch,
            OVERNIGHT_DATE=self.options.date.isoformat(),
            OVERNIGHT_RUN_ID=str(self.run_id),
            OVERNIGHT_LAUNCH_ID=str(self.launch_id),
        )
        self.base_env[TOKEN_VARIABLE] = sentinel.token
        self.local = LocalExecutor(self.loop, sentinel, self.steps)
        self.remote: dict[str, RemoteExecutor] = {}
        if self.progress.tick_interval:
            self._tick()
        clean = False
        try:
            self._reattach()
            with self.ledger.transaction():
                jobs = self._claim_ready()
            self._tell_blocked()
            self._start(jobs)
            while (self.running or self.finished or self.ready and self._may_start()
                   or self.loop.has_timers()):
                self.loop.run_once()
                if self.cancelling:
                    self._cancel()
            clean = True
        finally:
            if not clean:
                # A ledger failure (disk full, ...): leave nothing running, record nothing
                # we cannot be sure of; the next launch finds this one dead and resumes.
                for job in list(self.running.values()):
                    self._executor_for(job.step).stop(job, "cancel", force=True)
            self.local.close()
            self._drop_prepared_logs()
            for executor in self.remote.values():
                executor.close()
            if clean:
                sentinel.close()
            self.loop.close()
        return self._finish(time.monotonic() - started)

    def _tick(self) -> None:
        self.progress.tick()
        self.loop.call_later(self.progress.tick_interval or 1.0, self._tick, daemon=True)

    def _prepare(self) -> None:
        """Find dead launches, create this launch, then: snapshot, plan, apply."""
        opts = self.options
        with self.ledger.transaction():
            dead = self.ledger.reap_dead_launches(self.batch)
            run = self.ledger.ensure_run(self.batch, opts.date.isoformat())
            self.run_id = run.id
            self.launch_id = self.ledger.start_launch(
                run.id,
                self.batch,
                trigger=opts.trigger,
                launched_by=opts.launched_by,
                options=_options_record(opts),
            )
            states = self.ledger.sync_steps(run.id, self.order)
            snapshot = read_snapshot(self.ledger, run.id, states=states, dead_launches=[c.id for c in dead])
            numbers = self.ledger.launch_numbers(run.id)
            crashed = [self._night_of(launch.run_id, launch.id, numbers) for launch in dead]
            plan = plan_launch(self.order, snapshot, PlanOptions(
                rerun=opts.rerun, downstream=opts.downstream, fresh=opts.fresh,
                remote="celery" in self.remote_factories,
            ), self.dependents)
            self._apply(plan, snapshot)
        self.progress.launch_started(
            batch=self.batch,
            date=opts.date,
            launch_id=self.launch_id,
            total=len(self.order),
            to_run=plan.to_run,
            crashed=crashed,
            numbers=numbers,
        )
        for skipped in plan.having(Action.SKIP):
            self.progress.step_done_before(skipped.name, skipped.state, skipped.set_by)
        for name in self.held:
            self.progress.step_held(name, self.batch, opts.date)
        self._tell_blocked()

    def _night_of(self, run_id: int, launch_id: int, numbers: dict[int, int]) -> tuple[str, int]:
        """(date, number within that night) of a launch of this batch, as a person is told it."""
        if run_id != self.run_id:
            run = self.ledger.get_run(run_id)
            numbers = self.ledger.launch_numbers(run_id)
            return (run.date if run else "?", numbers.get(launch_id, 0))
        return (self.options.date.isoformat(), numbers.get(launch_id, 0))

    def _apply(self, plan: LaunchPlan, snapshot: Snapshot) -> None:
        """Record the plan's changes and take its decisions as the launch's own. In a transaction."""
        for attempt in plan.closed:
            self.ledger.finish_attempt(
                attempt.attempt_id, StepState.INTERRUPTED, time.time(), None, ATTEMPT_DIED_WITH_RUNNER
            )
        for change in plan.changes:
            self._set(change.step, change.old, change.new, change.message)
        self.state = {name: p.state for name, p in plan.steps.items()}
        self.runnable = plan.runnable
        self.waiting = plan.waiting  # the launch's own from here on: counted down as steps end
        self.rank = plan.rank
        self.ready = [(plan.rank[name], name) for name in plan.ready]  # sorted: a heap already
        self.held = plan.held
        self.reattaching = plan.reattach
        self.numbers = dict(snapshot.attempts)
        self.notices.extend(plan.blocked)

    def _reattach(self) -> None:
        for name, attempt in self.reattaching.items():
            step = self.steps[name]
            job = Job(
                step=step, run_id=self.run_id, launch_id=attempt.launch_id, number=attempt.number,
                date=self.options.date, log_path=attempt.log_path or self.logs.fallback(name),
                env={}, cwd=str(self.workdir), started_at=attempt.started_at, attempt_id=attempt.attempt_id,
                remote_id=attempt.remote_id, done=self._on_done,
            )
            self.tries[name] = 1
            self.running[name] = job
            self.progress.step_reattached(job)
            self._remote_executor().reattach(job)
            if step.timeout is not None:
                left = step.timeout - (time.time() - attempt.started_at)
                self.timeouts[name] = self.loop.call_later(left, lambda job=job: self._timed_out(job))

    # -- starting steps ------------------------------------------------------------------

    def _may_start(self) -> bool:
        return not self.halted and not self.cancelling

    def _claim_ready(self) -> list[Job]:
        """Record the start of every step that can start now. Inside a transaction."""
        jobs: list[Job] = []
        if not self._may_start():
            return jobs
        while self.ready and len(self.running) + len(jobs) < self.options.workers:
            _, name = heapq.heappop(self.ready)
            step = self.steps[name]
            gate = check_when(step, self.options.date) if name not in self.tries else None
            if gate is not None:
                self._set(name, StepState.PENDING, gate.state, gate.note)
                if gate.state is StepState.SKIPPED:
                    self.progress.step_skipped(name, gate.says)
                    self._release(name)
                else:
                    self.progress.step_failed_to_start(name, gate.says)
                    self._block_dependents(name)
                continue
            jobs.append(self._record_start(step))
        return jobs

    def _record_start(self, step: Step) -> Job:
        number = self.numbers.get(step.name, 0) + 1
        self.numbers[step.name] = number
        self.tries[step.name] = self.tries.get(step.name, 0) + 1
        env = dict(self.base_env)
        if step.env:
            env.update(step.env)
        env["OVERNIGHT_STEP"] = step.name
        env["OVERNIGHT_ATTEMPT"] = str(number)
        self.prepared.pop(step.name, None)
        job = Job(
            step=step,
            run_id=self.run_id,
            launch_id=self.launch_id,
            number=number,
            date=self.options.date,
            log_path=self._log_path(step.name, number),
            env=env,
            cwd=str(self.workdir / step.cwd) if step.cwd else str(self.workdir),
            done=self._on_done,
        )
        if step.queue is not None:
            self._remote_executor().prepare(job)  # its task is named before it exists
        job.started_at = time.time()
        job.attempt_id = self.ledger.start_attempt(
            self.run_id, step.name, number, self.launch_id, job.log_path, job.started_at,
            remote_id=job.remote_id,
        )
        self._set(step.name, StepState.PENDING, StepState.RUNNING, None)
        return job

    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            name = job.step.name
            self.running[name] = job
            self.progress.step_started(job)
            self._executor_for(job.step).start(job)
            if job.step.timeout is not None:
                self.timeouts[name] = self.loop.call_later(
                    job.step.timeout, lambda job=job: self._timed_out(job)
                )
        for job in jobs:
            self._prepare_logs(job.step.name)

    def _log_path(self, name: str, number: int) -> str:
        return self.logs.attempt(name, number)

    def _prepare_logs(self, name: str) -> None:
        """Create the log files of the steps that `name` alone still holds back.

        Creating a file costs about 0.35 ms on ext4 here; done now, while `name` runs,
        that time is off the path from its end to its dependents' start (they open the
        file that is already there). Files left unused are removed at the end.
        """
        for dep in self.dependents[name]:
            if (
                self.waiting.get(dep) == 1 and dep not in self.prepared
                and self.state.get(dep) is StepState.PENDING and self.steps[dep].queue is None
            ):
                path = self._log_path(dep, self.numbers.get(dep, 0) + 1)
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
                except OSError:
                    continue  # the executor reports it when the step starts
                self.prepared[dep] = path

    def _drop_prepared_logs(self) -> None:
        for path in self.prepared.values():
            try:
                if os.path.getsize(path) == 0:
                    os.unlink(path)
            except OSError:
                pass
        self.prepared.clear()

    def _executor_for(self, step: Step) -> Executor:
        return self.local if step.queue is None else self._remote_executor()

    def _remote_executor(self) -> RemoteExecutor:
        kind = "celery"
        if kind not in self.remote:
            self.remote[kind] = self.remote_factories[kind](self.loop)
        return self.remote[kind]

    # -- steps ending --------------------------------------------------------------------

    def _on_done(self, job: Job, outcome: Outcome) -> None:
        name = job.step.name
        self.running.pop(name, None)
        timer = self.timeouts.pop(name, None)
        if timer:
            timer.cancel()
        # Recorded once this turn's events are handled: steps that end together (a wave
        # of a fan-out) share one commit, one fsync, instead of one each.
        self.finished.append((job, outcome))
        if len(self.finished) == 1:
            self.loop.call_soon(self._settle)

    def _settle(self) -> None:
        """Record the steps that ended, and start what they release: one transaction."""
        finished, self.finished = self.finished, []
        retries: list[bool] = []
        with self.ledger.transaction():
            for job, outcome in finished:
                retries.append(self._record_end(job, outcome))
            jobs = self._claim_ready()
        for (job, outcome), retry in zip(finished, retries, strict=True):
            step = job.step
            self.progress.step_finished(job, outcome, retry_in=step.retry_delay if retry else None)
            if retry:
                self.retry_timers[step.name] = self.loop.call_later(
                    step.retry_delay, lambda name=step.name: self._retry(name)
                )
        self._tell_blocked()
        self._start(jobs)

    def _record_end(self, job: Job, outcome: Outcome) -> bool:
        """The ledger side of a step's end. Inside a transaction; True if it will retry."""
        name, step = job.step.name, job.step
        may_retry = retries_left(step, outcome.state, self.tries.get(name, 0))
        retry = may_retry and not self.cancelling
        self.ledger.finish_attempt(
            job.attempt_id, outcome.state, outcome.ended_at, outcome.exit_code,
            outcome.message, outcome.started_at,
        )
        if outcome.host is not None:
            self.ledger.update_attempt_remote(job.attempt_id, job.remote_id, outcome.host)
        if outcome.state is StepState.SUCCEEDED:
            self._set(name, StepState.RUNNING, StepState.SUCCEEDED, None)
            self._release(name)
        elif retry:
            note = f"attempt {job.number} {outcome.state}: retrying in {step.retry_delay:g}s"
            self._set(name, StepState.RUNNING, StepState.PENDING, note)
        elif may_retry:
            # Cancelled before its retry: the step has not failed for good (it has
            # retries left), so it waits for the resume, as in its retry delay.
            note = f"attempt {job.number} {outcome.state}: cancelled before its retry"
            self._set(name, StepState.RUNNING, StepState.PENDING, note)
        else:
            self._set(name, StepState.RUNNING, outcome.state, outcome.message)
            if outcome.state is not StepState.CANCELLED:
                # A cancelled night is interrupted, not failed: what follows stays pending.
                self._block_dependents(name)
                if self.options.fail_fast:
                    self.halted = True
        return retry

    def _tell_blocked(self) -> None:
        for blocked, cause in self.notices:
            self.progress.step_blocked(blocked, cause)
        self.notices.clear()

    def _retry(self, name: str) -> None:
        self.retry_timers.pop(name, None)
        if not self._may_start():
            return
        heapq.heappush(self.ready, (self.rank[name], name))
        with self.ledger.transaction():
            jobs = self._claim_ready()
        self._tell_blocked()
        self._start(jobs)

    def _release(self, name: str) -> None:
        """`name` is done: its dependents have one prerequisite fewer to wait for."""
        for dep in self.dependents[name]:
            if dep in self.waiting:
                self.waiting[dep] -= 1
                if self.waiting[dep] == 0 and self.state[dep] is StepState.PENDING:
                    heapq.heappush(self.ready, (self.rank[dep], dep))

    def _block_dependents(self, name: str) -> None:
        def blockable(dep: str) -> bool:
            return dep in self.runnable and self.state[dep] is StepState.PENDING

        for dep in blocked_behind(name, self.dependents, blockable):
            self._set(dep, StepState.PENDING, StepState.BLOCKED, f"blocked by {name}")
            self.notices.append((dep, name))

    def _set(self, name: str, old: StepState, new: StepState, message: str | None) -> None:
        self.ledger.set_step_state(self.run_id, name, old, new, self.launch_id, message)
        self.state[name] = new

    # -- timeouts and cancellation -----------------------------------------------------

    def _timed_out(self, job: Job) -> None:
        self.timeouts.pop(job.step.name, None)
        if self.running.get(job.step.name) is job:
            self.progress.step_stopping(job, "timeout")
            self._executor_for(job.step).stop(job, "timeout")

    def _on_signal(self, signum: int) -> None:
        self.cancelling += 1
        self.signal_name = signal.Signals(signum).name

    def _cancel(self) -> None:
        force = self.cancelling > 1
        if not getattr(self, "_cancel_announced", False) or force:
            self._cancel_announced = True
            self.progress.cancelling(self.signal_name, len(self.running), force)
            for timer in self.retry_timers.values():
                timer.cancel()
            self.retry_timers.clear()
            for job in list(self.running.values()):
                self._executor_for(job.step).stop(job, "cancel", force=force)

    # -- the end -------------------------------------------------------------------------

    def _finish(self, elapsed: float) -> LaunchResult:
        counts: dict[str, int] = {}
        for state in self.state.values():
            counts[state.value] = counts.get(state.value, 0) + 1
        verdict = judge_launch(self.state, self.runnable, cancelled=bool(self.cancelling))
        message = None
        if self.held:
            message = "not idempotent and interrupted: " + ", ".join(self.held)
        with self.ledger.transaction():
            self.ledger.end_launch(self.launch_id, self.run_id, verdict.launch, message)
            if verdict.launch is not verdict.run:
                self.ledger.set_run_state(self.run_id, verdict.run)
        result = LaunchResult(
            run_id=self.run_id,
            launch_id=self.launch_id,
            state=verdict.run,
            exit_code=verdict.exit_code,
            counts=counts,
            held=self.held,
            elapsed=elapsed,
        )
        self.progress.launch_finished(result)
        return result


def _options_record(opts: RunOptions) -> dict[str, object]:
    record: dict[str, object] = {"workers": opts.workers}
    if opts.rerun:
        record["rerun"] = opts.rerun
        record["downstream"] = opts.downstream
    if opts.fresh:
        record["fresh"] = True
    if opts.fail_fast:
        record["fail_fast"] = True
    return record
