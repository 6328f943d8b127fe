"""`overnight prune`: forget the logs and per-attempt detail of old nights (loaded on demand)."""

from __future__ import annotations

from datetime import datetime

import click

from overnight.cli.common import get_config


@click.command()
@click.option("--older-than", "older_than", metavar="AGE", help='e.g. 400d (default: [retention] keep).')
@click.option("--dry-run", is_flag=True, help="Say what would go, and remove nothing.")
@click.pass_context
def prune(ctx: click.Context, older_than: str | None, dry_run: bool) -> None:
    """Remove the logs and attempt records of nights older than AGE, by their date.

    Their outcome stays in the history. A night that did not succeed, each batch's last
    successful night and a batch running now are never touched.
    """
    from overnight.durations import parse_duration
    from overnight.errors import ConfigError, DefinitionError, shown
    from overnight.prune import prune as prune_nights

    config = get_config(ctx)
    if older_than is None:
        if config.retention is None:
            raise ConfigError("say how old: --older-than 400d (or [retention] keep in overnight.toml)")
        keep = config.retention.keep
    else:
        try:
            keep = parse_duration(older_than, f"--older-than {shown(older_than, quote=False)}")
        except DefinitionError as e:
            raise ConfigError(str(e)) from None
    today = datetime.now(tz=config.zone_for(None)).date()
    result = prune_nights(config, keep, today, dry_run=dry_run)
    for line in result.lines():
        click.echo(line)
