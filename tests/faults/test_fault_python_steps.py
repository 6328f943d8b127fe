"""Python steps cannot lie about their end, and nothing leaks from one attempt to the next.

Each attempt runs in a fresh process forked from the template; its answer is bound to its
own pid and attempt number. Issue 13, defects 1 and 9: a forked child that fell back into
the shared worker's loop answered for the next step, and module state, threads, signal
handlers and other process state carried from one step or attempt to the next.
"""

from __future__ import annotations

import textwrap

import pytest
from clikit import alive

FALLBACKS = {
    # ways for a process the step forks to come back into overnight's code
    "sys-exit": "sys.exit(0)",
    "return": "return",
    "raise": "raise RuntimeError('child')",
    "keyboard-interrupt": "raise KeyboardInterrupt",
}

FORKING_BATCH = """
import os, sys, time
from overnight import Batch

batch = Batch("forks")


@batch.step
def forks(ctx):
    if os.fork() == 0:
        time.sleep(0.3)
        {fallback}


@batch.step
def slow(ctx):
    print("slow: first line", flush=True)
    time.sleep(1.5)
    print("slow: last line", flush=True)


batch.command("after-slow", "test -e started-late || touch after-slow-ran")
"""


@pytest.mark.parametrize("fallback", sorted(FALLBACKS))
def test_a_forked_child_cannot_answer_for_the_next_step(project, fallback: str) -> None:
    """The fork falls back while `slow` runs: `slow` is still recorded only when it ends."""
    project.write_batch("forks", FORKING_BATCH.format(fallback=FALLBACKS[fallback]))
    result = project.run("run", "forks", "--date", "2026-04-01")
    assert result.returncode == 0, result.stderr + result.stdout
    status = project.status("forks", "--date", "2026-04-01")
    slow = next(s for s in status["steps"] if s["name"] == "slow")
    assert slow["state"] == "succeeded"
    assert slow["duration"] >= 1.4, f"slow recorded done after {slow['duration']:.2f}s"
    log = project.run("logs", "forks", "slow", "--date", "2026-04-01").stdout
    assert log.splitlines() == ["slow: first line", "slow: last line"], log


def test_a_forked_child_that_lingers_dies_with_its_step(project) -> None:
    """A fork of a Python step that sleeps on (and never comes back) ends with the step."""
    project.write_batch("lingers", """
        import os, time
        from pathlib import Path
        from overnight import Batch

        batch = Batch("lingers")


        @batch.step
        def forks(ctx):
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                Path("child-survived").touch()
                os._exit(0)
            Path("child.pid").write_text(str(pid))
    """)
    assert project.run("run", "lingers", "--date", "2026-04-02").returncode == 0
    pid = int((project.root / "child.pid").read_text())
    assert not alive(pid), "the step's forked child outlived the step"


LEAKS = {
    # what the first attempt does, and what the retry and the next step check
    "module-state-on-retry": (
        "STATE.append(1)\nraise RuntimeError('first attempt fails half-way')",
        "assert STATE == [], STATE",
    ),
    "thread-writing-on": (
        "threading.Thread(target=chatter, daemon=True).start()\ntime.sleep(0.05)\nraise RuntimeError('x')",
        "time.sleep(0.3)",
    ),
    "sigterm-ignored": (
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nraise RuntimeError('x')",
        "if ctx.step == 'second':\n    time.sleep(30)",
    ),
    "monkeypatched-module": (
        "json.dumps = lambda *a, **k: 'patched'\nraise RuntimeError('x')",
        "assert json.dumps([1]) == '[1]', json.dumps([1])",
    ),
    "umask": (
        "os.umask(0o077)\nraise RuntimeError('x')",
        "assert os.umask(0o022) == UMASK, 'umask changed'",
    ),
    "rlimit": (
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, NOFILE[1]))\nraise RuntimeError('x')",
        "assert resource.getrlimit(resource.RLIMIT_NOFILE) == NOFILE",
    ),
    "environment": (
        "os.environ['LEAKED'] = '1'\nraise RuntimeError('x')",
        "assert 'LEAKED' not in os.environ",
    ),
    "working-folder": (
        "os.chdir('/')\nraise RuntimeError('x')",
        "assert os.getcwd() == HOME, os.getcwd()",
    ),
    "logging-root-handler": (
        "logging.basicConfig(filename=HOME + '/root.log', force=True)\nraise RuntimeError('x')",
        "logging.getLogger('x').warning('from a later attempt')\n"
        "assert 'later' not in open(HOME + '/root.log').read()",
    ),
}

LEAK_BATCH = """
import json, logging, os, resource, signal, sys, threading, time
from overnight import Batch

batch = Batch("leaks")
STATE = []
UMASK = os.umask(0o022); os.umask(UMASK)
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)
HOME = os.getcwd()


def chatter():
    while True:
        print("chatter from the first attempt", flush=True)
        time.sleep(0.01)


def act():
{act}


def check(ctx):
{check}


@batch.step(retries=1)
def first(ctx):
    if ctx.attempt > 1:
        check(ctx)
    else:
        act()


@batch.step(timeout="1s")
def second(ctx):
    check(ctx)
"""


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_nothing_carries_from_one_attempt_or_step_to_the_next(project, leak: str) -> None:
    """The first attempt changes its process and fails; its retry and the next step see
    none of it."""
    act, check = (textwrap.indent(text, "    ") for text in LEAKS[leak])
    project.write_batch("leaks", LEAK_BATCH.format(act=act, check=check))
    result = project.run("run", "leaks", "--date", "2026-04-03", OVERNIGHT_KILL_GRACE="5")
    status = project.status("leaks", "--date", "2026-04-03")
    states = {s["name"]: s for s in status["steps"]}
    assert states["first"]["state"] == "succeeded", (states["first"], result.stdout)
    if leak == "sigterm-ignored":
        # the second step's own 1 s timeout, not 1 s plus the 5 s grace of a deaf process
        assert states["second"]["state"] == "timed_out", states
        assert states["second"]["duration"] < 3.5, f"took {states['second']['duration']:.1f}s"
        return
    assert result.returncode == 0, result.stdout + result.stderr
    if leak == "thread-writing-on":
        for step in ("first", "second"):
            log = project.run("logs", "leaks", step, "--date", "2026-04-03").stdout
            assert "chatter" not in log, f"a thread of the failed attempt wrote into {step}'s log"
