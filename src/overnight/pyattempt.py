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
import marshal
import os
import signal
import socket
import sys
import traceback
from datetime import date
from typing import Any

from overnight.batch import Context, Step
from overnight.killnet import join
from overnight.sentinel import name_process
from overnight.template import receive


def spare_main(own: socket.socket, attempts: socket.socket, steps: dict[str, Step], group: str | None,
               group_json: bytes, handler: logging.Handler) -> int:
    """Get ready (cgroup, signals), say so, take the one attempt from the shared socket
    (the kernel gives each to one waiting spare), leave the template's group, run it.

    Every page an attempt's process writes is a page copied (some 4 us each here), so what
    can be made once is made in the template, before the fork: the handler, the group's
    JSON, the imports; and the message is marshal, read without running Python code."""
    name_process("overnight-spare")
    if group is not None:
        os.mkdir(group)
        join(group)  # before any code of a step runs: it cannot start anything outside
    fresh_signals()
    own.send(b"ready")
    data, fds = receive(attempts)
    if not data or not fds:
        return 0  # the runner is gone: no attempt for this spare
    os.setsid()  # its own session from now on: stopping the attempt stops what it starts
    own.send(b"taken")
    own.close()
    attempts.close()
    message = marshal.loads(data)
    message["group"] = group
    message["group_json"] = group_json
    # The runner sends only how the attempt's environment differs from the template's:
    # applied in place (a whole copy of os.environ would copy the pages of every string).
    # (Item by item: os.environ.update and .pop go through the Mapping ABC's machinery.)
    environ = os.environ
    for key in message.pop("unset"):
        if key in environ:
            del environ[key]
    for key, value in message.pop("env").items():
        environ[key] = value
    return _attempt_main(steps[message["step"]], message, fds[0], handler)


def _attempt_main(step: Step, message: dict[str, Any], result_fd: int, handler: logging.Handler) -> int:
    """The attempt's own process: say who it is, run the step, answer once, exit."""
    me = os.getpid()
    name_process(step.name)
    os.set_inheritable(result_fd, False)
    os.register_at_fork(after_in_child=lambda: _close_quietly(result_fd))
    os.write(result_fd, b'{"hello": %d, "group": %s}\n' % (me, message["group_json"]))
    result = run_callable(step, message, handler)
    if os.getpid() != me:  # a fork of the step that came back here: not ours to answer
        return 0
    result.update(pid=me, attempt=message["attempt"])
    if result == {"ok": True, "pid": me, "attempt": message["attempt"]}:
        answer = b'{"ok": true, "pid": %d, "attempt": %d}\n' % (me, message["attempt"])
    else:
        answer = json.dumps(result).encode() + b"\n"
    try:
        os.write(result_fd, answer)
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


def make_handler() -> logging.Handler:
    """The handler of every attempt's logger (made once, in the template): it writes to
    sys.stderr, which each attempt points at its own log file."""
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
