"""`overnight scheduler`, `overnight next` and `overnight cron`: the commands of scheduling."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from overnight.cli.common import get_config
from overnight.commandline import CommandLine
from overnight.config import BATCH_DEFAULTS, Config
from overnight.errors import ConfigError
from overnight.scheduling.cron import Schedule, ScheduleError, next_fire
from overnight.scheduling.schedules import format_instant, parse_instant, schedules


def _scheduled(config: Config, batch: str | None) -> dict[str, Schedule]:
    """Every schedule checked (a bad one is exit 2 whatever was asked), then the one asked."""
    if config.path is None:
        raise ConfigError("no overnight.toml here (or --config PATH): no batch is scheduled")
    scheduled = schedules(config)
    if batch is None:
        return scheduled
    if batch not in config.batches:
        from overnight.errors import did_you_mean

        known = ", ".join(sorted(config.batches)) or "none"
        raise ConfigError(
            f"unknown batch {batch!r}{did_you_mean(batch, config.batches)}: not in {config.path} "
            f"(known: {known})"
        )
    if batch not in scheduled:
        raise ConfigError(f"{config.path}: [batches.{batch}] has no schedule (add schedule = \"0 1 * * *\")")
    return {batch: scheduled[batch]}


@click.command()
@click.option("--once", is_flag=True, help="Fire what is due now, then exit (for cron, or a check).")
@click.option(
    "--now", "now_text", metavar="INSTANT",
    help="With --once: act as if it were this instant (ISO 8601 with offset; not in the future).",
)
@click.option("--dry-run", is_flag=True, help="With --once: print what would fire and why; do nothing.")
@click.pass_context
def scheduler(ctx: click.Context, once: bool, now_text: str | None, dry_run: bool) -> None:
    """Launch each batch at its schedule: a foreground daemon for systemd or supervisor."""
    from overnight.scheduling.daemon import Scheduler, hold_scheduler_lock

    config = get_config(ctx)
    _scheduled(config, None)
    if now_text is not None and not once:
        raise ConfigError("--now goes with --once (the daemon always uses the real clock)")
    if dry_run and not once:
        raise ConfigError("--dry-run goes with --once (scheduler --once --now INSTANT --dry-run)")
    now = parse_instant(now_text, "--now") if now_text is not None else None
    if dry_run:
        from overnight.scheduling.preview import preview

        click.echo(preview(config, now or datetime.now(tz=UTC)), nl=False)
        return
    clock = datetime.now(tz=UTC)
    if now is not None and now > clock:
        # It would launch nights for days still in progress and move the cursors past the
        # real clock, so tonight's real fires would count as done.
        raise ConfigError(
            f"--now {now_text}: later than the clock ({clock.isoformat(timespec='seconds')}); a pass "
            "in the future would launch unfinished days and swallow tonight's fires: add --dry-run "
            "to see what it would do"
        )
    assert config.path is not None
    lock_fd = hold_scheduler_lock(config.state)
    try:
        daemon = Scheduler(config.path)
        try:
            if once:
                daemon.loop_once(now or daemon.clock())
                code = 0
            else:
                code = daemon.run()
        finally:
            daemon.close()
    finally:
        os.close(lock_fd)
    ctx.exit(code)


@click.command("next")
@click.argument("batch", required=False)
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="How many fire times per batch.")
@click.option("--after", "after_text", metavar="INSTANT",
              help="Start from this instant (ISO 8601 with offset) instead of now.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def next_fires(
    ctx: click.Context, batch: str | None, count: int, after_text: str | None, as_json: bool
) -> None:
    """Upcoming fire times, each with the business date it runs for."""
    config = get_config(ctx)
    scheduled = _scheduled(config, batch)
    after = parse_instant(after_text, "--after") if after_text else datetime.now(tz=UTC)
    rows = []
    for name, schedule in scheduled.items():
        moment = after
        for _ in range(count):
            try:
                fire = next_fire(schedule, moment)
            except ScheduleError:
                break  # never fires again
            moment = fire.at
            rows.append({
                "batch": name,
                "schedule": schedule.expr,
                "timezone": schedule.zone.key,
                "at": fire.at.isoformat(),
                "date": fire.date.isoformat(),
                "nominal": fire.nominal.isoformat(timespec="minutes"),
                "shifted": fire.at.replace(tzinfo=None) != fire.nominal,
            })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no batch has a schedule" if not scheduled else "no fire times ahead")
        return
    width = max(5, *(len(r["batch"]) for r in rows))
    click.echo(f"{'BATCH':<{width}}  {'FIRES AT':<25} {'FOR DATE':<10}  ZONE")
    for r in rows:
        at = datetime.fromisoformat(r["at"])
        note = f"  ({r['nominal'][11:]} falls in the DST gap)" if r["shifted"] else ""
        click.echo(f"{r['batch']:<{width}}  {format_instant(at):<25} {r['date']:<10}  {r['timezone']}{note}")


# -- cron ----------------------------------------------------------------------------------

UTC_NAMES = {"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "Etc/GMT", "GMT"}


def system_zone_name() -> str | None:
    """The zone cron runs in: the machine's (/etc/timezone or the /etc/localtime link)."""
    try:
        text = Path("/etc/timezone").read_text().strip()
        if text:
            return text
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return None
    marker = "zoneinfo/"
    return target[target.index(marker) + len(marker):] if marker in target else None


def _same_zone(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    return a == b or (a in UTC_NAMES and b in UTC_NAMES)


def _cron_quote(word: str) -> str:
    return shlex.quote(word).replace("%", "\\%")  # an unescaped % ends a cron command


CRON_HEADER = """\
# Crontab lines for the batches of {path}
# (made by `overnight cron`). Each night started by a line reports as the scheduler's do
# (the batch's mail policy, the webhooks; trigger "cron"), but cron cannot do all the
# scheduler does:
#   - DST: a time inside the spring-forward gap may run zero times, and a time in the
#     repeated fall-back hour may run twice (dst_gap and dst_repeat are not honoured);
#   - catch-up: a run missed while the machine was down is never launched (catchup);
#   - overlap: a night that finds its batch still busy cannot wait (overlap = queue): it
#     is recorded skipped and reported;
#   - date: the run's date comes from the clock when it starts, not from the scheduled
#     time (a run delayed past midnight runs for the wrong day).
# To keep cron and still get those rules, let cron drive the scheduler instead:
#   * * * * * {once}"""

ZONE_NOTES = {
    True: "# CRON_TZ sets the zone of the lines after it (this cron honours it: cronie, busybox crond).",
    False: "# This machine's cron runs every line in the machine's zone ({system}) and ignores CRON_TZ\n"
           "# (Debian's cron): each batch in another zone is written in the machine's wall time.",
}


def honours_cron_tz() -> bool:
    """cronie and busybox crond read CRON_TZ; Debian's cron does not, nor does an unknown
    one, as far as we can tell: without crond, write lines in the machine's zone."""
    return shutil.which("crond", path="/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin") is not None


@click.command()
@click.option("--cron-tz/--no-cron-tz", "cron_tz", default=None,
              help="Whether the cron honours CRON_TZ (default: yes when crond is installed).")
@click.option("--machine-zone", metavar="ZONE",
              help="The zone the cron runs in (default: this machine's).")
@click.pass_context
def cron(ctx: click.Context, cron_tz: bool | None, machine_zone: str | None) -> None:
    """Crontab lines that run each batch at its schedule."""
    from overnight.config import load_zone

    config = get_config(ctx)
    scheduled = _scheduled(config, None)
    assert config.path is not None
    line = CommandLine.of(config)
    if machine_zone is not None:
        load_zone(machine_zone)  # an unknown zone: one line, exit 2
    system = machine_zone or system_zone_name()
    if cron_tz is None:
        cron_tz = honours_cron_tz()
    once = " ".join(_cron_quote(w) for w in line.argv("scheduler", "--once"))
    out = [CRON_HEADER.format(path=config.path, once=once),
           ZONE_NOTES[cron_tz].format(system=system or "unknown"), ""]
    for name in sorted(config.batches):
        if name not in scheduled:
            out.append(f"# {name}: no schedule")
    groups: dict[str | None, list[str]] = {}
    for name in scheduled:
        zone = config.batches[name].timezone or config.timezone
        groups.setdefault(None if _same_zone(zone, system) or zone is None else zone, []).append(name)
    # Lines in the machine's zone first: a CRON_TZ line holds for every line after it.
    for zone in sorted(groups, key=lambda z: (z is not None, z or "")):
        if zone is not None and cron_tz:
            out += ["", f"CRON_TZ={zone}"] if out[-1] else [f"CRON_TZ={zone}"]
        for name in groups[zone]:
            fields = scheduled[name].cron
            if zone is not None and not cron_tz:
                fields = _machine_fields(name, scheduled[name], _zone_of_cron(system), out)
            _cron_line(config, line, name, fields, out)
    if not scheduled:
        out.append("# no batch has a schedule")
    click.echo("\n".join(out))


def _zone_of_cron(name: str | None) -> ZoneInfo:
    """The zone cron runs its lines in: by name, or /etc/localtime (not $TZ: cron's own)."""
    if name is not None:
        return ZoneInfo(name)
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except OSError:
        return ZoneInfo("UTC")


def _machine_fields(name: str, schedule: Schedule, machine: ZoneInfo, out: list[str]) -> str | None:
    """The schedule in the machine's wall time, with comments saying what to know."""
    from overnight.scheduling.crontab import in_machine_zone

    converted = in_machine_zone(schedule, machine, datetime.now(tz=UTC))
    said = f"# {name}: {schedule.expr} in {schedule.zone.key}"
    if converted.fields is None:
        out.append(f"{said} cannot be written in this machine's zone: {converted.problem};")
        out.append("#   use the `scheduler --once` line above for this batch")
        return None
    out.append(f"{said}, written in this machine's zone")
    if converted.changes_on is not None:
        out.append(f"#   from {converted.changes_on} the two zones' difference changes and this line is an "
                   "hour off: run `overnight cron` again then, or use the `scheduler --once` line")
    return converted.fields


def _cron_line(config: Config, line: CommandLine, name: str, fields: str | None, out: list[str]) -> None:
    bc = config.batches[name]
    unusual = [
        f"{key} = {getattr(bc, key)}" for key in ("dst_gap", "dst_repeat", "catchup")
        if getattr(bc, key) != getattr(BATCH_DEFAULTS, key)
    ]
    if unusual:
        out.append(f"# {name}: cron cannot honour {', '.join(unusual)}")
    log = config.state.cron_log(name)
    command = " ".join(_cron_quote(w) for w in line.argv("run", name))
    entry = (
        f"mkdir -p {_cron_quote(str(log.parent))} && OVERNIGHT_TRIGGER=cron {command} "
        f">> {_cron_quote(str(log))} 2>&1"
    )
    out.append(f"{fields} {entry}" if fields else f"# {entry}")
