"""`overnight report` and `overnight mail-run` (loaded on demand)."""

from __future__ import annotations

import sys

import click

from overnight.cli.common import BatchRef, find_run, get_config, open_ledger, parse_date
from overnight.errors import ConfigError


@click.command()
@click.argument("batch")
@click.option("--date", "date_text", metavar="D", help="The run for that date (default: the latest).")
@click.option("--send", is_flag=True, help="Mail it (again), and record whether it went.")
@click.option("--alerts", is_flag=True, help="The night's alerts instead; with --send, send again the "
              "deliveries that failed.")
@click.pass_context
def report(ctx: click.Context, batch: str, date_text: str | None, send: bool, alerts: bool) -> None:
    """Print the report of a run; with --send, mail it."""
    from overnight.reporting.deliver import mail_recipients
    from overnight.reporting.report import build_report, mail_report, no_mail_section

    config = get_config(ctx)
    ref = BatchRef(config, batch)
    name = ref.resolve_name()
    if alerts:
        ctx.exit(_report_alerts(config, name, date_text, send))
    if send and config.mail is None:
        raise ConfigError(f"--send: {no_mail_section(config)}")
    if send and not mail_recipients(config, name):
        raise ConfigError(f"--send: no recipients: set [mail] to, or mail_to in [batches.{name}]")
    run_date = parse_date(date_text, config, name) if date_text else None
    ledger = open_ledger(config, readonly=not send)
    if run_date is not None and ledger is not None and ledger.find_run(name, run_date.isoformat()) is None:
        fire = ledger.fire_for_date(name, run_date.isoformat())
        if fire is not None:  # a night that did not become a run: its notice
            ctx.exit(_report_fire(config, ledger, fire, send))
    run_row = find_run(ledger, name, run_date)
    assert ledger is not None
    built = build_report(config, ledger, run_row, batch_arg=ref.argument)
    if not send:
        click.echo(f"Subject: {built.subject}\n")
        click.echo(built.text, nl=False)
        return
    delivery = mail_report(config, ledger, built, run_row.id, None)
    if not delivery.sent:
        click.echo(f"overnight: report not sent: {delivery.reason}", err=True)
        ctx.exit(1)
    click.echo(f"sent {built.subject!r} to {', '.join(mail_recipients(config, name))}")


def _report_fire(config, ledger, fire, send: bool) -> int:  # noqa: ANN001
    from overnight.reporting import mailer
    from overnight.reporting.deliver import mail_recipients
    from overnight.reporting.notice import build_notice, record_mail

    notice = build_notice(config, fire)
    if not send:
        click.echo(f"Subject: {notice.subject}\n")
        click.echo(notice.text, nl=False)
        return 0
    to = mail_recipients(config, fire.batch)
    delivery = mailer.send(config.mail, notice.message(config.mail.sender, to), to)
    with ledger.transaction():
        record_mail(ledger, fire.id, delivery, to)
    if not delivery.sent:
        click.echo(f"overnight: report not sent: {delivery.reason}", err=True)
        return 1
    click.echo(f"sent {notice.subject!r} to {', '.join(to)}")
    return 0


def _report_alerts(config, name: str, date_text: str | None, send: bool) -> int:  # noqa: ANN001
    """The alerts of the night (the latest run's, without --date) and their deliveries;
    with `send`, each delivery whose latest try failed is made again, and recorded."""
    from overnight.readmodel.outlook import alert_views
    from overnight.reporting.alerts import send_alert

    ledger = open_ledger(config, readonly=not send)
    day = parse_date(date_text, config, name).isoformat() if date_text else find_run(ledger, name, None).date
    if ledger is None or not ledger.alerts_of(name, day):
        click.echo(f"no alerts about {name} for {day}")
        return 0
    failed = 0
    for row, view in zip(ledger.alerts_of(name, day), alert_views(ledger, name, day), strict=True):
        latest = {d.channel: d.state.replace("_", " ") for d in view.deliveries}
        said = "; ".join(f"{channel} {state}" for channel, state in latest.items()) or "nowhere to send it"
        click.echo(f"{view.subject}\n  {said}")
        channels = [d.channel for d in view.unsent]
        if send and channels:
            lines = send_alert(config, ledger, row.id, only=channels)
            for line in lines:
                click.echo(f"overnight: {line}", err=True)
            failed += len(lines)
            click.echo(f"  sent again: {', '.join(channels)}" + (" (not all delivered)" if lines else ""))
    return 1 if failed else 0


@click.command("mail-run", context_settings={"ignore_unknown_options": True})
@click.option("--subject", "-s", required=True, help="Subject of the mail.")
@click.option("--to", "to", multiple=True, metavar="ADDR", help="Recipient (repeatable; default [mail] to).")
@click.option("--skip-if-empty", is_flag=True, help="Send nothing when the command prints nothing.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def mail_run(ctx: click.Context, subject: str, to: tuple[str, ...], skip_if_empty: bool,
             command: tuple[str, ...]) -> None:
    """Run COMMAND, mail its output with run time and exit code, exit with its exit code.

    Put -- before the command: overnight mail-run -s "Weekly export" -- bin/export --all
    """
    from overnight.reporting import mailer
    from overnight.reporting.mailrun import build_message, run_command
    from overnight.reporting.report import no_mail_section

    config = get_config(ctx)
    if config.mail is None:
        raise ConfigError(f"mail-run: {no_mail_section(config)}")
    for address in to:
        if "@" not in address:
            raise ConfigError(f"--to {address}: not an email address")
    recipients = mailer.recipients(config.mail, list(to))
    if not recipients:
        raise ConfigError("mail-run: no recipients: give --to ADDR, or set [mail] to")
    done = run_command(list(command), echo=sys.stdout.isatty())
    try:
        if skip_if_empty and done.output.blank:
            ctx.exit(done.exit_code)
        delivery = mailer.send(config.mail, build_message(subject, done), recipients)
    finally:
        done.output.close()
    if not delivery.sent:
        click.echo(f"overnight: mail-run: the output was not mailed: {delivery.reason}", err=True)
    ctx.exit(done.exit_code)
