"""`python -m benchmarks`: every workload of issue 3, one table, one JSON file.

    python -m benchmarks                 # the full suite, 5 repetitions (about 10-15 minutes)
    python -m benchmarks --quick         # smaller N, 2 repetitions: a smoke run (under ~2 min)
    python -m benchmarks --reps 3 --only chain-command startup

Luigi is measured beside `overnight` when it is installed (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import makespan, peers, workloads
from benchmarks.harness import RESULTS, build_stamp, probe, scratch
from benchmarks.workloads import Settings

WORKLOADS = {
    "chain-command": lambda s: workloads.chains(s, "command"),
    "chain-callable": lambda s: workloads.chains(s, "callable"),
    "fanout": workloads.fanout,
    "resume": workloads.resume,
    "startup": workloads.startup,
    "reads": workloads.reads,
    "makespan": makespan.makespan,
}

# Benchmarks other parts contribute (each module has `run(reps) -> dict`), when present.
OPTIONAL = ("benchmarks.bench_web", "benchmarks.bench_login", "benchmarks.bench_celery",
            "benchmarks.bench_forecast")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, help="repetitions of each measurement (default 5, quick 2)")
    parser.add_argument("--quick", action="store_true", help="small N and few repetitions (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS) + ["extras"], metavar="WORKLOAD",
                        help=f"run only these ({', '.join(sorted(WORKLOADS))}, extras)")
    parser.add_argument("--luigi-large", action="store_true",
                        help="also run Luigi at N = 10,000 (slow: its scheduler is quadratic, minutes)")
    parser.add_argument("--no-luigi", action="store_true", help="leave Luigi out even when installed")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where the JSON goes")
    parser.add_argument("--sizes", type=int, nargs="+", help="the N of the chains (default 1000 10000)")
    args = parser.parse_args(argv)

    reps = args.reps or (2 if args.quick else 5)
    sizes = [300] if args.quick else [1000, 10000]
    luigi_sizes = [300] if args.quick else ([1000, 10000] if args.luigi_large else [1000])
    if args.sizes:
        sizes = args.sizes
        luigi_sizes = [n for n in sizes if n <= 1000 or args.luigi_large]
    if args.no_luigi:
        luigi_sizes = []
    where = scratch()
    started = time.time()
    try:
        settings = Settings(where=where, reps=reps, sizes=sizes, luigi_sizes=luigi_sizes,
                            stamp=build_stamp(where), quick=args.quick)
        if args.no_luigi:
            peers.luigi_available = lambda: False  # type: ignore[assignment]
        if not settings.luigi:
            print("note: Luigi is not installed (pip install -e '.[bench]'): measuring without it",
                  file=sys.stderr)
        before = probe(where)
        rows: list[dict[str, Any]] = []
        chosen = args.only or [*WORKLOADS, "extras"]
        for name in chosen:
            if name == "extras":
                rows += _extras(reps)
                continue
            print(f"[{time.time() - started:6.1f}s] {name} ...", file=sys.stderr, flush=True)
            rows += WORKLOADS[name](settings)
        after = probe(where)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    report = {
        "machine": machine(),
        "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "reps": reps,
        "sizes": sizes,
        "luigi": peers.luigi_version(),
        "seconds": round(time.time() - started, 1),
        "probe": {"before": before, "after": after},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nfigures written to {args.out}")
    return 0


def _extras(reps: int) -> list[dict[str, Any]]:
    rows = []
    for name in OPTIONAL:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        result = module.run(reps)
        rows.append({"workload": name.rsplit(".", 1)[1], "metric": "see extra", "unit": "",
                     "extra": result})
    return rows


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        sqlite = subprocess.run([sys.executable, "-c", "import sqlite3; print(sqlite3.sqlite_version)"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        sqlite = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite,
    }


# -- the table ---------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "x":
        return f"{value:.3f}"
    return f"{value:.0f} {unit}".strip()


def _cell(part: Any, unit: str) -> str:
    if not part:
        return "-"
    if "p99" in part:  # gaps
        return f"med {part['median']:.2f} p99 {part['p99']:.2f} max {part['max']:.1f} ms"
    if part.get("min") is None or part["min"] == part["max"]:
        return _fmt(part["median"], unit) + (f" ({part['note']})" if part.get("note") else "")
    return f"{_fmt(part['median'], unit)} [{_fmt(part['min'], unit)}-{_fmt(part['max'], unit)}]"


def _scalar(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _derived(row: dict[str, Any]) -> str:
    d = row.get("derived") or {}
    bits = []
    if "overhead_ms_per_step" in d:
        bits.append(f"+{d['overhead_ms_per_step']:.2f} ms/step over floor")
    if d.get("luigi_overhead_ms_per_step") is not None:
        bits.append(f"Luigi +{d['luigi_overhead_ms_per_step']:.2f} ms/step")
    if d.get("luigi_over_overnight_overhead"):
        bits.append(f"Luigi/overnight overhead {d['luigi_over_overnight_overhead']:.0f}x")
    if "over_ideal_pct" in d:
        bits.append(f"{d['over_ideal_pct']:+.1f}% vs ideal")
    if "ms_per_step" in d:
        bits.append(f"{d['ms_per_step']:.2f} ms/step, {d['ratio_to_sequential_floor']:.2f}x sequential floor")
    if "declaration_median" in d:
        bits.append(f"worst {d['critical_worst']:.3f}; declaration order (1st night) median "
                    f"{d['declaration_median']:.3f}, worst {d['declaration_worst']:.3f}")
        if "simulated" in d:
            sim, decl = d["simulated"], d["simulated_declaration"]
            bits.append(f"simulated, no processes: critical path median {sim['median']:.3f} worst "
                        f"{sim['max']:.3f}, declaration order median {decl['median']:.3f} "
                        f"worst {decl['max']:.3f}")
    if "above_floor_ms" in d:
        bits.append(f"+{d['above_floor_ms']:.0f} ms over python -c pass")
    if row.get("ledger"):
        g = row["ledger"]
        bits.append(f"ledger gap med {g['median']:.2f} p99 {g['p99']:.2f} ms")
    return "; ".join(bits)


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"overnight benchmarks: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"SQLite {m['sqlite']}, Luigi {report['luigi'] or 'not installed'}; {report['reps']} repetitions, "
        "median [min-max]",
    ]
    for when, p in report["probe"].items():
        lines.append(
            f"machine {when}: durable commit {p['commit_ms']:.2f} ms (p99 {p.get('commit_p99_ms', 0):.2f}), "
            f"spawn of true {p['spawn_true_ms']:.2f} ms, load average {p['load_average']:.1f}"
        )
    lines.append("")
    header = ("workload", "metric", "overnight", "floor", "Luigi", "target", "")
    table = [header]
    for row in report["rows"]:
        if "extra" in row and row.get("metric") == "see extra":
            flat = [f"{k} {_scalar(v)}" for k, v in row["extra"].items() if isinstance(v, (int, float, str))]
            table.append((row["workload"], "", "(the rest in the JSON)", "", "", "", ""))
            for i in range(0, len(flat), 3):
                table.append(("", "  " + "; ".join(flat[i:i + 3]), "", "", "", "", ""))
            continue
        met = row.get("met")
        verdict = "" if met is None else ("met" if met else "NOT MET")
        table.append((
            row["workload"], row["metric"], _cell(row.get("overnight"), row["unit"]),
            _cell(row.get("floor"), row["unit"]), _cell(row.get("luigi"), row["unit"]),
            row.get("target") or "", verdict,
        ))
        extra = _derived(row)
        if extra:
            table.append(("", "  " + extra, "", "", "", "", ""))
    widths = [max(len(r[i]) for r in table if r[2] or i < 2) for i in range(len(header))]
    widths[1] = min(widths[1], 36)
    for r in table:
        if not r[2] and r[1].startswith("  "):
            lines.append(f"{'':<{widths[0]}}  {r[1].strip()}")
            continue
        lines.append("  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
