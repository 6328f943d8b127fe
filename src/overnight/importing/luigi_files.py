"""The batch module `overnight import luigi` writes: a step per Luigi task, written as a
person would write it from the README, each saying which task it runs and where it is."""

from __future__ import annotations

import textwrap
from datetime import date

from overnight.importing.files import py_str, toml_str
from overnight.importing.luigi_tasks import LuigiNight, LuigiStep

# What the batch module calls the Luigi module when its own name would clash.
RESERVED = {"batch", "Batch", "sys", "overnight", "luigi"}


def alias_of(night: LuigiNight) -> str:
    last = night.module_name.rsplit(".", 1)[-1]
    return "tasks" if last in RESERVED else last


def module_text(night: LuigiNight, batch: str, command: str, sample: date, today: date) -> str:
    alias = alias_of(night)
    count = len(night.steps)
    waits = [s for s in night.steps if s.datasync_minutes]
    about = (
        f"Written by `{command}` on {today.isoformat()}, from what its requires() reach for "
        f"{sample.isoformat()}. Each step runs one task's run() for the run's date, in Luigi's order. "
        "A task whose Luigi output already exists for a date (Luigi ran it before the switch) is "
        "recorded as adopted there, not run again; from then on the ledger is the record "
        f"(`overnight status {batch}`). Run overnight from the folder Luigi ran in: the tasks' "
        "outputs are relative to it."
    )
    out = [
        f'"""{batch}: the Luigi task {night.module_name}:{night.root} and the {count} task'
        f'{"s" * (count != 1)} it needs, as one batch.',
        "",
        *textwrap.wrap(about, 88, break_on_hyphens=False),
    ]
    if night.folded:
        left = (f"Left out, as they do no work of their own: {', '.join(night.folded)} (what they "
                "require is kept in the steps' order).")
        out += ["", *textwrap.wrap(left, 88, break_on_hyphens=False)]
    out += ['"""', ""]
    if waits or night.module_folder:
        out += ["import sys", ""]
    out += ["from overnight import Batch", ""]
    if night.module_folder:
        out.append(f"sys.path.insert(0, {py_str(str(night.module_folder))})  # where the Luigi module is")
    imported = f"import {night.module_name}" + (f" as {alias}" if alias != night.module_name else "")
    out.append(imported + ("  # noqa: E402" if night.module_folder else ""))
    description = py_str(f"{night.module_name}:{night.root}, from Luigi")
    out += ["", f"batch = Batch({py_str(batch)}, description={description})"]
    previous: str | None = None
    for step in night.steps:
        out += ["", ""] + _step(step, alias, previous)
        previous = step.wait_name if step.datasync_minutes else step.name
    return "\n".join(out) + "\n"


def _make(step: LuigiStep, alias: str, day: str) -> str:
    """The expression that makes the task for a date."""
    args = f"{step.date_param}={day}" if step.date_param else ""
    return f"{alias}.{step.family}({args})"


def _step(step: LuigiStep, alias: str, previous: str | None) -> list[str]:
    function = step.name.replace("-", "_").replace(".", "_")
    if not function.isidentifier() or function[0].isdigit():
        function = f"step_{function}"
    options = [f"name={py_str(step.name)}"]
    if step.after != ([previous] if previous else []):
        options.append(f"after=[{', '.join(py_str(a) for a in step.after)}]")
    adopt = f"adopt_if=lambda day: {_make(step, alias, 'day')}.complete()"
    if step.adoptable:
        options.append(adopt)
    never_done = ": Luigi cannot tell when it is done (no output), so it always runs"
    out = [f"# {step.family} ({step.where})" + ("" if step.adoptable else never_done)]
    if step.datasync_minutes:
        minutes = f"{step.datasync_minutes:g}"
        out.append(f"# datasync_wait_minutes = {minutes}: its run() then waited for datasync; here that")
        out.append("# wait is the next step, which holds no worker while it waits")
    out.append(f"@batch.step({', '.join(options)})")
    out.append(f"def {function}(ctx):")
    if step.datasync_minutes:
        out += [f"    task = {_make(step, alias, 'ctx.date')}",
                "    task.datasync_wait_minutes = None  # the wait is the next step",
                "    task.run()"]
    else:
        out.append(f"    {_make(step, alias, 'ctx.date')}.run()")
    if step.datasync_minutes:
        out += ["", ""] + _wait(step, alias, function, adopt if step.adoptable else None)
    return out


def _wait(step: LuigiStep, alias: str, function: str, adopt: str | None) -> list[str]:
    check = f"{function}_datasync"
    out = [
        f"def {check}(ctx):",
        f'    """Has datasync caught up? Asked as {step.family}.datasync_wait asks it, once per check."""',
        f"    {_make(step, alias, 'ctx.date')}.datasync_wait(minutes=0, initial_delay=0)",
        "    return True",
        "",
        "",
        f"# Rattail's run() waited from sys.prefix (bin/rattail), {step.datasync_minutes:g} minutes at most,"
        " after 60 s",
        f"batch.wait({py_str(step.wait_name)}, check={check}, every=\"30s\", "
        f"timeout=\"{step.datasync_minutes:g}m\",",
        '           initial_delay="60s", cwd=sys.prefix' + (f",\n           {adopt})" if adopt else ")"),
    ]
    return out


def config_text(batch: str, module_file: str, command: str, today: date) -> str:
    return "\n".join([
        f"# overnight.toml, written by `{command}` on {today.isoformat()}.",
        "",
        "[overnight]",
        'state_dir = ".overnight"        # the ledger and the steps\' logs',
        "# timezone = \"America/Chicago\"  # default: this machine's zone",
        "",
        f"[batches.{batch}]",
        f"module = {toml_str(module_file)}",
        '# schedule = "0 1 * * *"    # when the scheduler starts it (cron syntax), as your crontab did',
        "",
    ])
