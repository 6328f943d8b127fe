"""`overnight run`, `overnight cancel` and `overnight mark`: the commands that change a night.

The runner, the lock and the report are imported when the command runs, not before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from overnight.cli.common import (
    BatchRef,
    complete_batch,
    get_config,
    open_ledger,
    parse_date,
    refuse_future,
    who_am_i,
)

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import Ledger


@click.command()
@click.argument("batch", shell_complete=complete_batch)
@click.argument("steps", nargs=-1)
@click.option("--date", "date_text", metavar="D", help="Business date (YYYY-MM-DD); default yesterday.")
@click.option("--workers", "-w", type=click.IntRange(1, 1024), help="Steps at once (default 1).")
@click.option("--rerun", is_flag=True, help="Run the STEPS named again (nothing else).")
@click.option("--downstream", is_flag=True, help="With --rerun: and everything that depends on them.")
@click.option("--fresh", is_flag=True, help="Forget earlier successes for that date; run everything.")
@click.option("--dry-run", is_flag=True, help="Print what would run and what would be skipped.")
@click.option("--fail-fast", is_flag=True, help="After a failure, start no new step.")
@click.option("--ignore-after", is_flag=True,
              help="Start without waiting for the batches this one runs after (after= in the config).")
@click.option("--mail/--no-mail", default=None, help="Send the report (default: as configured).")
@click.option("--quiet", "-q", is_flag=True, help="Print only failures and the summary.")
@click.option("--yes", "-y", is_flag=True, help="With --rerun: do not ask to confirm.")
@click.option("--allow-future", is_flag=True, help="Allow a --date after today.")
@click.pass_context
def run(
    ctx: click.Context, batch: str, steps: tuple[str, ...], date_text: str | None,
    workers: int | None, rerun: bool, downstream: bool, fresh: bool, dry_run: bool,
    fail_fast: bool, ignore_after: bool, mail: bool | None, quiet: bool, yes: bool,
    allow_future: bool,
) -> None:
    """Start the run of BATCH for a date, or resume it."""
    from overnight.errors import AlreadyRunning, OvernightError

    config = get_config(ctx)
    ref = BatchRef(config, batch)
    try:
        loaded = ref.load()
        run_date = parse_date(date_text, config, ref.name)
        _check_steps(ref, loaded, steps, rerun, downstream, fresh)
        _check_queues(config, loaded)
        _check_resources(config, loaded)
    except OvernightError as e:
        if not dry_run:
            _could_not_start(config, ref, date_text, mail, e)
        raise
    refuse_future(run_date, config, ref.name, allow_future)
    if workers is None:
        workers = (ref.settings.workers if ref.settings and ref.settings.workers else None) or config.workers

    if rerun and not dry_run:
        _confirm_rerun(loaded, steps, downstream, yes)
    if dry_run:
        from overnight.dryrun import print_plan

        print_plan(loaded, open_ledger(config, readonly=True), config.state_dir, run_date,
                   rerun=steps, downstream=downstream, fresh=fresh,
                   after=None if ignore_after else _after(config, ref), workdir=ref.workdir)
        return

    from overnight.engine import RunOptions
    from overnight.nightwatch import NightWatch, settings_for

    options = RunOptions(
        date=run_date,
        workers=workers,
        rerun=list(steps),
        downstream=downstream,
        fresh=fresh,
        fail_fast=fail_fast,
        ignore_after=ignore_after,
        trigger=os.environ.get("OVERNIGHT_TRIGGER", "manual"),
        launched_by=who_am_i(),
    )
    watch = NightWatch(settings_for(config, ref.name, mail))
    try:
        ledger, result = _launch(config, ref, loaded, options, quiet, watch)
    except AlreadyRunning as e:
        if options.trigger in ("scheduled", "cron"):
            from overnight.scheduling.busy import batch_was_busy

            batch_was_busy(config, ref.name, run_date, str(e), options.trigger)
        raise
    # After the lock is released: a slow mail server must not turn the next launch away.
    _ping_end(ledger, result, watch)
    _after_launch(config, ref, ledger, result, mail)
    _write_metrics(config, ledger)
    watch.close()  # the alerts still on their way
    ctx.exit(result.exit_code)


def _could_not_start(config: Config, ref: BatchRef, date_text: str | None, mail: bool | None,
                     error: Exception) -> None:
    """A launch by the scheduler or a cron line (or with --mail) that cannot start is
    recorded as a failed launch and reported; by hand, the one line is enough."""
    from overnight.errors import OvernightError

    trigger = os.environ.get("OVERNIGHT_TRIGGER", "manual")
    if not ref.name or mail is False or not (mail or trigger in ("scheduled", "cron")):
        return
    try:
        run_date = parse_date(date_text, config, ref.name)
    except OvernightError:
        return  # no date to record it for
    from overnight.notstarted import record_and_report

    record_and_report(config, ref.name, run_date, str(error), trigger=trigger, launched_by=who_am_i(),
                      mail=mail, batch_arg=ref.argument)


def _check_steps(
    ref: BatchRef, loaded: Any, steps: tuple[str, ...], rerun: bool, downstream: bool, fresh: bool
) -> None:
    from overnight.errors import ConfigError, shown

    if steps and not rerun:
        raise ConfigError(f"unexpected argument {shown(steps[0])} (to run steps again: --rerun STEP...)")
    if rerun and not steps:
        raise ConfigError("--rerun needs the names of the steps to run again")
    if downstream and not rerun:
        raise ConfigError("--downstream goes with --rerun STEP...")
    if rerun and fresh:
        raise ConfigError("--rerun and --fresh cannot go together")
    ref.check_steps(loaded, steps, "--rerun")


def _confirm_rerun(loaded: Any, steps: tuple[str, ...], downstream: bool, yes: bool) -> None:
    """Say which steps run again, and warn of those that are not idempotent; a person at a
    terminal confirms first (cron, scripts and the dashboard, without one, go ahead)."""
    import sys

    from overnight.errors import NotConfirmed
    from overnight.rerun import rerun_listing

    listing = rerun_listing(list(loaded.batch.steps.values()), steps, downstream)
    click.echo(listing.summary())
    if warning := listing.warning():
        click.echo(f"warning: {warning}")
    if yes or not listing.needs_a_yes or not sys.stdin.isatty():
        return
    if not click.confirm("Run them again?", default=False):
        raise NotConfirmed("not confirmed: nothing was run")


def _launch(
    config: Config, ref: BatchRef, loaded: Any, options: Any, quiet: bool, watch: Any,
) -> tuple[Ledger, Any]:
    """One launch, holding the batch's lock: the ledger it wrote to, and its LaunchResult."""
    from overnight.commandline import CommandLine
    from overnight.engine import Runner
    from overnight.errors import LedgerError
    from overnight.lock import BatchLock
    from overnight.progress import make_progress

    lock = BatchLock(config.state_dir, ref.name)
    lock.acquire(options.date.isoformat())
    try:
        ledger = open_ledger(config)
        assert ledger is not None
        logs = config.state.run_logs(ref.name, options.date.isoformat())
        runner = Runner(
            ref.name,
            loaded.order,
            ledger,
            options=options,
            workdir=ref.workdir,
            logs=logs,
            progress=make_progress(quiet, command_line=CommandLine.of(config), batch_arg=ref.argument),
            executors=_remote_executors(config, loaded),
            lock=lock,
            pool=_pool(config, loaded),
            after=_after(config, ref),
            watch=watch,
        )
        try:
            logs.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LedgerError(
                f"{logs.folder}: cannot create the folder for the steps' logs ({e.strerror}): "
                "check the space, owner and mode of the state directory"
            ) from None
        return ledger, runner.run()
    finally:
        lock.release()


def _check_queues(config: Config, loaded: Any) -> None:
    from overnight.errors import DefinitionError

    remote = [s for s in loaded.order if s.queue]
    if remote and config.celery is None:
        raise DefinitionError(
            f"{loaded.path}: step {remote[0].name!r} names queue {remote[0].queue!r}, but "
            "overnight.toml has no [celery] section with a broker"
        )


def _check_resources(config: Config, loaded: Any) -> None:
    if any(s.resources for s in loaded.order):
        from overnight.resources import check_requests

        check_requests(loaded.order, config.resources, str(loaded.path))


def _pool(config: Config, loaded: Any) -> Any:
    if not any(s.resources for s in loaded.order):
        return None
    from overnight.resources import ResourcePool

    return ResourcePool(config.state.resources, config.resources)


def _after(config: Config, ref: BatchRef) -> Any:
    if ref.settings is None or not ref.settings.after:
        return None
    from overnight.batchafter import AfterBatches

    return AfterBatches(config.state_dir, ref.settings.after, ref.settings.wait_up_to)


def _remote_executors(config: Config, loaded: Any) -> dict[str, Any]:
    if not any(s.queue for s in loaded.order):
        return {}
    from overnight.remote.executor import celery_executor_factory

    return {"celery": celery_executor_factory(config, loaded)}


def _after_launch(config: Config, ref: BatchRef, ledger: Ledger, result: Any, mail: bool | None) -> None:
    """Reports after a launch (mail, webhooks); they never change the run's outcome."""
    # report.after_launch's own first rule, checked before importing it (its email and
    # html modules are ~15 ms of every manual `overnight run`): a launch by hand without
    # --mail, or any launch with --no-mail, reports nothing.
    if mail is False or (mail is None and os.environ.get("OVERNIGHT_TRIGGER") not in ("scheduled", "cron")):
        return
    try:
        from overnight.reporting import report
    except ImportError:
        return
    report.after_launch(config, ref.name, ledger, result, mail, batch_arg=ref.argument)


def _ping_end(ledger: Ledger, result: Any, watch: Any) -> None:
    """The heartbeat's end: `<url>` or `<url>/fail`; never changes the night's outcome."""
    url = watch.settings.ping_url
    if not url or not watch.settings.alerts:
        return
    from overnight.reporting.pings import ping_end

    watch.await_start_ping()
    try:
        pinged = ping_end(ledger, url, result.run_id, result.launch_id)
    except Exception as e:  # noqa: BLE001 - a monitor must never turn into a failed night
        warn(f"the heartbeat ping could not be made: {e}")
        return
    if pinged is not None and not pinged.sent:
        warn(f"heartbeat ping {pinged.url} not sent: {pinged.reason} (recorded)")


def _write_metrics(config: Config, ledger: Ledger) -> None:
    if config.metrics is not None and config.metrics.textfile is not None:
        from overnight.metrics import write_textfile

        write_textfile(config, ledger, warn)


def warn(text: str) -> None:
    click.echo(f"overnight: {text}", err=True)


@click.command()
@click.argument("batch", shell_complete=complete_batch)
@click.option("--wait", default=30.0, show_default=True, help="Seconds to wait for it to stop.")
@click.pass_context
def cancel(ctx: click.Context, batch: str, wait: float) -> None:
    """Stop a live launch cleanly (its steps are stopped and recorded cancelled)."""
    import signal
    import time

    from overnight.errors import ConfigError
    from overnight.lock import holder

    config = get_config(ctx)
    name = BatchRef(config, batch).resolve_name()
    info = holder(config.state_dir, name)
    if info is None:
        raise ConfigError(f"batch {name!r} is not running")
    pid = info.get("pid")
    if not pid:
        raise ConfigError(f"batch {name!r} is running but its holder cannot be read")
    import socket

    if info.get("host") not in (None, socket.gethostname()):
        raise ConfigError(f"batch {name!r} runs on {info['host']}; cancel it there")
    os.kill(int(pid), signal.SIGTERM)
    click.echo(f"asked {name} (pid {pid}) to cancel")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if holder(config.state_dir, name) is None:
            click.echo(f"{name}: cancelled")
            return
        time.sleep(0.05)
    raise ConfigError(f"batch {name!r} (pid {pid}) has not stopped after {wait:g}s")


@click.command()
@click.argument("batch", shell_complete=complete_batch)
@click.argument("steps", nargs=-1, required=True)
@click.option("--done", "action", flag_value="done", help="Record it as succeeded.")
@click.option("--skip", "action", flag_value="skip", help="Record it as skipped (what depends on it runs).")
@click.option("--redo", "action", flag_value="redo", help="Run it again on the next resume.")
@click.option("--downstream", is_flag=True, help="And everything that depends on it.")
@click.option("--date", "date_text", metavar="D", help="The run for that date (default: the latest).")
@click.option("--reason", help="Why: recorded with your name.")
@click.option("--allow-future", is_flag=True, help="Allow a --date after today.")
@click.pass_context
def mark(
    ctx: click.Context, batch: str, steps: tuple[str, ...], action: str | None,
    downstream: bool, date_text: str | None, reason: str | None, allow_future: bool,
) -> None:
    """An operator's word on a step: --done, --skip or --redo."""
    from overnight.commandline import CommandLine
    from overnight.errors import AlreadyRunning, ConfigError
    from overnight.lock import BatchLock
    from overnight.marks import apply_mark

    if action is None:
        raise ConfigError("say what to record: --done, --skip or --redo")
    config = get_config(ctx)
    ref = BatchRef(config, batch)
    loaded = ref.load()
    run_date = _date_to_mark(config, ref.name, date_text)
    refuse_future(run_date, config, ref.name, allow_future)
    ref.check_steps(loaded, steps)
    lock = BatchLock(config.state_dir, ref.name)
    try:
        lock.acquire(run_date.isoformat())
    except AlreadyRunning as e:
        raise AlreadyRunning(f"{e}; mark steps once it has ended") from None
    try:
        ledger = open_ledger(config)
        assert ledger is not None
        again = CommandLine.of(config).resume_hint(ref.argument, run_date.isoformat())
        changes = apply_mark(ledger, loaded, run_date, list(steps), action, downstream, who_am_i(), reason,
                             resume_hint=again)
    finally:
        lock.release()
    for step, old, new in changes:
        click.echo(f"{ref.name} for {run_date}: {step}: {old} -> {new}")
    if not changes:
        click.echo(f"{ref.name} for {run_date}: nothing changed")
    elif any(new.value == "pending" for _, _, new in changes):
        click.echo(f"to run {'them' if len(changes) > 1 else 'it'}: {again}")


def _date_to_mark(config: Config, batch: str, date_text: str | None):  # noqa: ANN202 - a date
    """--date, or the run `status` shows without one: the one with the latest activity."""
    from datetime import date

    from overnight.errors import ConfigError

    if date_text is not None:
        return parse_date(date_text, config, batch)
    ledger = open_ledger(config, readonly=True)
    run = ledger.latest_run(batch) if ledger is not None else None
    if ledger is not None:
        ledger.close()
    if run is None:
        raise ConfigError(f"no run of batch {batch!r} yet: say which date to mark (--date YYYY-MM-DD)")
    return date.fromisoformat(run.date)
