"""The runner killed with SIGKILL at random moments loses nothing and leaves nothing behind,
also when its sentinel or its template was killed first, or the runner paused (KILL_POINTS).

Seeded: the seed is printed in every failure message and at the end of the session;
OVERNIGHT_FAULT_SEED=N replays it (the moments are the same; the machine's timing is not).
OVERNIGHT_FAULT_TRIALS=N sets how many kills to make (default 60: the CI size).
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import time
from datetime import date, timedelta

import faultkit
from faultkit import MARKER_VARIABLE, Witness

SEED = faultkit.SEED
KILLS = int(os.environ.get("OVERNIGHT_FAULT_TRIALS") or 60)
ORPHAN_WINDOW = 2.0   # seconds the sentinel gets to clean up after its runner died
LAUNCH_TIMEOUT = 120  # a launch that has not ended by then is stuck: a failure


# Where each kill strikes: the runner alone; its sentinel first (the runner must replace
# it), then the runner; its template of Python steps first, then the runner; or a pause of
# the runner (SIGSTOP, SIGCONT: a suspended machine) before the runner is killed.
KILL_POINTS = ("runner", "sentinel", "template", "pause")


def strike(process: subprocess.Popen[str], point: str, delay: float, rng: random.Random) -> bool:
    """Kill the launch at `delay` by way of `point`. False if it ended first."""
    def wait(seconds: float) -> bool:
        try:
            process.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    first = rng.uniform(0.0, delay)
    if point in ("sentinel", "template"):
        name = "overnight-sent" if point == "sentinel" else "overnight-tmpl"
        if wait(first):
            return False
        helpers = faultkit.children_named(process.pid, name)
        for pid in helpers:
            os.kill(pid, signal.SIGKILL)
        if point == "sentinel" and helpers:  # the runner starts another at once
            faultkit.wait_for(lambda: process.poll() is not None or any(
                p not in helpers for p in faultkit.children_named(process.pid, name)), timeout=10)
        if wait(delay - first):
            return False
    elif point == "pause":
        if wait(first):
            return False
        process.send_signal(signal.SIGSTOP)
        time.sleep(rng.uniform(0.05, 1.0))
        process.send_signal(signal.SIGCONT)
        if wait(delay - first):
            return False
    elif wait(delay):
        return False
    process.send_signal(signal.SIGKILL)
    return True


def test_sigkill_at_random_moments_loses_nothing_and_leaves_no_process(project) -> None:
    """After every kill: no unfinished step recorded succeeded, no finished step run again
    (but for a kill between finish and commit, counted), no process left, an intact ledger
    whose states obey the transition table; and a plain resume always finishes the run."""
    rng = random.Random(SEED)
    replay = faultkit.REPLAY
    faultkit.write_witness_batch(project)
    marker = f"kill-{os.getpid()}-{secrets.token_hex(6)}"
    env = {MARKER_VARIABLE: marker}
    kills = trials = window = orphans = finished_first = 0
    points = dict.fromkeys(KILL_POINTS, 0)
    faultkit.CLEANUP["slowest"] = 0.0
    day = date(2026, 1, 1)

    def launch() -> subprocess.Popen[str]:
        return project.start("run", "witness", "--workers", "3", "--date", day.isoformat(), **env)

    def check(earlier: dict[str, str] | None, when: str) -> dict[str, str] | None:
        problems = faultkit.integrity_problems(project.ledger_path)
        view = faultkit.read_run(project.ledger_path, "witness", day.isoformat())
        witness = Witness.read(project.root / "witness" / day.isoformat())
        problems += faultkit.check_run(view, witness, earlier)
        assert not problems, f"{replay}: {when}: " + "; ".join(problems)
        return view.steps if view else None

    while kills < KILLS:
        trials += 1
        earlier: dict[str, str] | None = None
        for _ in range(rng.randint(1, 4)):
            delay = rng.uniform(0.0, 1.1)
            point = rng.choice(KILL_POINTS)
            process = launch()
            if strike(process, point, delay, rng):
                kills += 1
                points[point] += 1
            else:
                finished_first += 1
            process.communicate(timeout=LAUNCH_TIMEOUT)
            where = f"{day}, kill {kills} ({point}) at {delay:.3f}s"
            left = faultkit.orphans_after(marker, ORPHAN_WINDOW)
            orphans += len(left)
            assert not left, f"{replay}: {where}: left alive: {faultkit.describe(left)}"
            earlier = check(earlier, where)
            if process.returncode == 0:
                break
        # The plain resume that must always finish the night.
        process = launch()
        out, err = process.communicate(timeout=LAUNCH_TIMEOUT)
        assert process.returncode == 0, f"{replay}: {day}: the resume exited {process.returncode}: {err}{out}"
        steps = check(earlier, f"{day}, final resume")
        assert steps is not None and len(steps) == faultkit.WITNESS_STEPS
        assert set(steps.values()) == {"succeeded"}, f"{replay}: {day}: {steps}"
        left = faultkit.orphans_after(marker, ORPHAN_WINDOW)
        assert not left, f"{replay}: {day}: left alive after a clean end: {faultkit.describe(left)}"
        view = faultkit.read_run(project.ledger_path, "witness", day.isoformat())
        assert view is not None
        launches = [la["state"] for la in view.launches]
        assert launches[-1] == "succeeded" and set(launches[:-1]) <= {"crashed", "succeeded", "failed"}, (
            f"{replay}: {day}: launches {launches}: a killed launch must be found and marked crashed"
        )
        window += faultkit.window_reruns(view, Witness.read(project.root / "witness" / day.isoformat()))
        day += timedelta(days=1)

    summary = (
        f"SIGKILL: {trials} runs, {kills} kills ({', '.join(f'{k} {v}' for k, v in points.items())}), "
        f"{finished_first} launches ended before their kill, "
        f"{window} steps ran twice (killed between finish and commit), {orphans} orphans "
        f"(slowest cleanup after a kill {faultkit.CLEANUP['slowest']:.2f}s); {replay}"
    )
    faultkit.SUMMARY.append(summary)
    print(summary)
    assert orphans == 0
    assert kills >= KILLS
