"""The files `overnight import crontab` writes: overnight.toml and a batch module per night,
as a person would write them from the README, each step saying which crontab line it was."""

from __future__ import annotations

from datetime import date

from overnight.importing.crontab import CronLine, Crontab, Night, step_name
from overnight.importing.files import py_str, toml_str

WEEKDAY_NAMES = {"1-5": "Monday to Friday", "0,6": "on weekends", "6,0": "on weekends", "0": "on Sundays",
                 "6": "on Saturdays", "1": "on Mondays"}


def module_file(night: Night) -> str:
    return f"{night.name}.py"


def config_text(crontab: Crontab, nights: list[Night], source: str, today: date) -> str:
    out = [
        f"# overnight.toml, written by `overnight import crontab` on {today.isoformat()} from {source}.",
        "# Each batch is a group of crontab lines that ran within an hour of each other,",
        "# run as one chain from its first line's time. See README.md, \"Scheduling\".",
        "",
        "[overnight]",
        'state_dir = ".overnight"        # the ledger and the steps\' logs',
        "# timezone = \"America/Chicago\"  # default: this machine's zone, as cron used it",
        "",
    ]
    for night in nights:
        last = night.lines[-1]
        span = night.first.clock if len(night.lines) == 1 else f"{night.first.clock} to {last.clock}"
        count = len(night.lines)
        out += [
            f"[batches.{night.name}]",
            f"module = {toml_str(module_file(night))}",
            f"schedule = {toml_str(night.schedule)}    # its first line's time; {count} line"
            f"{'s' * (count != 1)} of the crontab, {span}",
        ]
        if night.zone:
            out.append(f"timezone = {toml_str(night.zone)}    # CRON_TZ in the crontab")
        if night.for_today:
            out.append('date = "today"    # it starts in the evening: the night of that day')
        out.append("")
    if crontab.mailto is not None:
        out += [
            f"# The crontab mailed each line's output to MAILTO={crontab.mailto}. overnight mails one",
            "# report per night (mail = \"failure\" by default); say where to send it:",
            "# [mail]",
            '# host = "localhost"',
            f"# to = [{toml_str(crontab.mailto)}]" if crontab.mailto else "# to = []",
            "",
        ]
    return "\n".join(out)


def module_text(night: Night, source: str, today: date) -> str:
    count = len(night.lines)
    span = night.first.clock + (f" and {night.lines[-1].clock}" if count > 1 else "")
    narrower = [line for line in night.lines if line.days != night.days]
    title = (f"{count} lines of a crontab that ran between {span}, as one batch." if count > 1
             else f"a line of a crontab that ran at {span}, as a batch.")
    out = [
        f'"""{night.name}: {title}',
        "",
        f"Written by `overnight import crontab` from {source} on {today.isoformat()}. The steps run in",
        "the order cron started them, each as soon as the one before it has succeeded (not at",
        "the minute cron gave it); after a failure what follows waits for a fix and a resume",
        "(`overnight run` again). The commands are as they were in the crontab; cron ran them",
        "in your home folder with a short PATH, overnight runs them in the folder of",
        "overnight.toml with the environment it was started with.",
        '"""',
        "",
        "from overnight import Batch",
    ]
    if narrower:
        out.append("from overnight.batch import cron_days")
    description = py_str(f"crontab lines from {night.first.clock}"
                         + (f" to {night.lines[-1].clock}" if count > 1 else ""))
    out += ["", f"batch = Batch({py_str(night.name)}, description={description})", ""]
    taken: set[str] = set()
    for line in night.lines:
        out += _step(night, line, step_name(line.command, taken), line in narrower) + [""]
    return "\n".join(out)


def _step(night: Night, line: CronLine, name: str, narrower: bool) -> list[str]:
    comment = f"# crontab line {line.number}: {line.text}"
    if len(comment) > 100:
        comment = comment[:97] + "..."
    lines = [comment]
    call = f"batch.command({py_str(name)}, {py_str(line.command)}"
    if narrower:
        offset = night.fire_day(line)
        days = line.days.split()
        said = WEEKDAY_NAMES.get(days[2], f"on the days {line.days!r} says") if days[:2] == ["*", "*"] \
            else f"on the days {line.days!r} says"
        lines.append(f"# cron ran it {said} at {line.clock}" + (
            ": the nights dated the day before" if offset else ""))
        call += f", when=cron_days({py_str(line.days)}" + (", next_day=True" if offset else "") + ")"
    return lines + [call + ")"]
