"""The Celery side of remote steps: the app, the one task, and the stop command.

The coordinator (executor.py) and `overnight worker` (cli/worker.py) build the same app from
the [celery] settings. Delivery is made safe for us, not just for Celery:

- late acknowledgement, one message per worker process, and a message whose worker process
  died is put back (task_reject_on_worker_lost): Celery never loses a step silently;
- but a message that comes back must not run the step a second time behind the
  coordinator's back. So the task writes its own STARTED record (with a heartbeat) before
  the step starts, and a delivery that finds any record for its task id already there does
  not run the step: a redelivery, or a task the coordinator gave up on (REVOKED). Celery's
  own task_track_started is left off because its STARTED record would overwrite ours and
  hide exactly that. The coordinator decides about re-running, by the step's retries and
  `idempotent`, as for local steps.
- The coordinator learns that a worker died from its heartbeat going stale.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.exceptions import Ignore
from celery.signals import worker_process_init
from celery.worker import state as worker_state
from celery.worker.control import control_command

from overnight.statefolder import StateFolder

if TYPE_CHECKING:
    from overnight.config import CeleryConfig

TASK_NAME = "overnight.run_step"
PING_NAME = "overnight.ping"
STOP_COMMAND = "overnight_stop"
STOP_KEY = "overnight-stop-"          # + task id: the coordinator's stop request, 1 or 2 (force)
ABANDONED = "REVOKED"                 # the state the coordinator stores when it gives up on a task


def make_app(settings: CeleryConfig) -> Celery:
    backend = settings.result_backend or settings.broker
    app = Celery("overnight", broker=settings.broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        task_track_started=False,  # we write STARTED ourselves: see the module's docstring
        result_expires=7 * 86400,  # a crashed coordinator can collect a result for a week
        # A message a worker took and never acknowledged comes back after this long; a step
        # may run for hours, and the coordinator learns of a dead worker by its heartbeat.
        # A broker host that takes the connection and then says nothing must not hold a
        # thread for Redis' default two minutes: reads give up after 5 s, connects after 4 s.
        broker_transport_options={"visibility_timeout": 86400, "socket_timeout": 5.0,
                                  "socket_connect_timeout": 4.0},
        result_backend_transport_options={"retry_policy": {"timeout": 2.0}},
        redis_socket_timeout=5.0,
        redis_socket_connect_timeout=4.0,
        broker_connection_timeout=4.0,
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.task(name=TASK_NAME, bind=True)(run_step)
    app.task(name=PING_NAME)(ping)
    return app


def ping() -> str:
    """A no-op task: is a worker on that queue answering (and Celery's own round trip)."""
    return socket.gethostname()


# -- the worker's settings, set by `overnight worker` before its pool forks ---------------


@dataclass
class WorkerSettings:
    base_dir: Path            # the folder of the worker host's overnight.toml
    state: StateFolder        # the worker host's state folder: steps' output is kept there
    modules: dict[str, str]   # batch name -> module reference, from that overnight.toml


WORKER: WorkerSettings | None = None


# -- inside each pool process ------------------------------------------------------------

PR_SET_PDEATHSIG = 1


@worker_process_init.connect
def _init_pool_process(**_: Any) -> None:
    """A pool process dies with its worker (kill -9 included); a stop request wakes it."""
    from overnight.remote.worker import listen_for_stop_requests

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(1)
    listen_for_stop_requests()


# Both run inside Redis, so nothing can come between the look and the write.
# claim: write the first record of a task (and publish it), only if it has none.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
    redis.call('PUBLISH', KEYS[1], ARGV[1])
    return 1
end
return 0
"""
# beat: replace the worker's STARTED record with a fresher one, unless it is STARTED no more
# (the coordinator gave up on the task, and wrote REVOKED over it).
_BEAT = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['status'] ~= 'STARTED' then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


def _record(backend: Any, task_id: str, state: str, result: Any) -> tuple[Any, str, int]:
    """The key, Celery's own encoding of the record, and its lifetime in seconds."""
    meta = backend._get_result_meta(
        result=backend.encode_result(result, state), state=state, traceback=None, request=None
    )
    meta["task_id"] = task_id
    return backend.get_key_for_task(task_id), backend.encode(meta), int(backend.expires or 7 * 86400)


def claim(backend: Any, task_id: str, state: str, result: Any) -> bool:
    """Write the task's first record, atomically: False if it already has one.

    The worker claims a task by writing STARTED; the coordinator gives up on a task nobody
    took by writing REVOKED. Whoever writes first wins, so a step never starts after the
    coordinator gave up on it, and two deliveries of one task never both run it. The record
    is Celery's own format, published as Celery publishes it (the coordinator listens).
    """
    key, value, expires = _record(backend, task_id, state, result)
    return bool(backend.client.eval(_CLAIM, 1, key, value, expires))


def beat(backend: Any, task_id: str, info: dict[str, Any]) -> bool:
    """Refresh the worker's STARTED record; False if the coordinator has given up on it."""
    key, value, expires = _record(backend, task_id, "STARTED", info)
    return bool(backend.client.eval(_BEAT, 1, key, value, expires))


def run_step(task: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The task: run one step of a batch here, once, and return how it went."""
    from overnight.remote.worker import execute, stale

    task_id = task.request.id
    backend = task.backend
    if WORKER is None:
        raise RuntimeError("this task runs only in `overnight worker`")
    host = socket.gethostname()
    since = time.time()
    log_path = Path(WORKER.state.worker_run_logs(payload["batch"], payload["date"]).attempt(
        payload["step"], payload["attempt"], task_id
    ))
    record = {"host": host, "node": task.request.hostname, "pid": os.getpid(), "since": since,
              "log": str(log_path)}
    if not claim(backend, task_id, "STARTED", {**record, "heartbeat": since}):
        # Delivered before (its worker died, or it outlived the visibility timeout), or
        # abandoned by the coordinator: never run it a second time.
        before = backend.get_task_meta(task_id, cache=False)
        info = before.get("result")
        if before.get("status") == "STARTED" and stale(info, payload["heartbeat"]):
            return {
                "outcome": "interrupted",
                "host": info.get("host") if isinstance(info, dict) else None,
                "message": "its worker died while it ran (the task came back to the queue)",
            }
        raise Ignore()

    def heartbeat() -> bool:
        """Tell the coordinator we live; False if it has given up on this task."""
        try:
            return beat(backend, task_id, {**record, "heartbeat": time.time()})
        except Exception:  # noqa: BLE001 - the backend is away: go on, the step runs
            return True

    def stop_requested() -> int:
        """0, or 1 (stop) / 2 (kill) if the coordinator asked to stop this task."""
        try:
            value = backend.client.get(STOP_KEY + task_id)
        except Exception:  # noqa: BLE001
            return 0
        return int(value) if value else 0

    result = execute(payload, WORKER, log_path, heartbeat, stop_requested)
    result["host"] = host
    from overnight.remote.logs import prune_now_and_then

    try:
        prune_now_and_then(WORKER.state)
    except Exception:  # noqa: BLE001 - tidying must never turn a step's result into a failure
        pass
    return result


# -- in the worker's main process ---------------------------------------------------------


@control_command(args=[("task_id", str)], signature="<task_id>")
def overnight_stop(state: Any, task_id: str) -> dict[str, str]:
    """Wake the pool process running `task_id`: it reads the coordinator's stop request."""
    for request in list(worker_state.active_requests):
        if request.id == task_id and request.worker_pid:
            try:
                os.kill(request.worker_pid, signal.SIGUSR2)
            except ProcessLookupError:
                break
            return {"ok": "stopping"}
    return {"ok": "not running here"}
