"""`overnight run --dry-run`: what a launch would do, decided as the runner would."""

from __future__ import annotations

from datetime import date

import click

from overnight.batch import with_downstream
from overnight.ledger import Ledger
from overnight.loader import LoadedBatch
from overnight.states import StepState


def print_plan(
    loaded: LoadedBatch,
    ledger: Ledger | None,
    run_date: date,
    rerun: list[str],
    downstream: bool,
    fresh: bool,
) -> None:
    batch = loaded.batch
    states: dict[str, StepState] = {}
    launches: dict[str, int | None] = {}
    if ledger is not None:
        run = ledger.find_run(batch.name, run_date.isoformat())
        if run is not None:
            for row in ledger.steps(run.id):
                states[row.name] = StepState(row.state)
                launches[row.name] = row.launch_id
    selection: set[str] | None = None
    if rerun:
        selection = set(with_downstream(rerun, batch.dependents()) if downstream else rerun)
    click.echo(f"{batch.name} for {run_date.isoformat()} (dry run: nothing is started or recorded)")
    to_run = 0
    for step in loaded.order:
        state = states.get(step.name, StepState.PENDING)
        if fresh or (selection is not None and step.name in selection):
            what = "run"
        elif selection is not None:
            what = f"leave as it is ({state}; not in --rerun)"
        elif state.is_done:
            by = launches.get(step.name)
            what = f"skip ({state}" + (f" in launch {by})" if by else ")")
        elif state is StepState.INTERRUPTED and not step.idempotent:
            what = "HOLD (not idempotent, interrupted by a crash: needs `overnight mark --redo`)"
        else:
            what = "run" + (f" (was {state})" if state is not StepState.PENDING else "")
        if what.startswith("run"):
            to_run += 1
            if step.when is not None:
                try:
                    if not step.when(run_date):
                        what = "skip (when= is false for this date)"
                        to_run -= 1
                except Exception as e:  # noqa: BLE001
                    what = f"fail (when= raised {e!r})"
        after = f"  after {', '.join(step.after)}" if step.after else ""
        click.echo(f"  {step.name:<24} {what}{after}")
        if what.startswith("run") and step.command is not None:
            rendered = step.render_command(run_date)
            text = rendered if isinstance(rendered, str) else " ".join(rendered)
            click.echo(f"  {'':<24}   $ {text}")
    click.echo(f"{to_run} of {len(loaded.order)} steps would run")
