"""The cost of a remote step over Celery's own round trip for a no-op task.

Starts a throwaway redis-server and one `overnight worker` (prefork, concurrency 1) on
127.0.0.1, then measures in the same run:

- celery_rtt_ms: send_task + result.get() of a no-op task (`overnight.ping`), median of
  STEPS per rep, median over reps;
- remote_step_ms: what one more remote `true` step adds to a launch of sequential steps
  run by the real Runner: (launch of 2N steps - launch of N steps) / N, median over reps,
  so a launch's fixed costs are left out. It is everything a step costs: two ledger
  commits, dispatch, the worker's STARTED record, spawning `true` in its own process
  group on the worker, the result, and the runner learning of it;
- local_step_ms: the same batch run locally, for scale;
- overhead_ms: remote step minus Celery round trip, measured back to back in each rep,
  median over reps (target: under 5 ms);
- ledger_commit_ms: one durable ledger commit on the same file system, median. Every step,
  local or remote, costs one (its end and the start of the next share it), so it is part of
  overhead_ms; on a busy disk it can dominate it.

    python -m benchmarks.bench_celery [REPS]
"""

from __future__ import annotations

import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

STEPS = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _night(root: Path, queue: str | None, steps: int) -> Path:
    where = f', queue="{queue}"' if queue else ""
    name = f"bench-{'remote' if queue else 'local'}-{steps}"
    lines = ["from overnight import Batch", f'batch = Batch("{name}")']
    lines += [f'batch.command("noop-{i}", ["true"]{where})' for i in range(steps)]
    path = root / f"{name}.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def _launch(config, module: Path, day: date) -> float:  # noqa: ANN001
    """One launch of the batch through the real Runner; its seconds."""
    from overnight.cli.run import _remote_executors
    from overnight.engine import Runner, RunOptions
    from overnight.ledger import Ledger
    from overnight.loader import load_batch
    from overnight.progress import Progress

    loaded = load_batch(str(module), config.base_dir)
    ledger = Ledger.open(config.state.ledger)
    logs = config.state.run_logs(loaded.batch.name, day.isoformat())
    logs.folder.mkdir(parents=True, exist_ok=True)
    runner = Runner(
        loaded.batch.name, loaded.order, ledger, options=RunOptions(date=day), workdir=config.base_dir,
        logs=logs, progress=Progress(out=io.StringIO(), quiet=True),
        executors=_remote_executors(config, loaded),
    )
    result = runner.run()
    ledger.close()
    if result.exit_code != 0:
        raise RuntimeError(f"the benchmark batch failed: {result.counts}")
    return result.elapsed


def _commit_ms(folder: Path) -> float:
    import sqlite3

    conn = sqlite3.connect(folder / "commit.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (x)")
    times = []
    for i in range(200):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - started)
    conn.close()
    return statistics.median(times) * 1000


def run(reps: int = 5) -> dict:
    from overnight.config import load_config
    from overnight.remote.celery_app import PING_NAME, make_app

    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        root = Path(tmp)
        port = _free_port()
        broker = f"redis://127.0.0.1:{port}/0"
        redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        (root / "overnight.toml").write_text(
            f'[overnight]\nstate_dir = "state"\ntimezone = "UTC"\n\n[celery]\nbroker = "{broker}"\n'
        )
        env = {k: v for k, v in os.environ.items() if k != "OVERNIGHT_CONFIG"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "overnight", "worker", "--queue", "bench", "--concurrency", "1",
             "--loglevel", "WARNING"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        app = make_app(load_config(str(root / "overnight.toml")).celery)  # type: ignore[arg-type]
        try:
            def serving() -> bool:
                try:
                    answer = app.control.inspect(timeout=0.5).active_queues() or {}
                except Exception:  # noqa: BLE001 - not up yet
                    return False
                return any(q["name"] == "bench" for qs in answer.values() for q in qs)

            _wait(serving, 60, "the worker")

            def ping_rtt() -> float:
                """Median round trip of STEPS no-op tasks, seconds."""
                times = []
                for _ in range(STEPS):
                    started = time.perf_counter()
                    app.send_task(PING_NAME, queue="bench").get(timeout=30)
                    times.append(time.perf_counter() - started)
                return statistics.median(times)

            ping_rtt()  # warm-up: connections
            config = load_config(str(root / "overnight.toml"))
            day = date(2026, 1, 1)
            _launch(config, _night(root, "bench", 2), day)  # warm-up: imports, connections
            nights = {q: (_night(root, q, STEPS), _night(root, q, 2 * STEPS)) for q in ("bench", None)}
            rtts, remote_steps, local_steps, overheads = [], [], [], []
            for i in range(reps):
                # One of each per rep, back to back, so a busy moment weighs on both sides
                # of the difference alike.
                when = day + timedelta(days=i + 1)
                per_step = {}
                for queue, (short, long) in nights.items():
                    per_step[queue] = (_launch(config, long, when) - _launch(config, short, when)) / STEPS
                rtt = ping_rtt()
                rtts.append(rtt)
                remote_steps.append(per_step["bench"])
                local_steps.append(per_step[None])
                overheads.append(per_step["bench"] - rtt)
            commit = _commit_ms(root)
        finally:
            app.close()
            worker.terminate()
            worker.wait(30)
            redis.terminate()
            redis.wait(10)
    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 2)

    return {
        "celery_rtt_ms": ms(rtts),
        "remote_step_ms": ms(remote_steps),
        "local_step_ms": ms(local_steps),
        "overhead_ms": ms(overheads),
        "ledger_commit_ms": round(commit, 2),
        "target_overhead_ms": 5.0,
        "steps_per_launch": STEPS,
        "reps": reps,
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
