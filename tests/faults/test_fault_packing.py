"""Pools, waits and cleanups under SIGKILL: two batches sharing a pool of one unit are
launched together, and one or both runners are killed at random moments, then resumed,
until both nights succeed.

Every step that holds the pool writes, while it holds it, "WHO start T", a "WHO tick T"
every 20 ms and "WHO end T": a step killed with its runner leaves its last tick, a little
before it died. No two of these intervals may overlap, whatever was killed when; every
round leaves no process behind and a ledger whose records obey the transition table.

Seeded like the other fault suites (OVERNIGHT_FAULT_SEED replays the moments);
OVERNIGHT_FAULT_TRIALS sets the number of kills (default 8 here).
"""

from __future__ import annotations

import os
import random
import secrets
import time
from datetime import date, timedelta
from pathlib import Path

import faultkit
from faultkit import MARKER_VARIABLE

KILLS = max(1, int(os.environ.get("OVERNIGHT_FAULT_TRIALS") or 60) // 7)

HOLD = (
    'w="$OVERNIGHT_BATCH/$OVERNIGHT_STEP"; echo "$w start $(date +%s.%N)" >> held; '
    'for i in 1 2 3 4 5 6; do sleep 0.02; echo "$w tick $(date +%s.%N)" >> held; done; '
    'echo "$w end $(date +%s.%N)" >> held'
)


def night(name: str) -> str:
    return f'''
from overnight import Batch

batch = Batch({name!r})
batch.command("prepare", "sleep 0.05")
with batch.parallel():
    for i in range(3):
        batch.command(f"db-{{i}}", {HOLD!r}, resources={{"pos_db": 1}})
    batch.command("free", "sleep 0.1")
batch.wait("settled", check="test -e settled-{name}", every="0.05s", timeout="60s", after=["free"])
batch.command("make-settled", "touch settled-{name}", after=["free"])
batch.command("cleanup", "true", after=["settled"], run_if="always")
'''


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def held_intervals(path: Path) -> list[tuple[float, float, str]]:
    """Per stint of a step holding the pool: its first and last moment seen holding it."""
    stints: dict[str, list[float]] = {}
    done: list[tuple[float, float, str]] = []
    for line in path.read_text().splitlines() if path.exists() else []:
        who, what, when = line.split()
        if what == "start":
            if who in stints:  # killed before: its last tick closed that stint
                done.append((stints[who][0], stints[who][-1], who))
            stints[who] = [float(when)]
        else:
            stints[who].append(float(when))
            if what == "end":
                done.append((stints[who][0], stints[who][-1], who))
                del stints[who]
    done += [(times[0], times[-1], who) for who, times in stints.items()]
    return sorted(done)


def overlaps(intervals: list[tuple[float, float, str]]) -> list[str]:
    return [
        f"{a} held pos_db until {a_end:.3f} and {b} took it at {b_start:.3f}"
        for (_, a_end, a), (b_start, _, b) in zip(intervals, intervals[1:], strict=False)
        if b_start < a_end
    ]


def test_sigkill_with_two_batches_sharing_a_pool_never_gives_it_to_two(project) -> None:  # noqa: ANN001
    rng = random.Random(faultkit.SEED)
    held = project.root / "held"
    project.write_config("\n[resources]\npos_db = 1\n")
    for name in ("left", "right"):
        project.write_batch(name, night(name))
    marker = f"pack-{os.getpid()}-{secrets.token_hex(6)}"
    kills = rounds = nights = 0
    day = date(2026, 8, 1)
    while True:
        rounds += 1
        runners = {n: project.start("run", n, "--workers", "3", "--date", day.isoformat(),
                                    **{MARKER_VARIABLE: marker})
                   for n in ("left", "right")}
        if kills < KILLS:
            # A random moment while the pool is in use: after a random number of lines more
            # in the holders' file (a start, ticks, an end), or at once.
            wanted = _lines(held) + rng.randint(0, 12)
            deadline = time.monotonic() + 20
            while _lines(held) < wanted and time.monotonic() < deadline and any(
                r.poll() is None for r in runners.values()
            ):
                time.sleep(0.005)
            for name in rng.sample(sorted(runners), rng.randint(1, 2)):
                if runners[name].poll() is None:
                    runners[name].kill()
                    kills += 1
        codes = {n: r.wait(timeout=120) for n, r in runners.items()}
        for r in runners.values():
            r.communicate()
        left = faultkit.orphans_after(marker, 2.0)
        assert not left, f"{faultkit.REPLAY}: round {rounds}: left behind {faultkit.describe(left)}"
        problems = faultkit.integrity_problems(project.ledger_path) + overlaps(held_intervals(held))
        assert not problems, f"{faultkit.REPLAY}: round {rounds}: " + "; ".join(problems)
        if all(code == 0 for code in codes.values()):
            for name in ("left", "right"):
                states = project.states(name, "--date", day.isoformat())
                assert set(states.values()) == {"succeeded"}, (name, states)
            nights += 1
            if kills >= KILLS:
                break
            day += timedelta(days=1)
        assert rounds < 4 * KILLS + 10, f"{faultkit.REPLAY}: the nights never finished: {codes}"
    stints = held_intervals(held)
    faultkit.SUMMARY.append(
        f"pools under SIGKILL: {kills} kills in {rounds} rounds over {nights} nights of two batches, "
        f"{len(stints)} stints holding pos_db, "
        f"none overlapping; {faultkit.REPLAY}"
    )
