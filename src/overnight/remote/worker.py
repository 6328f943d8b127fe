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
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overnight.process import TOKEN_VARIABLE, Sentinel

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


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def execute(
    payload: dict[str, Any],
    worker: WorkerSettings,
    log_path: Path,
    heartbeat: Callable[[], bool],
    stop_requested: Callable[[], int],
    wake_fd: int,
) -> dict[str, Any]:
    global _sentinel
    if _sentinel is None:
        _sentinel = Sentinel()
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
        message = f"cannot start: {e.strerror or e}" + (f": {e.filename}" if e.filename else "")
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
    stopped = _wait(process, payload, heartbeat, stop_requested, wake_fd)
    ended = time.time()
    _kill_group(process.pid)  # whatever the step left behind goes with it
    exit_code = process.wait()
    _sentinel.forget(process.pid)
    message = None
    if result_r >= 0:
        with os.fdopen(result_r, "rb") as f:
            answer = f.read()
        if answer:
            outcome = json.loads(answer)
            message = None if outcome["ok"] else outcome["message"]
        elif exit_code == 0:
            exit_code, message = 1, "the step's process exited early"
    return _result(log_path, exit_code, started, ended, message, stopped)


def _wait(
    process: subprocess.Popen[bytes],
    payload: dict[str, Any],
    heartbeat: Callable[[], bool],
    stop_requested: Callable[[], int],
    wake_fd: int,
) -> str | None:
    """Wait for the step to end, beating, and stopping it when told or when it overruns."""
    pid = process.pid
    pidfd = os.pidfd_open(pid)
    interval = payload["heartbeat"]
    grace = payload["kill_grace"]
    deadline = time.monotonic() + payload["timeout"] if payload.get("timeout") else None
    next_beat = time.monotonic() + interval
    kill_at: float | None = None
    stopped: str | None = None
    watched = [pidfd] + ([wake_fd] if wake_fd >= 0 else [])
    try:
        while True:
            now = time.monotonic()
            wait = next_beat - now
            if deadline is not None and stopped is None:
                wait = min(wait, deadline - now)
            if kill_at is not None:
                wait = min(wait, kill_at - now)
            ready, _, _ = select.select(watched, [], [], max(0.0, wait))
            if pidfd in ready:
                return stopped
            now = time.monotonic()
            level = 0
            if wake_fd in ready:
                _drain(wake_fd)
                level = stop_requested()
                if level and stopped is None:
                    stopped = "stop"
            if deadline is not None and now >= deadline and stopped is None:
                stopped, level = "timeout", 1
            if now >= next_beat:
                next_beat = now + interval
                if not heartbeat():
                    stopped, level = stopped or "abandoned", 2
            if level == 2 or (kill_at is not None and now >= kill_at):
                _kill_group(pid)
            elif level == 1 and kill_at is None:
                _kill_group(pid, signal.SIGTERM)
                kill_at = now + grace
    finally:
        os.close(pidfd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


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
    os.write(result_fd, json.dumps(outcome).encode())
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(_callable_main())
