"""`--rerun STEP... [--downstream]` says what runs again before it runs, warns of steps that
are not idempotent, and lets a person at a terminal say no."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest
from clikit import OVERNIGHT, Project

from overnight.batch import Batch
from overnight.readmodel.run import StepView
from overnight.rerun import rerun_listing

DAY = "2026-11-26"

NIGHT = """
    from overnight import Batch
    batch = Batch("night")
    batch.command("export", "echo export >> runs.txt")
    batch.command("load", "echo load >> runs.txt", idempotent=False)
    with batch.parallel():
        batch.command("report-a", "echo report-a >> runs.txt")
        batch.command("report-b", "echo report-b >> runs.txt")
    batch.command("publish", "echo publish >> runs.txt")
"""


def night() -> Batch:
    """NIGHT's batch, declared here as the loader would (nothing runs)."""
    namespace: dict = {}
    exec(textwrap.dedent(NIGHT), namespace)
    return namespace["batch"]


def test_the_listing_names_every_step_in_declaration_order_and_the_ones_not_idempotent() -> None:
    steps = list(night().steps.values())
    listing = rerun_listing(steps, ["export"], downstream=True)
    assert listing.steps == ["export", "load", "report-a", "report-b", "publish"]
    assert listing.added == ["load", "report-a", "report-b", "publish"]
    assert listing.not_idempotent == ["load"]
    assert listing.summary() == "5 steps to run again: export, load, report-a, report-b, publish"
    assert listing.warning() is not None and listing.warning().startswith("load is not idempotent")
    assert listing.needs_a_yes


def test_a_plain_rerun_of_idempotent_steps_needs_no_confirmation() -> None:
    listing = rerun_listing(list(night().steps.values()), ["report-b", "report-a"], downstream=False)
    assert listing.steps == ["report-a", "report-b"] and listing.warning() is None
    assert not listing.needs_a_yes


def test_the_dashboard_gets_the_same_listing_from_the_ledgers_steps() -> None:
    """The dashboard has no batch module, only the read model: the same answer from it."""
    views = [
        StepView(s.name, "succeeded", "command", "true", list(s.after), None, None, 1.0, None, [],
                 idempotent=s.idempotent)
        for s in night().steps.values()
    ]
    from_ledger = rerun_listing(views, ["load"], downstream=True)
    from_module = rerun_listing(list(night().steps.values()), ["load"], downstream=True)
    assert from_ledger == from_module
    assert from_ledger.steps == ["load", "report-a", "report-b", "publish"]


def runs_of(project: Project) -> list[str]:
    path = project.root / "runs.txt"
    return path.read_text().split() if path.exists() else []


def run_at_a_terminal(project: Project, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`overnight run ...` with its stdin a terminal (a pseudo-terminal), typing `answer`."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen(
            [*OVERNIGHT, *args], cwd=project.root, env=project.env(), stdin=follower,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        os.write(leader, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture
def ran(project: Project) -> Project:
    project.write_batch("night", NIGHT)
    assert project.run("run", "night", "--date", DAY).returncode == 0
    (project.root / "runs.txt").unlink()
    return project


def test_a_terminal_is_asked_and_no_runs_nothing(ran: Project) -> None:
    result = run_at_a_terminal(ran, "n\n", "run", "night", "--date", DAY, "--rerun", "load", "--downstream")
    assert result.returncode == 130, result.stdout + result.stderr
    assert "4 steps to run again: load, report-a, report-b, publish" in result.stdout
    assert "warning: load is not idempotent" in result.stdout
    assert "Run them again? [y/N]" in result.stdout
    assert result.stderr.strip() == "overnight: not confirmed: nothing was run"
    assert runs_of(ran) == []
    assert ran.query("SELECT count(*) FROM launches") == [(1,)]  # not even a launch recorded


def test_a_terminal_that_says_yes_runs_them(ran: Project) -> None:
    result = run_at_a_terminal(ran, "y\n", "run", "night", "--date", DAY, "--rerun", "load", "--downstream")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(runs_of(ran)) == ["load", "publish", "report-a", "report-b"]


def test_yes_skips_the_question_and_without_a_terminal_none_is_asked(ran: Project) -> None:
    asked = run_at_a_terminal(ran, "", "run", "night", "--date", DAY, "--rerun", "load", "--yes")
    assert asked.returncode == 0 and "Run them again?" not in asked.stdout
    assert "warning: load is not idempotent" in asked.stdout  # still said
    (ran.root / "runs.txt").unlink()
    # cron, a script, the dashboard: no terminal, no question; the listing is in the output.
    plain = ran.run("run", "night", "--date", DAY, "--rerun", "export", "--downstream")
    assert plain.returncode == 0
    assert plain.stdout.startswith("5 steps to run again: export, load, report-a, report-b, publish\n")
    assert runs_of(ran)[0] == "export" and len(runs_of(ran)) == 5
