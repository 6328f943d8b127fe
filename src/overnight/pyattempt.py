"""Inside an attempt process of a Python step: a fresh fork of the template (template.py).

A spare puts itself, with the cgroup net, in a cgroup of its own, says it is ready, and
waits for its one attempt: a message and the write end of a pipe that belongs to that
attempt alone. It then says who it is ("hello", its pid and group), runs the step, answers
once with the outcome, bound to its pid and attempt number, and exits. Nothing an attempt
does (module state, threads, signal handlers, working folder, environment) reaches the next
one. A process the step forks that falls back into this code (``if os.fork() == 0: ...
sys.exit(0)``) is not the attempt's process: it leaves without a word. The runner checks
the pid too.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import traceback
from datetime import date
from typing import Any

from overnight.batch import Context, Step
from overnight.sentinel import name_process


def spare_main(
    own: socket.socket, attempts: socket.socket, steps: dict[str, Step], group: str | None
) -> int:
    """Get ready (cgroup, signals), say so, take the one attempt from the shared socket
    (the kernel gives each to one waiting spare), leave the template's group, run it."""
    from overnight.template import receive

    name_process("overnight-spare")
    if group is not None:
        from overnight.killnet import join

        os.mkdir(group)
        join(group)  # before any code of a step runs: it cannot start anything outside
    fresh_signals()
    handler = _handler()
    own.send(b"ready")
    data, fds = receive(attempts)
    if not data or not fds:
        return 0  # the runner is gone: no attempt for this spare
    os.setsid()  # its own session from now on: stopping the attempt stops what it starts
    own.send(b"taken")
    own.close()
    attempts.close()
    message = json.loads(data)
    message["group"] = group
    # The runner sends only how the attempt's environment differs from the template's:
    # applied in place (a whole copy of os.environ would copy the pages of every string).
    for key in message.pop("unset", ()):
        os.environ.pop(key, None)
    os.environ.update(message.pop("env"))
    return _attempt_main(steps[message["step"]], message, fds[0], handler)


def _attempt_main(step: Step, message: dict[str, Any], result_fd: int, handler: logging.Handler) -> int:
    """The attempt's own process: say who it is, run the step, answer once, exit."""
    me = os.getpid()
    name_process(step.name)
    os.set_inheritable(result_fd, False)
    os.register_at_fork(after_in_child=lambda: _close_quietly(result_fd))
    os.write(result_fd, json.dumps({"hello": me, "group": message["group"]}).encode() + b"\n")
    result = run_callable(step, message, handler)
    if os.getpid() != me:  # a fork of the step that came back here: not ours to answer
        return 0
    result.update(pid=me, attempt=message["attempt"])
    try:
        os.write(result_fd, json.dumps(result).encode() + b"\n")
    except OSError:
        return 71
    return 0 if result["ok"] else 1


def fresh_signals() -> None:
    """As a fresh Python starts: Ctrl-C raises KeyboardInterrupt, SIGPIPE is ignored (from
    the runner), every other signal has its default action."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    return handler


def apply_env(env: dict[str, str]) -> None:
    """Make os.environ equal to `env`, touching only what differs from the template's
    (usually the OVERNIGHT_* variables): clearing and refilling it cost ~0.3 ms."""
    current = os.environ
    for key in [k for k in current if k not in env]:
        del current[key]
    for key, value in env.items():
        if current.get(key) != value:
            current[key] = value


def run_callable(step: Step, message: dict[str, Any], handler: logging.Handler) -> dict[str, Any]:
    """Run one callable step in this process with its log, env and cwd. Returns its answer."""
    try:
        log_fd = os.open(message["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        return {"ok": False, "message": f"cannot open its log file {message['log']}: {e.strerror or e}"}
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    if "env" in message:  # else it is in place already
        apply_env(message["env"])
    # A logger of its own, outside logging's registry: getLogger() of a new name clears
    # the cache of every logger registered so far.
    logger = logging.Logger(f"overnight.step.{step.name}", logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    context = Context(
        date=date.fromisoformat(message["date"]),
        batch=step.batch,
        step=step.name,
        attempt=message["attempt"],
        run_id=message["run_id"],
        log=logger,
    )
    try:
        os.chdir(message["cwd"])
        assert step.func is not None
        step.func(context)
        result: dict[str, Any] = {"ok": True}
    except SystemExit as e:
        ok = e.code in (None, 0)
        result = {"ok": ok, "message": f"exited with {e.code}"}
    except BaseException as e:  # noqa: BLE001 - any failure of the step is its outcome
        traceback.print_exc()
        text = str(e).strip().splitlines()
        result = {"ok": False, "message": f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")}
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return result
