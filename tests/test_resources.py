"""Resource pools: `[resources] pos_db = 1` and `resources={"pos_db": 1}`. Each step writes
the interval it held the pool itself; no two intervals may overlap, within a launch or
across launches of different batches sharing the state folder."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from clikit import Project, wait_for

from overnight.batch import Batch
from overnight.errors import DefinitionError
from overnight.resources import ResourcePool, check_requests, holders, waited_pool, waiting_note

DATE = "2026-06-01"
POOL = "\n[resources]\npos_db = 1\nprinter = 2\n"


def holding(seconds: float) -> str:
    """A command that records the interval it held the pool: "START END" in held.txt."""
    return f"s=$(date +%s.%N); sleep {seconds}; echo $s $(date +%s.%N) $OVERNIGHT_STEP >> held.txt"


def intervals(project: Project) -> list[tuple[float, float, str]]:
    rows = []
    for line in (project.root / "held.txt").read_text().splitlines():
        start, end, step = line.split()
        rows.append((float(start), float(end), step))
    return sorted(rows)


def assert_never_two_at_once(rows: list[tuple[float, float, str]]) -> None:
    for (_, end, step), (start, _, other) in zip(rows, rows[1:], strict=False):
        assert end <= start, f"{step} still held the pool when {other} took it"


def test_within_a_launch_a_pool_of_one_is_held_by_one_step_at_a_time(project: Project) -> None:
    project.write_config(POOL)
    project.write_batch("night", f"""
        from overnight import Batch

        batch = Batch("night")
        for i in range(5):
            batch.command(f"db-{{i}}", {holding(0.3)!r}, after=[], resources={{"pos_db": 1}})
        for i in range(3):
            batch.command(f"free-{{i}}", "date +%s.%N > free-$OVERNIGHT_STEP", after=[], priority=-1)
    """)
    result = project.run("run", "night", "--workers", "4", "--date", DATE)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = intervals(project)
    assert len(rows) == 5
    assert_never_two_at_once(rows)
    # The steps waiting for the pool held no worker: the free steps (declared last, lowest
    # priority) ran while the first holder still held it, not after the queue of holders.
    first_end = rows[0][1]
    for i in range(3):
        assert float((project.root / f"free-free-{i}").read_text()) < first_end
    assert "waiting  db-1 for pos_db (held by night/db-0)" in result.stdout


def test_across_two_batches_launched_together_the_pool_is_shared(project: Project) -> None:
    """all holds pos_db until the test lets it go; backups, launched meanwhile, waits, and
    status says for what and behind whom."""
    project.write_config(POOL)
    until = "while [ ! -e release ]; do sleep 0.05; done; "
    for name in ("all", "backups"):
        project.write_batch(name, f"""
            from overnight import Batch

            batch = Batch({name!r})
            for i in range(3):
                batch.command(f"{name}-{{i}}", {until + holding(0.3)!r}, after=[], resources={{"pos_db": 1}})
        """)
    first = project.start("run", "all", "--workers", "3", "--date", DATE)
    wait_for(lambda: _waiting(project, "all"), what="a step of all waiting for pos_db")
    second = project.start("run", "backups", "--workers", "3", "--date", DATE)
    wait_for(lambda: _waiting(project, "backups"), what="a step of backups waiting for pos_db")
    said = _waiting(project, "backups")
    (project.root / "release").touch()
    assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    rows = intervals(project)
    assert len(rows) == 6 and {r[2].split("-")[0] for r in rows} == {"all", "backups"}
    assert_never_two_at_once(rows)
    holder = next(r[2] for r in rows)  # the first to hold it held it while backups waited
    assert holder.startswith("all-") and f"waiting for pos_db (held by all/{holder})" in said


def _waiting(project: Project, batch: str) -> list[str]:
    result = project.run("status", batch, "--json", "--date", DATE)
    steps = json.loads(result.stdout)["steps"] if result.returncode == 0 else []
    return [s["waiting"] for s in steps if s.get("waiting")]


def test_the_units_of_a_launch_killed_with_sigkill_are_free_within_seconds(project: Project) -> None:
    project.write_config(POOL)
    project.write_batch("all", """
        from overnight import Batch

        batch = Batch("all")
        batch.command("hog", "touch hog-started; sleep 60", resources={"pos_db": 1})
    """)
    project.write_batch("backups", f"""
        from overnight import Batch

        batch = Batch("backups")
        batch.command("dump", {holding(0)!r}, resources={{"pos_db": 1}})
    """)
    hog = project.start("run", "all", "--date", DATE)
    wait_for(lambda: (project.root / "hog-started").exists(), what="the hog to hold pos_db")
    os.kill(hog.pid, signal.SIGKILL)
    killed = time.time()
    hog.wait()
    result = project.run("run", "backups", "--date", DATE)
    assert result.returncode == 0, result.stdout + result.stderr
    [(start, _, _)] = intervals(project)
    assert start - killed < 5.0


def test_the_dry_run_says_what_a_step_holds(project: Project) -> None:
    project.write_config(POOL)
    project.write_batch("night", """
        from overnight import Batch

        batch = Batch("night")
        batch.command("print", "true", resources={"printer": 2, "pos_db": 1})
    """)
    out = project.run("run", "night", "--dry-run", "--date", DATE).stdout
    assert "[holds 1 of pos_db, holds 2 of printer]" in out


# -- in process: the pool itself ---------------------------------------------------------


def test_a_step_takes_every_unit_it_asks_for_or_none(tmp_path: Path) -> None:
    one, two = ResourcePool(tmp_path, {"a": 1, "b": 1}), ResourcePool(tmp_path, {"a": 1, "b": 1})
    one.holder.update(batch="x")
    two.holder.update(batch="y")
    assert one.take("holds-b", {"b": 1}) is None
    assert two.take("wants-both", {"a": 1, "b": 1}) == "b"
    assert holders(tmp_path, "a") == []  # it did not keep a while it could not have b
    assert two.take("wants-a", {"a": 1}) is None
    assert holders(tmp_path, "a") == ["y/wants-a"] and holders(tmp_path, "b") == ["x/holds-b"]
    assert one.give_back("holds-b") and not one.give_back("holds-b")
    assert holders(tmp_path, "b") == []
    assert two.take("wants-both", {"b": 1}) is None
    two.close()
    assert holders(tmp_path, "a") == [] and holders(tmp_path, "b") == []


def test_a_pool_of_two_lets_two_hold_it_and_not_three(tmp_path: Path) -> None:
    pools = [ResourcePool(tmp_path, {"printer": 2}) for _ in range(3)]
    assert pools[0].take("a", {"printer": 1}) is None
    assert pools[1].take("b", {"printer": 1}) is None
    assert pools[2].take("c", {"printer": 1}) == "printer"
    assert pools[2].take("c", {"printer": 2}) == "printer"
    pools[0].give_back("a")
    assert pools[2].take("c", {"printer": 1}) is None


def test_the_waiting_note_names_the_pool_and_nothing_else_reads_as_one() -> None:
    assert waited_pool(waiting_note("pos_db")) == "pos_db"
    assert waited_pool("waiting for batch all (its run for 2026-01-01)") is None
    assert waited_pool("blocked by import") is None and waited_pool(None) is None


@pytest.mark.parametrize(
    ("request_", "pools", "message"),
    [
        ({"pos_db": 1}, {}, "asks for resource 'pos_db', which overnight.toml does not define"),
        ({"pos_db": 2}, {"pos_db": 1}, "asks for 2 units of 'pos_db', which has 1"),
    ],
)
def test_a_request_no_pool_can_meet_is_refused_at_load(request_: dict, pools: dict, message: str) -> None:
    step = Batch("b").command("x", "true", resources=request_)
    with pytest.raises(DefinitionError, match=message):
        check_requests([step], pools, "b.py")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["pos_db"], "resources must be a dict of pool names to units"),
        ({"pos_db": 0}, "resources\\['pos_db'\\] must be a whole number of at least 1"),
        ({"pos_db": True}, "resources\\['pos_db'\\] must be a whole number of at least 1"),
        ({"POS DB": 1}, "resource name 'POS DB' is not valid"),
    ],
)
def test_a_bad_request_is_refused_naming_the_step(value: object, message: str) -> None:
    with pytest.raises(DefinitionError, match="step 'x': " + message):
        Batch("b").command("x", "true", resources=value)  # type: ignore[arg-type]


def test_at_a_terminal_the_live_line_says_what_waits_for_a_pool(project: Project) -> None:
    """The progress line a person watches (a real pseudo-terminal) names the waiting step,
    its pool and who holds it, while it waits."""
    import pty
    import subprocess
    import sys

    project.write_config(POOL)
    project.write_batch("night", """
        from overnight import Batch

        batch = Batch("night")
        batch.command("first", "sleep 2", after=[], resources={"pos_db": 1})
        batch.command("second", "sleep 0.1", after=[], resources={"pos_db": 1})
    """)
    main, child = pty.openpty()
    runner = subprocess.Popen(
        [sys.executable, "-m", "overnight", "run", "night", "--workers", "2", "--date", DATE],
        cwd=project.root, env=project.env(COLUMNS="200"), stdin=child, stdout=child, stderr=child,
    )
    os.close(child)
    seen = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal closed: the runner is done
            break
        if not data:
            break
        seen += data
    os.close(main)
    assert runner.wait(timeout=60) == 0
    assert b"second waiting for pos_db (held by night/first)" in seen
