"""What every workload needs: a throwaway project, timed whole processes, the stamp
program that lets a step record its own start and end, and the statistics.

Everything is measured as the user would see it: `overnight` runs as a real process
(the console script of this interpreter's environment), with its output going to a file as
under cron, against a real SQLite ledger (WAL, synchronous=FULL).
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overnight.statefolder import StateFolder

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def overnight_command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs)."""
    script = Path(sys.executable).parent / "overnight"
    return [str(script)] if script.exists() else [sys.executable, "-m", "overnight"]


# -- statistics ------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, Any]:
    """Median and spread (min, max) of repeated measurements."""
    if not values:
        return {"median": None, "min": None, "max": None, "values": []}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank: what p99 usually means in reports."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def gap_stats(spans: list[tuple[int, int]]) -> dict[str, float] | None:
    """From (start_ns, end_ns) of consecutive steps: the gaps from one's end to the next's start.

    Spans are sorted by start; the result is in milliseconds.
    """
    spans = sorted(spans)
    gaps = [(b[0] - a[1]) / 1e6 for a, b in zip(spans, spans[1:], strict=False)]
    if not gaps:
        return None
    return {
        "median": statistics.median(gaps),
        "p99": percentile(gaps, 99),
        "max": max(gaps),
        "count": len(gaps),
    }


def read_stamps(path: Path) -> list[tuple[int, int]]:
    spans = []
    for line in path.read_text().splitlines():
        start, end = line.split()
        spans.append((int(start), int(end)))
    return spans


def merge_gaps(per_rep: list[dict[str, float] | None]) -> dict[str, Any] | None:
    """Median over repetitions of each gap figure, with the spread of the medians."""
    reps = [g for g in per_rep if g]
    if not reps:
        return None
    out: dict[str, Any] = {}
    for key in ("median", "p99", "max"):
        out[key] = statistics.median(g[key] for g in reps)
    out["median_spread"] = [min(g["median"] for g in reps), max(g["median"] for g in reps)]
    out["p99_spread"] = [min(g["p99"] for g in reps), max(g["p99"] for g in reps)]
    out["reps"] = len(reps)
    return out


# -- timed processes ---------------------------------------------------------------------


@dataclass
class Timed:
    wall: float          # seconds, from just before the spawn to the reaping
    maxrss_kb: int       # peak resident set of the process (largest of it and its children)
    returncode: int
    cpu: float = 0.0     # user + system seconds of the process and the children it reaped


def timed(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None,
          output: Path | None = None, check: bool = True) -> Timed:
    """Run a whole process, its output to a file (or nowhere), and time it."""
    out = open(output, "ab") if output else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if output:
            out.close()  # type: ignore[union-attr]
    if check and process.returncode != 0:
        tail = output.read_text()[-2000:] if output and output.exists() else ""
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode} in {cwd}:\n{tail}")
    return Timed(wall, usage.ru_maxrss, process.returncode, usage.ru_utime + usage.ru_stime)


# -- the stamp program -------------------------------------------------------------------

STAMP_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* A `true` that records when it started and when it ended: one line "START END" (ns,
   CLOCK_REALTIME) appended to argv[1]. The end is taken just before the write, so what
   lies between one step's END and the next one's START is exit, the scheduler's own work,
   and the next spawn and exec: the gap. */
int main(int argc, char **argv) {
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    if (argc < 2) return 0;
    clock_gettime(CLOCK_REALTIME, &b);
    char line[64];
    int n = snprintf(line, sizeof line, "%lld %lld\n",
                     (long long)a.tv_sec * 1000000000LL + a.tv_nsec,
                     (long long)b.tv_sec * 1000000000LL + b.tv_nsec);
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return 1;
    if (write(fd, line, n) != n) return 1;
    return close(fd);
}
"""


def build_stamp(where: Path) -> Path:
    source = where / "stamp.c"
    binary = where / "stamp"
    source.write_text(STAMP_C)
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise RuntimeError("the gap benchmarks need a C compiler (gcc) to build their stamp program")
    subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
    return binary


# -- the throwaway project ---------------------------------------------------------------


@dataclass
class Project:
    """A folder with an overnight.toml and generated batch modules."""

    root: Path
    batches: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, parent: Path, name: str) -> Project:
        root = parent / name
        root.mkdir(parents=True)
        project = cls(root)
        project.write_config()
        return project

    @property
    def state_dir(self) -> Path:
        return self.root / ".overnight"

    @property
    def ledger(self) -> Path:
        return StateFolder(self.state_dir).ledger

    def write_config(self) -> None:
        lines = ["[overnight]", 'state_dir = ".overnight"', 'timezone = "UTC"', ""]
        for name, module in self.batches.items():
            lines += [f"[batches.{name}]", f'module = "{module}"', ""]
        (self.root / "overnight.toml").write_text("\n".join(lines))

    def add_batch(self, name: str, source: str) -> None:
        module = f"{name.replace('-', '_')}.py"
        (self.root / module).write_text(textwrap.dedent(source))
        self.batches[name] = module
        self.write_config()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("OVERNIGHT_CONFIG", None)
        return env

    def run(self, *args: str, output: str = "run.out", check: bool = True) -> Timed:
        return timed([*overnight_command(), *args], cwd=self.root, env=self.env(),
                     output=self.root / output, check=check)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so the file's size is the ledger's size."""
        conn = sqlite3.connect(self.ledger)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(self.ledger)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


def scratch() -> Path:
    """A fresh folder for one benchmark session (removed at the end by the caller)."""
    return Path(tempfile.mkdtemp(prefix="overnight-bench-"))


def python_floor(code: str, cwd: Path, output: Path | None = None) -> Timed:
    """A plain Python process running `code`: the floor a scheduler is compared with."""
    return timed([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, output=output)


def probe(where: Path, n: int = 200) -> dict[str, float]:
    """How this machine is doing right now: the two costs every step pays (a durable
    commit, a spawn of `true`), medians in ms. On a busy shared machine both swell, and
    every figure of the run with them: read the table with these beside it."""
    path = where / f"probe-{time.time_ns()}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (a INTEGER)")
    commits = []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
        commits.append(time.perf_counter() - start)
    conn.close()
    spawns = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(["true"])
        spawns.append(time.perf_counter() - start)
    return {
        "commit_ms": statistics.median(commits) * 1e3,
        "commit_p99_ms": percentile(commits, 99) * 1e3,
        "spawn_true_ms": statistics.median(spawns) * 1e3,
        "load_average": os.getloadavg()[0],
    }
