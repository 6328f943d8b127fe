"""What a launch does with each step: one pure decision, used by the runner and the dry run.

The runner (engine.py) reads what the ledger says about the run (snapshot.py), asks
`plan_launch` what this launch does, applies the plan's state changes in the same
transaction and starts the plan's ready steps; `overnight run --dry-run` (dryrun.py)
prints the same plan. Nothing here reads the clock, the ledger or a file, so the rules are
tested as tables of cases in milliseconds (tests/test_planner.py).

Where a rule goes:
- what a launch may do with a step: a row of RULES (the first row that applies decides);
- after which ends a step that is not idempotent waits for an operator: HOLD_AFTER;
  after which ends a step is tried again within the launch: RETRY_AFTER;
- the order in which ready steps start: `ready_rank` (priority=, then the critical path
  from `remaining_paths` over `usual_durations`, then declaration order);
- whether a step whose turn has come runs at all (`when=`): `check_when`; whether it may be
  adopted instead (`adopt_if=`): adoption.adoptable (asked then by adoption.ask_adopt); after which ends
  of its prerequisites (`run_if=`): RUN_IF, `check_run_if`, and `unsuccessful_end` for
  what a prerequisite that did not succeed blocks or releases;
- what the end of one check of a wait step means for it: `after_check`;
- what a launch's end means for the launch and its run, and what an operator's mark means
  for the run: `judge_launch` and `run_state_after_marks` (both from `settled_run_state`).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import date
from enum import StrEnum
from functools import partial
from statistics import median
from types import MappingProxyType
from typing import Any, NamedTuple

from overnight.adoption import adoptable
from overnight.batch import Step, dependents_of, with_downstream
from overnight.states import RunState, StepState, after_runner_died
from overnight.waits import WaitSpec

# A step that is not idempotent and whose last attempt ended like this may have done part
# of its work: neither a retry nor a plain resume runs it again; an operator decides.
# These are every end that is not the step's own exit status: the runner or a worker died
# (interrupted; a signal from outside reads so too), it ran out of time, it was cancelled.
HOLD_AFTER: frozenset[StepState] = frozenset(
    {StepState.INTERRUPTED, StepState.TIMED_OUT, StepState.CANCELLED}
)

# An attempt that ended like this is tried again while the step has retries left.
RETRY_AFTER: frozenset[StepState] = frozenset(
    {StepState.FAILED, StepState.TIMED_OUT, StepState.INTERRUPTED}
)

# The records in this module are NamedTuples: as immutable as frozen dataclasses, and
# several times cheaper to define at import, which every `overnight run` pays.
_NOTHING: Mapping[str, Any] = MappingProxyType({})

DIED_WITH_RUNNER = "interrupted: the runner died while it ran"
ATTEMPT_DIED_WITH_RUNNER = "the runner died while this ran"


class Action(StrEnum):
    """What one launch does with one step."""

    RUN = "run"              # runs once its prerequisites are done
    SKIP = "skip"            # done in an earlier launch (or marked so): not run again
    LEAVE = "leave"          # outside the --rerun selection: left as it is
    HOLD = "hold"            # not idempotent and ended uncleanly: waits for an operator
    REATTACH = "reattach"    # on a remote queue since a launch that died: its end is awaited
    BLOCK = "block"          # behind a held step: does not run in this launch
    ACTIVE = "active"        # running in a launch that is alive now (only a dry run sees it)


# -- what the planner is given ------------------------------------------------------------


class RunningAttempt(NamedTuple):
    """An attempt the ledger records as running."""

    step: str
    attempt_id: int
    number: int
    launch_id: int
    started_at: float
    log_path: str | None = None
    remote_id: str | None = None  # its task id, when it was sent to a remote queue


class Snapshot(NamedTuple):
    """What the ledger says about the run, read once before the launch decides anything."""

    states: Mapping[str, StepState] = _NOTHING  # absent: new, pending
    set_by: Mapping[str, int | None] = _NOTHING  # the launch that last set it
    running: Sequence[RunningAttempt] = ()
    attempts: Mapping[str, int] = _NOTHING  # attempt numbers used, per step
    live_launch: int | None = None      # a launch whose runner is alive now (dry run only)
    dead_launches: Sequence[int] = ()   # launches recorded running whose runner is gone
    history: Mapping[str, Sequence[float]] = _NOTHING  # recent successful durations, per step
    marked: frozenset[str] = frozenset()  # steps an operator has marked in this run


class PlanOptions(NamedTuple):
    rerun: Sequence[str] = ()
    downstream: bool = False
    fresh: bool = False
    remote: bool = False  # remote queues are configured: their attempts can be re-attached


# -- the rules ----------------------------------------------------------------------------


class Case(NamedTuple):
    """One step as a rule sees it: everything a rule may look at, and nothing else, so a
    launch decides once per distinct case (a long night has few). A rule that needs more
    of the step (an option of its own) adds a field here."""

    state: StepState             # once what a dead runner left is settled
    selected: bool | None        # in the --rerun selection; None: no --rerun given
    fresh: bool
    reattach: bool               # a remote attempt of it may still run: await it
    active: bool                 # running in a launch that is alive now
    idempotent: bool


class Rule(NamedTuple):
    action: Action
    applies: Callable[[Case], bool]
    note: str | None = None      # recorded with the step when the rule changes its state

    @property
    def means_to_finish(self) -> bool:
        """The launch fails unless a step it does this with ends done (a held one too)."""
        return self.action in (Action.RUN, Action.REATTACH, Action.HOLD, Action.ACTIVE)


def may_repeat(idempotent: bool, state: StepState) -> bool:
    """Whether a step whose last attempt ended in `state` may run again without an operator."""
    return idempotent or state not in HOLD_AFTER


RULES: tuple[Rule, ...] = (
    Rule(Action.ACTIVE, lambda c: c.active),
    Rule(Action.REATTACH, lambda c: c.reattach),
    Rule(Action.RUN, lambda c: c.fresh or c.selected is True, "to run again"),
    Rule(Action.LEAVE, lambda c: c.selected is False),
    Rule(Action.SKIP, lambda c: c.state.is_done),
    Rule(Action.HOLD, lambda c: not may_repeat(c.idempotent, c.state)),
    Rule(Action.RUN, lambda c: True),
)


def decide(case: Case) -> Rule:
    for rule in RULES:
        if rule.applies(case):
            return rule
    raise AssertionError("the last rule applies to every case")


# -- the plan -----------------------------------------------------------------------------


class Change(NamedTuple):
    """A step state change the launch records before it starts anything."""

    step: str
    old: StepState
    new: StepState
    message: str | None


class StepPlan(NamedTuple):
    name: str
    action: Action
    was: StepState               # as the ledger has it (what a dead runner left settled)
    state: StepState             # once the plan is applied
    set_by: int | None = None    # the launch that last set `was`
    cause: str | None = None     # for BLOCK: the held step it is behind
    attempt: RunningAttempt | None = None  # for REATTACH and ACTIVE


class LaunchPlan(NamedTuple):
    steps: dict[str, StepPlan]            # every step of the batch, in declaration order
    changes: list[Change]                 # to record, in this order
    closed: list[RunningAttempt]          # attempts a dead runner left: recorded interrupted
    runnable: frozenset[str]              # what this launch means to finish (Rule.means_to_finish)
    waiting: dict[str, int]               # per runnable step: prerequisites not done yet
    ready: list[str]                      # what may start at once, in the order to start it
    rank: dict[str, int]                  # the order among ready steps (lower starts first)
    dependents: dict[str, list[str]]      # per step, the steps that name it in after=
    paths: dict[str, float]               # per step, its expected remaining path (seconds)
    unhappy: set[str]                     # runnable steps a prerequisite of which did not succeed
    adoptable: frozenset[str] = frozenset()  # steps whose adopt_if is asked when their turn comes

    def having(self, action: Action) -> list[StepPlan]:
        return [p for p in self.steps.values() if p.action is action]

    @property
    def held(self) -> list[str]:
        return [p.name for p in self.having(Action.HOLD)]

    @property
    def reattach(self) -> dict[str, RunningAttempt]:
        return {p.name: p.attempt for p in self.having(Action.REATTACH) if p.attempt}

    @property
    def blocked(self) -> list[tuple[str, str]]:
        return [(p.name, p.cause or "") for p in self.having(Action.BLOCK)]

    @property
    def to_run(self) -> int:
        return len(self.having(Action.RUN)) + len(self.having(Action.REATTACH))


def plan_launch(
    steps: Sequence[Step], snapshot: Snapshot, options: PlanOptions,
    dependents: dict[str, list[str]] | None = None,
) -> LaunchPlan:
    """What a launch with `options` does with each of `steps` (declaration order), given
    what the ledger says (`snapshot`). `dependents`: dependents_of(steps), if known."""
    by_name = {s.name: s for s in steps}
    if dependents is None:
        dependents = dependents_of(steps)
    changes: list[Change] = []
    recorded, closed, remote = _settle_dead_runner(by_name, snapshot, options, changes)
    selection = _selection(options, dependents)
    running = {a.step: a for a in snapshot.running}
    live = snapshot.live_launch is not None
    # This loop runs once per step of the night (10,000 in a long one), so it avoids the
    # Python-level calls it can: one decision per distinct case, the case keyed by the
    # state's identity (an Enum's hash is a Python function), the enum members bound once,
    # and the plan records made as plain tuples of their class.
    decided: dict[tuple[object, ...], tuple[Rule, bool, bool]] = {}
    pending, running_now = StepState.PENDING, StepState.RUNNING
    fresh, set_by = options.fresh, snapshot.set_by
    make_plan = partial(tuple.__new__, StepPlan)
    plans: dict[str, StepPlan] = {}
    runnable: set[str] = set()
    for step in steps:
        name = step.name
        was = recorded.get(name, pending)
        selected = None if selection is None else name in selection
        reattach, active = name in remote, live and was is running_now
        key = (id(was), selected, reattach, active, step.idempotent)
        known = decided.get(key)
        if known is None:
            rule = decide(Case(was, selected, fresh, reattach, active, step.idempotent))
            known = decided[key] = (rule, rule.action is Action.RUN, rule.means_to_finish)
        rule, runs, means_to_finish = known
        now = pending if runs else was
        if now is not was:
            changes.append(Change(name, was, now, rule.note))
        plans[name] = make_plan((name, rule.action, was, now, set_by.get(name), None, running.get(name)))
        if means_to_finish:
            runnable.add(name)
    waiting = {}
    for name in runnable:
        after = by_name[name].after
        waiting[name] = len(after) if runnable.issuperset(after) else sum(p in runnable for p in after)
    unhappy = _after_failures_left_alone(steps, plans, runnable)
    _block_behind_holds(by_name, plans, runnable, dependents, changes, waiting, unhappy)
    paths = remaining_paths(steps, usual_durations(steps, snapshot.history), dependents, runnable)
    rank = ready_rank(steps, paths)
    ready = sorted(
        (n for n in runnable if waiting[n] == 0 and plans[n].state is StepState.PENDING),
        key=rank.__getitem__,
    )
    adopt = adoptable(steps, snapshot.attempts, snapshot.marked, selection or (), options.fresh)
    return LaunchPlan(plans, changes, closed, frozenset(runnable), waiting, ready, rank, dependents, paths,
                      unhappy, adopt)


def _after_failures_left_alone(
    steps: Sequence[Step], plans: Mapping[str, StepPlan], runnable: set[str],
) -> set[str]:
    """Runnable steps with a prerequisite this launch leaves alone (outside --rerun) that
    ended without succeeding: for run_if="failure", that failure counts."""
    return {
        s.name for s in steps
        if s.name in runnable and any(
            p not in runnable and plans[p].state in ENDED_UNSUCCESSFULLY for p in s.after
        )
    }


def _block_behind_holds(
    steps: Mapping[str, Step], plans: dict[str, StepPlan], runnable: set[str],
    dependents: Mapping[str, list[str]], changes: list[Change], waiting: dict[str, int],
    unhappy: set[str],
) -> None:
    """A held step will not succeed in this launch: what needs its success is blocked, and
    what runs after any end of it (run_if) counts it as ended."""
    def pending(name: str) -> bool:
        return name in runnable and plans[name].state is StepState.PENDING

    for held in [p.name for p in plans.values() if p.action is Action.HOLD]:
        blocked, _ = unsuccessful_end(held, steps, dependents, pending, waiting, unhappy)
        for name in blocked:
            plans[name] = plans[name]._replace(action=Action.BLOCK, state=StepState.BLOCKED, cause=held)
            changes.append(Change(name, StepState.PENDING, StepState.BLOCKED, f"blocked by {held}"))


def _settle_dead_runner(
    steps: Mapping[str, Step], snapshot: Snapshot, options: PlanOptions, changes: list[Change],
) -> tuple[dict[str, StepState], list[RunningAttempt], dict[str, RunningAttempt]]:
    """Attempts left running: re-attach to a remote one, or record it interrupted.

    A task on a remote queue may have gone on without its runner: it is awaited (its end is
    recorded, not run again) when remote queues are still configured. Everything else died
    with its runner. Attempts of a live launch (a dry run beside it) are left alone.
    """
    states = dict(snapshot.states)
    if snapshot.live_launch is not None:
        return states, [], {}
    closed: list[RunningAttempt] = []
    remote: dict[str, RunningAttempt] = {}
    for attempt in snapshot.running:
        step = steps.get(attempt.step)
        if options.remote and attempt.remote_id and step is not None and step.queue:
            remote[attempt.step] = attempt
        else:
            closed.append(attempt)
    for name, state in states.items():
        if state is not StepState.RUNNING:
            continue  # (only a running step is changed by its runner's death)
        now = after_runner_died(state, remote=name in remote)
        if now is not state:
            changes.append(Change(name, state, now, DIED_WITH_RUNNER))
            states[name] = now
    return states, closed, remote


def _selection(options: PlanOptions, dependents: dict[str, list[str]]) -> set[str] | None:
    if not options.rerun:
        return None
    if options.downstream:
        return set(with_downstream(list(options.rerun), dependents))
    return set(options.rerun)


# -- run_if: after which ends of its prerequisites a step runs ------------------------------


class RunIfRule(NamedTuple):
    blocked_by_failure: bool     # a prerequisite that does not succeed blocks it at once
    runs_without_failure: bool   # it runs when every prerequisite is done (else: skipped)


RUN_IF: dict[str, RunIfRule] = {
    "success": RunIfRule(blocked_by_failure=True, runs_without_failure=True),
    "always": RunIfRule(blocked_by_failure=False, runs_without_failure=True),
    "failure": RunIfRule(blocked_by_failure=False, runs_without_failure=False),
}

# How a prerequisite may end without succeeding. A cancel is not an end: a cancelled night
# is interrupted, and what follows stays pending for the resume.
ENDED_UNSUCCESSFULLY: frozenset[StepState] = frozenset(
    {StepState.FAILED, StepState.TIMED_OUT, StepState.INTERRUPTED, StepState.BLOCKED}
)


def check_run_if(step: Step, after_failure: bool) -> Gate | None:
    """Whether a step whose prerequisites have all ended runs (None) or is skipped: a
    run_if="failure" step when nothing before it failed."""
    if after_failure or RUN_IF[step.run_if].runs_without_failure:
        return None
    return Gate(StepState.SKIPPED, "run_if=failure: its prerequisites succeeded",
                "nothing before it failed (run_if=\"failure\")")


def unsuccessful_end(
    cause: str, steps: Mapping[str, Step], dependents: Mapping[str, Sequence[str]],
    pending: Callable[[str], bool], waiting: dict[str, int], unhappy: set[str],
) -> tuple[list[str], list[str]]:
    """`cause` ended without succeeding (failed, timed out, held, its when= failed): the
    steps that needed its success, blocked with everything that needs theirs; and the
    steps that run after any end (run_if "always" or "failure") whose prerequisites have
    now all ended, ready. Counts their `waiting` down and notes them in `unhappy`."""
    blocked = blocked_behind(
        cause, dependents, lambda d: pending(d) and RUN_IF[steps[d].run_if].blocked_by_failure
    )
    gone = set(blocked)
    ready: list[str] = []
    for ended in (cause, *blocked):
        for dep in dependents.get(ended, ()):
            if dep in gone or not pending(dep):
                continue
            waiting[dep] -= 1
            unhappy.add(dep)
            if waiting[dep] == 0:
                ready.append(dep)
    return blocked, ready


def blocked_behind(
    cause: str, dependents: Mapping[str, Sequence[str]], blockable: Callable[[str], bool],
) -> list[str]:
    """The steps that cannot run because `cause` will not succeed: its blockable
    dependents, theirs, and so on (a step that is not blockable stops the walk)."""
    found: list[str] = []
    seen = {cause}
    stack = [cause]
    while stack:
        for dep in dependents.get(stack.pop(), ()):
            if dep not in seen and blockable(dep):
                seen.add(dep)
                found.append(dep)
                stack.append(dep)
    return found


# -- the order among ready steps ------------------------------------------------------------
#
# When more steps are ready than there are workers, the one to start first is the one the
# rest of the night waits on longest: the step with the longest chain of expected durations
# from its start to the end of the night (the critical path first; Graham's rule, which on
# real nights comes within a few percent of the best possible finish: docs/performance.md).
# An operator's priority= comes before that; declaration order breaks ties, and is the whole
# order on a first night, when nothing has history.


def usual_durations(steps: Sequence[Step], history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """What each step is expected to take: the median of its successful attempts in recent
    nights (`history`, seconds). A step without history counts as a typical step of the
    batch (the median of the others), so that a step added today is not sent to the back of
    the queue; when no step has history, every step counts as 0 (declaration order)."""
    known = {s.name: median(history[s.name]) for s in steps if history.get(s.name)}
    typical = median(known.values()) if known else 0.0
    return {s.name: known.get(s.name, typical) for s in steps}


def remaining_paths(
    steps: Sequence[Step], durations: Mapping[str, float], dependents: Mapping[str, Sequence[str]],
    counted: Container[str] | None = None,
) -> dict[str, float]:
    """Per step, the longest chain of expected durations from its start to the end of the
    night: its own duration plus the longest remaining path among its dependents. Steps not
    `counted` (done, or left alone by this launch) weigh nothing but still pass the path on."""
    paths: dict[str, float] = {}
    # Reversed declaration order visits a chain's last step first, so the walk rarely nests.
    for step in reversed(steps):
        stack = [(step.name, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                after = max((paths[d] for d in dependents.get(name, ())), default=0.0)
                weight = durations.get(name, 0.0) if counted is None or name in counted else 0.0
                paths[name] = weight + after
            elif name not in paths:
                stack.append((name, True))
                stack.extend((d, False) for d in dependents.get(name, ()) if d not in paths)
    return paths


def ready_rank(steps: Sequence[Step], paths: Mapping[str, float] | None = None) -> dict[str, int]:
    """The order among ready steps (lower starts first): the highest priority=, then the
    longest remaining path (`paths`, from remaining_paths), then declaration order."""
    paths = paths or {}
    ordered = sorted(steps, key=lambda s: (-s.priority, -paths.get(s.name, 0.0), s.position))
    return {s.name: i for i, s in enumerate(ordered)}


# -- during the launch --------------------------------------------------------------------


def retries_left(step: Step, state: StepState, tries: int) -> bool:
    """Whether an attempt (the launch's `tries`-th of the step) that ended in `state` is
    tried again."""
    return state in RETRY_AFTER and tries <= step.retries and may_repeat(step.idempotent, state)


class Gate(NamedTuple):
    """A step whose turn came that does not run: its `when=` said no, or failed; or its
    work was done before overnight (adoption.py)."""

    state: StepState   # SKIPPED, FAILED or ADOPTED
    note: str          # recorded with the step
    says: str          # told to the operator
    word: str = "skip"  # the progress line's first word, for a state that lets what follows go on


def check_when(step: Step, run_date: date) -> Gate | None:
    """Ask the step's `when=` about the date: None if it runs."""
    if step.when is None:
        return None
    try:
        wanted = bool(step.when(run_date))
    except BaseException as e:  # noqa: BLE001 - the user's predicate failed, or exited
        # sys.exit() or a KeyboardInterrupt raised by the predicate itself is its failure,
        # not the runner's: it must not end the night, nor undo what the night recorded.
        what = _one_line(repr(e))
        return Gate(StepState.FAILED, f"when= raised {what}", f"its when= raised {what}")
    if wanted:
        return None
    return Gate(StepState.SKIPPED, "when= is false", "when= is false for this date")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def after_check(wait: WaitSpec, ended: StepState, *, out_of_time: bool, cancelled: bool) -> StepState | None:
    """What a wait step is once one of its checks ended in `ended`: its final state, or
    None to check again after `wait.every`. A check that succeeds wins over the clock (it
    found the condition true, however late); a cancel wins over everything."""
    if cancelled:
        return StepState.CANCELLED
    if ended is StepState.SUCCEEDED:
        return StepState.SUCCEEDED
    if out_of_time:
        return out_of_time_state(wait)
    return None


def out_of_time_state(wait: WaitSpec) -> StepState:
    """What a wait step is when its timeout comes before its condition."""
    return StepState.SKIPPED if wait.on_timeout == "skip" else StepState.TIMED_OUT


# -- what the end means -------------------------------------------------------------------


def settled_run_state(states: Iterable[StepState]) -> RunState:
    """A run has succeeded when every step of it is done (succeeded or skipped)."""
    return RunState.SUCCEEDED if all(s.is_done for s in states) else RunState.FAILED


class Verdict(NamedTuple):
    launch: RunState
    run: RunState
    exit_code: int


def judge_launch(
    states: Mapping[str, StepState], meant: Iterable[str], *, cancelled: bool,
) -> Verdict:
    """How a launch that meant to finish `meant` ended, given every step's state now.

    A launch succeeds when what it meant to finish is done, even if steps it left alone
    (outside --rerun) have not: then its run is still failed, and the exit code 0.
    """
    if cancelled:
        return Verdict(RunState.CANCELLED, RunState.CANCELLED, 130)
    if all(states[n].is_done for n in meant):
        return Verdict(RunState.SUCCEEDED, settled_run_state(states.values()), 0)
    return Verdict(RunState.FAILED, RunState.FAILED, 1)


def run_state_after_marks(
    states: Mapping[str, StepState], current: RunState, changed: bool,
) -> RunState | None:
    """The run's new state after an operator's marks, or None to leave it as it is.

    Marks that make every step done make the run succeeded; marks that undo part of a
    succeeded run make it failed; otherwise the run keeps the state its last launch left.
    """
    settled = settled_run_state(states.values())
    if settled is RunState.SUCCEEDED or (changed and current is RunState.SUCCEEDED):
        return settled
    return None
