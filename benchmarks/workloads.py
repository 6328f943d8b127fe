"""The workloads of issue 3, each measured for `overnight`, its floor and (where named) Luigi.

Each function takes the session's Settings and returns a list of result rows (plain dicts,
written to the JSON as they are). A row has a `workload`, a `metric` with its `unit`, the
measurements per contender (`overnight`, `floor`, `luigi`: median, min, max, values), and
`derived` figures (overhead per step, ratios), plus the `target` where the issue sets one.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import statistics
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.harness import (
    Project,
    gap_stats,
    merge_gaps,
    python_floor,
    read_stamps,
    summary,
    timed,
)

DATE = "2026-01-01"
ONE_STEP = 'from overnight import Batch\nbatch = Batch("one")\nbatch.command("a", ["true"])\n'


@dataclass
class Settings:
    where: Path                       # the scratch folder of this session
    reps: int
    sizes: list[int]                  # N of the chains
    luigi_sizes: list[int]            # the N at which Luigi runs too
    stamp: Path                       # the compiled stamp program
    quick: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def luigi(self) -> bool:
        return peers.luigi_available()


def _row(workload: str, metric: str, unit: str, **parts: Any) -> dict[str, Any]:
    return {"workload": workload, "metric": metric, "unit": unit, **parts}


# -- 1, 2, 3, 7: chains ----------------------------------------------------------------


def _chain_source(name: str, n: int, kind: str, stamp: Path, stamps: Path) -> str:
    if kind == "true":
        step = 'batch.command(f"s{i}", ["true"])'
        head = ""
    elif kind == "stamp":
        step = f'batch.command(f"s{{i}}", [{str(stamp)!r}, {str(stamps)!r}])'
        head = ""
    elif kind == "noop":
        head = "def noop(ctx):\n    pass\n"
        step = 'batch.step(noop, name=f"s{i}")'
    else:  # noop-stamp
        head = _STAMPED_PY.format(path=str(stamps))
        step = 'batch.step(stamped, name=f"s{i}")'
    return (
        f"from overnight import Batch\n\n{head}\n"
        f"batch = Batch({name!r})\nfor i in range({n}):\n    {step}\n"
    )


_STAMPED_PY = '''import os
import time


def stamped(ctx):
    start = time.time_ns()
    end = time.time_ns()
    fd = os.open({path!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%d %d\\n" % (start, end))
    os.close(fd)

'''

_FLOOR_COMMAND = '''
import subprocess
for _ in range({n}):
    subprocess.run({argv!r})
'''

_FLOOR_CALLABLE = '''
{head}
fn = {fn}
for _ in range({n}):
    fn(None)
'''


def _ledger_gaps(project: Project) -> dict[str, float] | None:
    """Gaps from the ledger's own timestamps, in the latest launch."""
    rows = project.query(
        "SELECT started_at, ended_at FROM attempts WHERE launch_id = "
        "(SELECT max(id) FROM launches) ORDER BY started_at"
    )
    return gap_stats([(int(a * 1e9), int(b * 1e9)) for a, b in rows])


def chains(s: Settings, kind: str) -> list[dict[str, Any]]:
    """Workload 1 (kind "command") or 2 (kind "callable"), with 3 (gaps) and 7 (memory)."""
    rows: list[dict[str, Any]] = []
    plain, stamped = ("true", "stamp") if kind == "command" else ("noop", "noop-stamp")
    for n in s.sizes:
        project = Project.create(s.where, f"{kind}-{n}")
        stamps = project.root / "stamps.txt"
        project.add_batch(f"plain-{n}", _chain_source(f"plain-{n}", n, plain, s.stamp, stamps))
        project.add_batch(f"stamped-{n}", _chain_source(f"stamped-{n}", n, stamped, s.stamp, stamps))
        with_luigi = s.luigi and n in s.luigi_sizes
        luigi_dir = project.root / "luigi"
        if with_luigi:
            luigi_dir.mkdir()
            peers.write_module(luigi_dir)
        walls: dict[str, list[float]] = {"overnight": [], "floor": [], "luigi": []}
        rss: dict[str, list[float]] = {"overnight": [], "luigi": []}
        cpu: dict[str, list[float]] = {"overnight": [], "floor": [], "luigi": []}
        gaps: dict[str, list[Any]] = {"overnight": [], "ledger": [], "floor": [], "luigi": []}
        ledger_bytes: list[float] = []
        for rep in range(s.reps):
            day = f"2026-01-{rep + 1:02d}"
            # Plain steps: the wall time.
            t = project.run("run", f"plain-{n}", "--date", day)
            walls["overnight"].append(t.wall)
            cpu["overnight"].append(t.cpu)
            rss["overnight"].append(t.maxrss_kb / 1024)
            if kind == "command":
                floor = python_floor(_FLOOR_COMMAND.format(n=n, argv=["true"]), project.root)
            else:
                floor = python_floor(
                    _FLOOR_CALLABLE.format(head="def noop(ctx):\n    pass\n", fn="noop", n=n),
                    project.root,
                )
            walls["floor"].append(floor.wall)
            cpu["floor"].append(floor.cpu)
            if with_luigi:
                lt = peers.run_luigi(luigi_dir, "Chain", ["--i", str(n - 1)], BENCH_KIND=plain)
                walls["luigi"].append(lt.wall)
                cpu["luigi"].append(lt.cpu)
                rss["luigi"].append(lt.maxrss_kb / 1024)
            # Stamped steps: the gaps, from inside the steps and from the ledger.
            stamps.unlink(missing_ok=True)
            project.run("run", f"stamped-{n}", "--date", day)
            gaps["overnight"].append(gap_stats(read_stamps(stamps)))
            gaps["ledger"].append(_ledger_gaps(project))
            stamps.unlink()
            if kind == "command":
                python_floor(_FLOOR_COMMAND.format(n=n, argv=[str(s.stamp), str(stamps)]), project.root)
            else:
                python_floor(
                    _FLOOR_CALLABLE.format(head=_STAMPED_PY.format(path=str(stamps)), fn="stamped", n=n),
                    project.root,
                )
            gaps["floor"].append(gap_stats(read_stamps(stamps)))
            if with_luigi:
                stamps.unlink()
                peers.run_luigi(luigi_dir, "Chain", ["--i", str(n - 1)], BENCH_KIND=stamped,
                                BENCH_STAMP=str(s.stamp), BENCH_STAMPS=str(stamps))
                gaps["luigi"].append(gap_stats(read_stamps(stamps)))
        if kind == "command":
            ledger_bytes.append(_ledger_bytes_per_attempt(project))
        over, flo = summary(walls["overnight"]), summary(walls["floor"])
        derived: dict[str, Any] = {
            "overhead_ms_per_step": (over["median"] - flo["median"]) / n * 1e3,
            "ratio_to_floor": over["median"] / flo["median"],
        }
        lu = summary(walls["luigi"]) if walls["luigi"] else None
        if lu:
            derived["luigi_overhead_ms_per_step"] = (lu["median"] - flo["median"]) / n * 1e3
            derived["luigi_over_overnight_overhead"] = (
                derived["luigi_overhead_ms_per_step"] / derived["overhead_ms_per_step"]
                if derived["overhead_ms_per_step"] > 0 else None
            )
            derived["luigi_wall_over_overnight_wall"] = lu["median"] / over["median"]
        what = "true" if kind == "command" else "no-op callable"
        label = f"{'1' if kind == 'command' else '2'}. chain {n} x {what}"
        rows.append(_row(
            label, "wall", "s", overnight=over, floor=flo, luigi=lu, derived=derived,
            target="overhead <= 0.5 ms/step" if kind == "command" else None,
            met=(derived["overhead_ms_per_step"] <= 0.5) if kind == "command" else None,
        ))
        # CPU time is what a busy machine inflates least: the runner's own cost, plus the
        # children's, beside the floor's (and Luigi's) measured the same way.
        over_cpu, floor_cpu = summary(cpu["overnight"]), summary(cpu["floor"])
        cpu_derived = {"overhead_ms_per_step": (over_cpu["median"] - floor_cpu["median"]) / n * 1e3}
        if cpu["luigi"]:
            cpu_derived["luigi_overhead_ms_per_step"] = (
                (statistics.median(cpu["luigi"]) - floor_cpu["median"]) / n * 1e3
            )
        rows.append(_row(
            label, "CPU time (user+sys, with children)", "s", overnight=over_cpu, floor=floor_cpu,
            luigi=summary(cpu["luigi"]) if cpu["luigi"] else None, derived=cpu_derived,
        ))
        og, lg = merge_gaps(gaps["overnight"]), merge_gaps(gaps["luigi"])
        rows.append(_row(
            f"3. gap, {label[3:]}", "gap inside steps", "ms",
            overnight=og, floor=merge_gaps(gaps["floor"]), luigi=lg,
            ledger=merge_gaps(gaps["ledger"]),
            target="median <= 0.7 ms, p99 <= 2 ms",
            met=bool(og and og["median"] <= 0.7 and og["p99"] <= 2.0),
        ))
        if n == max(s.sizes) or (lu and n in s.luigi_sizes):
            rows.append(_row(
                f"7. peak RSS, {label[3:]}", "runner peak RSS", "MB",
                overnight=summary(rss["overnight"]), luigi=summary(rss["luigi"]) if rss["luigi"] else None,
                target="< 60 MB at N = 10,000" if n == 10000 else None,
                met=(statistics.median(rss["overnight"]) < 60) if n == 10000 else None,
            ))
        if ledger_bytes:
            rows.append(_row(
                f"7. ledger bytes, chain {n}", "bytes per step attempt", "B",
                overnight=summary(ledger_bytes),
            ))
        shutil.rmtree(project.root, ignore_errors=True)
    return rows


def _ledger_bytes_per_attempt(project: Project) -> float:
    project.checkpoint()
    attempts = project.query("SELECT count(*) FROM attempts")[0][0]
    # What an empty ledger weighs (schema only) is not the steps' doing.
    empty = Project.create(project.root, "empty")
    empty.add_batch("one", ONE_STEP)
    empty.run("run", "one", "--date", DATE)
    empty.checkpoint()
    base = empty.ledger.stat().st_size
    return (project.ledger.stat().st_size - base) / attempts


# -- 4: fan-out and a wide DAG ---------------------------------------------------------


def fanout(s: Settings) -> list[dict[str, Any]]:
    project = Project.create(s.where, "fanout")
    project.add_batch("fanout", '''
        from overnight import Batch
        batch = Batch("fanout")
        for i in range(32):
            batch.command(f"s{i}", ["sleep", "0.5"], after=[])
    ''')
    walls, spans, luigi_walls = [], [], []
    luigi_dir = project.root / "luigi"
    if s.luigi:
        luigi_dir.mkdir()
        peers.write_module(luigi_dir)
    for rep in range(s.reps):
        t = project.run("run", "fanout", "--workers", "8", "--date", f"2026-01-{rep + 1:02d}")
        walls.append(t.wall)
        first, last = project.query(
            "SELECT min(started_at), max(ended_at) FROM attempts WHERE launch_id = "
            "(SELECT max(id) FROM launches)"
        )[0]
        spans.append(last - first)
        if s.luigi:
            out = luigi_dir / f"out-{rep}"
            out.mkdir()
            luigi_walls.append(peers.run_luigi(luigi_dir, "FanOut", [], workers=8, BENCH_OUT=str(out)).wall)
    makespan = summary(spans)
    rows = [
        _row("4. fan-out 32 x sleep 0.5, 8 workers", "makespan (first start to last end)", "s",
             overnight=makespan, floor={"median": 2.0, "note": "ideal"},
             derived={"over_ideal_pct": (makespan["median"] / 2.0 - 1) * 100},
             target="within 3% of 2.0 s", met=makespan["median"] <= 2.06),
        _row("4. fan-out 32 x sleep 0.5, 8 workers", "whole process", "s",
             overnight=summary(walls), floor={"median": 2.0, "note": "ideal"},
             luigi=summary(luigi_walls) if luigi_walls else None,
             derived={"over_ideal_pct": (statistics.median(walls) / 2.0 - 1) * 100}),
    ]
    rows.append(_wide_dag(s, project))
    shutil.rmtree(project.root, ignore_errors=True)
    return rows


def _wide_dag(s: Settings, project: Project) -> dict[str, Any]:
    """2,000 steps of `true` in layers of 50; each step after 1-3 random steps of the layer
    before (seeded, so every run measures the same graph)."""
    rng = random.Random(2026)
    layers, width = (10 if s.quick else 40), 50
    afters = []
    for layer in range(layers):
        for _ in range(width):
            if layer == 0:
                afters.append([])
            else:
                base = (layer - 1) * width
                afters.append(sorted(rng.sample(range(base, base + width), rng.randint(1, 3))))
    project.add_batch("dag", f'''
        from overnight import Batch
        AFTER = {afters!r}
        batch = Batch("dag")
        for i, after in enumerate(AFTER):
            batch.command(f"s{{i}}", ["true"], after=[f"s{{j}}" for j in after])
    ''')
    walls, floors = [], []
    for rep in range(s.reps):
        walls.append(project.run("run", "dag", "--workers", "8", "--date", f"2026-02-{rep + 1:02d}").wall)
        floors.append(python_floor(_FLOOR_COMMAND.format(n=len(afters), argv=["true"]), project.root).wall)
    over, flo = summary(walls), summary(floors)
    return _row(
        f"4. wide DAG {len(afters):,} x true ({layers} layers of 50), 8 workers", "wall", "s",
        overnight=over, floor=flo,
        derived={"ms_per_step": over["median"] / len(afters) * 1e3,
                 "ratio_to_sequential_floor": over["median"] / flo["median"]},
    )


# -- 5: resume -------------------------------------------------------------------------


def resume(s: Settings) -> list[dict[str, Any]]:
    n = 10000 if not s.quick else 2000
    project = Project.create(s.where, "resume")
    flag = project.root / "flag"
    project.add_batch("resume", f'''
        from overnight import Batch
        batch = Batch("resume")
        for i in range({n - 1}):
            batch.command(f"s{{i}}", ["true"])
        batch.command("last", ["test", "-e", {str(flag)!r}])
    ''')
    first = project.run("run", "resume", "--date", DATE, check=False)
    if first.returncode != 1:
        raise RuntimeError(f"the resume setup should fail its last step, exited {first.returncode}")
    project.checkpoint()
    saved = project.root / "ledger-9999-done.db"
    shutil.copyfile(project.ledger, saved)
    flag.touch()
    walls = []
    for _ in range(s.reps):
        for suffix in ("-wal", "-shm"):
            Path(str(project.ledger) + suffix).unlink(missing_ok=True)
        shutil.copyfile(saved, project.ledger)
        walls.append(project.run("run", "resume", "--date", DATE).wall)
        ran = project.query(
            "SELECT count(*) FROM attempts WHERE launch_id = (SELECT max(id) FROM launches)"
        )[0][0]
        assert ran == 1, f"the resume ran {ran} steps, not 1"
    luigi = None
    if s.luigi:
        luigi_dir = project.root / "luigi"
        luigi_dir.mkdir()
        peers.write_module(luigi_dir)
        out = luigi_dir / "out"
        out.mkdir()
        for i in range(n - 1):
            (out / str(i)).touch()
        lw = []
        for _ in range(s.reps):
            (out / str(n - 1)).unlink(missing_ok=True)
            lw.append(peers.run_luigi(luigi_dir, "ChainOut", ["--i", str(n - 1)], BENCH_OUT=str(out)).wall)
        luigi = summary(lw)
    over = summary(walls)
    shutil.rmtree(project.root, ignore_errors=True)
    return [_row(
        f"5. resume chain of {n:,} with {n - 1:,} done", "whole process", "s",
        overnight=over, luigi=luigi, target="< 0.5 s" if n == 10000 else None,
        met=over["median"] < 0.5 if n == 10000 else None,
    )]


# -- 6: startup ------------------------------------------------------------------------


def startup(s: Settings) -> list[dict[str, Any]]:
    project = Project.create(s.where, "startup")
    project.add_batch("one", ONE_STEP)
    reps = max(s.reps, 10)
    runs, floors, clicks = [], [], []
    for rep in range(reps):
        day = f"2026-{rep // 28 + 1:02d}-{rep % 28 + 1:02d}"
        runs.append(project.run("run", "one", "--date", day).wall)
        floors.append(timed([sys.executable, "-c", "pass"], cwd=project.root).wall)
        clicks.append(timed([sys.executable, "-c", "import click"], cwd=project.root).wall)
    over = summary(runs)
    shutil.rmtree(project.root, ignore_errors=True)
    return [_row(
        "6. startup: run a one-step batch", "whole process", "s", overnight=over,
        floor=summary(floors), extra={"python -c 'import click'": summary(clicks)},
        derived={"above_floor_ms": (over["median"] - statistics.median(floors)) * 1e3},
        target="< 150 ms", met=over["median"] < 0.150,
    )]


# -- 8: reads --------------------------------------------------------------------------


def reads(s: Settings) -> list[dict[str, Any]]:
    project = Project.create(s.where, "reads")
    project.add_batch("status200", _chain_source("status200", 200, "true", s.stamp, s.stamp))
    project.add_batch("history", 'from overnight import Batch\nbatch = Batch("history")\n'
                      'for i in range(50):\n    batch.command(f"s{i}", ["true"])\n')
    project.run("run", "status200", "--date", DATE)
    nights = 365 if not s.quick else 60
    _fill_history(project, "history", nights, 50)
    reps = max(s.reps, 10)
    cases = [
        ("8. status of a 200-step run", ["status", "status200"], lambda v, led: _status(v, led, "status200")),
        (f"8. history of {nights} nights x 50 steps", ["history", "history", "--limit", str(nights)],
         lambda v, led: v.print_history(led, "history", nights, False)),
    ]
    from overnight import views
    from overnight.ledger import Ledger

    rows = []
    for label, argv, render in cases:
        whole, inner, floor = [], [], []
        for _ in range(reps):
            whole.append(project.run(*argv, output="read.out").wall)
            floor.append(timed([sys.executable, "-c", "pass"], cwd=project.root).wall)
            start = time.perf_counter()
            ledger = Ledger.open(project.ledger, readonly=True)
            with redirect_stdout(io.StringIO()):
                render(views, ledger)
            ledger.close()
            inner.append(time.perf_counter() - start)
        rows.append(_row(label, "whole process", "s", overnight=summary(whole), floor=summary(floor),
                         target="< 150 ms", met=statistics.median(whole) < 0.150))
        rows.append(_row(label, "query + render (in process)", "s", overnight=summary(inner),
                         target="< 20 ms", met=statistics.median(inner) < 0.020))
    shutil.rmtree(project.root, ignore_errors=True)
    return rows


def _status(views: Any, ledger: Any, batch: str) -> None:
    views.print_status(ledger, ledger.latest_run(batch), False)


def _fill_history(project: Project, batch: str, nights: int, steps: int) -> None:
    """`nights` past runs of a 50-step batch, written through the ledger's own API (as fast
    as a real night's records, without spending an hour running them)."""
    from datetime import date, timedelta

    from overnight.batch import Batch
    from overnight.ledger import Ledger
    from overnight.states import RunState, StepState

    b = Batch(batch)
    for i in range(steps):
        b.command(f"s{i}", ["true"])
    order = b.validate()
    ledger = Ledger.open(project.ledger)
    day0 = date(2025, 1, 1)
    with ledger.transaction():
        for night in range(nights):
            day = (day0 + timedelta(days=night)).isoformat()
            t0 = time.time() - (nights - night) * 86400
            run = ledger.ensure_run(batch, day)
            launch = ledger.start_launch(run.id, batch, trigger="schedule", launched_by="bench",
                                         options={"workers": 1})
            ledger.sync_steps(run.id, order)
            for i, step in enumerate(order):
                started = t0 + i
                log = f"/var/log/overnight/{step.name}.1.log"
                attempt = ledger.start_attempt(run.id, step.name, 1, launch, log, started)
                ledger.set_step_state(run.id, step.name, StepState.PENDING, StepState.RUNNING, launch)
                ledger.finish_attempt(attempt, StepState.SUCCEEDED, started + 0.5, 0, None)
                ledger.set_step_state(run.id, step.name, StepState.RUNNING, StepState.SUCCEEDED, launch)
            ledger.end_launch(launch, run.id, RunState.SUCCEEDED, None)
    ledger.close()


def dump(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)
