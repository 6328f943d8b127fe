"""`overnight backfill`: a batch once per date over a range (loaded on demand)."""

from __future__ import annotations

import os

import click

from overnight.cli.common import BatchRef, get_config, open_ledger, refuse_future
from overnight.errors import ConfigError


@click.command()
@click.argument("batch")
@click.option("--from", "first_text", required=True, metavar="D1", help="First date (YYYY-MM-DD).")
@click.option("--to", "last_text", required=True, metavar="D2", help="Last date (YYYY-MM-DD).")
@click.option("--backward", is_flag=True, help="Newest date first.")
@click.option("--keep-going", is_flag=True, help="Go on with the next date after a failed one.")
@click.option("--workers", "-w", type=click.IntRange(1, 1024), help="Steps at once, per date.")
@click.option("--mail/--no-mail", default=None, help="Mail the digest (default: the batch's mail policy).")
@click.option("--allow-future", is_flag=True, help="Allow dates after today.")
@click.pass_context
def backfill(ctx: click.Context, batch: str, first_text: str, last_text: str, backward: bool,
             keep_going: bool, workers: int | None, mail: bool | None, allow_future: bool) -> None:
    """Run BATCH once for each date from D1 to D2, oldest first; each an ordinary run."""
    from overnight import backfill as bf
    from overnight.errors import AlreadyRunning
    from overnight.lock import holder

    config = get_config(ctx)
    ref = BatchRef(config, batch)
    loaded = ref.load()  # a broken module is one error now, not one per date
    first = _date(first_text, "--from")
    last = _date(last_text, "--to")
    dates = bf.date_range(first, last, backward)
    refuse_future(last, config, ref.name, allow_future, "--to")
    busy = holder(config.state_dir, ref.name)
    if busy is not None:
        raise AlreadyRunning(
            f"batch {ref.name!r} is already running: pid {busy.get('pid')} on {busy.get('host')}, "
            f"since {busy.get('since')} (for {busy.get('date')})"
        )
    batch_arg = ref.argument
    env = dict(os.environ)
    env["OVERNIGHT_TRIGGER"] = "backfill"
    results = bf.run_dates(config, ref.name, batch_arg, set(loaded.batch.steps), dates, keep_going,
                           workers, env)
    code = bf.exit_code(results)
    if code in (0, 1):
        _send_digest(config, ref.name, results, mail,
                     bf.again_command(config, batch_arg, first, last, backward, keep_going))
    # Last, after the digest's own line: the dates that need a look.
    click.echo(f"backfill of {ref.name}, {len(results)} dates: {bf.tally(results)}")
    ctx.exit(code)


def _date(text: str, option: str):  # noqa: ANN202 - a date
    from datetime import date

    try:
        return date.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"{option} {text}: not a valid date ({e}); use YYYY-MM-DD") from None


def _send_digest(config, batch: str, results, mail: bool | None, again: str) -> None:  # noqa: ANN001
    """One report for the whole backfill; like after_launch, it never changes the exit code."""
    from overnight import backfill as bf
    from overnight.reporting.deliver import wants_mail
    from overnight.reporting.report import no_mail_section, post_webhooks, warn
    from overnight.reporting.webhooks import wanted

    try:
        failed = bf.exit_code(results) != 0
        send = wants_mail(config, batch, failed, mail) and config.mail is not None
        if mail and config.mail is None:
            warn(f"--mail: {no_mail_section(config)}: no digest sent")
        hooks = [h for h in config.webhooks if wanted(h, batch, failed)] if mail is not False else []
        if not send and not hooks:
            return
        ledger = open_ledger(config)
        assert ledger is not None
        subject, text, summary = bf.digest(config, ledger, batch, results, again)
        run_ids = [run.id for r in results
                   if r.exit_code is not None and (run := ledger.find_run(batch, r.date.isoformat()))]
        if send:
            _mail_digest(config, ledger, batch, subject, text, run_ids)
        if hooks:
            for p in post_webhooks(config, ledger, hooks, summary, run_ids, None):
                if not p.sent:
                    warn(f"webhook {p.hook.url} not posted: {p.reason}")
    except Exception as e:  # noqa: BLE001 - the digest must not turn into a failed backfill
        warn(f"the backfill digest could not be made: {e}")


def _mail_digest(config, ledger, batch: str, subject: str, text: str, run_ids: list[int]) -> None:  # noqa: ANN001
    from overnight.reporting import mailer
    from overnight.reporting.deliver import mail_recipients
    from overnight.reporting.report import warn

    to = mail_recipients(config, batch)
    msg = mailer.new_message(subject)
    msg.set_content(text)
    delivery = mailer.send(config.mail, msg, to)
    with ledger.transaction():
        for run_id in run_ids:
            ledger.record_report(run_id, None, "mail:backfill", "sent" if delivery.sent else "not_sent",
                                 delivery.tries, f"to {', '.join(to)}" if delivery.sent else delivery.reason)
    if delivery.sent:
        click.echo(f"backfill digest mailed to {', '.join(to)}")
    else:
        warn(f"backfill digest not sent: {delivery.reason}")
