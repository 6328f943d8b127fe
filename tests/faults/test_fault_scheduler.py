"""The scheduler daemon killed with SIGKILL while it launches a night loses nothing.

Each trial lets a daemon reach a fire (its clock skewed to a second or two before it),
kills it at a random moment around the launch, and starts a new daemon that must deal
with whatever the first one left: the night it launched runs on by itself (its own
session), the fire is launched at most once more and then only to be turned away or to
find nothing left to do, and every step of the night runs exactly once.
OVERNIGHT_FAULT_DAEMON_KILLS=N sets the number of trials (default 6).
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import faultkit
from clikit import skew_to, wait_for
from faultkit import MARKER_VARIABLE, Witness

KILLS = int(os.environ.get("OVERNIGHT_FAULT_DAEMON_KILLS") or 6)



def test_killing_the_daemon_while_it_launches_runs_each_step_once(project) -> None:
    rng = random.Random(f"{faultkit.SEED}-daemon")
    replay = faultkit.REPLAY
    project.write_batch("witness", faultkit.WITNESS_BATCH, config=False)
    (project.root / "witness").mkdir()
    project.write_config('[batches.witness]\nmodule = "witness.py"\nschedule = "0 1 * * *"\n')
    marker = f"daemon-{os.getpid()}-{secrets.token_hex(6)}"
    env = {MARKER_VARIABLE: marker}
    outcomes: dict[str, int] = {}
    moments: dict[str, int] = {}
    for trial in range(KILLS):
        fire = datetime(2026, 11, 2 + trial, 1, 0, tzinfo=UTC)
        day = (fire - timedelta(days=1)).date().isoformat()   # a 1am run is for yesterday
        where = f"{replay}: trial {trial} (fire {fire.isoformat()})"
        watched = project.run("scheduler", "--once", "--now", (fire - timedelta(seconds=10)).isoformat())
        assert watched.returncode == 0, watched.stderr
        daemon = project.start("scheduler", OVERNIGHT_CLOCK_SKEW=skew_to(fire - timedelta(seconds=1)), **env)
        if trial % 2:
            # Aimed: the daemon logs "launched" just before it records the fire, so a kill
            # on that line often lands between the launch and its record.
            assert daemon.stderr is not None
            guard = threading.Timer(60, daemon.kill)  # a daemon that never launches fails, not hangs
            guard.start()
            for line in daemon.stderr:
                if "launched witness" in line:
                    break
            daemon.send_signal(signal.SIGKILL)
            guard.cancel()
            where += ", daemon killed on its 'launched' line"
        else:
            delay = rng.uniform(0.6, 1.8)
            time.sleep(delay)
            daemon.send_signal(signal.SIGKILL)
            where += f", daemon killed at {delay:.2f}s"
        daemon.communicate(timeout=30)
        time.sleep(1.0)  # time for a night it launched to record its launch
        fired = project.query("SELECT 1 FROM fires WHERE scheduled_at = ?", (fire.isoformat(),))
        launched = project.query(
            "SELECT 1 FROM launches l JOIN runs r ON r.id = l.run_id WHERE r.date = ?", (day,)
        )
        moment = "after recording" if fired else "launched, unrecorded" if launched else "before launching"
        moments[moment] = moments.get(moment, 0) + 1
        # A new daemon, a few seconds after the fire: on time, within LATE_GRACE.
        second = project.start("scheduler", OVERNIGHT_CLOCK_SKEW=skew_to(fire + timedelta(seconds=5)), **env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(second.stderr), daemon=True)  # noqa: B023
        reader.start()
        try:
            wait_for(lambda: any("started" in x for x in lines), what=f"{where}: the new daemon")  # noqa: B023
            wait_for(
                lambda: project.query(  # noqa: B023
                    "SELECT state FROM runs WHERE batch = 'witness' AND date = ?", (day,)  # noqa: B023
                ) == [("succeeded",)],
                what=f"{where}: the night to succeed",
            )
            wait_for(lambda: not project.query("SELECT 1 FROM launches WHERE state = 'running'"),
                     what=f"{where}: every launch to end")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
            reader.join(timeout=30)
        assert second.returncode == 0, f"{where}: {lines}"
        left = faultkit.orphans_after(marker, 5.0)
        assert not left, f"{where}: left alive: {faultkit.describe(left)}"
        view = faultkit.read_run(project.ledger_path, "witness", day)
        witness = Witness.read(project.root / "witness" / day)
        problems = faultkit.integrity_problems(project.ledger_path)
        problems += faultkit.check_run(view, witness, None)
        assert not problems, f"{where}: " + "; ".join(problems)
        assert view is not None and set(view.steps.values()) == {"succeeded"}, where
        twice = {name: ends for name, ends in witness.ends.items() if len(ends) != 1}
        assert not twice, f"{where}: steps that did not run exactly once: {twice}"
        recorded = project.query(
            "SELECT outcome FROM fires WHERE batch = 'witness' AND scheduled_at = ?", (fire.isoformat(),)
        )
        launched = [o for (o,) in recorded if o in ("launched", "caught_up")]
        assert len(launched) <= 1 and recorded, f"{where}: the fire was recorded as {recorded}"
        for (outcome,) in recorded:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    summary = (
        f"scheduler daemon: {KILLS} kills around a launch ({moments}); fires recorded {outcomes}; "
        f"every step ran once; {replay}"
    )
    faultkit.SUMMARY.append(summary)
    print(summary)


GATED = """
from overnight import Batch

batch = Batch("gated")
batch.command("first", "echo first >> ran-{date}")
batch.command("gate", "while [ ! -e gates/{date} ]; do sleep 0.02; done")
batch.command("last", "echo last >> ran-{date}")
"""


def test_a_real_scheduled_fire_racing_a_manual_run_launches_once(project) -> None:
    """A manual run holds the batch when its schedule fires: the fire waits in the queue,
    and once the manual run has done that date, it is recorded done with nothing started.
    Then the other way round: the scheduler's launch holds the batch and a manual
    `overnight run` exits 3 naming it."""
    project.write_batch("gated", GATED, config=False)
    (project.root / "gates").mkdir()
    project.write_config('[batches.gated]\nmodule = "gated.py"\nschedule = "0 1 * * *"\n')
    assert project.run("scheduler", "--once", "--now", "2026-11-02T00:59:00+00:00").returncode == 0
    manual = project.start("run", "gated", "--date", "2026-11-01")
    wait_for(lambda: (project.root / "ran-2026-11-01").exists(), what="the manual run to start")
    fired = project.run("scheduler", "--once", "--now", "2026-11-02T01:00:30+00:00")
    assert fired.returncode == 0, fired.stderr
    assert project.query("SELECT outcome FROM fires WHERE date = '2026-11-01'") == [("queued",)]
    (project.root / "gates" / "2026-11-01").touch()
    assert manual.wait(timeout=60) == 0
    fired = project.run("scheduler", "--once", "--now", "2026-11-02T01:01:00+00:00")
    assert fired.returncode == 0, fired.stderr
    assert project.query("SELECT outcome FROM fires WHERE date = '2026-11-01'") == [("already_done",)]
    assert project.query("SELECT trigger, state FROM launches") == [("manual", "succeeded")]

    fired = project.run("scheduler", "--once", "--now", "2026-11-03T01:00:30+00:00")
    assert fired.returncode == 0, fired.stderr
    wait_for(lambda: (project.root / "ran-2026-11-02").exists(), what="the scheduled run to start")
    late = project.run("run", "gated", "--date", "2026-11-02")
    assert late.returncode == 3 and "is already running: pid" in late.stderr, late.stderr
    (project.root / "gates" / "2026-11-02").touch()
    wait_for(lambda: project.query(
        "SELECT l.trigger, l.state FROM launches l JOIN runs r ON r.id = l.run_id WHERE r.date = '2026-11-02'"
    ) == [("scheduled", "succeeded")], what="the scheduled run to end")
    assert (project.root / "ran-2026-11-02").read_text() == "first\nlast\n"
