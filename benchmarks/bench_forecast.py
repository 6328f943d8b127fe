"""How close the predicted finish is to the real one, and what predicting costs the runner.

    python -m benchmarks.bench_forecast [REPS]      (or: python -m benchmarks --only extras)

Accuracy (issue 12, acceptance 2): a synthetic night of 30 steps (four chains that fan
in to a publish step, with side branches) whose steps `sleep` known durations, each night
jittered by up to +-10% per step (a seeded random draw), run with 4 workers by the real
`overnight run`. Five nights build the history; on the sixth, the prediction the runner
made at its start (forecasts.first_finish) is compared with the launch's real end. The
error is |predicted - real| / (real - start), over `reps` repetitions (each a fresh
ledger and fresh draws). Target: within 5%.

Cost: one prediction (forecast.predict_finish) at the start of a night of N steps, in
process, for N = 30, 1,000 and 10,000 (a chain and a 4-wide fan of chains): what a step
boundary pays when the runner predicts again (nightwatch.py makes it at most once per 50
times its cost, and after the boundary's commit when it costs more than 2 ms). And in a
real launch, as an A/B: a chain of 1,000 `true` steps with history, run by the real Runner
with its NightWatch and with one that never predicts, in turn, from copies of one ledger.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

STEPS = 30
WORKERS = 4
HISTORY_NIGHTS = 5
JITTER = 0.10


def _durations(seed: int) -> dict[str, float]:
    """The night's base durations (seconds): 0.3 to 1.5 s, fixed by the seed."""
    draw = random.Random(seed)
    return {f"s{i:02d}": round(draw.uniform(0.3, 1.5), 2) for i in range(STEPS)}


def _module(base: dict[str, float], night: int, seed: int) -> str:
    """The batch module of one night: its steps sleep the base durations, jittered."""
    draw = random.Random(seed * 1000 + night)
    lines = ["from overnight import Batch", 'batch = Batch("synthetic")']
    names = list(base)
    for i, name in enumerate(names):
        took = base[name] * (1 + draw.uniform(-JITTER, JITTER))
        if i < 4:
            after = "[]"                                   # four chains start at once
        elif i == STEPS - 1:
            after = repr(names[STEPS - 5:STEPS - 1])       # publish: after the four chain ends
        else:
            after = repr([names[i - 4]])                   # each chain: every fourth step
        lines.append(f"batch.command({name!r}, 'sleep {took:.3f}', after={after})")
    return "\n".join(lines) + "\n"


def accuracy_once(root: Path, seed: int) -> dict[str, float]:
    base = _durations(seed)
    (root / "overnight.toml").write_text(
        '[overnight]\nstate_dir = "state"\ntimezone = "UTC"\n\n[batches.synthetic]\nmodule = "synthetic.py"\n'
    )
    for night in range(HISTORY_NIGHTS + 1):
        (root / "synthetic.py").write_text(_module(base, night, seed))
        day = f"2026-11-{night + 1:02d}"
        done = subprocess.run(
            [sys.executable, "-m", "overnight", "run", "synthetic", "--date", day, "--workers", str(WORKERS)],
            cwd=root, capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"night {day} failed: {done.stderr[-500:]}")
    conn = sqlite3.connect(root / "state" / "ledger.db")
    try:
        started, ended, predicted = conn.execute(
            "SELECT l.started_at, l.ended_at, f.first_finish FROM launches l JOIN forecasts f "
            "ON f.launch_id = l.id ORDER BY l.id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    makespan = ended - started
    return {"makespan_s": round(makespan, 3), "predicted_s": round(predicted - started, 3),
            "error_pct": round(100 * (predicted - ended) / makespan, 2)}


def prediction_cost(steps: int, width: int, reps: int) -> float:
    """Microseconds for one prediction over a night of `steps` steps, `width` chains wide."""
    from overnight.forecast import predict_finish

    names = [f"s{i}" for i in range(steps)]
    dependents = {names[i]: [names[i + width]] for i in range(steps - width)}
    waiting = {n: (1 if i >= width else 0) for i, n in enumerate(names)}
    usual = {n: 1.0 + (i % 7) for i, n in enumerate(names)}
    rank = {n: i for i, n in enumerate(names)}
    times = []
    for _ in range(max(reps, 3)):
        began = time.perf_counter()
        predict_finish(now=0.0, remaining=names, waiting=waiting, running={}, usual=usual, rank=rank,
                       dependents=dependents, workers=4)
        times.append(time.perf_counter() - began)
    return round(statistics.median(times) * 1e6, 1)


def runner_cost(steps: int, reps: int) -> dict[str, float]:
    """What predicting costs a real launch, as an A/B: a chain of `steps` `true` steps with
    one night of history, its second night launched through the real Runner in this
    process, with its NightWatch (a prediction at the boundaries) and with one that never
    predicts, in turn, each from a copy of the same ledger; milliseconds per step."""
    import shutil

    from overnight.config import load_config
    from overnight.engine import Runner
    from overnight.launch import RunOptions
    from overnight.ledger import Ledger
    from overnight.loader import load_batch
    from overnight.nightwatch import NightWatch
    from overnight.progress import Progress

    class Blind(NightWatch):
        def boundary(self) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "overnight.toml").write_text(
            '[overnight]\nstate_dir = "state"\ntimezone = "UTC"\n\n[batches.chain]\nmodule = "chain.py"\n'
        )
        body = "\n".join(f"batch.command('s{i}', 'true')" for i in range(steps))
        (root / "chain.py").write_text(f"from overnight import Batch\nbatch = Batch('chain')\n{body}\n")
        subprocess.run([sys.executable, "-m", "overnight", "run", "chain", "--date", "2026-11-01"], cwd=root,
                       capture_output=True, check=True)
        config = load_config(str(root / "overnight.toml"))
        order = load_batch(str(root / "chain.py"), root).order
        saved = root / "history.db"
        shutil.copy(config.state.ledger, saved)
        times: dict[str, list[float]] = {"predicting": [], "not_predicting": []}
        for _ in range(reps):
            for kind, watch in (("predicting", NightWatch), ("not_predicting", Blind)):
                shutil.copy(saved, config.state.ledger)
                for extra in ("-wal", "-shm"):
                    Path(f"{config.state.ledger}{extra}").unlink(missing_ok=True)
                ledger = Ledger.open(config.state.ledger)
                logs = config.state.run_logs("chain", "2026-11-02")
                logs.folder.mkdir(parents=True, exist_ok=True)
                runner = Runner("chain", order, ledger, options=RunOptions(date=date(2026, 11, 2)),
                                workdir=root, logs=logs, progress=Progress(out=open(os.devnull, "w")),
                                watch=watch())
                began = time.perf_counter()
                runner.run()
                times[kind].append((time.perf_counter() - began) * 1000 / steps)
                ledger.close()
    a, b = statistics.median(times["predicting"]), statistics.median(times["not_predicting"])
    return {"ms_per_step_predicting": round(a, 3), "ms_per_step_not_predicting": round(b, 3),
            "ratio": round(a / b, 3), "values": {k: [round(v, 3) for v in vs] for k, vs in times.items()}}


def run(reps: int = 5) -> dict:
    nights = []
    for rep in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            nights.append(accuracy_once(Path(tmp), seed=rep + 1))
    errors = [abs(n["error_pct"]) for n in nights]
    return {
        "reps": reps,
        "accuracy": {
            "steps": STEPS, "workers": WORKERS, "history_nights": HISTORY_NIGHTS, "jitter_pct": JITTER * 100,
            "abs_error_pct_median": round(statistics.median(errors), 2),
            "abs_error_pct_max": round(max(errors), 2),
            "nights": nights,
        },
        "runner_chain_1000": runner_cost(1000, max(1, reps // 2)),
        "prediction_cost_us": {
            f"{n}_steps_{shape}": prediction_cost(n, width, reps)
            for n in (30, 1000, 10000) for shape, width in (("chain", 1), ("4_chains", 4))
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
