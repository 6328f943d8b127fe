"""Worker-side logs: the full output of each remote step, kept on its worker host under
``remote-logs/BATCH/DATE/``, pruned by age.

The worker prunes them itself (when it starts, then at most once a day after a step), so a
worker host's disk does not fill with years of output; `prune_worker_logs` is the one
function that does it, for `overnight prune` to call as well.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from overnight.durations import parse_duration
from overnight.statefolder import StateFolder

KEEP_VARIABLE = "OVERNIGHT_WORKER_LOGS_KEEP"   # how long to keep them: "400d" by default
DEFAULT_KEEP = 400 * 86400
PRUNE_EVERY = 86400.0

_last_pruned = 0.0


def prune_worker_logs(state: StateFolder, keep: float, now: float) -> int:
    """Remove the step logs under remote-logs/ last written more than `keep` seconds before
    `now`, and the folders that leaves empty. Returns how many files went."""
    root = state.remote_logs
    removed = 0
    if not root.is_dir():
        return 0
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            path = Path(folder) / name
            try:
                if now - path.stat().st_mtime > keep:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        if Path(folder) != root:
            try:
                os.rmdir(folder)  # only when empty
            except OSError:
                pass
    return removed


def keep_from_environment() -> float:
    return parse_duration(os.environ.get(KEEP_VARIABLE) or DEFAULT_KEEP, KEEP_VARIABLE)


def prune_now_and_then(state: StateFolder) -> None:
    """On the worker: prune when it starts, then at most once every PRUNE_EVERY seconds."""
    global _last_pruned
    now = time.time()
    if now - _last_pruned < PRUNE_EVERY:
        return
    _last_pruned = now
    prune_worker_logs(state, keep_from_environment(), now)
