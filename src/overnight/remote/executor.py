"""Steps with queue= set: sent to Celery, watched until their one Outcome is known.

A dispatch thread sends (send_task with the task id already in the ledger) and asks for
stops, so a broker that does not answer never holds the runner's loop (kombu may wait
~12 s on a host that drops packets); one watcher thread learns every state change. With
a Redis result backend it does not poll: the backend publishes each task's record when
it is stored, and the watcher listens to those messages; a sweep every `tick` seconds
checks deadlines (pickup wait, a worker's heartbeat gone quiet) and covers messages missed
while Redis was away. Outcomes go back to the runner's loop with call_soon_threadsafe, so
the runner never blocks on Celery.
"""

from __future__ import annotations

import base64
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from overnight.executor import Job, Outcome
from overnight.process import KILL_GRACE
from overnight.remote.worker import lost_after
from overnight.states import StepState

if TYPE_CHECKING:
    from overnight.config import CeleryConfig, Config
    from overnight.loader import LoadedBatch
    from overnight.loop import EventLoop

# How often a worker says it is alive (seconds); a worker silent for lost_after() of it is gone.
HEARTBEAT = float(os.environ.get("OVERNIGHT_REMOTE_HEARTBEAT", "5"))
RESENDS = 3  # times a task missing from its queue is sent again before the step fails


def celery_executor_factory(config: Config, loaded: LoadedBatch) -> Callable[[EventLoop], CeleryExecutor]:
    """What cli.py hands the runner: builds the executor (and imports Celery) on first use."""
    import importlib.util

    from overnight.errors import ConfigError

    assert config.celery is not None
    settings = config.celery
    where = f"{config.path}: [celery]"
    if importlib.util.find_spec("celery") is None:
        raise ConfigError(f"{where}: Celery is not installed here: pip install 'overnight[celery]'")
    backend = settings.result_backend or settings.broker
    if not backend.startswith(("redis://", "rediss://")):
        # The watcher listens to the records Redis publishes; other backends would be polled
        # or (rpc://) not shared at all between a coordinator and its successor.
        raise ConfigError(
            f"{where}: result_backend must be a Redis URL (redis://host:6379/1), not {backend.split(':')[0]}:"
        )
    batch_config = config.batches.get(loaded.batch.name)
    module_path = str(loaded.path)

    def make(loop: EventLoop) -> CeleryExecutor:
        return CeleryExecutor(loop, settings, module_path=module_path,
                              module_ref=batch_config.module if batch_config else module_path)

    return make


@dataclass
class _Watch:
    job: Job
    sent_at: float                  # monotonic: when it was sent, or re-attached
    started: bool = False
    host: str | None = None
    beat: float | None = None       # the last heartbeat value seen...
    beat_seen: float = 0.0          # ...and when (our clock: hosts' clocks may differ)
    error: str | None = None        # the last failure to read the result backend
    resends: int = 0                # times sent again because it was nowhere to be found
    finished: bool = False


class CeleryExecutor:
    def __init__(self, loop: EventLoop, settings: CeleryConfig, *, module_path: str, module_ref: str) -> None:
        from overnight.remote.celery_app import make_app

        self.loop = loop
        self.settings = settings
        self.module_path = module_path
        self.module_ref = module_ref
        self.app = make_app(settings)
        self.backend = self.app.backend
        self.watches: dict[str, _Watch] = {}
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.tick = min(0.5, HEARTBEAT / 2)
        self.watcher = threading.Thread(target=self._watch_loop, name="overnight-celery", daemon=True)
        self.watcher.start()
        self.dispatch: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        threading.Thread(target=self._dispatch_loop, name="overnight-dispatch", daemon=True).start()

    # -- the runner's side -----------------------------------------------------------------

    def prepare(self, job: Job) -> None:
        job.remote_id = str(uuid.uuid4())

    def start(self, job: Job) -> None:
        assert job.remote_id is not None
        os.close(os.open(job.log_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))  # filled at the end
        watch = _Watch(job, time.monotonic())
        with self.lock:
            self.watches[job.remote_id] = watch
        # Sent from the dispatch thread: a broker host that does not answer holds that thread
        # (kombu's connect timeout, its retries), never the runner's loop.
        self.dispatch.put(lambda: self._send_or_fail(watch))

    def _send_or_fail(self, watch: _Watch) -> None:
        job = watch.job
        try:
            self._send(job)
        except Exception as e:  # noqa: BLE001 - kombu's errors vary by transport
            message = (f"not sent to queue {job.step.queue!r}: cannot reach the broker {self._broker()}: "
                       f"{_one_line(e)}")
            self._finish(watch, lambda: Outcome(StepState.FAILED, None, message, time.time()))

    def _send(self, job: Job) -> None:
        """Queue the task. Sending one task id twice is harmless: only one delivery claims it."""
        step = job.step
        env = {
            "OVERNIGHT_BATCH": step.batch, "OVERNIGHT_DATE": job.date.isoformat(),
            "OVERNIGHT_RUN_ID": str(job.run_id), "OVERNIGHT_LAUNCH_ID": str(job.launch_id),
            "OVERNIGHT_STEP": step.name, "OVERNIGHT_ATTEMPT": str(job.number),
        }
        env.update(step.env)
        payload = {
            "batch": step.batch,
            "step": step.name,
            "kind": step.kind,
            "command": step.render_command(job.date) if step.command is not None else None,
            "module": self.module_ref,
            "module_path": self.module_path,
            "date": job.date.isoformat(),
            "attempt": job.number,
            "run_id": job.run_id,
            "cwd": step.cwd,
            "env": env,
            "timeout": step.timeout,
            "kill_grace": KILL_GRACE,
            "heartbeat": HEARTBEAT,
        }
        self.app.send_task("overnight.run_step", args=[payload], queue=step.queue, task_id=job.remote_id,
                           routing_key=step.queue)

    def reattach(self, job: Job) -> None:
        """Watch a task sent by an earlier launch (its runner died) until it ends."""
        assert job.remote_id is not None
        with self.lock:
            self.watches[job.remote_id] = _Watch(job, time.monotonic())

    def stop(self, job: Job, reason: str, force: bool = False) -> None:
        watch = self.watches.get(job.remote_id or "")
        if watch is None or watch.finished:
            return
        job.stop_reason = job.stop_reason or reason
        self.dispatch.put(lambda: self._ask_to_stop(watch, reason, force))

    def _ask_to_stop(self, watch: _Watch, reason: str, force: bool) -> None:
        """On the dispatch thread: give up on it in its queue, or ask its worker to stop it."""
        job = watch.job
        task_id = job.remote_id
        assert task_id is not None
        if watch.finished:
            return
        try:
            if self._claim(task_id, f"stopped ({reason}) before a worker took it"):
                # No worker took it yet, and now none ever will: it ends here.
                self._finish(watch, lambda: _stopped_in_queue(job))
                return
            meta = self.backend.get_task_meta(task_id, cache=False)
            if meta.get("status") != "STARTED":
                return  # it has ended: the watcher brings its result
            info = meta.get("result")
            node = info.get("node") if isinstance(info, dict) else None
            from overnight.remote.celery_app import STOP_COMMAND, STOP_KEY

            self.backend.client.set(STOP_KEY + task_id, 2 if force else 1, ex=7 * 86400)
            self.app.control.broadcast(STOP_COMMAND, arguments={"task_id": task_id},
                                       destination=[node] if node else None)
        except Exception:  # noqa: BLE001 - broker away: the heartbeat check ends it
            pass

    def _dispatch_loop(self) -> None:
        while (work := self.dispatch.get()) is not None:
            try:
                work()
            except Exception:  # noqa: BLE001 - one send's bug must not stop the others
                pass

    def close(self) -> None:
        # The watcher ends by itself within a tick; waiting for it would add that tick to
        # every launch. Nothing it does after this point reaches the runner.
        self.closing.set()
        self.dispatch.put(None)
        try:
            self.app.close()
        except Exception:  # noqa: BLE001
            pass

    # -- the watcher thread ----------------------------------------------------------------

    def _watch_loop(self) -> None:
        pubsub = None
        next_sweep = 0.0
        while not self.closing.is_set():
            due: dict[str, dict[str, Any] | None] = {}  # task id -> its record, if it came along
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                if pubsub is None:
                    self.closing.wait(self.tick)
                message = pubsub.get_message(timeout=self.tick) if pubsub else None
                while message is not None:
                    if message.get("type") == "pmessage":
                        task_id = _task_id(message["channel"], self.backend)
                        if task_id in self.watches:
                            due[task_id] = self.backend.decode_result(message["data"])
                    message = pubsub.get_message(timeout=0)
            except Exception:  # noqa: BLE001 - Redis away: sweep, and subscribe again later
                pubsub = None
                self.closing.wait(self.tick)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + self.tick
                with self.lock:
                    for task_id in self.watches:
                        due.setdefault(task_id, None)
            for task_id, meta in due.items():
                watch = self.watches.get(task_id)
                if watch is None or watch.finished:
                    continue
                try:
                    self._check(watch, task_id, meta)
                except Exception as e:  # noqa: BLE001 - a bug here must not leave the runner waiting
                    self._finish(watch, lambda e=e: Outcome(
                        StepState.INTERRUPTED, None, f"overnight lost track of it: {e!r}", time.time()))
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001
                pass

    def _subscribe(self) -> Any:
        client = getattr(self.backend, "client", None)
        if client is None:  # not a Redis backend: the sweep alone finds results
            return None
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        prefix = self.backend.task_keyprefix
        pubsub.psubscribe((prefix.decode() if isinstance(prefix, bytes) else prefix) + "*")
        # Whatever happened before we listened is found by the first sweep.
        return pubsub

    def _check(self, watch: _Watch, task_id: str, meta: dict[str, Any] | None) -> None:
        now = time.monotonic()
        if meta is None:
            try:
                meta = self.backend.get_task_meta(task_id, cache=False)
            except Exception as e:  # noqa: BLE001
                watch.error = _one_line(e)
            else:
                watch.error = None
        status = meta.get("status") if meta else None
        info = meta.get("result") if meta else None
        queue = watch.job.step.queue
        if status == "SUCCESS":
            self._finish(watch, lambda: self._outcome(watch, info))
        elif status == "FAILURE":
            self._finish(watch, lambda: _failure_outcome(info, watch.host))
        elif status == "REVOKED" and watch.job.stop_reason:  # stop() gave up on it in the queue
            self._finish(watch, lambda: _stopped_in_queue(watch.job))
        elif status == "REVOKED":
            text = _one_line(info) if isinstance(info, BaseException) else None
            message = f"revoked: {text}" if text else "revoked in Celery"
            self._finish(watch, lambda: Outcome(StepState.INTERRUPTED, None, message, time.time()))
        elif status == "STARTED" and isinstance(info, dict):
            if watch.host is None and info.get("host"):
                self._tell_host(watch, str(info["host"]))
            watch.host = info.get("host")
            if not watch.started or info.get("heartbeat") != watch.beat:
                watch.started, watch.beat, watch.beat_seen = True, info.get("heartbeat"), now
            elif now - watch.beat_seen > lost_after(HEARTBEAT):
                self._give_up(watch, task_id, StepState.INTERRUPTED,
                              f"its worker on {watch.host} stopped answering while it ran "
                              f"(no heartbeat for {now - watch.beat_seen:.0f}s)")
        elif watch.started and now - watch.beat_seen > lost_after(HEARTBEAT):
            # The backend cannot be read, or forgot the task (a Redis restarted without its data).
            why = f"cannot reach the result backend: {watch.error}" if watch.error else "its record is gone"
            self._give_up(watch, task_id, StepState.INTERRUPTED,
                          f"lost track of it while it ran on {watch.host}: {why}")
        elif not watch.started and now - watch.sent_at > self.settings.pickup_timeout:
            if watch.error:
                message = (f"no news from queue {queue!r} for {self.settings.pickup_timeout:g}s: "
                           f"cannot reach the result backend: {watch.error}")
            elif self._queue_served(queue):
                # Its workers are busy with other steps: it waits its turn, unless the task is
                # nowhere (a broker restarted without its data, a runner that died before
                # sending it): then it is sent again.
                watch.sent_at = now
                if not self._missing(task_id, queue):
                    return
                if watch.resends < RESENDS:
                    watch.resends += 1
                    self._send(watch.job)
                    return
                message = (f"the task is missing from queue {queue!r} and from its workers, "
                           f"even after sending it {RESENDS} more times")
            else:
                message = (f"no worker took it from queue {queue!r} within {self.settings.pickup_timeout:g}s "
                           f"(is `overnight worker --queue {queue}` running?)")
            try:
                claimed = self._claim(task_id, message)
            except Exception:  # noqa: BLE001 - Redis away: nobody can have taken it either
                claimed = True
            if claimed:
                self._finish(watch, lambda: Outcome(StepState.FAILED, None, message, time.time()))
            # else a worker took it just now: go on watching

    def _queue_served(self, queue: str | None) -> bool:
        """Whether any live worker consumes `queue` (asked once per pickup wait)."""
        try:
            answer = self.app.control.inspect(timeout=1.0).active_queues() or {}
        except Exception:  # noqa: BLE001 - the broker is away: nobody is known to serve it
            return False
        return any(q.get("name") == queue for queues in answer.values() for q in queues or ())

    def _missing(self, task_id: str, queue: str | None) -> bool:
        """Whether the task is neither on a worker nor waiting in its (Redis) queue."""
        try:
            known = self.app.control.inspect(timeout=1.0).query_task(task_id) or {}
            if any(known.values()):
                return False
            if not self.settings.broker.startswith(("redis://", "rediss://")) or queue is None:
                return False  # no cheap way to look into the queue: assume it waits there
            with self.app.connection_for_read() as conn:
                client = conn.default_channel.client
                return not any(task_id.encode() in m for m in client.lrange(queue, 0, -1))
        except Exception:  # noqa: BLE001 - cannot tell: assume it waits
            return False

    def _give_up(self, watch: _Watch, task_id: str, state: StepState, message: str) -> None:
        """Stop waiting; a worker that has it (or gets it later) sees REVOKED and stops."""
        try:
            self._abandon(task_id, message)
            meta = self.backend.get_task_meta(task_id, cache=False)
            if meta.get("status") == "SUCCESS":  # it ended just now after all
                self._finish(watch, lambda: self._outcome(watch, meta.get("result")))
                return
        except Exception:  # noqa: BLE001 - still away: give up all the same
            pass
        self._finish(watch, lambda: Outcome(state, None, message, time.time(), host=watch.host))

    def _claim(self, task_id: str, message: str) -> bool:
        """Give up on a task no worker has taken: True if none had (none ever will)."""
        from celery.exceptions import TaskRevokedError

        from overnight.remote.celery_app import ABANDONED, claim

        return claim(self.backend, task_id, ABANDONED, TaskRevokedError(message))

    def _abandon(self, task_id: str, message: str) -> None:
        """Give up on a task a worker took (and seems to have lost): it stops if it lives."""
        from celery.exceptions import TaskRevokedError

        from overnight.remote.celery_app import ABANDONED

        self.backend.store_result(task_id, TaskRevokedError(message), ABANDONED)

    def _tell_host(self, watch: _Watch, host: str) -> None:
        """The worker host that took the step, to the runner's thread (status shows it while
        the step runs)."""
        job = watch.job
        if job.ran_on is not None and not self.closing.is_set():
            self.loop.call_soon_threadsafe(lambda: job.ran_on(job, host))  # type: ignore[misc]

    def _finish(self, watch: _Watch, outcome: Callable[[], Outcome]) -> None:
        """Hand the job's one Outcome to the runner's thread (exactly once)."""
        with self.lock:
            if watch.finished or self.closing.is_set():
                return
            watch.finished = True
            self.watches.pop(watch.job.remote_id or "", None)
        job = watch.job
        self.loop.call_soon_threadsafe(lambda: job.done(job, outcome()))  # type: ignore[misc]

    # -- on the runner's thread: what a finished task means ----------------------------

    def _outcome(self, watch: _Watch, info: Any) -> Outcome:
        job = watch.job
        now = time.time()
        if not isinstance(info, dict):
            return Outcome(StepState.FAILED, None, f"unexpected result from the worker: {info!r}", now)
        host = info.get("host") or watch.host
        if info.get("outcome") == "interrupted":
            return Outcome(StepState.INTERRUPTED, None, info.get("message"), now, host=host)
        _write_output(job.log_path, info, host)
        # Timings: the worker's duration, placed on our clock (the hosts' clocks may differ).
        started = now - max(0.0, info["ended_at"] - info["started_at"])
        exit_code = int(info["exit_code"])
        stopped = info.get("stopped")
        if stopped == "timeout" and job.stop_reason is None:
            job.stop_reason = "timeout"
        if stopped == "abandoned" and job.stop_reason is None:
            outcome = Outcome(StepState.INTERRUPTED, exit_code, "stopped: the coordinator gave up on it", now)
        else:
            outcome = job.outcome_for_exit(exit_code, now, info.get("message"))
        outcome.started_at = started
        outcome.host = host
        return outcome

    def _broker(self) -> str:
        from kombu.utils.url import maybe_sanitize_url

        return str(maybe_sanitize_url(self.settings.broker))


def _stopped_in_queue(job: Job) -> Outcome:
    why = f"timed out after {job.step.timeout:g}s" if job.stop_reason == "timeout" else "cancelled"
    state = StepState.TIMED_OUT if job.stop_reason == "timeout" else StepState.CANCELLED
    return Outcome(state, None, f"{why} while waiting for a worker on queue {job.step.queue!r}", time.time())


def _failure_outcome(info: Any, host: str | None) -> Outcome:
    """The task itself failed (Celery stored the exception), not the step."""
    kind = type(info).__name__ if isinstance(info, BaseException) else "error"
    text = _one_line(info) if isinstance(info, BaseException) else str(info)
    now = time.time()
    if kind == "WorkerLostError":
        return Outcome(StepState.INTERRUPTED, None, f"its worker process died: {text}", now, host=host)
    return Outcome(StepState.FAILED, None, f"the worker failed: {kind}: {text}", now, host=host)


def _write_output(log_path: str, info: dict[str, Any], host: str | None) -> None:
    output = base64.b64decode(info.get("output") or "")
    with open(log_path, "ab") as f:
        skipped = info.get("output_skipped") or 0
        if skipped:
            f.write(f"overnight: the first {skipped} bytes of output are only on {host}: "
                    f"{info.get('log')}\n".encode())
        f.write(output)


def _task_id(channel: bytes | str, backend: Any) -> str:
    prefix = backend.task_keyprefix
    channel = channel.decode() if isinstance(channel, bytes) else channel
    prefix = prefix.decode() if isinstance(prefix, bytes) else prefix
    return channel[len(prefix):]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
