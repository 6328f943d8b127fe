"""The command line: thin, over the modules that do the work.

    cli/__init__.py  the `overnight` group, its error handling and the table of commands
    cli/common.py    what commands share: the config, BATCH, --date, the ledger
    cli/run.py       run, cancel, mark          cli/read.py      status, history, logs, list
    cli/report.py    report, mail-run           cli/backfill.py  backfill
    cli/schedule.py  scheduler, next, cron      cli/web.py       web, user
    cli/worker.py    worker                     cli/check.py     check
    cli/prune.py     prune                      cli/adopt.py     import crontab, import luigi, init

Each command imports what it needs when it runs, so `overnight status` does not pay for
the runner and `overnight run` does not pay for the web server.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from overnight.errors import OvernightError

# Commands that live in their own modules, imported only when that command runs.
LAZY_COMMANDS = {
    "scheduler": ("overnight.cli.schedule", "scheduler", "Launch each batch at its schedule (a daemon)."),
    "next": ("overnight.cli.schedule", "next_fires", "Upcoming fire times and the dates they run for."),
    "cron": ("overnight.cli.schedule", "cron", "Crontab lines that run each batch at its schedule."),
    "report": ("overnight.cli.report", "report", "Show or send the report of a run."),
    "mail-run": ("overnight.cli.report", "mail_run", "Run any command and mail its output."),
    "backfill": ("overnight.cli.backfill", "backfill", "Run a batch for each date in a range."),
    "web": ("overnight.cli.web", "web", "Serve the dashboard."),
    "user": ("overnight.cli.web", "user", "Manage dashboard users."),
    "worker": ("overnight.cli.worker", "worker", "Run steps sent to a queue (Celery worker)."),
    "check": ("overnight.cli.check", "check", "How the expected night went, for monitoring (exit 0-3)."),
    "prune": ("overnight.cli.prune", "prune", "Forget the logs and attempt detail of old nights."),
    "import": ("overnight.cli.adopt", "import_group", "Batches from a crontab or a Luigi module."),
    "init": ("overnight.cli.adopt", "init", "Write a first overnight.toml and batch module here."),
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


# The commands every night uses: their modules import only click and cli/common.py.
from overnight.cli import read, run  # noqa: E402 - the group must exist first

for _command in (run.run, run.cancel, run.mark, read.status, read.history, read.logs, read.list_batches):
    cli.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
