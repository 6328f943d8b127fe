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
- the order in which ready steps start: `ready_rank`;
- whether a step whose turn has come runs at all (`when=`): `check_when`;
- what a launch's end means for the launch and its run, and what an operator's mark means
  for the run: `judge_launch` and `run_state_after_marks` (both from `settled_run_state`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from overnight.batch import Step, dependents_of, with_downstream
from overnight.states import RunState, StepState, after_runner_died

# A step that is not idempotent and whose last attempt ended like this may have done part
# of its work: neither a retry nor a plain resume runs it again; an operator decides.
HOLD_AFTER: frozenset[StepState] = frozenset({StepState.INTERRUPTED})

# An attempt that ended like this is tried again while the step has retries left.
RETRY_AFTER: frozenset[StepState] = frozenset(
    {StepState.FAILED, StepState.TIMED_OUT, StepState.INTERRUPTED}
)

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


@dataclass(frozen=True)
class RunningAttempt:
    """An attempt the ledger records as running."""

    step: str
    attempt_id: int
    number: int
    launch_id: int
    started_at: float
    log_path: str | None = None
    remote_id: str | None = None  # its task id, when it was sent to a remote queue


@dataclass(frozen=True)
class Snapshot:
    """What the ledger says about the run, read once before the launch decides anything."""

    states: Mapping[str, StepState] = field(default_factory=dict)  # absent: new, pending
    set_by: Mapping[str, int | None] = field(default_factory=dict)  # launch that last set it
    running: Sequence[RunningAttempt] = ()
    attempts: Mapping[str, int] = field(default_factory=dict)  # attempt numbers used, per step
    live_launch: int | None = None      # a launch whose runner is alive now (dry run only)
    dead_launches: Sequence[int] = ()   # launches recorded running whose runner is gone


@dataclass(frozen=True)
class PlanOptions:
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


@dataclass(frozen=True)
class Rule:
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


@dataclass(frozen=True)
class Change:
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


@dataclass(frozen=True)
class LaunchPlan:
    steps: dict[str, StepPlan]            # every step of the batch, in declaration order
    changes: list[Change]                 # to record, in this order
    closed: list[RunningAttempt]          # attempts a dead runner left: recorded interrupted
    runnable: frozenset[str]              # what this launch means to finish (Rule.means_to_finish)
    waiting: dict[str, int]               # per runnable step: prerequisites not done yet
    ready: list[str]                      # what may start at once, in the order to start it
    rank: dict[str, int]                  # the order among ready steps (lower starts first)
    dependents: dict[str, list[str]]      # per step, the steps that name it in after=

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
        return sum(1 for p in self.steps.values() if p.action in (Action.RUN, Action.REATTACH))


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
    decided: dict[tuple[object, ...], tuple[Rule, bool]] = {}  # per distinct case
    plans: dict[str, StepPlan] = {}
    runnable: set[str] = set()
    for step in steps:
        name = step.name
        was = recorded.get(name, StepState.PENDING)
        case = (
            was, None if selection is None else name in selection, options.fresh,
            name in remote, live and was is StepState.RUNNING, step.idempotent,
        )
        known = decided.get(case)
        if known is None:
            rule = decide(Case(*case))
            known = decided[case] = (rule, rule.means_to_finish)
        rule, means_to_finish = known
        now = StepState.PENDING if rule.action is Action.RUN else was
        if now is not was:
            changes.append(Change(name, was, now, rule.note))
        plans[name] = StepPlan(name, rule.action, was, now, snapshot.set_by.get(name), None,
                               running.get(name))
        if means_to_finish:
            runnable.add(name)
    _block_behind_holds(plans, runnable, dependents, changes)
    waiting = {}
    for name in runnable:
        after = by_name[name].after
        waiting[name] = len(after) if runnable.issuperset(after) else sum(p in runnable for p in after)
    rank = ready_rank(steps)
    ready = sorted(
        (n for n in runnable if waiting[n] == 0 and plans[n].state is StepState.PENDING),
        key=rank.__getitem__,
    )
    return LaunchPlan(plans, changes, closed, frozenset(runnable), waiting, ready, rank, dependents)


def _block_behind_holds(
    plans: dict[str, StepPlan], runnable: set[str], dependents: Mapping[str, list[str]],
    changes: list[Change],
) -> None:
    def blockable(name: str) -> bool:
        return name in runnable and plans[name].state is StepState.PENDING

    for held in [p.name for p in plans.values() if p.action is Action.HOLD]:
        for name in blocked_behind(held, dependents, blockable):
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


def ready_rank(steps: Sequence[Step]) -> dict[str, int]:
    """The order among ready steps: lower starts first. Today, declaration order."""
    return {s.name: s.position for s in steps}


# -- during the launch --------------------------------------------------------------------


def retries_left(step: Step, state: StepState, tries: int) -> bool:
    """Whether an attempt (the launch's `tries`-th of the step) that ended in `state` is
    tried again."""
    return state in RETRY_AFTER and tries <= step.retries and may_repeat(step.idempotent, state)


@dataclass(frozen=True)
class Gate:
    """A step whose turn came that does not run: its `when=` said no, or failed."""

    state: StepState   # SKIPPED or FAILED
    note: str          # recorded with the step
    says: str          # told to the operator


def check_when(step: Step, run_date: date) -> Gate | None:
    """Ask the step's `when=` about the date: None if it runs."""
    if step.when is None:
        return None
    try:
        wanted = bool(step.when(run_date))
    except Exception as e:  # noqa: BLE001 - the user's predicate failed
        return Gate(StepState.FAILED, f"when= raised {e!r}", f"its when= raised {e!r}")
    if wanted:
        return None
    return Gate(StepState.SKIPPED, "when= is false", "when= is false for this date")


# -- what the end means -------------------------------------------------------------------


def settled_run_state(states: Iterable[StepState]) -> RunState:
    """A run has succeeded when every step of it is done (succeeded or skipped)."""
    return RunState.SUCCEEDED if all(s.is_done for s in states) else RunState.FAILED


@dataclass(frozen=True)
class Verdict:
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
