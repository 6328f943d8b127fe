"""Cleanup steps: run_if = "success" | "always" | "failure". The rule as pure tables, then
real nights where an import fails."""

from __future__ import annotations

import pytest
from clikit import Project

from overnight.batch import Batch, Step
from overnight.errors import DefinitionError
from overnight.planner import (
    RUN_IF,
    Action,
    PlanOptions,
    Snapshot,
    check_run_if,
    dependents_of,
    plan_launch,
    unsuccessful_end,
)
from overnight.states import StepState


def triggers_night(**run_if: str) -> list[Step]:
    """disable -> import -> (reenable, report) -> publish; reenable's run_if is the case's."""
    batch = Batch("n")
    batch.command("disable", "true")
    batch.command("import", "true")
    batch.command("reenable", "true", after=["import"], run_if=run_if.get("reenable", "success"))
    batch.command("report", "true", after=["import"])
    batch.command("publish", "true", after=["report"])
    batch.command("alert", "true", after=["import", "report"], run_if=run_if.get("alert", "success"))
    return batch.validate()


def _end(steps: list[Step], cause: str) -> tuple[list[str], list[str], dict[str, int], set[str]]:
    by_name = {s.name: s for s in steps}
    waiting = {s.name: len(s.after) for s in steps}
    unhappy: set[str] = set()
    blocked, ready = unsuccessful_end(cause, by_name, dependents_of(steps), lambda n: True, waiting, unhappy)
    return blocked, ready, waiting, unhappy


def test_a_failure_blocks_what_needs_its_success_and_releases_an_always_step() -> None:
    blocked, ready, waiting, unhappy = _end(triggers_night(reenable="always"), "import")
    assert sorted(blocked) == ["alert", "publish", "report"]
    assert ready == ["reenable"] and waiting["reenable"] == 0 and "reenable" in unhappy


def test_a_step_after_any_end_waits_for_every_prerequisite_blocked_ones_included() -> None:
    """alert runs after import and report; import fails, which blocks report: both ended."""
    blocked, ready, waiting, unhappy = _end(triggers_night(alert="failure"), "import")
    assert "report" in blocked and "alert" not in blocked
    assert ready == ["alert"] and waiting["alert"] == 0 and "alert" in unhappy


@pytest.mark.parametrize(
    ("run_if", "after_failure", "skipped"),
    [("success", False, False), ("always", False, False), ("always", True, False),
     ("failure", True, False), ("failure", False, True)],
)
def test_check_run_if(run_if: str, after_failure: bool, skipped: bool) -> None:
    step = Batch("b").command("x", "true", run_if=run_if)
    gate = check_run_if(step, after_failure)
    assert (gate is not None and gate.state is StepState.SKIPPED) is skipped


def test_every_run_if_value_has_a_rule() -> None:
    from typing import get_args

    from overnight.batch import RunIf

    assert set(RUN_IF) == set(get_args(RunIf))


def test_behind_a_held_step_an_always_step_is_ready_and_the_rest_blocked() -> None:
    batch = Batch("h")
    batch.command("pay", "true", idempotent=False)
    batch.command("close", "true")
    batch.command("tidy", "true", after=["pay"], run_if="always")
    plan = plan_launch(batch.validate(), Snapshot(states={"pay": StepState.INTERRUPTED}), PlanOptions())
    assert plan.steps["close"].action is Action.BLOCK
    assert plan.ready == ["tidy"] and "tidy" in plan.unhappy


def test_a_failure_left_alone_by_rerun_counts_for_a_failure_step() -> None:
    steps = triggers_night(reenable="failure")
    states = {"disable": StepState.SUCCEEDED, "import": StepState.FAILED}
    plan = plan_launch(steps, Snapshot(states=states), PlanOptions(rerun=["reenable"]))
    assert plan.ready == ["reenable"] and "reenable" in plan.unhappy


def test_run_if_must_be_one_of_three_words() -> None:
    said = "step 'x': run_if = 'sometimes' is not one of success, always, failure"
    with pytest.raises(DefinitionError, match=said):
        Batch("b").command("x", "true", run_if="sometimes")  # type: ignore[arg-type]


# -- real nights -----------------------------------------------------------------------------

NIGHT = """
    from overnight import Batch

    batch = Batch("shop")
    batch.command("disable-triggers", "echo disabled >> trail")
    batch.command("import", "test ! -e broken && echo imported >> trail")
    batch.command("reenable-triggers", "echo reenabled >> trail", after=["import"], run_if="always")
    batch.command("report", "echo report >> trail", after=["import"])
    batch.command("page-oncall", "echo paged >> trail", after=["import"], run_if="failure")
    batch.command("after-page", "echo after-page >> trail", after=["page-oncall"])
"""


def _trail(project: Project) -> list[str]:
    path = project.root / "trail"
    return path.read_text().split() if path.exists() else []


def test_always_runs_after_a_failure_and_the_night_still_fails(project: Project) -> None:
    project.write_batch("shop", NIGHT)
    (project.root / "broken").touch()
    result = project.run("run", "shop", "--date", "2026-05-01")
    assert result.returncode == 1, result.stdout + result.stderr
    assert project.states("shop", "--date", "2026-05-01") == {
        "disable-triggers": "succeeded", "import": "failed", "reenable-triggers": "succeeded",
        "report": "blocked", "page-oncall": "succeeded", "after-page": "succeeded",
    }
    assert _trail(project) == ["disabled", "reenabled", "paged", "after-page"]


def test_on_a_good_night_the_failure_step_is_skipped_and_what_follows_it_runs(project: Project) -> None:
    project.write_batch("shop", NIGHT)
    result = project.run("run", "shop", "--date", "2026-05-02")
    assert result.returncode == 0, result.stdout + result.stderr
    states = project.states("shop", "--date", "2026-05-02")
    assert states["page-oncall"] == "skipped" and states["after-page"] == "succeeded"
    assert "paged" not in _trail(project) and "reenabled" in _trail(project)
    assert "nothing before it failed" in result.stdout


def test_fail_fast_stops_the_night_but_not_its_cleanup(project: Project) -> None:
    project.write_batch("shop", NIGHT.replace('after=["import"], run_if="always"',
                                              'after=["import"], run_if="always", priority=-1'))
    (project.root / "broken").touch()
    result = project.run("run", "shop", "--date", "2026-05-03", "--fail-fast")
    assert result.returncode == 1
    states = project.states("shop", "--date", "2026-05-03")
    assert states["reenable-triggers"] == "succeeded" and states["page-oncall"] == "succeeded"
    assert states["after-page"] == "pending"  # an ordinary step: --fail-fast starts none


def test_a_resume_after_the_fix_runs_the_import_and_skips_the_cleanup_that_ran(project: Project) -> None:
    project.write_batch("shop", NIGHT)
    (project.root / "broken").touch()
    project.run("run", "shop", "--date", "2026-05-04")
    (project.root / "broken").unlink()
    (project.root / "trail").unlink()
    again = project.run("run", "shop", "--date", "2026-05-04")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _trail(project) == ["imported", "report"]
