"""The runner: which step may start, when, and what its end means for the others.

The engine decides; the ledger remembers; executors do the work. Every step starts the
moment its last prerequisite's success is committed: a finished step's record and the
start records of the steps it releases share one transaction (one fsync), and the new
processes are started right after that commit. No polling, no re-reading of the ledger,
no work proportional to the size of the batch per step.
"""

from __future__ import annotations

import heapq
import signal
import time
from collections.abc import Callable
from pathlib import Path

from overnight.adoption import ask_adopt
from overnight.batch import Step, dependents_of
from overnight.batchafter import AfterBatches, wait_for_batches
from overnight.executor import Executor, Job, Outcome, RemoteExecutor
from overnight.guard import Guard
from overnight.launch import LaunchResult, RunOptions, options_record
from overnight.ledger import Ledger
from overnight.lock import BatchLock
from overnight.logsahead import LogsAhead
from overnight.loop import EventLoop, Timer
from overnight.nightwatch import NightWatch
from overnight.planner import (
    ATTEMPT_DIED_WITH_RUNNER,
    Action,
    LaunchPlan,
    PlanOptions,
    RunningAttempt,
    Snapshot,
    check_run_if,
    check_when,
    judge_launch,
    plan_launch,
    retries_left,
    unsuccessful_end,
)
from overnight.process import LocalExecutor
from overnight.progress import Progress
from overnight.resources import RECHECK, ResourcePool, holders, waiting_note
from overnight.snapshot import read_history, read_snapshot
from overnight.statefolder import RunLogs
from overnight.states import StepState
from overnight.waitexecutor import WaitExecutor


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
        pool: ResourcePool | None = None,
        after: AfterBatches | None = None,
        watch: NightWatch | None = None,
        lock: BatchLock | None = None,
    ) -> None:
        self.batch = batch_name
        self.lock = lock
        self.order = order
        self.steps = {s.name: s for s in order}
        self.ledger = ledger
        self.options = options
        self.workdir = workdir
        self.logs = logs
        self.progress = progress
        self.remote_factories = executors or {}
        self.pool = pool
        self.after = after
        self.blocked_by: str | None = None      # why the launch ended blocked before its steps
        self.dependents = dependents_of(order)
        self.watch = watch or NightWatch()  # the predicted finish, deadline and alerts

        self.loop = EventLoop()
        self.state: dict[str, StepState] = {}
        self.waiting: dict[str, int] = {}       # unfinished prerequisites, per runnable step
        self.runnable: frozenset[str] = frozenset()  # the steps this launch means to finish
        self.ready: list[tuple[int, str]] = []  # heap by the planner's rank
        self.ready_waits: list[str] = []        # wait steps ready: they hold no worker
        self.unhappy: set[str] = set()          # a prerequisite of these did not succeed
        self.gated: set[str] = set()            # when= and run_if said yes (asked once)
        self.adoptable: frozenset[str] = frozenset()  # steps whose adopt_if is asked (adoption.py)
        self.parked: set[str] = set()           # ready, but a pool they need is full
        self.waiting_for: dict[str, str] = {}   # step -> the pool the ledger says it waits for
        self.recheck: Timer | None = None       # the next try of the parked steps
        self.rank: dict[str, int] = {}
        self.running: dict[str, Job] = {}
        self.finished: list[tuple[Job, Outcome]] = []  # ended this turn, not yet recorded
        self.ahead = LogsAhead(logs)            # log files made while the step before runs
        self.timeouts: dict[str, Timer] = {}
        self.retry_timers: dict[str, Timer] = {}
        self.tries: dict[str, int] = {}         # attempts made in this launch
        self.numbers: dict[str, int] = {}       # attempts made in the run, all launches
        self.held: list[str] = []
        self.reattaching: dict[str, RunningAttempt] = {}  # remote attempts a dead launch left running
        self.notices: list[tuple[str, str]] = []  # (blocked step, cause), told after commit
        self.halted = False                     # --fail-fast tripped: only run_if steps start
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
        guard = None
        try:
            guard = self.guard = Guard.open(self.batch, self.ledger.path.parent, self.lock, self.progress)
            self._prepare()
            go = self._wait_for_batches()
        except BaseException:
            if guard is not None:
                guard.close()
            self.loop.close()
            raise
        if not go:
            guard.close()
            self.loop.close()
            return self._finish(time.monotonic() - started)
        guard.watch(self.loop, lambda why: self._on_signal(signal.SIGTERM, why))
        self.base_env = guard.environment(self.batch, self.options.date, self.run_id, self.launch_id)
        self.local = LocalExecutor(self.loop, guard.sentinel, self.steps, guard.net, self.options.workers)
        self.waits = WaitExecutor(self.loop, self.local)
        self.remote: dict[str, RemoteExecutor] = {}
        if self.progress.tick_interval:
            self._tick()
        clean = False
        try:
            self.watch.begin(self)
            self._reattach()
            with self.ledger.transaction():
                jobs = self._claim_ready()
                self.watch.boundary()
            self.watch.flush()
            self._tell_blocked()
            self._start(jobs)
            while (self.running or self.finished or self._may_start() and (self.ready or self.ready_waits)
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
            self.waits.close()
            if self.pool is not None:
                self.pool.close()
            self.local.close()
            self.ahead.drop_unused()
            for executor in self.remote.values():
                executor.close()
            if clean:
                guard.close()
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
                run.id, self.batch, trigger=opts.trigger, launched_by=opts.launched_by,
                options={**options_record(opts), "kill_net": self.guard.net.kind},
            )
            states = self.ledger.sync_steps(run.id, self.order)
            snapshot = read_snapshot(
                self.ledger, run.id, states=states, dead_launches=[c.id for c in dead],
                history=read_history(self.ledger, self.batch, run.date),
            )
            numbers = self.ledger.launch_numbers(run.id)
            crashed = [self.ledger.night_of(launch.id) for launch in dead]
            plan = plan_launch(self.order, snapshot, PlanOptions(
                rerun=opts.rerun, downstream=opts.downstream, fresh=opts.fresh,
                remote="celery" in self.remote_factories,
            ), self.dependents)
            self._apply(plan, snapshot)
        if self.pool is not None:
            self.pool.holder.update(batch=self.batch, date=opts.date.isoformat(), launch=self.launch_id)
        self.progress.launch_started(
            batch=self.batch, date=opts.date, launch_id=self.launch_id, total=len(self.order),
            to_run=plan.to_run, crashed=crashed, numbers=numbers,
        )
        for skipped in plan.having(Action.SKIP):
            self.progress.step_done_before(skipped.name, skipped.state, skipped.set_by)
        for name in self.held:
            self.progress.step_held(name, self.batch, opts.date)
        self._tell_blocked()

    def _wait_for_batches(self) -> bool:
        """Wait for the runs this batch comes after (batchafter.py); False if its steps are
        not to start: blocked (recorded so, with why), or cancelled while it waited."""
        if self.after is None or self.options.ignore_after:
            return True
        blocked = wait_for_batches(
            self.after, self.ledger, self.options.date.isoformat(), self.launch_id,
            sleep=lambda seconds: self.loop.run_once(max_wait=seconds),
            cancelled=lambda: bool(self.cancelling), said=self.progress.launch_waiting,
        )
        if blocked is None:
            return not self.cancelling
        self.blocked_by = blocked
        with self.ledger.transaction():
            for step in self.order:
                if step.name in self.runnable and self.state[step.name] is StepState.PENDING:
                    self._set(step.name, StepState.PENDING, StepState.BLOCKED, f"blocked: {blocked}")
        self.progress.launch_blocked(blocked)
        return False

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
        self.unhappy = plan.unhappy
        self.adoptable = plan.adoptable
        if any(self.steps[name].wait for name in plan.ready):
            self.ready_waits = [name for name in plan.ready if self.steps[name].wait]
            self.ready = [(plan.rank[name], name) for name in plan.ready if not self.steps[name].wait]
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
                remote_id=attempt.remote_id, done=self._on_done, ran_on=self._ran_on,
            )
            self.tries[name] = 1
            self.running[name] = job
            if step.resources and self.pool is not None:
                # It still uses what it asked for, on its worker: hold it again (a unit
                # taken meanwhile by another launch cannot be taken back).
                self.pool.take(name, step.resources)
            self.progress.step_reattached(job)
            self._remote_executor().reattach(job)
            self.watch.step_started(job)
            if step.timeout is not None:
                left = step.timeout - (time.time() - attempt.started_at)
                self.timeouts[name] = self.loop.call_later(left, lambda job=job: self._timed_out(job))

    # -- starting steps ------------------------------------------------------------------

    def _may_start(self) -> bool:
        return not self.cancelling

    def _claim_ready(self) -> list[Job]:
        """Record the start of every step that can start now. Inside a transaction.

        Wait steps start whatever the workers are doing (they hold none); the others in
        the planner's order while a worker is free. After --fail-fast tripped, only steps
        meant to run after a failure (run_if "always" or "failure") start."""
        waits: list[Job] = []
        jobs: list[Job] = []
        if not self._may_start():
            return jobs
        busy = len(self.running) - len(self.waits.waiting)
        while True:
            while self.ready_waits:  # (a step skipped or failed below may release a wait)
                self._claim(self.ready_waits.pop(0), waits)
            if not self.ready or busy + len(jobs) >= self.options.workers:
                return waits + jobs
            _, name = heapq.heappop(self.ready)
            self._claim(name, jobs)

    def _claim(self, name: str, jobs: list[Job]) -> None:
        step = self.steps[name]
        if self.halted and step.run_if == "success":
            return  # it stays pending: a resume runs it
        gate = None
        if name not in self.tries and name not in self.gated:  # its first turn in this launch
            gate = (check_run_if(step, name in self.unhappy) or check_when(step, self.options.date)
                    or ask_adopt(step, self.options.date, self.workdir, self.adoptable))
        if gate is None:
            self.gated.add(name)
            if step.resources and self.pool is not None:
                full = self.pool.take(name, step.resources)
                if full is not None:
                    self._park(name, full)
                    return
            self.waiting_for.pop(name, None)
            jobs.append(self._record_start(step))
            return
        self._set(name, StepState.PENDING, gate.state, gate.note)
        if gate.state.is_done:  # skipped, or adopted
            self.progress.step_skipped(name, gate.says, gate.word)
            self._release(name)
        else:
            self.progress.step_failed_to_start(name, gate.says)
            self._ended_unsuccessfully(name)

    def _record_start(self, step: Step) -> Job:
        number = self.numbers.get(step.name, 0) + 1
        self.numbers[step.name] = number
        self.tries[step.name] = self.tries.get(step.name, 0) + 1
        env = dict(self.base_env)
        if step.env:
            env.update(step.env)
        env["OVERNIGHT_STEP"] = step.name
        env["OVERNIGHT_ATTEMPT"] = str(number)
        self.ahead.taken(step.name)
        job = Job(
            step=step, run_id=self.run_id, launch_id=self.launch_id, number=number,
            date=self.options.date, log_path=self._log_path(step.name, number), env=env,
            cwd=str(self.workdir / step.cwd) if step.cwd else str(self.workdir),
            done=self._on_done, ran_on=self._ran_on,
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
            self.watch.step_started(job)
            if job.step.timeout is not None and job.step.wait is None:  # a wait keeps its own
                self.timeouts[name] = self.loop.call_later(
                    job.step.timeout, lambda job=job: self._timed_out(job)
                )
        for job in jobs:
            self._prepare_logs(job.step.name)

    def _log_path(self, name: str, number: int) -> str:
        return self.logs.attempt(name, number)

    def _prepare_logs(self, name: str) -> None:
        """Make the log files of the steps that `name` alone still holds back (logsahead.py)."""
        self.ahead.make(
            (dep, self.numbers.get(dep, 0) + 1) for dep in self.dependents[name]
            if self.waiting.get(dep) == 1 and self.state.get(dep) is StepState.PENDING
            and self.steps[dep].queue is None
        )

    def _executor_for(self, step: Step) -> Executor:
        if step.wait is not None:
            return self.waits
        return self.local if step.queue is None else self._remote_executor()

    def _remote_executor(self) -> RemoteExecutor:
        kind = "celery"
        if kind not in self.remote:
            self.remote[kind] = self.remote_factories[kind](self.loop)
        return self.remote[kind]

    # -- steps ending --------------------------------------------------------------------

    def _ran_on(self, job: Job, host: str) -> None:
        if self.running.get(job.step.name) is job:  # a worker took it: the ledger says where
            with self.ledger.transaction():
                self.ledger.update_attempt_remote(job.attempt_id, job.remote_id, host)

    def _on_done(self, job: Job, outcome: Outcome) -> None:
        name = job.step.name
        self.running.pop(name, None)
        if self.pool is not None and self.pool.give_back(name):
            self._unpark()
        timer = self.timeouts.pop(name, None)
        if timer:
            timer.cancel()
        self.watch.step_ended(job)
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
            self.watch.boundary()
        self.watch.flush()
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
        if outcome.state.is_done:  # succeeded; or skipped: a wait step whose time ran out
            self._set(name, StepState.RUNNING, outcome.state, outcome.message)
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
                self._ended_unsuccessfully(name)
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
        self._make_ready(name)
        with self.ledger.transaction():
            jobs = self._claim_ready()
            self.watch.boundary()
        self.watch.flush()
        self._tell_blocked()
        self._start(jobs)

    # -- resource pools -----------------------------------------------------------------

    def _park(self, name: str, pool: str) -> None:
        """A ready step whose pool is full waits beside the workers, holding none of them.
        Inside a transaction (the ledger says what it waits for, once)."""
        if self.waiting_for.get(name) != pool:
            self._set(name, StepState.PENDING, StepState.PENDING, waiting_note(pool))
            assert self.pool is not None
            self.progress.step_waiting(name, pool, holders(self.pool.folder, pool))
        self.waiting_for[name] = pool
        self.parked.add(name)
        if self.recheck is None:
            self.recheck = self.loop.call_later(RECHECK, self._recheck)

    def _unpark(self) -> None:
        """Units came free: the parked steps take their turn again, in the planner's order."""
        for name in self.parked:
            self._make_ready(name)
        self.parked.clear()

    def _recheck(self) -> None:
        self.recheck = None
        if not self.parked or not self._may_start():
            return
        self._unpark()
        with self.ledger.transaction():
            jobs = self._claim_ready()
        self._tell_blocked()
        self._start(jobs)

    def _make_ready(self, name: str) -> None:
        if self.steps[name].wait is not None:
            self.ready_waits.append(name)
        else:
            heapq.heappush(self.ready, (self.rank[name], name))

    def _release(self, name: str) -> None:
        """`name` is done: its dependents have one prerequisite fewer to wait for."""
        for dep in self.dependents[name]:
            if dep in self.waiting:
                self.waiting[dep] -= 1
                if self.waiting[dep] == 0 and self.state[dep] is StepState.PENDING:
                    self._make_ready(dep)

    def _ended_unsuccessfully(self, name: str) -> None:
        """`name` will not succeed in this launch: block what needs its success, release
        what runs after any end of it (planner.unsuccessful_end)."""
        def pending(dep: str) -> bool:
            return dep in self.runnable and self.state[dep] is StepState.PENDING

        blocked, ready = unsuccessful_end(
            name, self.steps, self.dependents, pending, self.waiting, self.unhappy,
        )
        for dep in blocked:
            self._set(dep, StepState.PENDING, StepState.BLOCKED, f"blocked by {name}")
            self.notices.append((dep, name))
        for dep in ready:
            self._make_ready(dep)

    def _set(self, name: str, old: StepState, new: StepState, message: str | None) -> None:
        self.ledger.set_step_state(self.run_id, name, old, new, self.launch_id, message)
        self.state[name] = new

    # -- timeouts and cancellation -----------------------------------------------------

    def _timed_out(self, job: Job) -> None:
        self.timeouts.pop(job.step.name, None)
        if self.running.get(job.step.name) is job:
            self.progress.step_stopping(job, "timeout")
            self._executor_for(job.step).stop(job, "timeout")

    def _on_signal(self, signum: int, why: str | None = None) -> None:
        self.cancelling += 1
        self.signal_name = why or signal.Signals(signum).name  # why: the sentinel could not be replaced

    def _cancel(self) -> None:
        force = self.cancelling > 1
        if not getattr(self, "_cancel_announced", False) or force:
            self._cancel_announced = True
            self.progress.cancelling(self.signal_name, len(self.running), force)
            for timer in self.retry_timers.values():
                timer.cancel()
            self.retry_timers.clear()
            if self.recheck is not None:
                self.recheck.cancel()
            for job in list(self.running.values()):
                self._executor_for(job.step).stop(job, "cancel", force=force)

    # -- the end -------------------------------------------------------------------------

    def _finish(self, elapsed: float) -> LaunchResult:
        counts: dict[str, int] = {}
        for state in self.state.values():
            counts[state.value] = counts.get(state.value, 0) + 1
        verdict = judge_launch(self.state, self.runnable, cancelled=bool(self.cancelling))
        message = f"blocked: {self.blocked_by}" if self.blocked_by else None
        if self.held:
            message = "not idempotent and ended uncleanly: " + ", ".join(self.held)
        with self.ledger.transaction():
            for name in self.waiting_for:  # no longer waiting for anything: the launch is over
                if self.state[name] is StepState.PENDING:
                    self._set(name, StepState.PENDING, StepState.PENDING, None)
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
