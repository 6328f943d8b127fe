"""The runner's helper processes killed or paused: the sentinel and the template.

Issue 13, defect 2: after `kill -9` of the sentinel and then of the runner, the step's
process lived on under PID 1 and the resume started a second copy beside it. Now the
runner watches its sentinel and starts another; the next launch empties what a dead launch
left before it runs anything; the template of Python steps can die or pause without losing
a step or leaving one behind.

The sentinel's cases run under both nets (what is left behind is the net's to empty); the
template's under the net in force here, and under both with OVERNIGHT_SOAK=1 (the template
does the same under either).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from faultkit import (
    MARKER_VARIABLE,
    SOAK,
    alive,
    cgroup_net_available,
    children_named,
    helper,
    orphans_after,
    wait_for,
)

NETS = ["cgroup", "process-group"]
TEMPLATE_NETS = NETS if SOAK else ["cgroup" if cgroup_net_available() else "process-group"]

# `cmd` and `py` run side by side for a while; each says when it starts and ends, and
# leaves a grandchild in its group. The witness file tells whether two copies overlapped.
LONG_BATCH = """
import os, subprocess, time
from overnight import Batch

batch = Batch("long")


def alive(pid):
    try:
        return open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


batch.command(
    "cmd",
    "old=$(cat cmd.pid 2>/dev/null); "
    "if [ -n \\"$old\\" ] && [ -e /proc/$old ] && [ \\"$(awk '{{print $3}}' /proc/$old/stat)\\" != Z ]; "
    "then echo 'cmd overlap' >> witness; fi; "
    "echo $$ > cmd.pid; (sleep 60 &); sleep {secs}",
    after=[],
)


@batch.step(after=[])
def py(ctx):
    if os.path.exists("py.pid") and alive(int(open("py.pid").read())):
        open("witness", "a").write("py overlap\\n")
    open("py.pid", "w").write(str(os.getpid()))
    subprocess.Popen(["sleep", "60"])
    time.sleep({secs})
"""


def net_env(net: str) -> dict[str, str]:
    if net == "cgroup" and not cgroup_net_available():
        pytest.skip("cgroup v2 is not writable here")
    return {"OVERNIGHT_KILL_NET": "process-group"} if net == "process-group" else {}


def start_long(project, net: str, secs: float, marker: str):  # noqa: ANN001, ANN201
    project.write_batch("long", LONG_BATCH.format(secs=secs))
    env = {**net_env(net), MARKER_VARIABLE: marker}
    process = project.start("run", "long", "--workers", "2", "--date", "2026-06-01", **env)
    wait_for(lambda: (project.root / "cmd.pid").exists() and (project.root / "py.pid").exists(), timeout=20)
    return process, env


def overlaps(project) -> list[str]:  # noqa: ANN001
    """Steps that started while an earlier copy of them was still alive."""
    witness = project.root / "witness"
    return witness.read_text().splitlines() if witness.exists() else []


@pytest.mark.parametrize("net", NETS)
def test_the_sentinel_killed_then_the_runner_leaves_nothing_and_no_second_copy(project, net: str) -> None:
    marker = f"helpers-{os.getpid()}-{time.monotonic_ns()}"
    process, env = start_long(project, net, 3, marker)
    first = helper(process, "overnight-sent")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: [p for p in children_named(process.pid, "overnight-sent") if p != first], timeout=5)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert not orphans_after(marker, 2.0), "the launch's processes outlived its runner and sentinel"
    resumed = project.run("run", "long", "-w", "2", "--date", "2026-06-01", **env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not overlaps(project)


@pytest.mark.parametrize("net", NETS)
def test_a_dead_sentinel_is_replaced_at_once(project, net: str) -> None:
    marker = f"helpers-{os.getpid()}-{time.monotonic_ns()}"
    process, env = start_long(project, net, 1.5, marker)
    first = helper(process, "overnight-sent")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: [p for p in children_named(process.pid, "overnight-sent") if p != first], timeout=5)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert "the sentinel died: a new one watches this launch" in out


@pytest.mark.parametrize("net", NETS)
def test_a_paused_sentinel_then_a_dead_runner_the_next_launch_empties_what_it_left(project, net: str) -> None:
    """The sentinel cannot act (SIGSTOP), the runner dies: the step's processes live on,
    until the next launch of the batch, which empties them before it runs anything."""
    marker = f"helpers-{os.getpid()}-{time.monotonic_ns()}"
    process, env = start_long(project, net, 3, marker)
    sentinel = helper(process, "overnight-sent")
    os.kill(sentinel, signal.SIGSTOP)
    try:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        cmd = int((project.root / "cmd.pid").read_text())
        assert alive(cmd), "the test proves nothing: the step died without the sentinel"
        resumed = project.run("run", "long", "-w", "2", "--date", "2026-06-01", **env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "killed" in resumed.stdout and "a dead launch left running" in resumed.stdout, resumed.stdout
        assert not overlaps(project)
        assert not alive(cmd)
    finally:
        os.kill(sentinel, signal.SIGKILL)
    assert not orphans_after(marker, 2.0)


@pytest.mark.parametrize("net", TEMPLATE_NETS)
def test_the_template_killed_while_a_python_step_runs_loses_nothing(project, net: str) -> None:
    marker = f"helpers-{os.getpid()}-{time.monotonic_ns()}"
    project.write_batch("tmpl", """
        import os, time
        from overnight import Batch

        batch = Batch("tmpl")


        @batch.step
        def first(ctx):
            open("first.started", "w").close()
            time.sleep(1.5)


        @batch.step
        def second(ctx):
            open("second.ran", "w").close()
    """)
    env = {**net_env(net), MARKER_VARIABLE: marker}
    process = project.start("run", "tmpl", "--date", "2026-06-02", **env)
    wait_for(lambda: (project.root / "first.started").exists(), timeout=20)
    os.kill(helper(process, "overnight-tmpl"), signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert (project.root / "second.ran").exists()
    assert project.states("tmpl", "--date", "2026-06-02") == {"first": "succeeded", "second": "succeeded"}
    assert not orphans_after(marker, 2.0)


@pytest.mark.parametrize("net", TEMPLATE_NETS)
def test_a_paused_template_loses_no_python_step(project, net: str) -> None:
    """The template paused while Python steps queue up (more than it keeps ready): the ready
    ones run, the others wait for it; after SIGCONT every step has run exactly once."""
    project.write_batch("paused", """
        from overnight import Batch

        batch = Batch("paused")
        batch.command("wait", "touch waiting; sleep 1")


        def make(i):
            def step(ctx):
                with open("ran", "a") as f:
                    f.write(f"{i}\\n")
            return step


        for i in range(12):
            batch.step(make(i), name=f"py-{i}")
    """)
    process = project.start("run", "paused", "--date", "2026-06-03", **net_env(net))
    wait_for(lambda: (project.root / "waiting").exists(), timeout=20)
    template = helper(process, "overnight-tmpl")
    os.kill(template, signal.SIGSTOP)
    time.sleep(2)
    os.kill(template, signal.SIGCONT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert sorted(int(i) for i in (project.root / "ran").read_text().split()) == list(range(12))


@pytest.mark.parametrize("net", TEMPLATE_NETS)
def test_a_paused_template_past_a_timeout_is_replaced_and_the_night_goes_on(project, net: str) -> None:
    """The template and its ready spares paused: no Python attempt can start. The one with
    a timeout is timed out once it is over (and its template found stuck and replaced), the
    other goes to the new template."""
    project.write_batch("stuck", """
        from overnight import Batch

        batch = Batch("stuck")
        batch.command("wait", "touch waiting; sleep 1")


        @batch.step(timeout="1s", after=["wait"])
        def never_started(ctx):
            open("late", "w").close()


        @batch.step(after=["wait"])
        def later(ctx):
            open("later.ran", "w").close()
    """)
    process = project.start("run", "stuck", "--date", "2026-06-04", "--workers", "2", **net_env(net))
    wait_for(lambda: (project.root / "waiting").exists(), timeout=20)
    template = helper(process, "overnight-tmpl")
    os.killpg(template, signal.SIGSTOP)  # the template and the spares it keeps ready
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if alive(template):
            os.killpg(template, signal.SIGKILL)
    assert process.returncode == 1, out + err
    states = project.states("stuck", "--date", "2026-06-04")
    assert states["never-started"] == "timed_out", states
    assert states["later"] == "succeeded", states
    assert not (project.root / "late").exists()
