"""Running one step on a worker host, as the local runner would.

The step runs in a process group of its own (a command directly, a callable in a fresh
`python -m overnight.remote.worker` that imports the batch module deployed on this host), with
its output in a log file here. The timeout is enforced here too (TERM to the group, KILL
after a grace), so a step stops even if the coordinator is gone. A sentinel process (the
same one the local runner uses) kills the step's group if this worker process dies, so a
`kill -9` of the worker leaves nothing running that the coordinator would run again.
What goes back: exit code, timings, and the last MAX_OUTPUT bytes of output.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overnight.loop import EventLoop, Timer
from overnight.process import TOKEN_VARIABLE, Sentinel, kill_group

if TYPE_CHECKING:
    from overnight.remote.celery_app import WorkerSettings

MAX_OUTPUT = 1024 * 1024
_sentinel: Sentinel | None = None


def stale(info: Any, heartbeat: float) -> bool:
    """Whether a STARTED record's heartbeat is too old for its worker to be alive."""
    if not isinstance(info, dict) or not isinstance(info.get("heartbeat"), (int, float)):
        return True
    return time.time() - info["heartbeat"] > lost_after(heartbeat)


def lost_after(heartbeat: float) -> float:
    """How long without a heartbeat before a worker counts as gone."""
    return max(3 * heartbeat, heartbeat + 2.0)


# This pool process's event loop, and whether a stop signal came that no wait has handled.
_loop: EventLoop | None = None
_stop_signalled = False


def listen_for_stop_requests() -> None:
    """In a pool process, once: SIGUSR2 (from the overnight_stop control command) wakes the
    wait for the running step, which then reads the coordinator's stop request."""
    global _loop
    _loop = EventLoop()
    _loop.add_signal_handler(signal.SIGUSR2, _note_stop_signal)  # SIGUSR1 is billiard's


def _note_stop_signal(signum: int) -> None:
    global _stop_signalled
    _stop_signalled = True


def execute(
    payload: dict[str, Any],
    worker: WorkerSettings,
    log_path: Path,
    heartbeat: Callable[[], bool],
    stop_requested: Callable[[], int],
) -> dict[str, Any]:
    global _sentinel, _loop
    if _sentinel is None:
        _sentinel = Sentinel()
    if _loop is None:
        _loop = EventLoop()  # not in a pool process (no stop signal): the heartbeat stops it
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cwd = worker.base_dir / payload["cwd"] if payload.get("cwd") else worker.base_dir
    env = dict(os.environ)
    env.update(payload["env"])
    env[TOKEN_VARIABLE] = _sentinel.token
    result_r = result_w = -1
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        if payload["kind"] == "command":
            command = payload["command"]
            argv: str | list[str] = command
            stdin: Any = subprocess.DEVNULL
            pass_fds: tuple[int, ...] = ()
        else:
            result_r, result_w = os.pipe2(os.O_CLOEXEC)
            argv = [sys.executable, "-m", "overnight.remote.worker"]
            stdin = subprocess.PIPE
            pass_fds = (result_w,)
        started = time.time()
        process = subprocess.Popen(
            argv, shell=isinstance(argv, str), stdin=stdin, stdout=log_fd, stderr=log_fd,
            cwd=cwd, env=env, start_new_session=True, pass_fds=pass_fds,
        )
    except OSError as e:
        from overnight.executor import start_failure

        message = start_failure(e, None if isinstance(argv, str) else argv[0])
        os.write(log_fd, f"overnight: {message}\n".encode())
        os.close(log_fd)
        if result_r >= 0:
            os.close(result_r)
        now = time.time()
        return _result(log_path, 127, now, now, message, None)
    finally:
        if result_w >= 0:
            os.close(result_w)
    os.close(log_fd)
    _sentinel.watch(process.pid)
    if process.stdin is not None:
        spec = {**payload, "module_ref": _module_ref(payload, worker), "base_dir": str(worker.base_dir),
                "result_fd": result_w, "log": str(log_path)}
        try:
            process.stdin.write(json.dumps(spec).encode())
            process.stdin.close()
        except BrokenPipeError:
            pass
    stopped = _StepWait(_loop, process.pid, payload, heartbeat, stop_requested).wait()
    ended = time.time()
    kill_group(process.pid)  # whatever the step left behind goes with it
    exit_code = process.wait()
    _sentinel.forget(process.pid)
    message = None
    if result_r >= 0:
        with os.fdopen(result_r, "rb") as f:
            answer = f.read()
        if answer:
            outcome, _ = json.JSONDecoder().raw_decode(answer.decode())  # the first answer only
            message = None if outcome["ok"] else outcome["message"]
        elif exit_code == 0:
            exit_code, message = 1, "the step's process exited early"
    return _result(log_path, exit_code, started, ended, message, stopped)


class _StepWait:
    """Waits for the step's process to end, beating, and stopping it when the coordinator
    asks (a stop request, or it gave up on the task) or when it overruns its timeout."""

    def __init__(
        self, loop: EventLoop, pid: int, payload: dict[str, Any],
        heartbeat: Callable[[], bool], stop_requested: Callable[[], int],
    ) -> None:
        self.loop, self.pid = loop, pid
        self.heartbeat, self.stop_requested = heartbeat, stop_requested
        self.interval, self.grace = payload["heartbeat"], payload["kill_grace"]
        self.stopped: str | None = None
        self.exited = False
        self.pidfd = os.pidfd_open(pid)
        loop.add_reader(self.pidfd, self._exited)
        self.beat: Timer = loop.call_later(self.interval, self._beat)
        timeout = payload.get("timeout")
        self.deadline: Timer | None = loop.call_later(timeout, self._overdue) if timeout else None
        self.kill: Timer | None = None

    def wait(self) -> str | None:
        """Until the process exits; why it was stopped, or None."""
        global _stop_signalled
        try:
            while not self.exited:
                if _stop_signalled:  # also one that came before this wait: asking costs little
                    _stop_signalled = False
                    level = self.stop_requested()
                    if level:
                        self._stop("stop", level)
                    continue
                self.loop.run_once()
        finally:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            for timer in (self.beat, self.deadline, self.kill):
                if timer is not None:
                    timer.cancel()
        return self.stopped

    def _exited(self) -> None:
        self.exited = True

    def _overdue(self) -> None:
        if self.stopped is None:
            self._stop("timeout", 1)

    def _beat(self) -> None:
        self.beat = self.loop.call_later(self.interval, self._beat)
        if not self.heartbeat():
            self._stop("abandoned", 2)

    def _stop(self, why: str, level: int) -> None:
        """Level 1: TERM to the group, KILL after the grace; level 2: KILL now."""
        self.stopped = self.stopped or why
        if level == 2:
            kill_group(self.pid)
        elif self.kill is None:
            kill_group(self.pid, signal.SIGTERM)
            self.kill = self.loop.call_later(self.grace, lambda: kill_group(self.pid))


def _result(
    log_path: Path, exit_code: int, started: float, ended: float, message: str | None, stopped: str | None,
) -> dict[str, Any]:
    size = log_path.stat().st_size
    with open(log_path, "rb") as f:
        if size > MAX_OUTPUT:
            f.seek(size - MAX_OUTPUT)
        output = f.read(MAX_OUTPUT)
    return {
        "outcome": "ran",
        "exit_code": exit_code,
        "started_at": started,
        "ended_at": ended,
        "message": message,
        "stopped": stopped,
        "output": base64.b64encode(output).decode(),
        "output_skipped": max(0, size - MAX_OUTPUT),
        "log": str(log_path),
    }


def _module_ref(payload: dict[str, Any], worker: WorkerSettings) -> str:
    """This host's module for the batch: its own overnight.toml first, else the same path."""
    return worker.modules.get(payload["batch"]) or payload["module_path"]


# -- the child that runs a callable step ---------------------------------------------------


def _callable_main() -> int:
    from datetime import date

    from overnight.errors import OvernightError
    from overnight.loader import load_batch
    from overnight.pyattempt import run_callable

    spec = json.loads(sys.stdin.buffer.read())
    result_fd = spec["result_fd"]
    os.set_inheritable(result_fd, False)
    me = os.getpid()
    # A process the step forks must not answer for it (it would come back here and write
    # a second answer): the answer channel is closed in every fork.
    os.register_at_fork(after_in_child=lambda: os.close(result_fd))
    try:
        loaded = load_batch(spec["module_ref"], Path(spec["base_dir"]))
        step = loaded.batch.steps.get(spec["step"])
        if step is None or step.func is None:
            raise OvernightError(f"{loaded.path}: no callable step {spec['step']!r} on this host")
    except OvernightError as e:
        print(f"overnight: {e}", file=sys.stderr)
        outcome = {"ok": False, "message": str(e)}
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        message = {
            "log": spec["log"], "env": dict(os.environ), "cwd": os.getcwd(),
            "date": date.fromisoformat(spec["date"]).isoformat(), "attempt": spec["attempt"],
            "run_id": spec["run_id"],
        }
        outcome = run_callable(step, message, handler)
    if os.getpid() != me:  # a fork of the step that came back here: not ours to answer
        return 0
    os.write(result_fd, json.dumps(outcome).encode())
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(_callable_main())
