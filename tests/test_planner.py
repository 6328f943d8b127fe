"""The launch planner's decision table: pure, no processes, no ledger (milliseconds).

Each case is a batch, what the ledger says, the launch's options, and what the launch does
with every step. The runner and `--dry-run` both follow this plan (tests/faults/
test_fault_dryrun.py checks that with real launches).
"""

from __future__ import annotations

from datetime import date

import pytest

from overnight.batch import Batch, Step
from overnight.planner import (
    Action,
    Change,
    PlanOptions,
    RunningAttempt,
    Snapshot,
    check_when,
    judge_launch,
    plan_launch,
    retries_left,
    run_state_after_marks,
    settled_run_state,
)
from overnight.states import STEP_TRANSITIONS, RunState, StepState

P, R, S, F, INT, B, K, T, C = (
    StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED, StepState.FAILED,
    StepState.INTERRUPTED, StepState.BLOCKED, StepState.SKIPPED, StepState.TIMED_OUT,
    StepState.CANCELLED,
)
RUN, SKIP, LEAVE, HOLD, ATTACH, BLOCK, ACTIVE = (
    Action.RUN, Action.SKIP, Action.LEAVE, Action.HOLD, Action.REATTACH, Action.BLOCK, Action.ACTIVE,
)


def night(*, pay_idempotent: bool = False, remote: bool = False) -> list[Step]:
    """export -> (pay | report) -> close, and tidy on its own (after=[])."""
    batch = Batch("night")
    batch.command("export", "true")
    with batch.parallel():
        batch.command("pay", "true", idempotent=pay_idempotent, queue="q" if remote else None)
        batch.command("report", "true")
    batch.command("close", "true")
    batch.command("tidy", "true", after=[])
    return batch.validate()


def running(step: str, *, remote: bool = False, launch: int = 1) -> RunningAttempt:
    return RunningAttempt(step=step, attempt_id=7, number=1, launch_id=launch, started_at=0.0,
                          remote_id="task-1" if remote else None)


CASES = {
    "a first launch runs everything; the steps without prerequisites are ready": (
        night(), Snapshot(), PlanOptions(),
        {"export": RUN, "pay": RUN, "report": RUN, "close": RUN, "tidy": RUN}, ["export", "tidy"],
    ),
    "a resume skips what is done and runs again what failed": (
        night(), Snapshot(states={"export": S, "pay": S, "report": F, "close": B, "tidy": K}),
        PlanOptions(),
        {"export": SKIP, "pay": SKIP, "report": RUN, "close": RUN, "tidy": SKIP}, ["report"],
    ),
    "a crash during a step that is not idempotent holds it and blocks what follows": (
        night(), Snapshot(states={"export": S, "pay": R, "report": S, "tidy": S},
                          running=[running("pay")]),
        PlanOptions(),
        {"export": SKIP, "pay": HOLD, "report": SKIP, "close": BLOCK, "tidy": SKIP}, [],
    ),
    "once recorded interrupted, it is held all the same": (
        night(), Snapshot(states={"export": S, "pay": INT, "report": P, "close": P, "tidy": P}),
        PlanOptions(),
        {"export": SKIP, "pay": HOLD, "report": RUN, "close": BLOCK, "tidy": RUN}, ["report", "tidy"],
    ),
    "a crash during an idempotent step runs it again": (
        night(pay_idempotent=True),
        Snapshot(states={"export": S, "pay": R, "report": S}, running=[running("pay")]),
        PlanOptions(),
        {"export": SKIP, "pay": RUN, "report": SKIP, "close": RUN, "tidy": RUN}, ["pay", "tidy"],
    ),
    "a step that is not idempotent but failed cleanly runs again": (
        night(), Snapshot(states={"export": S, "pay": F}), PlanOptions(),
        {"export": SKIP, "pay": RUN, "report": RUN, "close": RUN, "tidy": RUN}, ["pay", "report", "tidy"],
    ),
    "--rerun of the held step runs it (the operator's word)": (
        night(), Snapshot(states={"export": S, "pay": INT, "report": S, "close": B, "tidy": S}),
        PlanOptions(rerun=["pay"]),
        {"export": LEAVE, "pay": RUN, "report": LEAVE, "close": LEAVE, "tidy": LEAVE}, ["pay"],
    ),
    "--rerun --downstream takes what depends on it": (
        night(), Snapshot(states={"export": S, "pay": S, "report": S, "close": S, "tidy": S}),
        PlanOptions(rerun=["report"], downstream=True),
        {"export": LEAVE, "pay": LEAVE, "report": RUN, "close": RUN, "tidy": LEAVE}, ["report"],
    ),
    "--rerun of another step leaves the held one as it is": (
        night(), Snapshot(states={"export": S, "pay": INT, "report": S, "close": B, "tidy": S}),
        PlanOptions(rerun=["tidy"]),
        {"export": LEAVE, "pay": LEAVE, "report": LEAVE, "close": LEAVE, "tidy": RUN}, ["tidy"],
    ),
    "--fresh runs everything, held or done": (
        night(), Snapshot(states={"export": S, "pay": INT, "report": S, "close": B, "tidy": K}),
        PlanOptions(fresh=True),
        {"export": RUN, "pay": RUN, "report": RUN, "close": RUN, "tidy": RUN}, ["export", "tidy"],
    ),
    "a remote attempt left running is awaited when queues are configured": (
        night(remote=True), Snapshot(states={"export": S, "pay": R, "report": S},
                                     running=[running("pay", remote=True)]),
        PlanOptions(remote=True),
        {"export": SKIP, "pay": ATTACH, "report": SKIP, "close": RUN, "tidy": RUN}, ["tidy"],
    ),
    "without queues configured, a remote attempt left running is interrupted like a local one": (
        night(remote=True), Snapshot(states={"export": S, "pay": R, "report": S},
                                     running=[running("pay", remote=True)]),
        PlanOptions(remote=False),
        {"export": SKIP, "pay": HOLD, "report": SKIP, "close": BLOCK, "tidy": RUN}, ["tidy"],
    ),
    "beside a live launch (a dry run), its running steps are running, not interrupted": (
        night(), Snapshot(states={"export": S, "pay": R, "report": R}, running=[running("pay")],
                          live_launch=1),
        PlanOptions(),
        {"export": SKIP, "pay": ACTIVE, "report": ACTIVE, "close": RUN, "tidy": RUN}, ["tidy"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_plan_of_each_case(name: str) -> None:
    steps, snapshot, options, actions, ready = CASES[name]
    plan = plan_launch(steps, snapshot, options)
    assert {n: p.action for n, p in plan.steps.items()} == actions
    assert plan.ready == ready


@pytest.mark.parametrize("name", list(CASES))
def test_every_change_obeys_the_transition_table_and_ends_where_the_plan_says(name: str) -> None:
    steps, snapshot, options, _, _ = CASES[name]
    plan = plan_launch(steps, snapshot, options)
    states = {s.name: snapshot.states.get(s.name, P) for s in steps}
    for change in plan.changes:
        assert change.old is states[change.step], change
        assert change.new in STEP_TRANSITIONS[change.old], change
        states[change.step] = change.new
    assert states == {n: p.state for n, p in plan.steps.items()}


def test_a_crash_records_the_local_attempt_interrupted_and_the_step_before_holding_it() -> None:
    plan = plan_launch(night(), Snapshot(states={"export": S, "pay": R}, running=[running("pay")]),
                       PlanOptions())
    assert [a.step for a in plan.closed] == ["pay"]
    assert plan.changes[0] == Change("pay", R, INT, "interrupted: the runner died while it ran")
    assert plan.held == ["pay"]
    assert plan.blocked == [("close", "pay")]
    assert plan.runnable == {"pay", "report", "close", "tidy"}  # held and blocked: the launch fails
    assert plan.to_run == 2


def test_a_remote_attempt_awaited_is_not_closed_and_its_step_stays_running() -> None:
    plan = plan_launch(night(remote=True), Snapshot(states={"export": S, "pay": R},
                                                    running=[running("pay", remote=True)]),
                       PlanOptions(remote=True))
    assert plan.closed == []
    assert plan.steps["pay"].state is R and plan.reattach["pay"].remote_id == "task-1"
    assert plan.waiting["close"] == 2  # pay and report


def test_held_steps_block_a_long_chain_behind_them_and_nothing_beside_it() -> None:
    batch = Batch("c")
    for i in range(50):
        batch.command(f"s{i}", "true", idempotent=i != 10)
    batch.command("beside", "true", after=[])
    plan = plan_launch(batch.validate(), Snapshot(states={f"s{i}": S for i in range(10)} | {"s10": INT}),
                       PlanOptions())
    assert plan.held == ["s10"]
    assert [n for n, _ in plan.blocked] == [f"s{i}" for i in range(11, 50)]
    assert plan.ready == ["beside"]


def test_a_step_reached_twice_through_a_diamond_is_blocked_once() -> None:
    batch = Batch("d")
    batch.command("top", "true", idempotent=False)
    batch.command("left", "true", after=["top"])
    batch.command("right", "true", after=["top"])
    batch.command("bottom", "true", after=["left", "right"])
    plan = plan_launch(batch.validate(), Snapshot(states={"top": INT}), PlanOptions())
    assert sorted(n for n, _ in plan.blocked) == ["bottom", "left", "right"]
    assert [c.step for c in plan.changes].count("bottom") == 1


def test_ready_steps_start_in_declaration_order_whatever_the_dependency_order() -> None:
    batch = Batch("o")
    batch.command("late", "true", after=["early"])
    batch.command("early", "true", after=[])
    batch.command("other", "true", after=[])
    plan = plan_launch(batch.validate(), Snapshot(), PlanOptions())
    assert plan.ready == ["early", "other"]
    assert plan.rank["late"] < plan.rank["early"]  # the rank of a later turn is declaration order


# -- retries, when=, and what the end means -------------------------------------------------


@pytest.mark.parametrize(
    ("idempotent", "state", "tries", "retries", "expected"),
    [
        (True, F, 1, 1, True),
        (True, T, 1, 1, True),
        (True, INT, 1, 1, True),
        (False, INT, 1, 1, False),   # interrupted and not idempotent: never again without an operator
        (False, F, 1, 1, True),
        (True, F, 2, 1, False),    # retries used up
        (True, C, 1, 5, False),    # a cancel is not retried
        (True, S, 1, 5, False),
    ],
)
def test_retries_left(idempotent: bool, state: StepState, tries: int, retries: int, expected: bool) -> None:
    batch = Batch("r")
    step = batch.command("x", "true", retries=retries, idempotent=idempotent)
    assert retries_left(step, state, tries) is expected


def test_when_says_skip_fail_or_run() -> None:
    batch = Batch("w")
    saturday = date(2026, 11, 28)
    weekdays = batch.command("weekdays", "true", when=lambda d: d.weekday() < 5)
    broken = batch.command("broken", "true", when=lambda d: 1 / 0)
    always = batch.command("always", "true")
    skip = check_when(weekdays, saturday)
    assert skip is not None and skip.state is K and skip.says == "when= is false for this date"
    fail = check_when(broken, saturday)
    assert fail is not None and fail.state is F and "ZeroDivisionError" in fail.note
    assert check_when(weekdays, date(2026, 11, 27)) is None and check_when(always, saturday) is None


@pytest.mark.parametrize(
    ("states", "meant", "cancelled", "expected"),
    [
        ({"a": S, "b": K}, {"a", "b"}, False, (RunState.SUCCEEDED, RunState.SUCCEEDED, 0)),
        ({"a": S, "b": F}, {"a", "b"}, False, (RunState.FAILED, RunState.FAILED, 1)),
        # a --rerun of `a` that succeeds: the launch did its job, the run is still failed
        ({"a": S, "b": F}, {"a"}, False, (RunState.SUCCEEDED, RunState.FAILED, 0)),
        ({"a": S, "b": P}, {"a", "b"}, True, (RunState.CANCELLED, RunState.CANCELLED, 130)),
        ({"a": INT, "b": B}, {"a", "b"}, False, (RunState.FAILED, RunState.FAILED, 1)),  # held
    ],
)
def test_judge_launch(states: dict, meant: set, cancelled: bool, expected: tuple) -> None:
    verdict = judge_launch(states, meant, cancelled=cancelled)
    assert (verdict.launch, verdict.run, verdict.exit_code) == expected


@pytest.mark.parametrize(
    ("states", "current", "changed", "expected"),
    [
        ({"a": S, "b": S}, RunState.FAILED, True, RunState.SUCCEEDED),
        ({"a": S, "b": K}, RunState.CRASHED, True, RunState.SUCCEEDED),
        ({"a": S, "b": P}, RunState.SUCCEEDED, True, RunState.FAILED),   # --redo of a good night
        ({"a": S, "b": P}, RunState.SUCCEEDED, False, None),
        ({"a": S, "b": F}, RunState.CRASHED, True, None),                # keeps how it ended
        ({"a": S, "b": F}, RunState.CANCELLED, True, None),
    ],
)
def test_run_state_after_marks(
    states: dict, current: RunState, changed: bool, expected: RunState | None,
) -> None:
    assert run_state_after_marks(states, current, changed) is expected


# -- adoption: asked only while the ledger has no word of its own on a step ---------------


def adoptable_night() -> list[Step]:
    batch = Batch("night")
    batch.command("export", "true", adopt_if=lambda day: True)
    batch.command("load", "true", adopt_if=lambda day: True)
    batch.command("report", "true")  # nothing can tell it was done before
    return batch.validate()


@pytest.mark.parametrize(
    "snapshot, options, adoptable",
    [
        (Snapshot(), PlanOptions(), {"export", "load"}),
        (Snapshot(attempts={"export": 1}), PlanOptions(), {"load"}),          # it ran: the ledger says
        (Snapshot(marked=frozenset({"load"})), PlanOptions(), {"export"}),    # an operator said
        (Snapshot(), PlanOptions(rerun=["export"]), {"load"}),                 # run again on purpose
        (Snapshot(), PlanOptions(rerun=["export"], downstream=True), set()),
        (Snapshot(), PlanOptions(fresh=True), set()),
        (Snapshot(states={"export": StepState.ADOPTED}), PlanOptions(), {"export", "load"}),
    ],
    ids=["first-launch", "after-an-attempt", "after-a-mark", "rerun", "rerun-downstream", "fresh",
         "already-adopted"],
)
def test_a_step_may_be_adopted_only_while_the_ledger_has_no_word_on_it(
    snapshot: Snapshot, options: PlanOptions, adoptable: set[str],
) -> None:
    plan = plan_launch(adoptable_night(), snapshot, options)
    assert plan.adoptable == adoptable
    if snapshot.states.get("export") is StepState.ADOPTED:
        assert plan.steps["export"].action is SKIP  # adopted before: a resume skips it


def test_an_adopted_step_counts_as_done_for_the_run_and_what_follows() -> None:
    assert StepState.ADOPTED.is_done
    assert settled_run_state([StepState.ADOPTED, StepState.SUCCEEDED]) is RunState.SUCCEEDED
    assert StepState.ADOPTED in STEP_TRANSITIONS[StepState.PENDING]
    assert STEP_TRANSITIONS[StepState.ADOPTED] == {StepState.PENDING, StepState.SUCCEEDED, StepState.SKIPPED}
