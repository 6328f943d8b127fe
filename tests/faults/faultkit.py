"""What the fault suites share: the witness batch, the ledger checks, the process table.

Every step of the witness batch appends "NAME start ATTEMPT" to witness/DATE when it starts
and "NAME end ATTEMPT" as the very last thing it does, so the witness file tells what truly
finished, independently of the ledger. The checks below compare the two.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clikit import alive, wait_for  # noqa: F401 - the one alive and wait_for, for the fault suites too

from overnight.states import STEP_TRANSITIONS, RunState, StepState

# Every process started for a test carries MARKER_VARIABLE=<unique value> in its
# environment (inherited through fork and exec), so the process table tells which
# processes belong to it, whatever became of their parent.
MARKER_VARIABLE = "OVERNIGHT_FAULT_MARKER"

# Lines for the end-of-session summary (conftest.py prints them).
SUMMARY: list[str] = []

# OVERNIGHT_SOAK=1: the suites whose default is a covering sample of their cases (every
# way, every end, every net, not every combination) run all of them.
SOAK = os.environ.get("OVERNIGHT_SOAK", "") not in ("", "0")

# One seed for the session's random moments; OVERNIGHT_FAULT_SEED=N replays a session.
SEED = int(os.environ.get("OVERNIGHT_FAULT_SEED") or secrets.randbelow(2**32))
REPLAY = f"seed {SEED} (replay with OVERNIGHT_FAULT_SEED={SEED})"

WITNESS_BATCH = '''
"""A night of 21 steps: commands, callables, a parallel group, a retried step."""
import time
from pathlib import Path

from overnight import Batch

batch = Batch("witness")


def cmd(name, body, argv=False, **options):
    """A command step that says when it starts and, last of all, that it finished."""
    w = "witness/{date}"
    script = (
        f'echo "{name} start $OVERNIGHT_ATTEMPT" >> {w}; {body}; '
        f'echo "{name} end $OVERNIGHT_ATTEMPT" >> {w}'
    )
    batch.command(name, ["sh", "-c", script] if argv else script, **options)


def say(ctx, what):
    with open(f"witness/{ctx.date}", "a") as f:
        f.write(f"{ctx.step} {what} {ctx.attempt}\\n")


def func(name, seconds, **options):
    def body(ctx):
        say(ctx, "start")
        time.sleep(seconds)
        say(ctx, "end")

    body.__name__ = name.replace("-", "_")
    batch.step(body, name=name, **options)


cmd("prepare", "mkdir -p out && sleep 0.05")
cmd("export-pos", "sleep 0.08 && echo pos > out/pos-{date}")
func("load-products", 0.06)
cmd("load-prices", "sleep 0.05", timeout="30s")
with batch.parallel():
    cmd("report-sales", "sleep 0.12")
    cmd("report-labor", "sleep 0.07")
    func("report-stock", 0.09)
    cmd("report-margin", "sleep 0.1", argv=True)  # an argv list, no shell of ours
    func("report-returns", 0.05)
    # leaves a grandchild behind in its process group: it must die with the step
    cmd("report-audit", "(sleep 30 &) ; sleep 0.06")
# fails its first attempt of the run, then succeeds on a retry
cmd(
    "flaky",
    'if [ ! -e "out/flaky-{date}" ]; then touch "out/flaky-{date}"; exit 1; fi; sleep 0.03',
    retries=3, retry_delay="0.05s",
)
func("publish", 0.04)
cmd("archive", "sleep 0.05")
func("vacuum", 0.03, after=[])
cmd("index", "sleep 0.04", after=["vacuum"])
cmd("notify-a", "sleep 0.02", after=["publish"])
cmd("notify-b", "sleep 0.02", after=["publish"])
func("tidy", 0.02, after=["notify-a", "notify-b", "index", "archive"])
cmd("checksum", "sleep 0.03")
cmd("rotate", "sleep 0.02")
cmd("done", "true")
'''

WITNESS_STEPS = 21


def write_witness_batch(project) -> None:  # noqa: ANN001 - the conftest Project
    project.write_batch("witness", WITNESS_BATCH)
    (project.root / "witness").mkdir(exist_ok=True)


# -- the witness file ----------------------------------------------------------------------


@dataclass
class Witness:
    starts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    ends: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def read(cls, path: Path) -> Witness:
        w = cls()
        if not path.exists():
            return w
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[1] not in ("start", "end"):
                raise AssertionError(f"{path}: a torn witness line {line!r}")
            (w.starts if parts[1] == "start" else w.ends)[parts[0]].append(int(parts[2]))
        return w


# -- the ledger ----------------------------------------------------------------------------


def connect_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def ledger_dump(path: Path) -> str:
    """A digest of the ledger's content (or "absent"): equal digests, same records."""
    if not path.exists():
        return "absent"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        for line in conn.iterdump():
            digest.update(line.encode() + b"\n")
        return digest.hexdigest()
    finally:
        conn.close()


def snapshot(path: Path) -> bytes | None:
    """The file's bytes (None for a folder or nothing): for ledgers too damaged to dump."""
    return path.read_bytes() if path.is_file() else None


@dataclass
class RunView:
    """A run as the ledger has it after a launch ended (cleanly or not)."""

    steps: dict[str, str]
    attempts: dict[str, list[sqlite3.Row]]
    launches: list[sqlite3.Row]


def read_run(ledger: Path, batch: str, run_date: str) -> RunView | None:
    if not ledger.exists():
        return None
    conn = connect_ro(ledger)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
            return None
        run = conn.execute("SELECT id FROM runs WHERE batch = ? AND date = ?", (batch, run_date)).fetchone()
        if run is None:
            return None
        rows = conn.execute("SELECT name, state FROM steps WHERE run_id = ?", (run[0],))
        steps = {r["name"]: r["state"] for r in rows}
        attempts: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for a in conn.execute("SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run[0],)):
            attempts[a["step"]].append(a)
        launches = conn.execute("SELECT * FROM launches WHERE run_id = ? ORDER BY id", (run[0],)).fetchall()
        return RunView(steps, attempts, launches)
    finally:
        conn.close()


def integrity_problems(ledger: Path) -> list[str]:
    if not ledger.exists():
        return []
    conn = connect_ro(ledger)
    try:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        return [] if result == ["ok"] else result
    finally:
        conn.close()


def check_run(view: RunView | None, witness: Witness, earlier: dict[str, str] | None) -> list[str]:
    """Everything that must hold of a run however its launches ended. Returns problems.

    `earlier` is the step states seen after the previous launch of the same run: a plain
    resume may only move each step along the transition table, and never undo a success.
    """
    if view is None:
        return []
    problems: list[str] = []
    live = [la["id"] for la in view.launches if la["state"] == RunState.RUNNING.value]
    if len(live) > 1:
        problems.append(f"launches {live} are all recorded live")
    for name, state in view.steps.items():
        try:
            StepState(state)
        except ValueError:
            problems.append(f"{name}: unknown state {state!r}")
            continue
        tried = view.attempts.get(name, [])
        running = [a["number"] for a in tried if a["state"] == StepState.RUNNING.value]
        succeeded = [a["number"] for a in tried if a["state"] == StepState.SUCCEEDED.value]
        numbers = [a["number"] for a in tried]
        if len(numbers) != len(set(numbers)):
            problems.append(f"{name}: attempt numbers repeat: {numbers}")
        if len(running) > 1:
            problems.append(f"{name}: two running attempts {running}")
        if state == StepState.RUNNING.value and len(running) != 1:
            problems.append(f"{name}: running with {len(running)} running attempts")
        if state != StepState.RUNNING.value and running:
            problems.append(f"{name}: {state} but attempt {running} is still running")
        for a in tried:
            if a["state"] == StepState.RUNNING.value and a["launch_id"] not in live:
                problems.append(f"{name}: attempt {a['number']} running in a launch that ended")
        if state == StepState.SUCCEEDED.value and not succeeded:
            problems.append(f"{name}: succeeded without a succeeded attempt")
        if len(succeeded) > 1:
            problems.append(f"{name}: succeeded attempts {succeeded}: it ran again after its success")
        # The witness is the truth about what finished.
        for number in succeeded:
            if number not in witness.ends.get(name, []):
                problems.append(f"{name}: attempt {number} recorded succeeded but never finished")
        if succeeded:
            later = [n for n in witness.starts.get(name, []) if n > succeeded[0]]
            if later:
                problems.append(f"{name}: started again (attempt {later}) after its success was committed")
        for number in witness.starts.get(name, []):
            if number not in numbers:
                problems.append(f"{name}: attempt {number} ran but the ledger has no record of it")
        if earlier is not None and name in earlier:
            before = StepState(earlier[name])
            now = StepState(state)
            if before is StepState.SUCCEEDED and now is not StepState.SUCCEEDED:
                problems.append(f"{name}: was succeeded, is now {now}: a plain resume undid a success")
            elif now is not before and not _reachable(before, now):
                problems.append(f"{name}: {before} -> {now} is not a path in STEP_TRANSITIONS")
    return problems


def _reachable(old: StepState, new: StepState) -> bool:
    seen, todo = {old}, [old]
    while todo:
        for nxt in STEP_TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return new in seen


def window_reruns(view: RunView | None, witness: Witness) -> int:
    """Attempts that truly finished but were not recorded succeeded: the kill fell between
    the step's finish and the commit of its success, so the step ran again."""
    if view is None:
        return 0
    count = 0
    for name, ends in witness.ends.items():
        states = {a["number"]: a["state"] for a in view.attempts.get(name, [])}
        count += sum(1 for n in ends if states.get(n) != StepState.SUCCEEDED.value)
    return count


# -- the process table ---------------------------------------------------------------------


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment carries MARKER_VARIABLE=marker (zombies have none)."""
    needle = f"{MARKER_VARIABLE}={marker}".encode() + b"\0"
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read() + b"\0":
                    found.append(int(name))
        except OSError:
            continue
    return found


CLEANUP = {"slowest": 0.0}  # the longest any trial's processes took to disappear (seconds)


def orphans_after(marker: str, within: float) -> list[int]:
    """Processes of the test still alive `within` seconds from now (then killed, so that
    one failure does not cascade into the next trial)."""
    start = time.monotonic()
    while True:
        found = processes_with(marker)
        if not found or time.monotonic() > start + within:
            break
        time.sleep(0.01)
    CLEANUP["slowest"] = max(CLEANUP["slowest"], time.monotonic() - start)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            cmdline = "?"
        out.append(f"{pid} ({cmdline[:80]})")
    return ", ".join(out)


def cgroup_net_available() -> bool:
    """Whether a runner can use the cgroup net here (cgroup v2 writable, with cgroup.kill).

    Found from the mount table by the test itself, not by asking overnight."""
    mount = mine = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            mount = left.split()[4]
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            mine = line[3:]
    if mount is None or mine is None:
        return False
    probe = os.path.join(os.path.normpath(mount + mine), f"overnight-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    try:
        return os.path.exists(os.path.join(probe, "cgroup.kill"))
    finally:
        os.rmdir(probe)


# -- the runner's helper processes ---------------------------------------------------------


def children_named(parent: int, name: str | None) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and name in (None, comm):
            found.append(int(entry))
    return found


def helper(process, name: str) -> int:  # noqa: ANN001
    """The runner's helper process of that name; for the sentinel of a runner that does not
    name it, the forked copy of the runner that has no children of its own."""
    def find() -> list[int]:
        named = children_named(process.pid, name)
        if named or name != "overnight-sent":
            return named
        runner = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        copies = [p for p in children_named(process.pid, None) if _cmdline(p) == runner]
        return [p for p in copies if not children_named(p, None)]

    wait_for(find, timeout=10)
    return find()[0]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
