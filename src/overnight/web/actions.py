"""What the dashboard's buttons do: start `overnight` commands as separate processes.

The web server never runs a batch itself: a launch is an ordinary `overnight run` in its
own session (so it outlives the server, and the batch lock and crash sentinel work as
from a terminal), with OVERNIGHT_TRIGGER=web and OVERNIGHT_LAUNCHED_BY=<user> so the
ledger records who. Its output goes to a file under state_dir/logs/web/.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from overnight.commandline import CommandLine
from overnight.config import Config

# How long to watch a new process for an immediate refusal (bad date, already running)
# when nothing tells us sooner that it is under way.
_QUICK_EXIT = 1.5
# A run is under way once it holds its batch's lock: wait for that, or for a refusal, up to
# this long (a loaded machine may take seconds to import and validate a batch).
RUN_START = 20.0


@dataclass
class Outcome:
    ok: bool
    message: str


def start(
    config: Config, user: str, what: str, args: list[str], wait: float = _QUICK_EXIT,
    holds: str | None = None,
) -> Outcome:
    """Start `overnight ARGS...` detached; report a refusal if it exits at once.

    With `holds` (a batch name), it is known to be under way as soon as it holds that
    batch's lock, however busy the machine; until then a refusal (exit 2 or 3) may come.
    """
    from overnight.lock import holder

    out_path = config.state.web_launch_log(args[0])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(OVERNIGHT_TRIGGER="web", OVERNIGHT_LAUNCHED_BY=user)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            CommandLine.of(config).argv(*args), cwd=config.base_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + wait
    while (code := proc.poll()) is None:
        if holds is not None and (holder(config.state_dir, holds) or {}).get("pid") == proc.pid:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if code is None:
        _reap_later(proc)
        return Outcome(True, f"{what}: started (pid {proc.pid})")
    text = _last_line(out_path)
    if code == 0:
        return Outcome(True, f"{what}: done" + (f" ({text})" if text else ""))
    return Outcome(False, f"{what}: exit {code}" + (f": {text}" if text else ""))


def wait_for_lock(config: Config, batch: str, seconds: float) -> bool:
    """Wait until nobody holds the batch's lock (True), or `seconds` pass (False)."""
    from overnight.lock import holder

    deadline = time.monotonic() + seconds
    while holder(config.state_dir, batch) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Collect the exit status when it comes, so no zombie is left behind."""
    import threading

    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
