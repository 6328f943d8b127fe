"""The predicted finish: the runner's own launch played forward from a fixed instant."""

from __future__ import annotations

import pytest

from overnight.batch import Batch, dependents_of
from overnight.forecast import Forecast, predict_finish, usual_durations
from overnight.planner import PlanOptions, Snapshot, plan_launch

NOW = 1_800_000_000.0


def chain(*names: str) -> dict[str, list[str]]:
    return {a: [b] for a, b in zip(names, names[1:], strict=False)}


def predict(
    remaining: list[str], usual: dict[str, float], *, dependents: dict[str, list[str]] | None = None,
    waiting: dict[str, int] | None = None, running: dict[str, float] | None = None,
    rank: dict[str, int] | None = None, workers: int = 1,
) -> Forecast:
    dependents = dependents or {}
    if waiting is None:  # each step waits for every remaining step that names it
        waiting = {n: 0 for n in remaining}
        for name in remaining:
            for dep in dependents.get(name, ()):
                waiting[dep] += 1
    return predict_finish(
        now=NOW, remaining=remaining, waiting=waiting, running=running or {}, usual=usual,
        rank=rank or {n: i for i, n in enumerate(remaining)}, dependents=dependents, workers=workers,
    )


def test_a_chain_ends_after_the_sum_of_its_usual_durations() -> None:
    f = predict(["a", "b", "c"], {"a": 10, "b": 20, "c": 30}, dependents=chain("a", "b", "c"))
    assert f.finish == NOW + 60
    assert f.critical_path == ("a", "b", "c")
    assert not f.partial


def test_side_by_side_steps_share_the_workers() -> None:
    four = ["a", "b", "c", "d"]
    assert predict(four, dict.fromkeys(four, 10.0), workers=1).finish == NOW + 40
    assert predict(four, dict.fromkeys(four, 10.0), workers=2).finish == NOW + 20
    assert predict(four, dict.fromkeys(four, 10.0), workers=8).finish == NOW + 10


@pytest.mark.parametrize(("elapsed", "left"), [(0.0, 10.0), (4.0, 6.0), (10.0, 0.0), (25.0, 0.0)])
def test_a_running_step_counts_its_median_minus_its_elapsed_time_never_below_zero(
    elapsed: float, left: float
) -> None:
    f = predict(["a", "b"], {"a": 10, "b": 5}, dependents=chain("a", "b"), running={"a": elapsed},
                waiting={"b": 1})
    assert f.finish == NOW + left + 5
    assert f.critical_path == ("a", "b")


def test_steps_without_history_count_as_zero_and_make_it_partial() -> None:
    f = predict(["a", "new", "c"], {"a": 10, "c": 30}, dependents=chain("a", "new", "c"))
    assert f.finish == NOW + 40
    assert f.partial and f.unknown == ("new",)


def test_nothing_left_finishes_now() -> None:
    assert predict([], {}) == Forecast(NOW, NOW, (), ())


def test_it_follows_the_order_it_is_given_not_its_own() -> None:
    """Two workers; `a` releases a 100 s step. Started first, the night ends at 110 s;
    started last (its rank says so), at 120 s: the prediction plays the runner's order."""
    steps = ["a", "b", "c", "long"]
    usual = {"a": 10, "b": 10, "c": 10, "long": 100}
    deps = {"a": ["long"]}
    first = predict(steps, usual, dependents=deps, rank={"a": 0, "b": 1, "c": 2, "long": 3}, workers=2)
    last = predict(steps, usual, dependents=deps, rank={"b": 0, "c": 1, "a": 2, "long": 3}, workers=2)
    assert first.finish == NOW + 110 and first.critical_path == ("a", "long")
    assert last.finish == NOW + 120
    assert last.critical_path[1:] == ("a", "long") and last.critical_path[0] in ("b", "c")  # a worker freed


def test_a_step_waiting_for_a_worker_puts_the_step_it_waited_on_in_the_path() -> None:
    f = predict(["x", "y", "z"], {"x": 5, "y": 7, "z": 9}, workers=1)
    assert f.finish == NOW + 21
    assert f.critical_path == ("x", "y", "z")


def test_a_prerequisite_this_launch_does_not_run_holds_nothing_back() -> None:
    """`b` names `a`, which is done: the runner's waiting count for `b` is 0."""
    f = predict(["b"], {"b": 3}, dependents={"a": ["b"]}, waiting={"b": 0})
    assert f.finish == NOW + 3


def test_running_steps_beyond_the_worker_limit_are_still_awaited() -> None:
    """Re-attached remote steps may outnumber the workers: nothing new starts until they end."""
    f = predict(["r1", "r2", "p"], {"r1": 5, "r2": 8, "p": 4}, running={"r1": 0, "r2": 0}, workers=1,
                waiting={"p": 0})
    assert f.finish == NOW + 12  # p waits for r1 and r2 to free a worker (8), then 4 s


def test_usual_is_the_median_of_the_latest_fourteen() -> None:
    history = {"a": [10.0, 12.0, 1000.0], "b": [5.0] * 14 + [500.0] * 10, "c": []}
    assert usual_durations(history) == {"a": 12.0, "b": 5.0}


def test_with_the_planners_rank_the_prediction_is_the_runners_order() -> None:
    """The rank the runner uses comes from planner.plan_launch; given it, the prediction
    starts the ready steps in that order."""
    batch = Batch("night")
    for name in ("one", "two", "three"):
        batch.command(name, "true", after=[])
    steps = list(batch.steps.values())
    plan = plan_launch(steps, Snapshot(), PlanOptions())
    f = predict_finish(
        now=NOW, remaining=[s.name for s in steps], waiting=plan.waiting, running={},
        usual={"one": 1, "two": 2, "three": 3}, rank=plan.rank, dependents=dependents_of(steps), workers=1,
    )
    assert f.finish == NOW + 6
    assert f.critical_path == tuple(sorted(plan.rank, key=plan.rank.__getitem__))


def test_a_wait_step_holds_no_worker_as_in_the_runner() -> None:
    steps = ["wait-for-feed", "a", "b"]
    usual = {"wait-for-feed": 10, "a": 5, "b": 5}
    deps = {"a": ["b"]}
    as_a_worker = predict(steps, usual, dependents=deps, workers=1)
    beside = predict_finish(
        now=NOW, remaining=steps, waiting={"wait-for-feed": 0, "a": 0, "b": 1}, running={}, usual=usual,
        rank={n: i for i, n in enumerate(steps)}, dependents=deps, workers=1, no_worker={"wait-for-feed"},
    )
    assert as_a_worker.finish == NOW + 20
    assert beside.finish == NOW + 10


def test_a_full_pool_makes_its_step_wait_and_lets_the_next_take_the_worker() -> None:
    """pos_db has one unit: a and b cannot run together, c takes the free worker meanwhile."""
    steps = ["a", "b", "c"]
    kwargs = dict(now=NOW, remaining=steps, waiting=dict.fromkeys(steps, 0), running={},
                  usual={"a": 10, "b": 10, "c": 10}, rank={"a": 0, "b": 1, "c": 2}, dependents={}, workers=4)
    free = predict_finish(**kwargs)
    needs = {"a": {"pos_db": 1}, "b": {"pos_db": 1}}
    pooled = predict_finish(**kwargs, needs=needs, capacities={"pos_db": 1})
    assert free.finish == NOW + 10
    assert pooled.finish == NOW + 20 and pooled.critical_path == ("a", "b")
    running_holds_it = predict_finish(**{**kwargs, "waiting": {"b": 0, "c": 0}, "running": {"a": 4.0}},
                                      needs=needs, capacities={"pos_db": 1})
    assert running_holds_it.finish == NOW + 16  # b takes the unit when a ends at 6 s
