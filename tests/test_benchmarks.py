"""The benchmark command itself: its statistics, and that it runs and reports (never how
fast: the figures are for docs/performance.md, not for assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import gap_stats, merge_gaps, percentile

ROOT = Path(__file__).resolve().parent.parent


def test_gaps_run_from_one_steps_end_to_the_next_ones_start():
    ms = 1_000_000
    spans = [(0, 10 * ms), (11 * ms, 20 * ms), (22 * ms, 30 * ms), (30 * ms + ms // 2, 40 * ms)]
    stats = gap_stats(list(reversed(spans)))  # order of the lines does not matter
    assert stats == {"median": 1.0, "p99": 2.0, "max": 2.0, "count": 3}


def test_a_single_step_has_no_gap_and_repetitions_merge_by_median():
    assert gap_stats([(0, 5)]) is None
    merged = merge_gaps([
        {"median": 1.0, "p99": 3.0, "max": 4.0}, None,
        {"median": 2.0, "p99": 5.0, "max": 9.0}, {"median": 3.0, "p99": 4.0, "max": 5.0},
    ])
    assert merged["median"] == 2.0 and merged["p99"] == 4.0 and merged["max"] == 5.0
    assert merged["median_spread"] == [1.0, 3.0] and merged["reps"] == 3


def test_p99_is_the_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 99) == 99
    assert percentile(values, 50) == 50
    assert percentile([7.0], 99) == 7.0


def test_the_benchmark_command_prints_a_table_and_writes_json(tmp_path: Path):
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--reps", "1", "--only", "startup", "--no-luigi",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "6. startup: run a one-step batch" in result.stdout
    report = json.loads(out.read_text())
    assert report["machine"]["nproc"] >= 1
    [row] = report["rows"]
    assert row["overnight"]["median"] > 0 and len(row["overnight"]["values"]) == 10
    assert row["floor"]["median"] > 0


def test_the_makespan_dags_are_seeded_acyclic_and_20_to_200_steps():
    from benchmarks.makespan import random_dag

    for seed in range(20):
        after, seconds = random_dag(seed, 0.05)
        assert 20 <= len(seconds) <= 200 and len(after) == len(seconds)
        assert all(p < j for j, prereqs in enumerate(after) for p in prereqs)  # declared after them
        assert abs(sum(seconds) / len(seconds) - 0.05) < 0.001
    assert random_dag(7, 0.05) == random_dag(7, 0.05)


def test_the_lower_bound_is_the_longer_of_the_critical_path_and_the_work_per_worker():
    from benchmarks.makespan import lower_bound

    chain_and_three = ([[], [0], [1], [], [], []], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert lower_bound(chain_and_three, 2) == 3.0   # the chain
    assert lower_bound(chain_and_three, 1) == 6.0   # the work
    diamond = ([[], [0], [0], [1, 2]], [1.0, 5.0, 2.0, 1.0])
    assert lower_bound(diamond, 8) == 7.0
