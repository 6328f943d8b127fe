"""The read model's pure parts: what a state reads as, how it looks, what JSON says."""

from __future__ import annotations

import json

import pytest

from overnight import palette
from overnight.readmodel import to_json
from overnight.readmodel.liveness import step_seen
from overnight.readmodel.run import MarkView, ReportView, unsent
from overnight.states import FAILED_STATES, RunState, StepState

EVERY_STATE = sorted({s.value for s in StepState} | {s.value for s in RunState})


@pytest.mark.parametrize("state", EVERY_STATE)
def test_every_state_has_one_look_in_every_medium(state: str) -> None:
    """A state added to states.py without a colour would show unstyled somewhere."""
    look = palette.tone(state)
    assert look is not None and look.background.startswith("#") and look.text.startswith("#")
    assert look.ansi.isdigit()
    assert f".s-{state} " in palette.state_css()


def test_the_legend_shows_every_state_once() -> None:
    assert sorted(palette.LEGEND) == sorted(set(EVERY_STATE) - {"crashed"})


@pytest.mark.parametrize("state", [s.value for s in StepState])
@pytest.mark.parametrize("remote", [False, True])
def test_a_step_reads_as_recorded_unless_its_runner_died(state: str, remote: bool) -> None:
    for run_state in ("running", "succeeded", "failed", "cancelled"):
        assert step_seen(state, run_state, remote) == state
    crashed = step_seen(state, "crashed", remote)
    if state == "running" and not remote:
        assert crashed == "interrupted"  # it died with its runner
    else:
        assert crashed == state  # settled, or still running on its worker


def test_failed_means_it_ran_and_did_not_succeed() -> None:
    assert {s.value for s in FAILED_STATES} == {"failed", "timed_out", "interrupted", "cancelled"}


def test_json_keys_are_the_ones_users_read() -> None:
    mark = MarkView("load", "skip", "blocked", "skipped", "ann", "not tonight", 1.0)
    assert json.loads(to_json([mark])) == [{
        "step": "load", "action": "skip", "from": "blocked", "to": "skipped", "who": "ann",
        "reason": "not tonight", "at": 1.0,
    }]


def test_only_each_channels_latest_report_counts_as_unsent() -> None:
    reports = [
        ReportView("mail", "not_sent", 3, 1.0, "refused", 1),
        ReportView("webhook:x", "not_sent", 1, 2.0, "timeout", 1),
        ReportView("mail", "sent", 1, 3.0, "to it@", None),
    ]
    assert [(r.channel, r.message) for r in unsent(reports)] == [("webhook:x", "timeout")]
