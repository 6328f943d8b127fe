"""The command line: thin, over the modules that do the work.

Each command imports what it needs when it runs, so `overnight status` does not pay for
the runner and `overnight run` does not pay for the web server.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from overnight.errors import OvernightError

if TYPE_CHECKING:
    from overnight.config import Config
    from overnight.ledger import Ledger, RunRow


# Commands that live in their own modules, imported only when that command runs.
LAZY_COMMANDS = {
    "scheduler": ("overnight.cli.schedule", "scheduler", "Launch each batch at its schedule (a daemon)."),
    "next": ("overnight.cli.schedule", "next_fires", "Upcoming fire times and the dates they run for."),
    "cron": ("overnight.cli.schedule", "cron", "Crontab lines that run each batch at its schedule."),
    "report": ("overnight.cli.report", "report", "Show or send the report of a run."),
    "mail-run": ("overnight.cli.report", "mail_run", "Run any command and mail its output."),
    "backfill": ("overnight.cli.report", "backfill", "Run a batch for each date in a range."),
    "web": ("overnight.cli.web", "web", "Serve the dashboard."),
    "user": ("overnight.cli.web", "user", "Manage dashboard users."),
    "worker": ("overnight.cli.worker", "worker", "Run steps sent to a queue (Celery worker)."),
}


class OvernightGroup(click.Group):
    """Turns every OvernightError into one line and its exit code: never a traceback.

    Also loads the LAZY_COMMANDS on demand, so `overnight status` imports no web server.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None or name not in LAZY_COMMANDS:
            return command
        module_name, attr, _ = LAZY_COMMANDS[name]
        import importlib

        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][2]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=60)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OvernightError as e:
            click.echo(f"overnight: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=OvernightGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", envvar="OVERNIGHT_CONFIG", metavar="PATH",
    help="overnight.toml to use (default: ./overnight.toml, or none).",
)
@click.version_option(package_name="overnight")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Run a night's batch of jobs in dependency order, and pick up where it left off."""
    ctx.obj = {"config_path": config_path}


def main() -> None:
    """The console entry point. Every way out of a mistake is one line on stderr and an
    exit code: click's own usage errors (a bad option value, an unknown option) would
    otherwise print a usage block of several lines."""
    # SIGTERM (`overnight cancel`, systemd, a shutdown) before the runner has its own
    # handlers: stop as Ctrl-C does, recording nothing half-done, with one line and exit 130
    # rather than a silent death by signal. The runner installs its own handlers first thing.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = cli.main(prog_name="overnight", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # `overnight` alone: the help, as click shows it
        sys.exit(e.exit_code)
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "overnight"
        click.echo(f"{where}: {_one_line(e.format_message())} (see {where} --help)", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"overnight: {_one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("overnight: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- shared helpers ----------------------------------------------------------------------


def get_config(ctx: click.Context) -> Config:
    if "config" not in ctx.obj:
        from overnight.config import load_config

        ctx.obj["config"] = load_config(ctx.obj["config_path"])
    return ctx.obj["config"]


def parse_date(value: str | None, config: Config, batch: str | None) -> date:
    """A --date value (YYYY-MM-DD, today, yesterday), or the batch's default date."""
    from overnight.errors import ConfigError

    default = config.default_date(batch)
    if value is None:
        return default
    text = value.strip().lower()
    if text in ("today", "yesterday"):
        today = datetime.now(tz=config.zone_for(batch)).date()
        return today if text == "today" else today - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        from overnight.errors import shown

        detail = f" ({e})" if value not in str(e) else ""  # not the value a second time
        raise ConfigError(
            f"--date {shown(value, quote=False)}: not a valid date{detail}; use YYYY-MM-DD"
        ) from None


class BatchRef:
    """What a BATCH argument names: its ledger name and, when loadable, its module."""

    def __init__(self, config: Config, ref: str) -> None:
        from overnight.config import BatchConfig
        from overnight.errors import DefinitionError, shown
        from overnight.loader import looks_like_path

        self.config = config
        self.settings: BatchConfig | None = config.batches.get(ref)
        if self.settings is not None:
            self.name = ref
            self.module_ref = self.settings.module
            self.base_dir = config.base_dir
        elif looks_like_path(ref):
            path = os.path.abspath(ref)
            if not os.path.isfile(path):
                raise DefinitionError(f"{shown(ref, quote=False)}: no such batch module file")
            self.name = ""  # known once loaded
            self.module_ref = path
            self.base_dir = config.base_dir
        else:
            self.name = ref
            self.module_ref = None
            self.base_dir = config.base_dir
        self.ref = ref

    def load(self):  # noqa: ANN201 - a LoadedBatch
        from overnight.errors import DefinitionError, shown
        from overnight.loader import load_batch

        if self.module_ref is None:
            known = ", ".join(sorted(self.config.batches)) or "none"
            where = self.config.path or "no overnight.toml here"
            raise DefinitionError(
                f"unknown batch {shown(self.ref)}: not in {where} (known: {known}) and not a "
                "path to a batch module"
            )
        loaded = load_batch(self.module_ref, self.base_dir)
        if self.settings is not None and loaded.batch.name != self.name:
            raise DefinitionError(
                f"{loaded.path}: the module defines Batch({loaded.batch.name!r}) but "
                f"{self.config.path} calls it {self.name!r}; make them the same"
            )
        self.name = loaded.batch.name
        return loaded

    @property
    def argument(self) -> str:
        """How a command names this batch again: BATCH as the command line takes it."""
        if self.settings is not None or self.module_ref is None:
            return self.name or self.ref
        return self.module_ref  # an absolute path: a batch run by path has no configured name

    def resolve_name(self) -> str:
        """The ledger name, loading the module only when BATCH was a path."""
        if not self.name:
            self.load()
        return self.name

    @property
    def workdir(self):  # noqa: ANN201 - a Path
        from pathlib import Path

        if self.config.path is not None:
            return self.config.base_dir
        return Path(self.module_ref).parent if self.module_ref else self.config.base_dir


def open_ledger(config: Config, *, readonly: bool = False) -> Ledger | None:
    """The ledger, or None when reading and there is none yet."""
    from overnight.ledger import Ledger

    if readonly and not config.state.ledger.exists():
        return None
    return Ledger.open(config.state.ledger, readonly=readonly)


def find_run(ledger: Ledger | None, batch: str, run_date: date | None) -> RunRow:
    from overnight.errors import ConfigError, shown

    run = None
    if ledger is not None:
        run = ledger.find_run(batch, run_date.isoformat()) if run_date else ledger.latest_run(batch)
    if run is None:
        when = f" for {run_date.isoformat()}" if run_date else ""
        raise ConfigError(f"no run of batch {shown(batch)}{when} in the ledger yet")
    return run


def who_am_i() -> str:
    import getpass

    try:
        return os.environ.get("OVERNIGHT_LAUNCHED_BY") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


# -- run ---------------------------------------------------------------------------------


@cli.command()
@click.argument("batch")
@click.argument("steps", nargs=-1)
@click.option("--date", "date_text", metavar="D", help="Business date (YYYY-MM-DD); default yesterday.")
@click.option("--workers", "-w", type=click.IntRange(1, 1024), help="Steps at once (default 1).")
@click.option("--rerun", is_flag=True, help="Run the STEPS named again (nothing else).")
@click.option("--downstream", is_flag=True, help="With --rerun: and everything that depends on them.")
@click.option("--fresh", is_flag=True, help="Forget earlier successes for that date; run everything.")
@click.option("--dry-run", is_flag=True, help="Print what would run and what would be skipped.")
@click.option("--fail-fast", is_flag=True, help="After a failure, start no new step.")
@click.option("--mail/--no-mail", default=None, help="Send the report (default: as configured).")
@click.option("--quiet", "-q", is_flag=True, help="Print only failures and the summary.")
@click.pass_context
def run(
    ctx: click.Context, batch: str, steps: tuple[str, ...], date_text: str | None,
    workers: int | None, rerun: bool, downstream: bool, fresh: bool, dry_run: bool,
    fail_fast: bool, mail: bool | None, quiet: bool,
) -> None:
    """Start the run of BATCH for a date, or resume it."""
    from overnight.errors import ConfigError, shown

    config = get_config(ctx)
    ref = BatchRef(config, batch)
    loaded = ref.load()
    run_date = parse_date(date_text, config, ref.name)
    if steps and not rerun:
        raise ConfigError(f"unexpected argument {shown(steps[0])} (to run steps again: --rerun STEP...)")
    if rerun and not steps:
        raise ConfigError("--rerun needs the names of the steps to run again")
    if downstream and not rerun:
        raise ConfigError("--downstream goes with --rerun STEP...")
    if rerun and fresh:
        raise ConfigError("--rerun and --fresh cannot go together")
    for name in steps:
        if name not in loaded.batch.steps:
            raise ConfigError(
                f"--rerun {shown(name, quote=False)}: batch {ref.name!r} has no step of that name"
            )
    _check_queues(config, loaded)
    if workers is None:
        workers = (ref.settings.workers if ref.settings and ref.settings.workers else None) or config.workers

    if dry_run:
        from overnight.dryrun import print_plan

        print_plan(loaded, open_ledger(config, readonly=True), run_date, list(steps), downstream, fresh)
        return

    from overnight.commandline import CommandLine
    from overnight.engine import Runner, RunOptions
    from overnight.errors import LedgerError
    from overnight.lock import BatchLock
    from overnight.progress import make_progress

    lock = BatchLock(config.state_dir, ref.name)
    lock.acquire(run_date.isoformat())
    try:
        ledger = open_ledger(config)
        assert ledger is not None
        options = RunOptions(
            date=run_date,
            workers=workers,
            rerun=list(steps),
            downstream=downstream,
            fresh=fresh,
            fail_fast=fail_fast,
            trigger=os.environ.get("OVERNIGHT_TRIGGER", "manual"),
            launched_by=who_am_i(),
        )
        logs = config.state.run_logs(ref.name, run_date.isoformat())
        runner = Runner(
            ref.name,
            loaded.order,
            ledger,
            options=options,
            workdir=ref.workdir,
            logs=logs,
            progress=make_progress(quiet, command_line=CommandLine.of(config), batch_arg=ref.argument),
            executors=_remote_executors(config, loaded),
        )
        try:
            logs.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LedgerError(
                f"{logs.folder}: cannot create the folder for the steps' logs ({e.strerror}): "
                "check the space, owner and mode of the state directory"
            ) from None
        result = runner.run()
    finally:
        lock.release()
    # After the lock is released: a slow mail server must not turn the next launch away.
    _after_launch(config, ref, ledger, result, mail)
    ctx.exit(result.exit_code)


def _check_queues(config: Config, loaded: Any) -> None:
    from overnight.errors import DefinitionError

    remote = [s for s in loaded.order if s.queue]
    if remote and config.celery is None:
        raise DefinitionError(
            f"{loaded.path}: step {remote[0].name!r} names queue {remote[0].queue!r}, but "
            "overnight.toml has no [celery] section with a broker"
        )


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
    if mail is False or (mail is None and os.environ.get("OVERNIGHT_TRIGGER") != "scheduled"):
        return
    try:
        from overnight.reporting import report
    except ImportError:
        return
    report.after_launch(config, ref.name, ledger, result, mail, batch_arg=ref.argument)


# -- status and history ------------------------------------------------------------------


@cli.command()
@click.argument("batch", required=False)
@click.option("--date", "date_text", metavar="D", help="The run for that date (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, batch: str | None, date_text: str | None, as_json: bool) -> None:
    """Each step of a run: state, duration, attempts, log."""
    from overnight import views

    config = get_config(ctx)
    ledger = open_ledger(config, readonly=True)
    if batch is None:
        views.print_overview(config, ledger, as_json)
        return
    name = BatchRef(config, batch).resolve_name()
    run_date = parse_date(date_text, config, name) if date_text else None
    run_row = find_run(ledger, name, run_date)
    assert ledger is not None
    views.print_status(ledger, run_row, as_json)


@cli.command()
@click.argument("batch", required=False)
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


@cli.command()
@click.argument("batch")
@click.argument("step")
@click.option("--date", "date_text", metavar="D", help="The run for that date (default: the latest).")
@click.option("--attempt", type=int, help="Which attempt (default: the latest).")
@click.pass_context
def logs(ctx: click.Context, batch: str, step: str, date_text: str | None, attempt: int | None) -> None:
    """Print a step's output."""
    from overnight.errors import ConfigError, shown

    config = get_config(ctx)
    name = BatchRef(config, batch).resolve_name()
    ledger = open_ledger(config, readonly=True)
    run_row = find_run(ledger, name, parse_date(date_text, config, name) if date_text else None)
    assert ledger is not None
    attempts = ledger.attempts(run_row.id, step)
    if not attempts:
        raise ConfigError(f"step {shown(step)} of {name} for {run_row.date} has not run")
    chosen = attempts[-1] if attempt is None else next((a for a in attempts if a.number == attempt), None)
    if chosen is None:
        numbers = ", ".join(str(a.number) for a in attempts)
        raise ConfigError(f"step {step!r} has no attempt {attempt} (it has {numbers})")
    if not chosen.log_path or not os.path.exists(chosen.log_path):
        raise ConfigError(f"the log of {step} attempt {chosen.number} is gone ({chosen.log_path})")
    with open(chosen.log_path, "rb") as f:
        sys.stdout.buffer.write(f.read())


# -- list, cancel, mark ------------------------------------------------------------------


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_batches(ctx: click.Context, as_json: bool) -> None:
    """Batches, their schedule, next fire time and last outcome."""
    from overnight import views

    config = get_config(ctx)
    views.print_batch_list(config, open_ledger(config, readonly=True), as_json)


@cli.command()
@click.argument("batch")
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


@cli.command()
@click.argument("batch")
@click.argument("steps", nargs=-1, required=True)
@click.option("--done", "action", flag_value="done", help="Record it as succeeded.")
@click.option("--skip", "action", flag_value="skip", help="Record it as skipped (what depends on it runs).")
@click.option("--redo", "action", flag_value="redo", help="Run it again on the next resume.")
@click.option("--downstream", is_flag=True, help="And everything that depends on it.")
@click.option("--date", "date_text", metavar="D", help="Business date (default yesterday).")
@click.option("--reason", help="Why: recorded with your name.")
@click.pass_context
def mark(
    ctx: click.Context, batch: str, steps: tuple[str, ...], action: str | None,
    downstream: bool, date_text: str | None, reason: str | None,
) -> None:
    """An operator's word on a step: --done, --skip or --redo."""
    from overnight.errors import AlreadyRunning, ConfigError, shown
    from overnight.lock import BatchLock
    from overnight.marks import apply_mark

    if action is None:
        raise ConfigError("say what to record: --done, --skip or --redo")
    config = get_config(ctx)
    ref = BatchRef(config, batch)
    loaded = ref.load()
    run_date = parse_date(date_text, config, ref.name)
    for name in steps:
        if name not in loaded.batch.steps:
            raise ConfigError(f"batch {ref.name!r} has no step {shown(name)}")
    lock = BatchLock(config.state_dir, ref.name)
    try:
        lock.acquire(run_date.isoformat())
    except AlreadyRunning as e:
        raise AlreadyRunning(f"{e}; mark steps once it has ended") from None
    try:
        ledger = open_ledger(config)
        assert ledger is not None
        changes = apply_mark(ledger, loaded, run_date, list(steps), action, downstream, who_am_i(), reason)
    finally:
        lock.release()
    for step, old, new in changes:
        click.echo(f"{step}: {old} -> {new}")
    if not changes:
        click.echo("nothing changed")


if __name__ == "__main__":  # pragma: no cover
    main()
