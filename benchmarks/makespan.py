"""Workload 9: how close a whole night comes to the best possible finish (issue 15).

Random DAGs of 20-200 steps, each step a `sleep` of a known duration, run with 2, 4 and 8
workers. The first night has no history, so ready steps start in declaration order; the
second night orders them by the critical path from the first night's durations. Luigi
runs the same DAG with its default scheduling. Each makespan (first start to last end) is
divided by the lower bound no schedule can beat, max(critical path, total work / workers),
computed from the known durations.

overnight's makespan comes from its ledger (a step's start is recorded before its process
is spawned, its end after the exit is seen): it includes every step's spawn and commit.
Luigi's comes from stamps its tasks write around the `sleep` they run: a little in its
favour.

A second ratio divides by the same bound computed from the durations the steps took, as
measured (the sleep, its process's start and exit): on a busy machine a `sleep 0.01` can
take several times that, which no order can help; that ratio is the order's own doing.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.harness import Project, summary

TARGET_MEDIAN, TARGET_WORST = 1.05, 1.15

Dag = tuple[list[list[int]], list[float]]  # per step: its prerequisites (earlier steps), its seconds


def random_dag(seed: int, mean: float) -> Dag:
    """A DAG of 20-200 steps in a random topological (declaration) order. Most steps come
    after one or two recent ones (chains and fans, as a night's imports and reports are),
    some after older ones, a few after nothing; durations are heavy-tailed (a few long
    imports, many short reports), scaled so that a step takes `mean` seconds on average."""
    rng = random.Random(seed)
    n = rng.randint(20, 200)
    after: list[list[int]] = []
    for j in range(n):
        picks: set[int] = set()
        for _ in range(min(j, rng.choice([0, 1, 1, 1, 2, 2, 3]))):
            recent = rng.random() < 0.7
            picks.add(rng.randrange(max(0, j - 8), j) if recent else rng.randrange(0, j))
        after.append(sorted(picks))
    raw = [min(10.0, max(0.2, rng.lognormvariate(0, 1))) for _ in range(n)]
    scale = mean * n / sum(raw)
    return after, [round(d * scale, 4) for d in raw]


def critical_path(dag: Dag) -> float:
    after, durations = dag
    finish = [0.0] * len(durations)
    for j, prereqs in enumerate(after):  # prerequisites come first: one pass
        finish[j] = durations[j] + max((finish[p] for p in prereqs), default=0.0)
    return max(finish)


def lower_bound(dag: Dag, workers: int) -> float:
    """No schedule on `workers` workers finishes sooner (overheads aside)."""
    return max(critical_path(dag), sum(dag[1]) / workers)


def batch_source(dag: Dag) -> str:
    after, durations = dag
    return (
        "from overnight import Batch\n\n"
        f"AFTER = {after!r}\nSECONDS = {durations!r}\n"
        'batch = Batch("dag")\n'
        "for i, (after, seconds) in enumerate(zip(AFTER, SECONDS)):\n"
        '    batch.command(f"s{i}", ["sleep", str(seconds)], after=[f"s{j}" for j in after])\n'
    )


def simulated(dag: Dag, workers: int, critical: bool = True) -> float:
    """The makespan the runner's own rules give on a simulated clock, no process spawned
    (forecast.predict_finish plays the runner's loop forward; planner.ready_rank orders it,
    from the known durations, or in declaration order), over the bound."""
    from overnight.batch import Batch, dependents_of
    from overnight.forecast import predict_finish
    from overnight.planner import ready_rank, remaining_paths

    after, seconds = dag
    batch = Batch("dag")
    for i, prereqs in enumerate(after):
        batch.command(f"s{i}", "true", after=[f"s{j}" for j in prereqs])
    steps = batch.validate()
    usual = {f"s{i}": d for i, d in enumerate(seconds)}
    dependents = dependents_of(steps)
    rank = ready_rank(steps, remaining_paths(steps, usual, dependents) if critical else None)
    forecast = predict_finish(
        now=0.0, remaining=[s.name for s in steps], waiting={s.name: len(s.after) for s in steps},
        running={}, usual=usual, rank=rank, dependents=dependents, workers=workers,
    )
    return forecast.finish / lower_bound(dag, workers)


def _ratios(spans: list[tuple[float, float, int]], dag: Dag, workers: int) -> tuple[float, float]:
    """The makespan of (start, end, step) spans over the bound from the known durations,
    and over the bound from the measured ones."""
    span = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    took = [0.0] * len(dag[1])
    for start, end, step in spans:
        took[step] = end - start
    return span / lower_bound(dag, workers), span / lower_bound((dag[0], took), workers)


def _ledger_spans(project: Project, day: str) -> list[tuple[float, float, int]]:
    rows = project.query(
        "SELECT a.started_at, a.ended_at, a.step FROM attempts a JOIN runs r ON r.id = a.run_id "
        "WHERE r.date = ?", (day,),
    )
    return [(start, end, int(step[1:])) for start, end, step in rows]


def _luigi_spans(where: Path, dag: Dag, workers: int) -> list[tuple[float, float, int]]:
    spec, stamps, out = where / "dag.json", where / "stamps.txt", where / "out"
    spec.write_text(json.dumps({"after": dag[0], "seconds": dag[1]}))
    out.mkdir()
    peers.run_luigi(where, "DagNight", [], workers=workers, BENCH_DAG=str(spec), BENCH_STAMPS=str(stamps),
                    BENCH_OUT=str(out))
    spans = []
    for line in stamps.read_text().splitlines():
        start, end, step = line.split()
        spans.append((float(start), float(end), int(step)))
    if len(spans) != len(dag[1]):
        raise RuntimeError(f"Luigi ran {len(spans)} of {len(dag[1])} tasks")
    return spans


def makespan(s: Any) -> list[dict[str, Any]]:
    dags = 3 if s.quick else 20
    mean = 0.025 if s.quick else 0.08  # seconds per step on average: a spawn and a commit are ~1% of it
    workers = (2, 4) if s.quick else (2, 4, 8)
    kinds = ("critical", "declaration", "luigi", "simulated", "simulated-declaration")
    known: dict[str, dict[int, list[float]]] = {k: {w: [] for w in workers} for k in kinds}
    measured: dict[str, dict[int, list[float]]] = {k: {w: [] for w in workers} for k in kinds}

    def note(kind: str, w: int, ratios: tuple[float, float]) -> None:
        known[kind][w].append(ratios[0])
        measured[kind][w].append(ratios[1])

    for seed in range(dags):
        dag = random_dag(seed, mean)
        for w in workers:
            known["simulated"][w].append(simulated(dag, w))
            known["simulated-declaration"][w].append(simulated(dag, w, critical=False))
            project = Project.create(s.where, f"makespan-{seed}-{w}")
            project.add_batch("dag", batch_source(dag))
            for day, kind in (("2026-03-01", "declaration"), ("2026-03-02", "critical")):
                project.run("run", "dag", "--workers", str(w), "--date", day)
                note(kind, w, _ratios(_ledger_spans(project, day), dag, w))
            if s.luigi:
                luigi = project.root / "luigi"
                luigi.mkdir()
                peers.write_module(luigi)
                note("luigi", w, _ratios(_luigi_spans(luigi, dag, w), dag, w))
            shutil.rmtree(project.root, ignore_errors=True)
    rows = []
    for w in workers:
        label = f"9. makespan, {dags} random DAGs of 20-200 steps, {w} workers"
        rows.append(_row(label, "over the bound of known durations", {k: v[w] for k, v in known.items()}))
        rows.append(_row(label, "over the bound of measured durations",
                         {k: v[w] for k, v in measured.items()}, target=False))
    return rows


def _row(label: str, metric: str, ratios: dict[str, list[float]], target: bool = True) -> dict[str, Any]:
    critical, declaration = ratios["critical"], ratios["declaration"]
    worst = max(critical)
    met = statistics.median(critical) <= TARGET_MEDIAN and worst <= TARGET_WORST
    return {
        "workload": label, "metric": f"makespan {metric}", "unit": "x",
        "overnight": summary(critical), "luigi": summary(ratios["luigi"]) if ratios["luigi"] else None,
        "derived": {
            "declaration_median": statistics.median(declaration), "declaration_worst": max(declaration),
            "critical_worst": worst,
            **({"simulated": summary(ratios["simulated"]),
                "simulated_declaration": summary(ratios["simulated-declaration"])} if target else {}),
        },
        "target": f"median <= {TARGET_MEDIAN}, worst <= {TARGET_WORST}" if target else None,
        "met": met if target else None,
    }
