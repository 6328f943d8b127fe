"""`overnight worker`: a Celery worker that runs the steps sent to one queue."""

from __future__ import annotations

import socket

import click

from overnight.cli.common import get_config


@click.command()
@click.option("--queue", "-Q", "queue", required=True, help="The queue to serve (a step's queue=).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Steps at once on this host.")
@click.option("--name", "node", metavar="NAME",
              help="This worker's Celery name (default: QUEUE@HOST); unique per worker.")
@click.option("--loglevel", default="INFO", show_default=True, help="Celery's log level.")
@click.pass_context
def worker(ctx: click.Context, queue: str, concurrency: int, node: str | None, loglevel: str) -> None:
    """Run the steps sent to QUEUE, each as the local runner would (needs [celery])."""
    from overnight.batch import check_name
    from overnight.errors import ConfigError, DefinitionError

    config = get_config(ctx)
    if config.celery is None:
        where = config.path or "no overnight.toml here"
        raise ConfigError(f"{where}: no [celery] section: say where the broker is, e.g. "
                          "[celery] broker = \"redis://db-server:6379/0\"")
    try:
        check_name(queue, "queue")
    except DefinitionError as e:
        raise ConfigError(f"--queue: {e}") from None
    try:
        from overnight.remote import celery_app
    except ImportError as e:
        raise ConfigError(f"Celery is not installed ({e}): pip install 'overnight[celery]'") from None

    celery_app.WORKER = celery_app.WorkerSettings(
        base_dir=config.base_dir,
        state=config.state,
        modules={name: b.module for name, b in config.batches.items()},
    )
    from overnight.remote.logs import prune_now_and_then

    prune_now_and_then(config.state)  # the output of steps that ran long ago goes
    app = celery_app.make_app(config.celery)
    app.worker_main([
        "worker",
        f"--queues={queue}",
        f"--concurrency={concurrency}",
        f"--hostname={node or f'{queue}@{socket.gethostname()}'}",
        f"--loglevel={loglevel}",
        "--pool=prefork",
        "--without-gossip",
        "--without-mingle",
    ])
