"""`overnight status`, `history`, `logs` and `list`: the commands that only read the ledger."""

from __future__ import annotations

import os
import sys

import click

from overnight.cli.common import BatchRef, complete_batch, find_run, get_config, open_ledger, parse_date


@click.command()
@click.argument("batch", required=False, shell_complete=complete_batch)
@click.option("--date", "date_text", metavar="D", help="The run for that date (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, batch: str | None, date_text: str | None, as_json: bool) -> None:
    """Each step of a run: state, duration, attempts, log.

    Exits 1 when the run shown failed, crashed or was cancelled (without BATCH: when the
    latest run of any batch did), so a script can gate on it.
    """
    from overnight import views

    config = get_config(ctx)
    ledger = open_ledger(config, readonly=True)
    if batch is None:
        ctx.exit(views.print_overview(config, ledger, as_json))
    name = BatchRef(config, batch).resolve_name()
    run_date = parse_date(date_text, config, name) if date_text else None
    run_row = find_run(ledger, name, run_date)
    assert ledger is not None
    ctx.exit(views.print_status(ledger, run_row, as_json))


@click.command()
@click.argument("batch", required=False, shell_complete=complete_batch)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", "-n", default=30, show_default=True, help="How many runs.")
@click.pass_context
def history(ctx: click.Context, batch: str | None, as_json: bool, limit: int) -> None:
    """Past runs and their launches, newest first."""
    from overnight import views

    config = get_config(ctx)
    ledger = open_ledger(config, readonly=True)
    name = BatchRef(config, batch).resolve_name() if batch else None
    views.print_history(ledger, name, limit, as_json)


@click.command()
@click.argument("batch", shell_complete=complete_batch)
@click.argument("step")
@click.option("--date", "date_text", metavar="D", help="The run for that date (default: the latest).")
@click.option("--attempt", type=int, help="Which attempt (default: the latest).")
@click.option("--tail", "-n", "tail", type=click.IntRange(0), metavar="N", help="Only the last N lines.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what it writes while it runs.")
@click.pass_context
def logs(
    ctx: click.Context, batch: str, step: str, date_text: str | None, attempt: int | None,
    tail: int | None, follow: bool,
) -> None:
    """Print a step's output (in constant memory, however large)."""
    from overnight.errors import ConfigError, shown
    from overnight.logtail import show_log

    config = get_config(ctx)
    name = BatchRef(config, batch).resolve_name()
    ledger = open_ledger(config, readonly=True)
    run_row = find_run(ledger, name, parse_date(date_text, config, name) if date_text else None)
    assert ledger is not None
    attempts = ledger.attempts(run_row.id, step)
    if not attempts and step not in (steps := ledger.step_states(run_row.id)):
        from overnight.errors import did_you_mean

        raise ConfigError(f"batch {name!r} has no step {shown(step)}{did_you_mean(step, steps)}")
    if not attempts:
        if steps[step].is_done:
            raise ConfigError(f"step {shown(step)} of {name} for {run_row.date} is {steps[step].value}, with "
                              "no attempt on record (marked by hand, adopted, or pruned)")
        raise ConfigError(f"step {shown(step)} of {name} for {run_row.date} has not run")
    chosen = attempts[-1] if attempt is None else next((a for a in attempts if a.number == attempt), None)
    if chosen is None:
        numbers = ", ".join(str(a.number) for a in attempts)
        raise ConfigError(f"step {step!r} has no attempt {attempt} (it has {numbers})")
    if not chosen.log_path or not os.path.exists(chosen.log_path):
        raise ConfigError(f"the log of {step} attempt {chosen.number} is gone ({chosen.log_path})")
    still_running = None
    if follow:
        from overnight.lock import holder

        def still_running() -> bool:
            now = next((a for a in ledger.attempts(run_row.id, step) if a.id == chosen.id), None)
            live = holder(config.state_dir, name) is not None  # its runner may have died
            return live and now is not None and now.state == "running"

    show_log(chosen.log_path, sys.stdout.buffer, tail=tail, follow=still_running)


# -- list, cancel, mark ------------------------------------------------------------------


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_batches(ctx: click.Context, as_json: bool) -> None:
    """Batches, their schedule, next fire time and last outcome."""
    from overnight import views

    config = get_config(ctx)
    views.print_batch_list(config, open_ledger(config, readonly=True), as_json)
