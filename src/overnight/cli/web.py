"""`overnight web` (the dashboard) and `overnight user` (who may log in to it)."""

from __future__ import annotations

import sys

import click

from overnight.cli.common import get_config, open_ledger
from overnight.errors import ConfigError
from overnight.web.auth import ROLES


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs at least one user.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def web(ctx: click.Context, host: str, port: int) -> None:
    """Serve the dashboard: batches, runs, timelines, logs, history; launch behind a login."""
    from overnight.web.auth import is_loopback

    config = get_config(ctx)
    try:
        import uvicorn

        from overnight.web.app import create_app
    except ImportError as e:
        raise ConfigError(f"the dashboard needs the web extra ({e.name} is missing): "
                          "pip install 'overnight[web]'") from None
    ledger = open_ledger(config, readonly=True)
    users = ledger.count_users() if ledger else 0
    if ledger:
        ledger.close()
    if not is_loopback(host) and users == 0:
        raise ConfigError(
            f"--host {host}: refusing to serve beyond this machine with no users; "
            "add one first: overnight user add NAME --role operator"
        )
    app = create_app(config)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    mode = f"{users} user(s)" if users else (
        "read-only, no users yet (overnight user add NAME --role operator)"
    )
    click.echo(f"overnight web: {where}  ({mode}; ledger {config.state.ledger})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                proxy_headers=False, server_header=False)


@click.group()
def user() -> None:
    """Manage who may log in to the dashboard (viewers read, operators also launch)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Add a user, or change an existing user's password and role."""
    from overnight.batch import check_name
    from overnight.errors import DefinitionError
    from overnight.web.auth import hash_password

    try:
        check_name(name, "user")
    except DefinitionError as e:
        raise ConfigError(str(e)) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise ConfigError("the password is too short: use at least 8 characters")
    config = get_config(ctx)
    ledger = open_ledger(config)
    assert ledger is not None
    with ledger.transaction():
        new = ledger.put_user(name, hash_password(password), role)
    click.echo(f"{'added' if new else 'changed'} user {name} ({role})")


@user.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """Users and their roles."""
    import time

    config = get_config(ctx)
    ledger = open_ledger(config, readonly=True)
    rows = ledger.users() if ledger else []
    if not rows:
        click.echo("no users (the dashboard is read-only on 127.0.0.1 until you add one)")
    for u in rows:
        added = time.strftime("%Y-%m-%d", time.localtime(u.created_at))
        click.echo(f"{u.name:<20} {u.role:<9} added {added}")


@user.command("remove")
@click.argument("name")
@click.pass_context
def user_remove(ctx: click.Context, name: str) -> None:
    """Remove a user (their open sessions stop working at once)."""
    config = get_config(ctx)
    ledger = open_ledger(config)
    assert ledger is not None
    with ledger.transaction():
        gone = ledger.remove_user(name)
    if not gone:
        raise ConfigError(f"no user {name!r}")
    click.echo(f"removed user {name}")
