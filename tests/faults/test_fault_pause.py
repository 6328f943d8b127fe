"""A paused runner (SIGSTOP: a suspended laptop, a paused VM, a debugger) times out nothing
that ended before its deadline.

Issue 13, defect 6: SIGSTOP of the runner past a step's timeout, then SIGCONT: the step
that had exited 0 in 2 s was recorded timed_out and its dependent blocked, because the
timers fired before the exit was seen. Now exits come before timers.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from faultkit import helper, wait_for

STEPS = {
    "command": 'batch.command("quick", "touch started; sleep 0.5", timeout="2s")',
    "argv-command": 'batch.command("quick", ["sh", "-c", "touch started; sleep 0.5"], timeout="2s")',
    "python": (
        '@batch.step(name="quick", timeout="2s")\n'
        "def quick(ctx):\n"
        '    open("started", "w").close()\n'
        "    time.sleep(0.5)\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(STEPS))
@pytest.mark.parametrize("workers", [1, 3])
def test_a_step_that_ended_before_its_deadline_is_not_timed_out_after_a_pause(
    project, kind: str, workers: int
) -> None:
    project.write_batch("paused", "import time\nfrom overnight import Batch\n\nbatch = Batch('paused')\n"
                        + STEPS[kind] + '\nbatch.command("next", "true")\n')
    process = project.start("run", "paused", "--date", "2026-08-01", "--workers", str(workers))
    wait_for(lambda: (project.root / "started").exists(), timeout=30)
    process.send_signal(signal.SIGSTOP)
    time.sleep(3)  # past the 2 s timeout; the step ended after 0.5 s
    process.send_signal(signal.SIGCONT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert project.states("paused", "--date", "2026-08-01") == {"quick": "succeeded", "next": "succeeded"}


def test_a_pause_does_not_spare_a_step_that_ran_past_its_deadline(project) -> None:
    """The other side: a step still running when the pause ends is timed out."""
    project.write_batch("paused", """
        from overnight import Batch
        batch = Batch("paused")
        batch.command("slow", "touch started; sleep 30", timeout="2s")
    """)
    process = project.start("run", "paused", "--date", "2026-08-02")
    wait_for(lambda: (project.root / "started").exists(), timeout=30)
    process.send_signal(signal.SIGSTOP)
    time.sleep(3)
    process.send_signal(signal.SIGCONT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    assert project.states("paused", "--date", "2026-08-02") == {"slow": "timed_out"}


def test_a_paused_sentinel_changes_nothing_for_a_clean_night(project) -> None:
    """The sentinel stopped for the whole night: the runner still ends (it does not wait for
    a sentinel that cannot answer) and records every step."""
    project.write_batch("quiet", """
        from overnight import Batch
        batch = Batch("quiet")
        batch.command("a", "touch started; sleep 0.5")
        batch.command("b", "true")
    """)
    process = project.start("run", "quiet", "--date", "2026-08-03")
    sentinel = helper(process, "overnight-sent")
    os.kill(sentinel, signal.SIGSTOP)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, out + err
    assert project.states("quiet", "--date", "2026-08-03") == {"a": "succeeded", "b": "succeeded"}
