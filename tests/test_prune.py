"""`overnight prune`: old nights lose their logs and per-attempt detail, never their outcome;
a night that did not succeed and a batch's last success are never touched."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from clikit import Project, wait_for

TODAY = datetime.now(UTC).date()
OLD = (TODAY - timedelta(days=500)).isoformat()
OLDER = (TODAY - timedelta(days=501)).isoformat()
RECENT = (TODAY - timedelta(days=1)).isoformat()

NIGHT = """
    from overnight import Batch
    batch = Batch("night")
    batch.command("extract", "test ! -e broken-{date} && echo extracted {date}")
    batch.command("load", "echo loaded {date}")
"""


@pytest.fixture
def nights(project: Project) -> Project:
    """`night` ran on OLDER, OLD and RECENT, all succeeded."""
    project.write_batch("night", NIGHT)
    for day in (OLDER, OLD, RECENT):
        assert project.run("run", "night", "--date", day).returncode == 0
    return project


def log_folder(project: Project, day: str) -> Path:
    return project.state_dir / "logs" / "night" / day


def test_prune_removes_the_old_nights_logs_and_keeps_the_recent_one_readable(nights: Project) -> None:
    result = nights.run("prune", "--older-than", "400d")
    assert result.returncode == 0, result.stderr
    cutoff = (TODAY - timedelta(days=400)).isoformat()
    assert result.stdout.splitlines()[0].startswith(
        f"pruned what is older than {cutoff}: 2 nights of night, 4 attempt records, 4 log files (")
    for day in (OLDER, OLD):
        assert not log_folder(nights, day).exists()
    # The recent night is whole: its logs, its attempts, its status.
    assert nights.run("logs", "night", "load", "--date", RECENT).stdout == f"loaded {RECENT}\n"
    recent = nights.status("night", "--date", RECENT)
    assert [len(s["attempts"]) for s in recent["steps"]] == [1, 1]
    # The old nights keep their outcome: history and status still show them.
    old = nights.status("night", "--date", OLD)
    assert old["state"] == "succeeded"
    assert [(s["state"], len(s["attempts"])) for s in old["steps"]] == [("succeeded", 0)] * 2
    history = json.loads(nights.run("history", "night", "--json").stdout)
    assert [r["date"] for r in history["runs"]] == [RECENT, OLD, OLDER]
    said = nights.run("logs", "night", "load", "--date", OLD)
    assert said.returncode == 2
    assert said.stderr == (f"overnight: step 'load' of night for {OLD} is succeeded, with no attempt "
                           "on record (marked by hand, adopted, or pruned)\n")
    again = nights.run("prune", "--older-than", "400d")
    assert again.stdout.startswith(f"pruned what is older than {cutoff}: 0 nights, 0 attempt records")


def test_a_night_that_did_not_succeed_and_the_last_success_are_kept(project: Project) -> None:
    project.write_batch("night", NIGHT)
    (project.root / f"broken-{OLD}").touch()
    assert project.run("run", "night", "--date", OLDER).returncode == 0
    assert project.run("run", "night", "--date", OLD).returncode == 1
    result = project.run("prune", "--older-than", "400d")
    assert result.returncode == 0, result.stderr
    # OLD failed: kept whole. OLDER is the batch's last success: kept too.
    assert result.stdout.splitlines()[1:] == [
        f"kept 1 night that did not succeed: night {OLD} (failed) (settle them with `overnight mark` "
        "to let them go)",
        f"kept each batch's last successful night: night {OLDER}",
    ]
    assert log_folder(project, OLD).exists() and log_folder(project, OLDER).exists()
    assert project.run("logs", "night", "extract", "--date", OLD).returncode == 0
    # Settled by hand, the failed night may go; OLDER stops being the last success once a
    # newer night succeeds.
    assert project.run("mark", "night", "extract", "load", "--done", "--date", OLD).returncode == 0
    assert project.run("run", "night", "--date", RECENT).returncode == 0
    assert project.run("prune", "--older-than", "400d").stdout.startswith(
        f"pruned what is older than {(TODAY - timedelta(days=400)).isoformat()}: 2 nights of night")
    assert not log_folder(project, OLD).exists() and not log_folder(project, OLDER).exists()


def test_a_dry_run_says_the_same_and_removes_nothing(nights: Project) -> None:
    """Even when a record spells a log's path another way (relative, with `..`): each file
    is counted once."""
    import sqlite3

    conn = sqlite3.connect(nights.ledger_path)
    with conn:
        conn.execute("UPDATE attempts SET log_path = replace(log_path, ?, ?) WHERE step = 'load'",
                     (str(nights.root), f"{nights.root}/.overnight/../."))
    conn.close()
    before = sorted(p for p in nights.state_dir.rglob("*") if p.is_file() and "ledger" not in p.name)
    attempts = nights.query("SELECT count(*) FROM attempts")
    dry = nights.run("prune", "--older-than", "400d", "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.startswith("would prune what is older than")
    assert sorted(p for p in nights.state_dir.rglob("*") if p.is_file() and "ledger" not in p.name) == before
    assert nights.query("SELECT count(*) FROM attempts") == attempts
    real = nights.run("prune", "--older-than", "400d")
    assert real.stdout.replace("pruned", "would prune", 1) == dry.stdout


def test_an_old_night_running_again_now_is_not_touched(nights: Project) -> None:
    """A rerun of a night 500 days old, live while prune runs: that night is unfinished,
    so kept whole (its log being written included)."""
    module = nights.root / "night.py"
    slow = 'echo loaded {date}; touch started; sleep 30"'
    module.write_text(module.read_text().replace('echo loaded {date}"', slow))
    runner = nights.start("run", "night", "--date", OLD, "--rerun", "load")
    try:
        wait_for(lambda: (nights.root / "started").exists(), what="the rerun to start")
        result = nights.run("prune", "--older-than", "400d")
        assert result.returncode == 0
        assert f"kept 1 night that did not succeed: night {OLD} (running)" in result.stdout
        assert log_folder(nights, OLD).exists() and not log_folder(nights, OLDER).exists()
        assert len(nights.status("night", "--date", OLD)["steps"][0]["attempts"]) == 1
    finally:
        runner.kill()
        runner.wait()


def test_the_scheduler_dashboard_and_worker_logs_go_by_their_date(nights: Project) -> None:
    state = nights.state_dir
    old_stamp = (TODAY - timedelta(days=500)).strftime("%Y%m%d")
    files = {
        "scheduler-old": state / "logs" / "scheduler" / "night" / f"{OLD}-20250101T010000Z.log",
        "scheduler-new": state / "logs" / "scheduler" / "night" / f"{RECENT}-20250101T010000Z.log",
        "web-old": state / "logs" / "web" / f"{old_stamp}-010203-run-1-2.log",
        "web-new": state / "logs" / "web" / f"{TODAY.strftime('%Y%m%d')}-010203-run-1-2.log",
        "worker-old": state / "remote-logs" / "night" / OLD / "load.1.abc.log",
        "worker-new": state / "remote-logs" / "night" / RECENT / "load.1.abc.log",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("output\n")
    assert nights.run("prune", "--older-than", "400d").returncode == 0
    left = {name for name, path in files.items() if path.exists()}
    assert left == {"scheduler-new", "web-new", "worker-new"}


def test_nothing_outside_the_state_folder_is_removed_whatever_a_record_says(
    nights: Project, tmp_path: Path,
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    link = nights.state_dir / "logs" / "night" / OLD / "link.log"
    link.symlink_to(precious)
    with_link = nights.query("SELECT id FROM attempts WHERE step = 'load' AND run_id = "
                             "(SELECT id FROM runs WHERE date = ?)", (OLD,))[0][0]
    import sqlite3

    conn = sqlite3.connect(nights.ledger_path)
    with conn:
        conn.execute("UPDATE attempts SET log_path = ? WHERE id = ?", (str(precious), with_link))
    conn.close()
    assert nights.run("prune", "--older-than", "400d").returncode == 0
    assert precious.read_text() == "keep me\n"
    assert not link.exists() and not link.is_symlink()  # the link itself went, not its target


@pytest.mark.parametrize("value", ["400", "12h", "0d", "soon"])
def test_an_age_that_is_not_days_is_refused(nights: Project, value: str) -> None:
    result = nights.run("prune", "--older-than", value)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("overnight: --older-than")
    assert log_folder(nights, OLD).exists()


def test_retention_makes_the_scheduler_prune_once_a_day(nights: Project) -> None:
    nights.write_config('[retention]\nkeep = "400d"\n')
    first = nights.run("scheduler", "--once")
    assert first.returncode == 0, first.stderr
    wait_for(lambda: not log_folder(nights, OLD).exists(), what="the scheduler's prune")
    prune_log = nights.state_dir / "logs" / "prune.log"
    wait_for(lambda: "pruned what is older than" in prune_log.read_text(), what="its report")
    # Once a day: a second pass the same day prunes nothing, even with something to prune.
    old_again = date.fromisoformat(OLD) - timedelta(days=10)
    assert nights.run("run", "night", "--date", old_again.isoformat()).returncode == 0
    assert nights.run("scheduler", "--once").returncode == 0
    assert log_folder(nights, old_again.isoformat()).exists()
    assert prune_log.read_text().count("pruned what is older than") == 1
    os.utime(prune_log, (0, 0))  # as if the last prune were long ago
    assert nights.run("scheduler", "--once").returncode == 0
    wait_for(lambda: not log_folder(nights, old_again.isoformat()).exists(), what="the next day's prune")


def test_the_dashboards_audit_entries_older_than_the_cutoff_go(nights: Project) -> None:
    """The audit record ages like the logs (a guesser spread over many addresses adds to it
    and nothing else removes it); a dry run counts without removing."""
    from overnight.ledger import Ledger

    old = datetime.combine(TODAY - timedelta(days=450), datetime.min.time()).timestamp()
    now = datetime.now().timestamp()
    ledger = Ledger.open(nights.ledger_path)
    with ledger.transaction():
        for address in ("203.0.113.7", "203.0.113.8"):
            ledger.record_audit(old, None, address, "login", "olive", "refused")
        ledger.record_audit(now, "olive", "127.0.0.1", "login", None, "ok")
    ledger.close()
    dry = nights.run("prune", "--older-than", "400d", "--dry-run")
    assert "would prune 2 audit entries of the dashboard" in dry.stdout.splitlines()
    assert len(nights.query("SELECT id FROM audit")) == 3
    done = nights.run("prune", "--older-than", "400d")
    assert "pruned 2 audit entries of the dashboard" in done.stdout.splitlines()
    assert nights.query("SELECT at, address FROM audit") == [(now, "127.0.0.1")]
