"""The rules of a night under faults: what a resume may repeat, and what a `when=` may do.

Issue 13, defect 3: a cancel (SIGTERM, SIGINT, `overnight cancel`) of a step that is not
idempotent, half done, was recorded cancelled and a plain resume ran it again: only a crash
held it. Now any end that is not the step's own exit status holds it.
Defect 4: a `when=` that called sys.exit(0) made the runner exit 0 with nothing printed,
its launch crashed and a finished step's success rolled back. Now any exception or exit of
a `when=` fails that step with one line and the night goes on.
"""

from __future__ import annotations

import os
import signal

import pytest
from faultkit import wait_for

HALF_DONE = """
import os, time
from overnight import Batch

batch = Batch("once")
batch.command("before", "true")


@batch.step(idempotent=False{options})
def transfer(ctx):
    with open("witness", "a") as f:
        f.write("first half\\n")
    open("step.pid", "w").write(str(os.getpid()))
    open("half-done", "w").close()
    {wait}
    with open("witness", "a") as f:
        f.write("second half\\n")


batch.command("after", "true")
"""

ENDS = {
    # how the half-done attempt ends: (step options, what it waits on, how the test ends it)
    "sigterm": ("", "time.sleep(30)", "SIGTERM"),
    "sigint": ("", "time.sleep(30)", "SIGINT"),
    "overnight-cancel": ("", "time.sleep(30)", "cancel"),
    "timeout": (", timeout='2s'", "time.sleep(30)", None),
    "timeout-with-retries": (", timeout='2s', retries=2", "time.sleep(30)", None),
    "killed-from-outside": ("", "time.sleep(30)", "kill-step"),
    "runner-killed": ("", "time.sleep(30)", "SIGKILL"),
}


@pytest.mark.parametrize("end", sorted(ENDS))
def test_a_step_that_is_not_idempotent_is_held_after_any_unclean_end(project, end: str) -> None:
    options, wait, how = ENDS[end]
    project.write_batch("once", HALF_DONE.format(options=options, wait=wait))
    process = project.start("run", "once", "--date", "2026-07-01")
    wait_for(lambda: (project.root / "half-done").exists() or process.poll() is not None, timeout=30)
    if how == "cancel":
        assert project.run("cancel", "once").returncode == 0
    elif how == "kill-step":  # the OOM killer, an operator: a signal overnight did not send
        os.kill(int((project.root / "step.pid").read_text()), signal.SIGKILL)
    elif how is not None:
        process.send_signal(getattr(signal, how))
    process.communicate(timeout=60)
    resumed = project.run("run", "once", "--date", "2026-07-01")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "HELD     transfer" in resumed.stdout, resumed.stdout
    assert (project.root / "witness").read_text() == "first half\n", "the half-done step ran again"
    assert project.states("once", "--date", "2026-07-01")["after"] in ("blocked", "pending")
    # the operator's word runs it again
    assert project.run("mark", "once", "transfer", "--redo", "--date", "2026-07-01").returncode == 0


WHEN_BATCH = """
import os, sys
from overnight import Batch

batch = Batch("gate")
batch.command("first", "touch first-ran")


def predicate(day):
    {body}


batch.command("gated", "touch gated-ran", when=predicate)
batch.command("after-gated", "true")
batch.command("independent", "touch independent-ran", after=["first"])
"""

WHENS = {
    "sys-exit-0": "sys.exit(0)",
    "sys-exit-1": "sys.exit(1)",
    "exit-builtin": "exit()",
    "keyboard-interrupt": "raise KeyboardInterrupt",
    "generator-exit": "raise GeneratorExit",
    "system-exit-with-text": "raise SystemExit('no\\nmore')",
    "value-error": "raise ValueError('bad day')",
    "base-exception": "raise BaseException('odd')",
}


@pytest.mark.parametrize("how", sorted(WHENS))
def test_a_when_that_raises_or_exits_fails_its_step_and_the_night_goes_on(project, how: str) -> None:
    project.write_batch("gate", WHEN_BATCH.format(body=WHENS[how]))
    result = project.run("run", "gate", "--date", "2026-07-02")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    failed = [line for line in result.stdout.splitlines() if "gated" in line and "when=" in line]
    assert len(failed) == 1 and "FAILED" in failed[0], result.stdout
    states = project.states("gate", "--date", "2026-07-02")
    assert states == {
        "first": "succeeded", "gated": "failed", "after-gated": "blocked", "independent": "succeeded",
    }, states
    assert (project.root / "independent-ran").exists() and not (project.root / "gated-ran").exists()
    launches = project.status("gate", "--date", "2026-07-02")["launches"]
    assert [la["state"] for la in launches] == ["failed"]


def test_a_step_killed_from_outside_reads_interrupted(project) -> None:
    """A signal overnight did not send is not the step's own exit status."""
    project.write_batch("oom", """
        from overnight import Batch
        batch = Batch("oom")
        batch.command("victim", "kill -9 $$")
    """)
    assert project.run("run", "oom", "--date", "2026-07-03").returncode == 1
    [step] = project.status("oom", "--date", "2026-07-03")["steps"]
    assert step["state"] == "interrupted" and step["message"] == "killed by SIGKILL (signal 9)", step


ADOPT_BATCH = """
import os, sys
from overnight import Batch

batch = Batch("adopt")
batch.command("first", "touch first-ran")


def asked(day):
    {body}


batch.command("asked", "touch asked-ran", adopt_if=asked, after=["first"])
batch.command("after-asked", "touch after-ran")
"""


@pytest.mark.parametrize("how", sorted(WHENS))
def test_an_adopt_if_that_raises_or_exits_means_run_and_the_night_goes_on(project, how: str) -> None:
    """adopt_if= (issue 17) is asked in the runner like when=: any BaseException it raises,
    sys.exit() too, is no answer, so the step runs; it never ends the night."""
    project.write_batch("adopt", ADOPT_BATCH.format(body=WHENS[how]))
    result = project.run("run", "adopt", "--date", "2026-07-03")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert project.states("adopt", "--date", "2026-07-03") == {
        "first": "succeeded", "asked": "succeeded", "after-asked": "succeeded",
    }
    assert (project.root / "asked-ran").exists() and (project.root / "after-ran").exists()
