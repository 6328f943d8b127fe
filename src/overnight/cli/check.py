"""`overnight check`: one line for Nagios, Icinga, Zabbix, monit and friends (loaded on demand).

The monitoring-plugin conventions: the first word is OK, WARNING, CRITICAL or UNKNOWN,
then each batch, its date and what is wrong, then `|` and performance data; the exit code
is 0, 1, 2 or 3 to match. What each state means is readmodel/expected.py.
"""

from __future__ import annotations

import time

import click

from overnight.cli.common import BatchRef, get_config, open_ledger, parse_date


@click.command()
@click.argument("batches", nargs=-1, metavar="[BATCH]...")
@click.option("--date", "date_text", metavar="D", help="The night for that date (default: the expected one).")
@click.pass_context
def check(ctx: click.Context, batches: tuple[str, ...], date_text: str | None) -> None:
    """How the expected night went, as a monitoring plugin says it (exit 0, 1, 2 or 3).

    Without BATCH, every batch in overnight.toml. The expected night is the one of the
    batch's most recent fire (for an unscheduled batch, its default date).
    """
    from overnight.errors import OvernightError, shown
    from overnight.readmodel.expected import UNKNOWN, check_night, one_line

    try:
        config = get_config(ctx)
        names = [BatchRef(config, b).resolve_name() for b in batches] or sorted(config.batches)
        if not names:
            raise OvernightError("no batch to check: name one, or add [batches.NAME] to overnight.toml")
        dates = {name: parse_date(date_text, config, name) if date_text else None for name in names}
        ledger = open_ledger(config, readonly=True)
        known = set(config.batches) | set(ledger.batches() if ledger is not None else [])
        for name in names:
            if name not in known:
                raise OvernightError(f"unknown batch {shown(name)}: not in overnight.toml and never run")
        now = time.time()
        checks = [check_night(config, ledger, name, dates[name], now) for name in names]
    except OvernightError as e:
        click.echo(f"UNKNOWN - {e}")
        ctx.exit(UNKNOWN)
    code, line = one_line(checks)
    click.echo(line)
    ctx.exit(code)
