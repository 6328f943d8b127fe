"""SIGTERM and SIGINT cancel cleanly: running steps stopped and recorded cancelled, exit
130, nothing left running, and a plain resume finishes the night.

Seeded like the kill suite (OVERNIGHT_FAULT_SEED); OVERNIGHT_FAULT_CANCELS=N sets how many
cancels per signal (default 4).
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import time
from datetime import date, timedelta

import faultkit
import pytest
from clikit import wait_for
from faultkit import MARKER_VARIABLE, Witness

SEED = faultkit.SEED
CANCELS = int(os.environ.get("OVERNIGHT_FAULT_CANCELS") or 4)
SETTLED = {"succeeded", "pending", "cancelled", "skipped"}



@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "overnight-cancel"])
def test_a_signal_cancels_cleanly_and_a_resume_finishes(project, how: str) -> None:
    rng = random.Random(f"{SEED}-{how}")
    replay = faultkit.REPLAY
    faultkit.write_witness_batch(project)
    marker = f"cancel-{os.getpid()}-{secrets.token_hex(6)}"
    env = {MARKER_VARIABLE: marker}
    day = date(2026, 2, 1)
    cancelled = stopped_steps = finished_first = 0
    while cancelled < CANCELS:
        witness = project.root / "witness" / day.isoformat()
        process = project.start("run", "witness", "--workers", "3", "--date", day.isoformat(), **env)
        wait_for(lambda: witness.exists() or process.poll() is not None)  # noqa: B023
        delay = rng.uniform(0.0, 0.4)
        time.sleep(delay)
        if how == "overnight-cancel":
            asked = project.run("cancel", "witness")
            assert asked.returncode in (0, 2), asked.stderr  # 2: it had just ended by itself
        else:
            process.send_signal(getattr(signal, how))
        out, err = process.communicate(timeout=120)
        where = f"{replay}: {how} on {day} at {delay:.3f}s"
        assert "Traceback" not in err, f"{where}: {err}"
        left = faultkit.orphans_after(marker, 2.0)
        assert not left, f"{where}: left alive: {faultkit.describe(left)}"
        view = faultkit.read_run(project.ledger_path, "witness", day.isoformat())
        problems = faultkit.check_run(view, Witness.read(witness), None)
        assert not problems, f"{where}: " + "; ".join(problems)
        assert view is not None
        if process.returncode == 0:
            finished_first += 1  # the night was over before the signal: try again
        else:
            assert process.returncode == 130, f"{where}: exit {process.returncode}: {err}{out}"
            cancelled += 1
            assert view.launches[-1]["state"] == "cancelled", where
            assert set(view.steps.values()) <= SETTLED, f"{where}: {view.steps}"
            stopped = [n for n, s in view.steps.items() if s == "cancelled"]
            stopped_steps += len(stopped)
            for name in stopped:
                assert view.attempts[name][-1]["state"] == "cancelled", f"{where}: {name}"
        resumed = project.run("run", "witness", "-w", "3", "--date", day.isoformat(), timeout=120, **env)
        assert resumed.returncode == 0, f"{where}: the resume exited {resumed.returncode}: {resumed.stderr}"
        view = faultkit.read_run(project.ledger_path, "witness", day.isoformat())
        assert view is not None and set(view.steps.values()) == {"succeeded"}, f"{where}: {view}"
        assert not faultkit.check_run(view, Witness.read(witness), None)
        day += timedelta(days=1)
    summary = (
        f"{how}: {cancelled} launches cancelled ({stopped_steps} running steps stopped), "
        f"{finished_first} ended before the signal; {replay}"
    )
    faultkit.SUMMARY.append(summary)
    print(summary)


EARLY_BATCH = """
import time
from pathlib import Path

from overnight import Batch

Path("loading").touch()
time.sleep(30)   # the signal arrives while the module loads: before any launch exists
batch = Batch("slow")
batch.command("a", "true")
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_batch_loads_is_one_line_and_exit_130(project, signame: str) -> None:
    project.write_batch("slow", EARLY_BATCH)
    before = faultkit.ledger_dump(project.ledger_path)
    process = project.start("run", "slow")
    wait_for(lambda: (project.root / "loading").exists())
    process.send_signal(getattr(signal, signame))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert [line for line in err.splitlines() if line.strip()] == ["overnight: interrupted"]
    assert faultkit.ledger_dump(project.ledger_path) == before


def test_overnight_cancel_of_a_batch_not_running_is_one_line(project) -> None:
    faultkit.write_witness_batch(project)
    result = project.run("cancel", "witness")
    assert result.returncode == 2
    assert result.stderr.strip() == "overnight: batch 'witness' is not running"


def test_status_reads_a_run_whose_runner_was_killed(project) -> None:
    """The ledger a SIGKILLed runner left behind (a WAL not checkpointed) is readable."""
    faultkit.write_witness_batch(project)
    process = project.start("run", "witness", "--date", "2026-02-20")
    wait_for(lambda: (project.root / "witness" / "2026-02-20").exists())
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    status = project.status("witness", "--date", "2026-02-20")
    assert status["state"] == "crashed"  # nobody holds the batch: shown as the next launch records it
    states = {s["name"]: s["state"] for s in status["steps"]}
    assert "interrupted" in states.values() or "succeeded" in states.values()
    assert "running" not in states.values()


STUBBORN_BATCH = """
from overnight import Batch

batch = Batch("stubborn")
# ignores SIGTERM, and so does the grandchild it leaves in its group
batch.command("deaf", "trap '' TERM; (trap '' TERM; sleep 60) & touch started; sleep 60")
batch.command("after", "true")
"""


@pytest.mark.parametrize("signals", [1, 2])
def test_a_step_that_ignores_sigterm_is_killed_after_the_grace_or_at_a_second_signal(
    project, signals: int
) -> None:
    """One signal: the step's group gets SIGTERM, then SIGKILL after the grace
    (OVERNIGHT_KILL_GRACE, 2 s in the tests). A second signal kills it at once (the grace is
    30 s then, so waiting it out would show)."""
    project.write_batch("stubborn", STUBBORN_BATCH)
    marker = f"deaf-{os.getpid()}-{secrets.token_hex(6)}"
    grace = "2" if signals == 1 else "30"
    process = project.start(
        "run", "stubborn", "--date", "2026-03-01", **{MARKER_VARIABLE: marker, "OVERNIGHT_KILL_GRACE": grace}
    )
    wait_for(lambda: (project.root / "started").exists())
    process.send_signal(signal.SIGTERM)
    if signals == 2:
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert not faultkit.orphans_after(marker, 2.0)
    assert project.states("stubborn") == {"deaf": "cancelled", "after": "pending"}
    [attempt] = project.status("stubborn")["steps"][0]["attempts"]
    if signals == 2:
        assert attempt["duration"] < 20, "the second signal did not kill at once"
    else:
        assert attempt["duration"] >= 1.9, "killed before its grace was over"
