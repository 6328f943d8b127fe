"""Reading a night: `overnight logs` in constant memory, its last lines, a running step
followed; and "the latest" night by the ledger's own sequence, whatever the clock did.

Issue 13, defect 10: `overnight logs` read a 1 GB log into memory (996 MB RSS); after the
clock stepped back, `status` and `logs` without --date picked an older night.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from clikit import OVERNIGHT
from faultkit import wait_for

ONE = """
from overnight import Batch
batch = Batch("talk")
batch.command("talk", "for i in 1 2 3 4 5; do echo line $i; done")
"""


def test_a_huge_log_is_printed_in_constant_memory(project) -> None:
    project.write_batch("talk", ONE)
    assert project.run("run", "talk", "--date", "2026-09-10").returncode == 0
    [attempt] = project.status("talk")["steps"][0]["attempts"]
    line = b"x" * 1023 + b"\n"
    with open(attempt["log_path"], "wb") as f:
        for _ in range(256):  # 256 MB
            f.write(line * 1024)
    # Measured from a small parent: a process forked from pytest keeps pytest's own peak
    # (100 MB and more late in a full run) in its ru_maxrss across the exec.
    measure = (
        "import resource, subprocess, sys\n"
        "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(code)\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", measure, *OVERNIGHT, "logs", "talk", "talk"], cwd=project.root,
        env=project.env(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    assert process.returncode == 0, process.stderr
    peak_kb = int(process.stdout)
    assert peak_kb < 100 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB for a 256 MB log"


def test_tail_shows_the_last_lines(project) -> None:
    project.write_batch("talk", ONE)
    assert project.run("run", "talk", "--date", "2026-09-11").returncode == 0
    for n, expected in ((2, "line 4\nline 5\n"), (0, ""), (9, "".join(f"line {i}\n" for i in range(1, 6)))):
        result = project.run("logs", "talk", "talk", "--tail", str(n))
        assert result.returncode == 0 and result.stdout == expected, (n, result.stdout, result.stderr)


def test_follow_prints_what_a_running_step_writes_until_it_ends(project) -> None:
    project.write_batch("slow", """
        from overnight import Batch
        batch = Batch("slow")
        batch.command("slow", "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done; echo done")
    """)
    runner = project.start("run", "slow", "--date", "2026-09-12")
    wait_for(lambda: project.run("logs", "slow", "slow").returncode == 0, timeout=30)
    follower = project.start("logs", "slow", "slow", "--follow")
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out == "".join(f"tick {i}\n" for i in range(1, 7)) + "done\n", out
    runner.communicate(timeout=60)
    assert runner.returncode == 0


def test_follow_ends_when_the_runner_dies(project) -> None:
    project.write_batch("slow", """
        from overnight import Batch
        batch = Batch("slow")
        batch.command("slow", "echo started; sleep 60")
    """)
    runner = project.start("run", "slow", "--date", "2026-09-13")
    wait_for(lambda: project.run("logs", "slow", "slow").stdout == "started\n", timeout=30)
    follower = project.start("logs", "slow", "slow", "--follow")
    runner.kill()
    runner.communicate()
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0 and out == "started\n"


def test_the_latest_night_is_the_one_launched_last_even_after_the_clock_stepped_back(project) -> None:
    project.write_batch("talk", ONE)
    assert project.run("run", "talk", "--date", "2026-09-20").returncode == 0
    assert project.run("run", "talk", "--date", "2026-09-19").returncode == 0
    # What a clock stepped back an hour between the two launches leaves in the ledger:
    # the later launch (and its run) stamped before the earlier one.
    with sqlite3.connect(project.ledger_path) as conn:
        conn.execute("UPDATE runs SET updated_at = updated_at - 7200, created_at = created_at - 7200 "
                     "WHERE date = '2026-09-19'")
        conn.execute("UPDATE launches SET started_at = started_at - 7200, ended_at = ended_at - 7200 "
                     "WHERE run_id = (SELECT id FROM runs WHERE date = '2026-09-19')")
    conn.close()
    assert project.status("talk")["date"] == "2026-09-19"
    history = project.run("history", "--json")
    assert history.returncode == 0, history.stderr
