"""The pure parts of the dashboard: graph layers, the timeline, the grid's step order."""

from __future__ import annotations

from overnight.ledger import RunRow
from overnight.readmodel.grid import shape_grid
from overnight.readmodel.run import AttemptView, StepView
from overnight.web import svg
from overnight.web.pages import history_context
from overnight.web.site import local_path


def _step(name: str, after: list[str], state: str = "succeeded", attempts: list | None = None) -> StepView:
    return StepView(name, state, "command", name, after, None, None, None, None, attempts or [])


def _attempt(number: int, state: str, started_at: float, ended_at: float | None) -> AttemptView:
    duration = None if ended_at is None else ended_at - started_at
    return AttemptView(number, 1, state, started_at, ended_at, duration, None, None, None, None, None)


def test_a_steps_layer_is_its_longest_path_from_a_root():
    steps = [
        _step("a", []), _step("b", ["a"]), _step("c", ["a"]), _step("d", ["b", "c"]),
        _step("e", ["a", "d"]), _step("lone", []),
    ]
    assert svg.layers(steps) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3, "lone": 0}


def test_the_graph_draws_one_node_per_step_and_one_edge_per_prerequisite():
    steps = [
        _step("a", []), _step("b", ["a"]), _step("c", ["a"], "failed"), _step("d", ["b", "c"], "blocked"),
    ]
    out = svg.dag(steps, lambda s: f"#step-{s}")
    assert out.count('class="node s-') == 4 and out.count('class="edge"') == 4
    assert 'class="node s-failed"' in out and 'class="node s-blocked"' in out


def test_the_timeline_puts_every_attempt_on_one_axis_and_a_running_one_up_to_now():
    steps = [
        _step("a", [], attempts=[
            _attempt(1, "failed", 1000.0, 1010.0), _attempt(2, "succeeded", 1012.0, 1020.0),
        ]),
        _step("b", ["a"], "running", attempts=[_attempt(1, "running", 1020.0, None)]),
    ]
    out = svg.gantt(steps, now=1100.0, log_link=lambda s, n: f"/log/{s}/{n}")
    assert out.count("<rect") == 3
    assert 'href="/log/a/2"' in out and "s-running" in out
    # b runs from t=20 to now (t=100) on a 100-second axis: 80% of its width, from 20%.
    assert '<rect x="20.000%" y="47" width="80.000%"' in out  # the second row


def test_the_timeline_reads_on_the_batchs_clock_with_whole_labels_inside_the_axis():
    """Ticks on the zone's round times (Kolkata is UTC+5:30), no label cut at either end."""
    import re
    from zoneinfo import ZoneInfo

    start = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
    steps = [_step("a", [], attempts=[_attempt(1, "succeeded", start, start + 3 * 3600)])]
    out = svg.gantt(steps, now=start + 3 * 3600, log_link=lambda s, n: "#", zone=ZoneInfo("Asia/Kolkata"))
    labels = re.findall(r'<text x="([\d.]+)%" y="12" class="tick" text-anchor="middle">([^<]+)</text>', out)
    assert [text for _, text in labels] == ["17:30", "18:00", "18:30", "19:00"]  # 19:30: too near the end
    assert all(14 <= float(x) <= 93 for x, _ in labels)
    assert '<text x="0" y="12" class="tick">16:36 IST</text>' in out
    utc = svg.gantt(steps, now=start + 3 * 3600, log_link=lambda s, n: "#", zone=ZoneInfo("UTC"))
    assert ">11:06 UTC</text>" in utc


def test_names_in_svg_are_escaped():
    out = svg.dag([_step("a<b>", [])], lambda s: "#x")
    assert "<b>" not in out and "a&lt;b&gt;" in out


def test_the_grid_lists_the_newest_nights_steps_in_order_then_steps_gone_since():
    runs = [RunRow(2, "n", "2026-11-02", "succeeded", 0, 0), RunRow(1, "n", "2026-11-01", "failed", 0, 0)]
    cells = [
        (1, "old-step", 0, "failed", 1.0, 2.0, None), (1, "b", 1, "blocked", None, None, None),
        (2, "b", 0, "succeeded", 5.0, 8.0, None), (2, "a", 1, "succeeded", 8.0, 9.0, None),
    ]
    ctx = history_context("n", shape_grid(runs, cells, lambda run: run.state))
    assert [b["step"] for b in ctx["bars"]] == ["b", "a", "old-step"]
    b = next(x for x in ctx["bars"] if x["step"] == "b")
    assert b["last"] == 3.0 and b["longest"] == 3.0


def test_after_login_it_only_goes_to_a_path_on_this_site():
    assert local_path("/run/x") == "/run/x"
    for bad in ("//evil.example/", "https://evil.example/", "/\\\\evil.example", None, 3):
        assert local_path(bad) == "/"
