"""Inside the template process and the attempt processes it forks (Python steps).

The template is forked from the runner once the batch module is imported, so an attempt
pays for no import. For each attempt the runner sends it one message (and the write end of
a pipe of that attempt's own); the template forks, and the child runs the step and exits.
Nothing an attempt does (module state, threads, signal handlers, working folder,
environment) reaches the next one: each starts as a fresh copy of the template.

The attempt child first says who it is ("hello" and its pid) on its pipe, then answers once
with its outcome, bound to its pid and attempt number. A process the step forks that falls
back into this code (``if os.fork() == 0: ... sys.exit(0)``) is not the attempt's process:
it leaves without a word. The runner checks the pid too.

The template reaps its children only when the runner says so (after it has killed what
each left behind), so a finished attempt's pid stays reserved until then.
"""

from __future__ import annotations

import array
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
from overnight.sentinel import close_fds_except, redirect_stdio_to_devnull

MAX_MESSAGE = 1 << 20


def template_main(sock: socket.socket, steps: dict[str, Step]) -> None:
    """Fork one attempt per message until the runner closes its end of the socket."""
    children: set[int] = set()
    fds_size = socket.CMSG_SPACE(array.array("i", [0]).itemsize)
    while True:
        try:
            data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, fds_size)
        except InterruptedError:
            continue
        if not data:
            break
        message = json.loads(data)
        _reap(children, message.get("reap", ()))
        fds = _received_fds(ancillary)
        if message.get("op") != "run" or not fds:
            for fd in fds:
                os.close(fd)
            continue
        result_fd = fds[0]
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                sock.close()
                code = _attempt_main(steps[message["step"]], message, result_fd)
            finally:
                os._exit(code)
        children.add(pid)
        os.close(result_fd)
    # The runner is gone (or done): nothing of ours outlives it.
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _reap(children, list(children))


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)


def _reap(children: set[int], pids: Any) -> None:
    for pid in pids:
        if pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            children.discard(pid)


def _attempt_main(step: Step, message: dict[str, Any], result_fd: int) -> int:
    """The attempt's own process: say who it is, run the step, answer once, exit."""
    me = os.getpid()
    os.setsid()
    _fresh_signals()
    group = message.get("cgroup")
    if group:
        from overnight.killnet import join

        join(group)  # before any code of the step runs: it cannot start anything outside
    close_fds_except({0, 1, 2, result_fd})
    os.set_inheritable(result_fd, False)
    os.register_at_fork(after_in_child=lambda: _close_quietly(result_fd))
    os.write(result_fd, b'{"hello": %d}\n' % me)
    result = run_callable(step, message, _handler())
    if os.getpid() != me:  # a fork of the step that came back here: not ours to answer
        return 0
    result.update(pid=me, attempt=message["attempt"])
    try:
        os.write(result_fd, json.dumps(result).encode() + b"\n")
    except OSError:
        return 71
    return 0 if result["ok"] else 1


def _fresh_signals() -> None:
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


def start_template(steps: dict[str, Step]) -> tuple[int, socket.socket]:
    """Fork the template process. Returns its pid and the runner's end of its socket."""
    from overnight.sentinel import flush_std_streams

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    flush_std_streams()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            mine.close()
            os.setsid()
            signal.set_wakeup_fd(-1)
            # The template answers to its socket alone (its end is its end); each attempt
            # restores what a fresh Python has (_fresh_signals).
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            for sig in (signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
                signal.signal(sig, signal.SIG_DFL)
            close_fds_except({0, 1, 2, theirs.fileno()})
            redirect_stdio_to_devnull()
            template_main(theirs, steps)
        except BaseException:  # noqa: BLE001 - the child must never return into the runner
            code = 70
        finally:
            os._exit(code)
    theirs.close()
    mine.setblocking(False)
    return pid, mine
