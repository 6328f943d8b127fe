"""Launches that race for one batch: exactly one runs, the others exit 3 naming it, and
nothing is recorded twice."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from clikit import OVERNIGHT
from faultkit import wait_for

GATED_BATCH = """
from overnight import Batch

batch = Batch("gated")
batch.command("first", "echo first >> ran-{date}")
# holds the launch (and so the batch's lock) until the test opens the gate
batch.command("gate", "while [ ! -e gates/{date} ]; do sleep 0.02; done")
batch.command("last", "echo last >> ran-{date}")
"""

HOLDER = re.compile(
    r"^overnight: batch 'gated' is already running: pid (\d+) on \S+, since .+ \(for (\S+)\)$"
)


def start_all(project, n: int, run_date: str, triggers: list[str]) -> list[subprocess.Popen[str]]:  # noqa: ANN001
    return [
        project.start("run", "gated", "--date", run_date, OVERNIGHT_TRIGGER=triggers[i % len(triggers)])
        for i in range(n)
    ]


def wait_losers(processes: list[subprocess.Popen[str]], losers: int) -> tuple[list, subprocess.Popen[str]]:
    """Wait until all but one have exited; return (their results, the one still running)."""
    deadline = time.monotonic() + 120
    while sum(p.poll() is not None for p in processes) < losers:
        assert time.monotonic() < deadline, "the losing launches did not exit"
        time.sleep(0.02)
    running = [p for p in processes if p.poll() is None]
    assert len(running) == 1, f"{len(running)} launches are running at once"
    done = [(p, *p.communicate()) for p in processes if p is not running[0]]
    return done, running[0]


def check_one_launch(project, run_date: str, trigger: str) -> None:  # noqa: ANN001
    launches = project.query(
        "SELECT l.trigger, l.state FROM launches l JOIN runs r ON r.id = l.run_id "
        "WHERE r.batch = 'gated' AND r.date = ?", (run_date,),
    )
    assert launches == [(trigger, "succeeded")]
    attempts = project.query(
        "SELECT a.step, count(*) FROM attempts a JOIN runs r ON r.id = a.run_id "
        "WHERE r.date = ? GROUP BY a.step ORDER BY a.step", (run_date,),
    )
    assert attempts == [("first", 1), ("gate", 1), ("last", 1)]
    assert (project.root / f"ran-{run_date}").read_text() == "first\nlast\n"


def test_ten_launches_at_once_one_runs_the_others_exit_3_naming_it(project) -> None:
    project.write_batch("gated", GATED_BATCH)
    (project.root / "gates").mkdir()
    processes = start_all(project, 10, "2026-11-26", ["manual"])
    losers, winner = wait_losers(processes, 9)
    for process, out, err in losers:
        assert process.returncode == 3, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        match = HOLDER.match(lines[0])
        assert match, lines[0]
        assert int(match.group(1)) == winner.pid and match.group(2) == "2026-11-26"
        assert out == ""
    (project.root / "gates" / "2026-11-26").touch()
    out, err = winner.communicate(timeout=60)
    assert winner.returncode == 0, err
    check_one_launch(project, "2026-11-26", "manual")


def test_a_scheduled_launch_racing_a_manual_one(project) -> None:
    """Both started at the same instant, the scheduler's launch as the daemon makes it
    (`overnight run` with OVERNIGHT_TRIGGER=scheduled): whichever comes first runs, the
    other exits 3, and the run holds one launch. (The real daemon racing a manual run is
    in test_fault_scheduler.py.)"""
    project.write_batch("gated", GATED_BATCH)
    (project.root / "gates").mkdir()
    for day in range(1, 7):
        run_date = f"2026-10-{day:02d}"
        order = ["manual", "scheduled"] if day % 2 else ["scheduled", "manual"]
        processes = start_all(project, 2, run_date, order)
        losers, winner = wait_losers(processes, 1)
        [(loser, _, err)] = losers
        assert loser.returncode == 3 and HOLDER.match(err.strip()), err
        (project.root / "gates" / run_date).touch()
        winner.communicate(timeout=60)
        assert winner.returncode == 0
        trigger = order[processes.index(winner)]
        check_one_launch(project, run_date, trigger)


# -- one ledger under another name (issue 13, defect 8) --------------------------------------


@contextmanager
def holding(project, run_date: str):  # noqa: ANN001, ANN201
    """A launch of `gated` that holds the batch until the block ends (then the gate opens;
    a failed check does not leave it waiting for ever)."""
    winner = project.start("run", "gated", "--date", run_date)
    try:
        wait_for(lambda: (project.root / f"ran-{run_date}").exists(), timeout=30)
        yield winner
    finally:
        (project.root / "gates" / run_date).touch()
        try:
            winner.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            winner.kill()
            winner.communicate()
    assert winner.returncode == 0


def _same_ledger(project, how: str) -> Path:  # noqa: ANN001
    """A second project folder whose state folder reaches the first one's ledger by `how`.
    Returns its root."""
    other = project.root / "other"
    other.mkdir()
    (other / "gated.py").write_text((project.root / "gated.py").read_text())
    (other / "gates").symlink_to(project.root / "gates")
    state = project.state_dir
    if how == "ledger-symlink":
        (other / "state").mkdir()
        (other / "state" / "ledger.db").symlink_to(state / "ledger.db")
        state_dir = "state"
    elif how == "state-folder-symlink":
        (other / "state").symlink_to(state)
        state_dir = "state"
    elif how == "another-spelling":
        state_dir = f"{project.root}/./gates/../.overnight/"
    elif how == "ledger-hard-link":
        (other / "state").mkdir()
        os.link(state / "ledger.db", other / "state" / "ledger.db")
        state_dir = "state"
    else:
        raise AssertionError(how)
    (other / "overnight.toml").write_text(
        f'[overnight]\nstate_dir = "{state_dir}"\ntimezone = "UTC"\n\n'
        '[batches.gated]\nmodule = "gated.py"\n'
    )
    return other


@pytest.mark.parametrize(
    "how", ["ledger-symlink", "state-folder-symlink", "another-spelling", "ledger-hard-link"]
)
def test_a_second_name_for_the_same_ledger_does_not_let_a_second_launch_in(project, how: str) -> None:
    project.write_batch("gated", GATED_BATCH)
    (project.root / "gates").mkdir()
    assert project.run("run", "gated", "--date", "2026-09-01", "--rerun", "first").returncode == 0
    with holding(project, "2026-09-02") as winner:
        other = _same_ledger(project, how)
        second = subprocess.run(
            [*OVERNIGHT, "run", "gated", "--date", "2026-09-02"], cwd=other, env=project.env(),
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert second.returncode == 3, second.stdout + second.stderr
        match = HOLDER.match(second.stderr.strip())
        assert match and int(match.group(1)) == winner.pid, second.stderr
    check_one_launch(project, "2026-09-02", "manual")


@pytest.mark.parametrize("how", ["lock-folder-deleted", "lock-file-replaced"])
def test_deleting_the_lock_files_does_not_let_a_second_launch_in(project, how: str) -> None:
    project.write_batch("gated", GATED_BATCH)
    (project.root / "gates").mkdir()
    with holding(project, "2026-09-03"):
        locks = project.state_dir / "locks"
        if how == "lock-folder-deleted":
            shutil.rmtree(locks)
        else:
            for path in locks.iterdir():
                path.unlink()
                path.write_text("")
        second = project.run("run", "gated", "--date", "2026-09-03")
        assert second.returncode == 3, second.stdout + second.stderr
        assert second.stderr.startswith("overnight: batch 'gated' is already running"), second.stderr
    check_one_launch(project, "2026-09-03", "manual")


def test_a_bind_mount_of_the_state_folder_does_not_let_a_second_launch_in(project) -> None:
    """The same ledger file seen at another path through a bind mount (root: a private
    mount namespace, as the storage suite does)."""
    project.write_batch("gated", GATED_BATCH)
    (project.root / "gates").mkdir()
    with holding(project, "2026-09-04"):
        second = _run_through_a_bind_mount(project)
        assert second.returncode == 3, second.stdout + second.stderr
    check_one_launch(project, "2026-09-04", "manual")


def _run_through_a_bind_mount(project) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    other = project.root / "elsewhere"
    other.mkdir()
    (other / "gated.py").write_text((project.root / "gated.py").read_text())
    (other / "state").mkdir()
    (other / "overnight.toml").write_text(
        '[overnight]\nstate_dir = "state"\ntimezone = "UTC"\n\n[batches.gated]\nmodule = "gated.py"\n'
    )
    command = " ".join(shlex.quote(a) for a in [*OVERNIGHT, "run", "gated", "--date", "2026-09-04"])
    script = f"mount --bind {shlex.quote(str(project.state_dir))} state && exec {command}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=other, env=project.env(),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
