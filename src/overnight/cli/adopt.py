"""`overnight import crontab`, `overnight import luigi` and `overnight init`: a night that
exists already (cron lines, a Luigi module) or a new one, as files to read and keep."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import click

from overnight.errors import ConfigError


@click.group("import")
def import_group() -> None:
    """Turn what runs your night today into batches: crontab lines, a Luigi module."""


@import_group.command("crontab")
@click.argument("source", required=False, metavar="[FILE|-]")
def import_crontab(source: str | None) -> None:
    """Batches from a crontab: FILE, - for standard input, or yours (crontab -l).

    Lines within an hour of each other become one batch, run as a chain from its first
    line's time; overnight.toml and a module per batch are written in this folder.
    """
    from overnight.importing.cron_files import config_text, module_file, module_text
    from overnight.importing.crontab import group_nights, read_crontab
    from overnight.importing.files import write_new

    text, shown_as = _read_crontab(source)
    crontab = read_crontab(text)
    nights = group_nights(crontab.lines)
    if not nights:
        raise ConfigError(f"{shown_as}: no line runs once a night at a fixed time; nothing to import"
                          + _first_reason(crontab))
    today = date.today()
    here = Path.cwd()
    files = {here / "overnight.toml": config_text(crontab, nights, shown_as, today)}
    for night in nights:
        files[here / module_file(night)] = module_text(night, shown_as, today)
    write_new(files, "overnight import crontab")
    _tell_crontab(crontab, nights, files)


def _read_crontab(source: str | None) -> tuple[str, str]:
    if source == "-":
        return sys.stdin.buffer.read().decode("utf-8", "surrogateescape"), "standard input"
    if source is not None:
        try:
            return Path(source).read_bytes().decode("utf-8", "surrogateescape"), source
        except OSError as e:
            raise ConfigError(f"{source}: cannot be read ({e.strerror})") from None
    try:
        done = subprocess.run(["crontab", "-l"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(
            f"crontab -l: cannot run it ({e}); give the crontab as a FILE, or - for stdin"
        ) from None
    if done.returncode != 0:
        why = (done.stderr.decode(errors="replace").strip().splitlines() or ["it failed"])[0]
        raise ConfigError(f"crontab -l: {why}")
    return done.stdout.decode("utf-8", "surrogateescape"), "your crontab (crontab -l)"


def _first_reason(crontab) -> str:  # noqa: ANN001 - a Crontab
    if not crontab.untranslated:
        return ""
    number, _, why = crontab.untranslated[0]
    return f" (line {number}: {why})"


def _tell_crontab(crontab, nights, files) -> None:  # noqa: ANN001
    echo = click.echo
    echo(f"wrote {', '.join(path.name for path in files)}:")
    for night in nights:
        echo(f"  {night.name}: {len(night.lines)} line{'s' * (len(night.lines) != 1)} from "
             f"{night.first.clock}, schedule \"{night.schedule}\"")
    if crontab.untranslated or crontab.environment or crontab.mailto is not None:
        echo("not translated:")
    environment = ("an environment line: steps get overnight's environment; add it to a step's env=,\n"
                   "    or to the scheduler's service, where a command needs it")
    said = [*crontab.untranslated, *((number, line, environment) for number, line in crontab.environment)]
    for number, line, why in sorted(said):
        echo(f"  line {number}: {line}")
        echo(f"    {why}")
    if crontab.mailto is not None:
        echo(f"  MAILTO={crontab.mailto}: overnight mails one report per night; see the [mail]")
        echo("    section left as a comment at the end of overnight.toml")
    echo("once `overnight run NAME --dry-run` looks right and the scheduler runs (overnight scheduler,")
    echo("or the lines of `overnight cron`), remove these lines from your crontab (crontab -e):")
    for night in nights:
        for line in night.lines:
            echo(f"  {line.text}")


@import_group.command("luigi")
@click.argument("target", metavar="MODULE:TASK")
@click.option("--name", "batch_name", help="The batch's name (default: the task's, as step names go).")
@click.option("--date", "date_text", metavar="D",
              help="The date to walk requires() for (default: yesterday).")
def import_luigi(target: str, batch_name: str | None, date_text: str | None) -> None:
    """A batch from a Luigi task and what its requires() reach (needs the luigi extra).

    MODULE is a dotted name importable from this folder, or a .py file. Each task becomes a
    step running its run() for the run's date; a task already complete() for a date is
    recorded as adopted there, not run.
    """
    from overnight.batch import check_name
    from overnight.errors import DefinitionError
    from overnight.importing.files import write_new
    from overnight.importing.luigi_files import config_text, module_text
    from overnight.importing.luigi_tasks import kebab, load_module, walk

    module_ref, sep, task_name = target.rpartition(":")
    if not sep or not module_ref or not task_name:
        raise ConfigError(f"{target}: say MODULE:TASK, e.g. eod_tasks:Overnight")
    try:
        import luigi  # noqa: F401
    except ImportError:
        raise ConfigError("Luigi is not installed here: pip install 'overnight[luigi]'") from None
    sample = _sample_date(date_text)
    here = Path.cwd()
    module, module_name, folder = load_module(module_ref, here)
    night = walk(module, module_name, folder, task_name, sample)
    name = batch_name or kebab(task_name)
    try:
        check_name(name, "batch")
    except DefinitionError as e:
        raise ConfigError(f"--name: {e}") from None
    command = f"overnight import luigi {target}" + (f" --name {batch_name}" if batch_name else "")
    today = date.today()
    module_file = batch_file_name(name, module_name)
    files = {here / module_file: module_text(night, name, command, sample, today)}
    config = here / "overnight.toml"
    if not config.exists():
        files[config] = config_text(name, module_file, command, today)
    write_new(files, "overnight import luigi")
    click.echo(f"wrote {', '.join(path.name for path in files)}: batch {name!r}, {len(night.steps)} steps "
               f"from {module_name}:{task_name}")
    for step in night.steps:
        extra = f", then {step.wait_name} (datasync)" if step.datasync_minutes else ""
        click.echo(f"  {step.name:<28} {step.family}{extra}")
    if config not in files:
        click.echo(f"add it to {config}:\n  [batches.{name}]\n  module = \"{module_file}\"")
    click.echo(f"try it: overnight run {name} --dry-run")


def batch_file_name(name: str, luigi_module: str) -> str:
    """NAME.py, unless Python could import it by that name in place of a module the night
    needs (`python -m overnight` from this folder would run ./overnight.py; a batch module
    eod.py would import itself as the Luigi module eod): then NAME-batch.py, which no
    import statement can reach."""
    import importlib.util

    top = name.replace("-", "_")
    if "-" in name or not top.isidentifier():
        return f"{name}.py"
    if top in ("overnight", "luigi", luigi_module.split(".")[0]):
        return f"{name}-batch.py"
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = True
    return f"{name}-batch.py" if found else f"{name}.py"


def _sample_date(text: str | None) -> date:
    if text is None:
        return (datetime.now() - timedelta(days=1)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--date {text}: not a valid date; use YYYY-MM-DD") from None


@click.command()
def init() -> None:
    """Write a commented overnight.toml and a first batch module in this folder."""
    from overnight.importing.files import write_new
    from overnight.importing.skeleton import BATCH, CONFIG

    here = Path.cwd()
    files = {here / "overnight.toml": CONFIG, here / "nightly.py": BATCH}
    write_new(files, "overnight init")
    click.echo("wrote overnight.toml and nightly.py; next:")
    click.echo("  overnight run nightly --dry-run     # what would run")
    click.echo("  overnight run nightly               # run it for yesterday")
