"""`overnight web` (the dashboard) and `overnight user` (who may log in to it)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from overnight.cli.common import get_config, open_ledger
from overnight.errors import ConfigError
from overnight.web.auth import ROLES

if TYPE_CHECKING:
    from overnight.ledger import Ledger


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs at least one user.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option("--certfile", type=click.Path(dir_okay=False), default=None,
              help="Serve HTTPS with this certificate (PEM; the chain after it), with --keyfile.")
@click.option("--keyfile", type=click.Path(dir_okay=False), default=None,
              help="The certificate's private key (PEM).")
@click.option("--trusted-proxy", "trusted_proxy", default=None, metavar="ADDRESS",
              help="A reverse proxy at ADDRESS terminates HTTPS: believe its X-Forwarded-For "
                   "and X-Forwarded-Proto headers (client addresses, Secure cookies).")
@click.pass_context
def web(ctx: click.Context, host: str, port: int, certfile: str | None, keyfile: str | None,
        trusted_proxy: str | None) -> None:
    """Serve the dashboard: batches, runs, timelines, logs, history; launch behind a login."""
    from overnight.web.auth import is_loopback

    config = get_config(ctx)
    try:
        import uvicorn

        from overnight.web.app import create_app
    except ImportError as e:
        raise ConfigError(f"the dashboard needs the web extra ({e.name} is missing): "
                          "pip install 'overnight[web]'") from None
    tls = _tls_files(certfile, keyfile)
    ledger = open_ledger(config, readonly=True)
    users = ledger.count_users() if ledger else 0
    if ledger:
        ledger.close()
    public = not is_loopback(host)
    if public and users == 0:
        raise ConfigError(
            f"--host {host}: refusing to serve beyond this machine with no users; "
            "add one first: overnight user add NAME --role operator"
        )
    app = create_app(config, public=public)
    scheme = "https" if tls else "http"
    where = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
    mode = f"{users} user(s)" if users else (
        "read-only, no users yet (overnight user add NAME --role operator)"
    )
    click.echo(f"overnight web: {where}  ({mode}; ledger {config.state.ledger})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                proxy_headers=trusted_proxy is not None, forwarded_allow_ips=trusted_proxy,
                server_header=False, ssl_certfile=tls[0] if tls else None,
                ssl_keyfile=tls[1] if tls else None)


def _tls_files(certfile: str | None, keyfile: str | None) -> tuple[str, str] | None:
    """Both or neither; loaded here, so that a wrong file is one line and exit 2 rather
    than a traceback from the server."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ConfigError("--certfile and --keyfile go together: give both to serve HTTPS")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except ssl.SSLError as e:  # an OSError too: first
        raise ConfigError(f"--certfile {certfile} --keyfile {keyfile}: not a certificate and its "
                          f"key in PEM ({e.reason or e})") from None
    except OSError as e:
        raise ConfigError(f"{e.filename or certfile}: cannot read it ({e.strerror})") from None
    return certfile, keyfile


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
    hashed = hash_password(password)
    with ledger.transaction():
        ended = ledger.count_sessions(name)
        new = ledger.put_user(name, hashed, role)
        _audit(ledger, "user add" if new else "user change", name, role)
    click.echo(f"{'added' if new else 'changed'} user {name} ({role})" + _ended(ended))


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
        ended = ledger.count_sessions(name)
        gone = ledger.remove_user(name)
        if gone:
            _audit(ledger, "user remove", name, None)
    if not gone:
        raise ConfigError(f"no user {name!r}")
    click.echo(f"removed user {name}" + _ended(ended))


def _ended(sessions: int) -> str:
    if not sessions:
        return ""
    return f" ({sessions} dashboard session{'s' if sessions != 1 else ''} ended)"


def _audit(ledger: Ledger, action: str, name: str, role: str | None) -> None:
    """`overnight user` changes go into the dashboard's audit record, made by this login."""
    import getpass
    import time

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = None
    ledger.record_audit(time.time(), who, "cli", action, name, "ok", f"role {role}" if role else None)
