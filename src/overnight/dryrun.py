"""`overnight run --dry-run`: the plan a launch would follow, from the runner's own planner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import click

from overnight.adoption import ask_adopt
from overnight.batch import Step
from overnight.batchafter import AfterBatches, OtherRun, judge_after
from overnight.durations import format_duration
from overnight.ledger import Ledger
from overnight.loader import LoadedBatch
from overnight.lock import holder
from overnight.planner import (
    Action,
    LaunchPlan,
    PlanOptions,
    Snapshot,
    StepPlan,
    blocked_behind,
    check_when,
    plan_launch,
)
from overnight.snapshot import read_history, read_snapshot
from overnight.states import StepState


def print_plan(
    loaded: LoadedBatch,
    ledger: Ledger | None,
    state_dir: Path,
    run_date: date,
    *,
    rerun: Sequence[str] = (),
    downstream: bool = False,
    fresh: bool = False,
    after: AfterBatches | None = None,
    workdir: Path | None = None,
) -> None:
    """`workdir`: where the steps run (their adopt_if is asked there)."""
    batch = loaded.batch
    # Steps on remote queues are checked against [celery] before this (cli._check_queues),
    # so their runner would have an executor to re-attach with.
    options = PlanOptions(rerun=rerun, downstream=downstream, fresh=fresh,
                          remote=any(s.queue for s in loaded.order))
    snapshot, busy = _snapshot(ledger, state_dir, batch.name, run_date)
    plan = plan_launch(loaded.order, snapshot, options)
    run = ledger.find_run(batch.name, run_date.isoformat()) if ledger else None
    numbers = ledger.launch_numbers(run.id) if ledger and run else {}
    click.echo(f"{batch.name} for {run_date.isoformat()} (dry run: nothing is started or recorded)")
    if busy:
        click.echo(f"  (a launch is running now, {busy}: a launch would exit 3 until it ends)")
    for launch in snapshot.dead_launches:
        click.echo(f"  ({_night_of(ledger, launch)} died without finishing: "
                   "a launch would record it crashed)")
    if after is not None:
        click.echo(f"  ({_after_text(after, ledger, run_date.isoformat())})")
    failed_when = _walk_when(loaded.order, plan, run_date, workdir or loaded.path.parent)
    turns = _turns(plan)
    if len(turns) > 1:
        click.echo(f"  (order: {_order_basis(snapshot)})")
    to_run = 0
    for step in loaded.order:
        planned = plan.steps[step.name]
        what = failed_when.get(step.name) or _describe(planned, step, run_date, numbers)
        to_run += what.startswith(("run", "await"))
        if what == "run" or what.startswith("run "):
            what += _turn_text(step, turns, plan, bool(snapshot.history))
        after = f"  after {', '.join(step.after)}" if step.after else ""
        click.echo(f"  {step.name:<24} {what}{after}")
        if what.startswith("run") and step.command is not None:
            rendered = step.render_command(run_date)
            text = rendered if isinstance(rendered, str) else " ".join(rendered)
            click.echo(f"  {'':<24}   $ {text}")
    click.echo(f"{to_run} of {len(loaded.order)} steps would run")
    if plan.held:
        click.echo(f"a launch would exit 1: {', '.join(plan.held)} held, and what follows not run")


def _after_text(after: AfterBatches, ledger: Ledger | None, run_date: str) -> str:
    if ledger is None:
        verdict = judge_after([OtherRun(b, None, False) for b in after.batches], run_date)
    else:
        verdict = after.look(ledger, run_date)
    if verdict.blocked:
        return f"{verdict.blocked}: a launch would end blocked (--ignore-after to start anyway)"
    if verdict.waiting:
        return f"{verdict.waiting}: a launch would wait, up to {format_duration(after.wait_up_to)}"
    return "the batches it runs after have succeeded for this date"


def _turns(plan: LaunchPlan) -> dict[str, int]:
    """Each step the launch would run, numbered in the order a free worker would take it."""
    runs = sorted((n for n, p in plan.steps.items() if p.action is Action.RUN), key=plan.rank.__getitem__)
    return {name: i for i, name in enumerate(runs, start=1)}


def _order_basis(snapshot: Snapshot) -> str:
    if not snapshot.history:
        return "no history yet, so declaration order, after any priority="
    return ("priority= first, then the longest path to the end of the night (each step's median "
            "duration in recent nights), then declaration order")


def _turn_text(step: Step, turns: dict[str, int], plan: LaunchPlan, history: bool) -> str:
    bits = [f"order {turns[step.name]}"] if len(turns) > 1 else []
    if step.priority:
        bits.append(f"priority {step.priority}")
    bits.extend(f"holds {n} of {pool}" for pool, n in sorted(step.resources.items()))
    if history:
        bits.append(f"{format_duration(plan.paths[step.name])} to the end")
    return f" [{', '.join(bits)}]" if bits else ""


def _snapshot(
    ledger: Ledger | None, state_dir: Path, batch: str, run_date: date,
) -> tuple[Snapshot, str | None]:
    """The ledger's word on the run, and who runs the batch now (None: nobody)."""
    who = holder(state_dir, batch)
    busy = None if who is None else f"pid {who.get('pid')} on {who.get('host')} since {who.get('since')}"
    if ledger is None:
        return Snapshot(), busy
    live = ledger.live_launch(batch)
    run = ledger.find_run(batch, run_date.isoformat())
    history = read_history(ledger, batch, run_date.isoformat())
    if run is None:
        return Snapshot(dead_launches=[live.id] if live and who is None else [], history=history), busy
    return read_snapshot(
        ledger, run.id,
        live_launch=live.id if live and who is not None and live.run_id == run.id else None,
        dead_launches=[live.id] if live and who is None else [], history=history,
    ), busy


def _walk_when(order: list[Step], plan: LaunchPlan, run_date: date, workdir: Path) -> dict[str, str]:
    """What the `when=` (and `adopt_if=`) of the steps that would run says, and what a
    failing one blocks."""
    said: dict[str, str] = {}

    def blockable(name: str) -> bool:
        return plan.steps[name].action is Action.RUN and name not in said

    for step in order:
        if plan.steps[step.name].action is not Action.RUN or step.name in said:
            continue
        gate = check_when(step, run_date) or ask_adopt(step, run_date, workdir, plan.adoptable)
        if gate is None:
            continue
        if gate.state.is_done:
            said[step.name] = f"{gate.word} ({gate.says})"
            continue
        said[step.name] = f"fail ({gate.note})"
        for name in blocked_behind(step.name, plan.dependents, blockable):
            said[name] = f"blocked (behind {step.name}, whose when= fails)"
    return said


def _night_of(ledger: Ledger | None, launch_id: int) -> str:
    """A launch as a person is told it: its number within its night, and that night."""
    if ledger is None:
        return f"a launch (id {launch_id})"
    day, number = ledger.night_of(launch_id)
    return f"launch {number} for {day}"


_RUN_IF_SAYS = {
    "always": "once its prerequisites have ended, however they ended",
    "failure": "only if one of its prerequisites does not succeed",
}


def _describe(planned: StepPlan, step: Step, run_date: date, numbers: dict[int, int]) -> str:
    was, action = planned.was, planned.action
    if action is Action.RUN:
        notes = [f"was {was}"] if was is not StepState.PENDING else []
        if step.wait is not None:
            notes.append(f"wait: check {step.wait.describe()}")
        if step.run_if != "success":
            notes.append(_RUN_IF_SAYS[step.run_if])
        return "run" + (f" ({'; '.join(notes)})" if notes else "")
    if action is Action.SKIP:
        by = numbers.get(planned.set_by or 0)
        return f"skip ({was}" + (f" in launch {by})" if by else ")")
    if action is Action.LEAVE:
        return f"leave as it is ({was}; not in --rerun)"
    if action is Action.HOLD:
        return (f"HOLD (not idempotent, and {was}: check what it did, then "
                f"`overnight mark {step.batch} {step.name} --redo --date {run_date}`)")
    if action is Action.BLOCK:
        return f"blocked (behind {planned.cause}, which is held)"
    launch = numbers.get(planned.attempt.launch_id, "?") if planned.attempt else "?"
    if action is Action.REATTACH:
        return f"await (still on queue {step.queue} since launch {launch})"
    return f"running now (in launch {launch})"
