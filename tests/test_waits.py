"""Wait steps: a check run every `every` until it succeeds or the timeout comes, with real
processes, a real ledger and real signals."""

from __future__ import annotations

import os
import re
import signal

import pytest
from clikit import Project, wait_for

from overnight.batch import Batch
from overnight.errors import DefinitionError
from overnight.planner import after_check
from overnight.states import StepState
from overnight.waits import WaitSpec

DATE = "2026-04-01"


def _float_lines(project: Project, name: str) -> list[float]:
    path = project.root / name
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def _attempt(project: Project, step: str) -> tuple[float, float, str]:
    [(started, ended, state)] = project.query(
        "SELECT started_at, ended_at, state FROM attempts WHERE step = ? ORDER BY id DESC LIMIT 1", (step,)
    )
    return started, ended, state


def test_a_wait_releases_its_dependent_at_the_first_check_that_succeeds_and_holds_no_worker(
    project: Project,
) -> None:
    """One worker: the independent step runs while the wait waits, and makes the condition
    true; the first check after that ends the wait and its dependent starts at once."""
    project.write_batch("sync", """
        from overnight import Batch

        batch = Batch("sync")
        batch.wait("datasync", check="date +%s.%N >> checks.txt; test -e drained", every="1s",
                   timeout="60s", after=[])
        batch.command("import", "date +%s.%N > import-started", after=["datasync"])
        batch.command("beside", "sleep 2.5; date +%s.%N > drained-at; touch drained", after=[])
    """)
    result = project.run("run", "sync", "--workers", "1", "--date", DATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.states("sync", "--date", DATE) == {
        "datasync": "succeeded", "import": "succeeded", "beside": "succeeded"}
    drained = _float_lines(project, "drained-at")[0]
    checks = _float_lines(project, "checks.txt")
    assert len(checks) >= 2  # it was not ready at first: it checked again, beside ran meanwhile
    wait_started, wait_ended, _ = _attempt(project, "datasync")
    beside_started, beside_ended, _ = _attempt(project, "beside")
    assert wait_started <= beside_started and beside_ended <= wait_ended
    assert len([t for t in checks if t > drained]) == 1  # the first check after it said ready
    import_started = _float_lines(project, "import-started")[0]
    assert 0 <= import_started - checks[-1] < 1.0  # released at once, not a poll later


def test_a_wait_that_runs_out_of_time_is_timed_out_and_blocks_what_follows(project: Project) -> None:
    project.write_batch("late", """
        from overnight import Batch

        batch = Batch("late")
        batch.wait("never", check=["false"], every="0.2s", timeout="1s")
        batch.command("after-it", "true")
        batch.command("beside", "true", after=[])
    """)
    result = project.run("run", "late", "--date", DATE)
    assert result.returncode == 1, result.stdout + result.stderr
    view = project.status("late", "--date", DATE)
    steps = {s["name"]: s for s in view["steps"]}
    assert steps["never"]["state"] == "timed_out"
    assert steps["never"]["message"].startswith("not ready after 1.00s (")
    assert steps["after-it"]["state"] == "blocked" and steps["beside"]["state"] == "succeeded"
    assert len(steps["never"]["attempts"]) == 1  # one attempt: the whole wait


def test_on_timeout_skip_lets_what_follows_run(project: Project) -> None:
    project.write_batch("optional", """
        from overnight import Batch

        batch = Batch("optional")
        batch.wait("maybe", check="exit 1", every="0.2s", timeout="0.7s", on_timeout="skip")
        batch.command("after-it", "true")
    """)
    result = project.run("run", "optional", "--date", DATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.states("optional", "--date", DATE) == {"maybe": "skipped", "after-it": "succeeded"}


def test_each_check_is_a_process_of_its_own_and_its_output_goes_to_the_step_log(project: Project) -> None:
    project.write_batch("probe", """
        import os
        from pathlib import Path
        from overnight import Batch

        batch = Batch("probe")

        def third_time(ctx):
            print("check", os.environ["OVERNIGHT_CHECK"], "in pid", os.getpid())
            with open("check-pids", "a") as f:
                f.write(f"{os.getpid()}\\n")
            return int(os.environ["OVERNIGHT_CHECK"]) >= 3

        batch.wait("third", check=third_time, every="0.1s", timeout="30s", initial_delay="0.1s")
    """)
    result = project.run("run", "probe", "--date", DATE)
    assert result.returncode == 0, result.stdout + result.stderr
    pids = [int(p) for p in (project.root / "check-pids").read_text().split()]
    assert len(pids) == 3 and os.getpid() not in pids
    log = project.run("logs", "probe", "third", "--date", DATE).stdout
    for n in (1, 2, 3):
        assert f"check {n} in pid" in log and "overnight: " in log
    assert log.count("not yet: the check returned False") == 2
    assert "first check in" in log and "ready after 3 checks" in log
    assert "Traceback" not in log  # a plain "not yet" is not an error


def test_a_resume_after_a_crash_goes_back_to_waiting(project: Project) -> None:
    project.write_batch("crashy", """
        from overnight import Batch

        batch = Batch("crashy")
        batch.wait("gate", check="echo $$ >> check-pids; test -e open", every="0.2s", timeout="60s")
        batch.command("after-gate", "true")
    """)
    runner = project.start("run", "crashy", "--date", DATE)
    wait_for(lambda: len(_float_lines(project, "check-pids")) >= 2, what="two checks")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    assert project.states("crashy", "--date", DATE)["gate"] == "interrupted"
    (project.root / "open").touch()
    again = project.run("run", "crashy", "--date", DATE)
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.states("crashy", "--date", DATE) == {"gate": "succeeded", "after-gate": "succeeded"}
    states = [r[0] for r in project.query("SELECT state FROM attempts WHERE step = 'gate' ORDER BY id")]
    assert states == ["interrupted", "succeeded"]


def test_a_cancel_while_waiting_ends_the_wait_cancelled_and_a_resume_waits_again(project: Project) -> None:
    project.write_batch("patient", """
        from overnight import Batch

        batch = Batch("patient")
        batch.wait("gate", check="date >> checks; test -e open", every="0.3s", timeout="60s")
    """)
    runner = project.start("run", "patient", "--date", DATE)
    wait_for(lambda: (project.root / "checks").exists(), what="a first check")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 130
    assert project.states("patient", "--date", DATE) == {"gate": "cancelled"}
    (project.root / "open").touch()
    again = project.run("run", "patient", "--date", DATE)
    assert again.returncode == 0 and project.states("patient", "--date", DATE) == {"gate": "succeeded"}


def test_the_dry_run_says_how_a_wait_waits(project: Project) -> None:
    project.write_batch("dry", """
        from overnight import Batch

        batch = Batch("dry")
        batch.wait("gate", check="rattail datasync wait", every="30s", timeout="2h",
                   initial_delay="1m")
    """)
    out = project.run("run", "dry", "--dry-run", "--date", DATE).stdout
    assert "gate" in out and "wait: check every 30.0s for up to 2h00m, first after 1m00s" in out
    assert "$ rattail datasync wait" in out


# -- the rule and the definition, pure ---------------------------------------------------

FAIL, SKIP = WaitSpec(1, 10), WaitSpec(1, 10, on_timeout="skip")
S, F, T, C = StepState.SUCCEEDED, StepState.FAILED, StepState.TIMED_OUT, StepState.CANCELLED


@pytest.mark.parametrize(
    ("spec", "ended", "out_of_time", "cancelled", "expected"),
    [
        (FAIL, F, False, False, None),          # not yet: check again
        (FAIL, S, False, False, S),
        (FAIL, S, True, False, S),              # a success found late still counts
        (FAIL, T, True, False, T),              # stopped at the deadline
        (FAIL, F, True, False, T),
        (SKIP, F, True, False, StepState.SKIPPED),
        (FAIL, C, False, True, C),
        (FAIL, S, False, True, C),              # a cancel wins
    ],
)
def test_after_check(spec: WaitSpec, ended: StepState, out_of_time: bool, cancelled: bool,
                     expected: StepState | None) -> None:
    assert after_check(spec, ended, out_of_time=out_of_time, cancelled=cancelled) is expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"check": "true", "every": 0}, "every must be more than zero"),
        ({"check": "true", "timeout": "soon"}, "timeout: 'soon' is not a duration"),
        ({"check": "true", "on_timeout": "retry"}, "on_timeout = 'retry' is not one of fail, skip"),
        ({"check": 42}, "check must be a command (a string or a list of strings) or a function"),
        ({"check": "  "}, "check must be a command"),
        ({"check": "true", "retries": 2}, "unknown option retries= (valid: check, every, timeout"),
        ({"check": "true", "initial_delay": -1}, "initial_delay: -1 is not a duration of zero or more"),
    ],
)
def test_a_bad_wait_is_refused_naming_the_step(options: dict, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape("step 'w': " + message)):
        Batch("b").wait("w", **options)
