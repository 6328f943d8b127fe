"""The order among ready steps: priority=, then the critical path weighed by history, then
declaration order. The rules as pure tables; then a real night on its second date."""

from __future__ import annotations

import pytest
from clikit import Project

from overnight.batch import Batch, Step
from overnight.errors import DefinitionError
from overnight.planner import (
    PlanOptions,
    Snapshot,
    dependents_of,
    plan_launch,
    ready_rank,
    remaining_paths,
    usual_durations,
)
from overnight.states import StepState


def reports_and_an_import(**priorities: int) -> list[Step]:
    """The issue's night: four short reports declared first, then a three-step import chain."""
    batch = Batch("night")
    for i in range(1, 5):
        batch.command(f"report-{i}", "true", after=[], priority=priorities.get(f"report-{i}", 0))
    batch.command("import-1", "true", after=[], priority=priorities.get("import-1", 0))
    batch.command("import-2", "true")
    batch.command("import-3", "true")
    return batch.validate()


UNIT = {"report-1": [1.0], "report-2": [1.0], "report-3": [1.0], "report-4": [1.0],
        "import-1": [1.0], "import-2": [1.0], "import-3": [1.0]}


def test_a_path_is_the_step_and_the_longest_chain_after_it() -> None:
    steps = reports_and_an_import()
    paths = remaining_paths(steps, usual_durations(steps, UNIT), dependents_of(steps))
    assert paths["import-1"] == 3.0 and paths["import-2"] == 2.0 and paths["import-3"] == 1.0
    assert paths["report-1"] == 1.0


def test_a_diamond_takes_its_longer_branch() -> None:
    batch = Batch("d")
    batch.command("top", "true")
    batch.command("slow", "true", after=["top"])
    batch.command("quick", "true", after=["top"])
    batch.command("bottom", "true", after=["slow", "quick"])
    steps = batch.validate()
    durations = {"top": 1.0, "slow": 10.0, "quick": 2.0, "bottom": 1.0}
    paths = remaining_paths(steps, durations, dependents_of(steps))
    assert paths == {"bottom": 1.0, "slow": 11.0, "quick": 3.0, "top": 12.0}


def test_steps_this_launch_does_not_run_weigh_nothing_but_pass_the_path_on() -> None:
    steps = reports_and_an_import()
    durations = usual_durations(steps, UNIT)
    paths = remaining_paths(steps, durations, dependents_of(steps), counted={"import-1", "import-3"})
    assert paths["import-1"] == 2.0 and paths["import-2"] == 1.0


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ({"a": [3.0, 1.0, 2.0], "b": [10.0, 30.0]}, {"a": 2.0, "b": 20.0, "new": 11.0}),
        ({}, {"a": 0.0, "b": 0.0, "new": 0.0}),  # a first night: every step alike
        ({"a": [4.0], "b": []}, {"a": 4.0, "b": 4.0, "new": 4.0}),
    ],
)
def test_usual_durations_are_medians_and_a_step_without_history_counts_as_typical(
    history: dict, expected: dict,
) -> None:
    batch = Batch("u")
    for name in ("a", "b", "new"):
        batch.command(name, "true", after=[])
    assert usual_durations(batch.validate(), history) == expected


def test_without_history_ready_steps_start_in_declaration_order() -> None:
    plan = plan_launch(reports_and_an_import(), Snapshot(), PlanOptions())
    assert plan.ready == ["report-1", "report-2", "report-3", "report-4", "import-1"]


def test_with_history_the_start_of_the_longest_chain_goes_first() -> None:
    plan = plan_launch(reports_and_an_import(), Snapshot(history=UNIT), PlanOptions())
    assert plan.ready == ["import-1", "report-1", "report-2", "report-3", "report-4"]


def test_priority_comes_before_the_critical_path_and_may_be_negative() -> None:
    steps = reports_and_an_import(**{"report-4": 5, "import-1": -1})
    plan = plan_launch(steps, Snapshot(history=UNIT), PlanOptions())
    assert plan.ready == ["report-4", "report-1", "report-2", "report-3", "import-1"]


def test_what_is_done_already_does_not_lengthen_a_path() -> None:
    """A resume: import-1 and import-2 are done, so the chain left is one unit like a report."""
    states = {"import-1": StepState.SUCCEEDED, "import-2": StepState.SUCCEEDED}
    steps = reports_and_an_import()
    plan = plan_launch(steps, Snapshot(states=states, history=UNIT), PlanOptions())
    assert plan.paths["import-3"] == 1.0
    assert plan.ready == ["report-1", "report-2", "report-3", "report-4", "import-3"]


def test_the_rank_is_total_and_ties_go_by_declaration() -> None:
    steps = reports_and_an_import()
    rank = ready_rank(steps, {s.name: 1.0 for s in steps})
    assert sorted(rank.values()) == list(range(len(steps)))
    assert [n for n, _ in sorted(rank.items(), key=lambda kv: kv[1])][:5] == [
        "report-1", "report-2", "report-3", "report-4", "import-1"]


@pytest.mark.parametrize("bad", [True, 1.5, "high", 10**7])
def test_a_priority_that_is_not_a_whole_number_in_range_is_refused(bad: object) -> None:
    with pytest.raises(DefinitionError, match="step 'x': priority must be a whole number"):
        Batch("p").command("x", "true", priority=bad)  # type: ignore[arg-type]


# -- a real night, twice -------------------------------------------------------------------

NIGHT = """
    from overnight import Batch

    batch = Batch("pack")
    for i in range(1, 5):
        batch.command(f"report-{i}", "sleep 0.2", after=[])
    batch.command("import-1", "sleep 0.2", after=[])
    batch.command("import-2", "sleep 0.2")
    batch.command("import-3", "sleep 0.2")
"""


def _start_order(project: Project, date: str) -> list[str]:
    rows = project.query(
        "SELECT a.step FROM attempts a JOIN runs r ON r.id = a.run_id WHERE r.date = ? "
        "ORDER BY a.started_at, a.id", (date,),
    )
    return [r[0] for r in rows]


def test_the_second_night_starts_the_import_chain_first_and_the_dry_run_says_so(project: Project) -> None:
    project.write_batch("pack", NIGHT)
    first = project.run("run", "pack", "--workers", "2", "--date", "2026-03-01")
    assert first.returncode == 0, first.stderr
    assert _start_order(project, "2026-03-01")[:2] == ["report-1", "report-2"]

    dry = project.run("run", "pack", "--workers", "2", "--date", "2026-03-02", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = {line.split()[0]: line for line in dry.stdout.splitlines() if line.startswith("  ")}
    assert "[order 1," in lines["import-1"] and "to the end]" in lines["import-1"]
    assert "longest path to the end of the night" in dry.stdout

    second = project.run("run", "pack", "--workers", "2", "--date", "2026-03-02")
    assert second.returncode == 0, second.stderr
    started = _start_order(project, "2026-03-02")
    assert started[0] == "import-1" and started[1].startswith("report-")  # (measured times break ties)
