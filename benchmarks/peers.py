"""Luigi, the peer measured beside `overnight`: the same workloads as Luigi tasks.

Luigi runs with its local scheduler (`--local-scheduler`), as a whole process, the way a
shop running Luigi from cron does. It is an optional extra: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from benchmarks.harness import Timed, timed

LUIGI_MODULE = '''
"""Benchmark tasks for Luigi, mirroring overnight's benchmark batches."""
import json
import os
import subprocess
import time

import luigi

KIND = os.environ.get("BENCH_KIND", "true")
STAMP = os.environ.get("BENCH_STAMP", "")
STAMPS = os.environ.get("BENCH_STAMPS", "")
OUT = os.environ.get("BENCH_OUT", "")
DONE = set()


def stamped():
    start = time.time_ns()
    end = time.time_ns()
    fd = os.open(STAMPS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%d %d\\n" % (start, end))
    os.close(fd)


class Chain(luigi.Task):
    """Task i runs after task i - 1. Done-ness in memory: the chain runs in one process."""

    i = luigi.IntParameter()

    def requires(self):
        return Chain(i=self.i - 1) if self.i > 0 else []

    def complete(self):
        return self.i in DONE

    def run(self):
        if KIND == "true":
            subprocess.run(["true"], check=True)
        elif KIND == "stamp":
            subprocess.run([STAMP, STAMPS], check=True)
        elif KIND == "noop-stamp":
            stamped()
        DONE.add(self.i)


class ChainOut(luigi.Task):
    """The same chain with a file per task, so a second invocation resumes."""

    i = luigi.IntParameter()

    def requires(self):
        return ChainOut(i=self.i - 1) if self.i > 0 else []

    def output(self):
        return luigi.LocalTarget(os.path.join(OUT, str(self.i)))

    def run(self):
        subprocess.run(["true"], check=True)
        with self.output().open("w"):
            pass


class Sleep(luigi.Task):
    i = luigi.IntParameter()

    def output(self):
        return luigi.LocalTarget(os.path.join(OUT, "sleep-%d" % self.i))

    def run(self):
        subprocess.run(["sleep", "0.5"], check=True)
        with self.output().open("w"):
            pass


class FanOut(luigi.WrapperTask):
    def requires(self):
        return [Sleep(i=i) for i in range(32)]


DAG = json.load(open(os.environ["BENCH_DAG"])) if os.environ.get("BENCH_DAG") else None


class DagStep(luigi.Task):
    """Step i of the makespan DAG: a sleep of its known duration, stamped from inside."""

    i = luigi.IntParameter()

    def requires(self):
        return [DagStep(i=j) for j in DAG["after"][self.i]]

    def output(self):  # a file each: with several workers, each task runs in a child process
        return luigi.LocalTarget(os.path.join(OUT, "dag-%d" % self.i))

    def run(self):
        start = time.time()
        subprocess.run(["sleep", str(DAG["seconds"][self.i])], check=True)
        end = time.time()
        with open(STAMPS, "a") as f:
            f.write("%f %f %d\\n" % (start, end, self.i))
        with self.output().open("w"):
            pass


class DagNight(luigi.WrapperTask):
    def requires(self):
        return [DagStep(i=i) for i in range(len(DAG["seconds"]))]
'''


def luigi_available() -> bool:
    return importlib.util.find_spec("luigi") is not None


def luigi_version() -> str | None:
    if not luigi_available():
        return None
    from importlib.metadata import version

    return version("luigi")


def write_module(where: Path) -> None:
    (where / "bench_luigi_tasks.py").write_text(LUIGI_MODULE)
    # Our own config, so the user's luigi.cfg does not change what is measured, and a
    # failed task shows in the exit code (Luigi exits 0 by default even then).
    (where / "luigi.cfg").write_text(
        "[retcode]\nalready_running = 10\nmissing_data = 20\nnot_run = 25\n"
        "task_failed = 30\nscheduling_error = 35\nunhandled_exception = 40\n"
    )


def run_luigi(where: Path, task: str, params: list[str], *, workers: int = 1,
              output: str = "luigi.out", **env: str) -> Timed:
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["PYTHONPATH"] = str(where) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env["LUIGI_CONFIG_PATH"] = str(where / "luigi.cfg")
    argv = [
        sys.executable, "-m", "luigi", "--module", "bench_luigi_tasks", task, *params,
        "--local-scheduler", "--workers", str(workers), "--log-level", "WARNING",
    ]
    return timed(argv, cwd=where, env=full_env, output=where / output)
