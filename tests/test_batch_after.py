"""Batch-to-batch: `after = ["all"]`. A launch of backups waits for the same date's run of
all, starts within a second of its success, and ends blocked when it failed."""

from __future__ import annotations

import signal

import pytest
from clikit import Project, wait_for

from overnight.batchafter import OtherRun, find_cycle, judge_after
from overnight.states import RunState

DATE = "2026-07-01"
AFTER = '\n[batches.backups]\nmodule = "backups.py"\nafter = ["all"]\n'


def two_batches(project: Project, all_step: str, wait_up_to: str | None = None) -> None:
    project.write_batch("all", f"""
        from overnight import Batch

        batch = Batch("all")
        batch.command("import", {all_step!r})
    """)
    project.write_batch("backups", """
        from overnight import Batch

        batch = Batch("backups")
        batch.command("dump", "date +%s.%N > dump-started")
        batch.command("rotate", "true")
    """, config=False)
    project.write_config(AFTER + (f'wait_up_to = "{wait_up_to}"\n' if wait_up_to else ""))


def _waiting(project: Project) -> str | None:
    result = project.run("status", "backups", "--json", "--date", DATE)
    return project.status("backups", "--date", DATE).get("waiting") if result.returncode == 0 else None


def test_backups_waits_for_all_and_starts_within_a_second_of_its_success(project: Project) -> None:
    two_batches(project, "while [ ! -e go ]; do sleep 0.05; done")
    first = project.start("run", "all", "--date", DATE)
    second = project.start("run", "backups", "--date", DATE)
    wait_for(lambda: _waiting(project), what="backups to say it waits")
    assert _waiting(project) == f"waiting for batch all (its run for {DATE} is running)"
    text = project.run("status", "backups", "--date", DATE).stdout
    said = f"waiting for batch all (its run for {DATE} is running)"
    assert text.splitlines()[0] == f"backups for {DATE}: running ({said})"
    (project.root / "go").touch()
    assert first.wait(timeout=30) == 0
    assert second.wait(timeout=30) == 0, second.stderr.read() if second.stderr else ""
    [(all_ended,)] = project.query(
        "SELECT a.ended_at FROM attempts a JOIN runs r ON r.id = a.run_id WHERE r.batch = 'all'")
    dump_started = float((project.root / "dump-started").read_text())
    assert 0 < dump_started - all_ended < 1.0
    assert project.states("backups", "--date", DATE) == {"dump": "succeeded", "rotate": "succeeded"}
    assert project.status("backups", "--date", DATE)["waiting"] is None


def test_after_all_failed_backups_ends_blocked_with_the_reason_and_exit_1(project: Project) -> None:
    two_batches(project, "exit 4")
    assert project.run("run", "all", "--date", DATE).returncode == 1
    result = project.run("run", "backups", "--date", DATE)
    assert result.returncode == 1
    assert f"BLOCKED  backups: batch all for {DATE} failed" in result.stdout
    view = project.status("backups", "--date", DATE)
    assert view["state"] == "failed"
    assert {s["name"]: (s["state"], s["message"]) for s in view["steps"]} == {
        "dump": ("blocked", f"blocked: batch all for {DATE} failed"),
        "rotate": ("blocked", f"blocked: batch all for {DATE} failed"),
    }
    assert view["launches"][-1]["message"] == f"blocked: batch all for {DATE} failed"
    assert not (project.root / "dump-started").exists()

    forced = project.run("run", "backups", "--date", DATE, "--ignore-after")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert project.states("backups", "--date", DATE) == {"dump": "succeeded", "rotate": "succeeded"}


def test_a_run_that_does_not_come_in_time_blocks_after_wait_up_to(project: Project) -> None:
    two_batches(project, "true", wait_up_to="1s")
    result = project.run("run", "backups", "--date", DATE)
    assert result.returncode == 1
    assert f"batch all for {DATE} had not succeeded within 1.00s" in result.stdout
    assert project.states("backups", "--date", DATE) == {"dump": "blocked", "rotate": "blocked"}


def test_a_cancel_while_waiting_leaves_the_steps_pending(project: Project) -> None:
    two_batches(project, "true")
    runner = project.start("run", "backups", "--date", DATE)
    wait_for(lambda: _waiting(project), what="backups to say it waits")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 130
    assert project.states("backups", "--date", DATE) == {"dump": "pending", "rotate": "pending"}


def test_the_dry_run_says_what_a_launch_would_wait_for(project: Project) -> None:
    two_batches(project, "exit 1")
    out = project.run("run", "backups", "--dry-run", "--date", DATE).stdout
    waits = f"waiting for batch all (its run for {DATE} has not started)"
    assert f"({waits}: a launch would wait, up to 6h00m)" in out
    project.run("run", "all", "--date", DATE)
    out = project.run("run", "backups", "--dry-run", "--date", DATE).stdout
    blocked = f"batch all for {DATE} failed"
    assert f"({blocked}: a launch would end blocked (--ignore-after to start anyway))" in out


NOT_STARTED = "waiting for batch all (its run for D has not started)"
RUNNING = "waiting for batch all (its run for D is running)"


@pytest.mark.parametrize(
    ("others", "go", "waiting", "blocked"),
    [
        ([OtherRun("all", RunState.SUCCEEDED, False)], True, None, None),
        ([OtherRun("all", None, False)], False, NOT_STARTED, None),
        ([OtherRun("all", RunState.RUNNING, True)], False, RUNNING, None),
        ([OtherRun("all", RunState.FAILED, True)], False, RUNNING, None),
        ([OtherRun("all", RunState.FAILED, False)], False, None, "batch all for D failed"),
        ([OtherRun("all", RunState.CANCELLED, False)], False, None, "batch all for D cancelled"),
        ([OtherRun("all", RunState.RUNNING, False)], False, None, "batch all for D crashed"),
        ([OtherRun("a", None, False), OtherRun("b", RunState.FAILED, False)], False, None,
         "batch b for D failed"),
        ([OtherRun("a", RunState.SUCCEEDED, False), OtherRun("b", RunState.RUNNING, True)], False,
         "waiting for batch b (its run for D is running)", None),
    ],
)
def test_judge_after(others: list[OtherRun], go: bool, waiting: str | None, blocked: str | None) -> None:
    verdict = judge_after(others, "D")
    assert (verdict.go, verdict.waiting, verdict.blocked) == (go, waiting, blocked)


def test_find_cycle() -> None:
    assert find_cycle({"backups": ["all"], "all": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": ["a"], "a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
