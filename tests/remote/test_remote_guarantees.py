"""Remote steps under issue 13: a forked child cannot answer for a remote Python step, the
runner never waits on a broker that does not answer, the worker host shows while the step
runs and after, and worker-side logs are pruned by age."""

from __future__ import annotations

import os
import socket
import time

import pytest
from clikit import wait_for

from overnight.remote.logs import prune_worker_logs
from overnight.statefolder import StateFolder

FALLBACKS = {"sys-exit": "sys.exit(0)", "return": "return", "raise": "raise RuntimeError('child')"}


@pytest.mark.parametrize("fallback", sorted(FALLBACKS))
def test_a_forked_child_cannot_answer_for_a_remote_python_step(remote_project, fallback: str) -> None:
    """Defect 1, remote: the fork came back into the worker's child and wrote a second
    answer; the step failed with `JSONDecodeError: Extra data`."""
    remote_project.write_batch("forks", f"""
        import os, sys, time
        from overnight import Batch

        batch = Batch("forks")


        @batch.step(queue="alpha")
        def forks(ctx):
            if os.fork() == 0:
                time.sleep(0.2)
                {FALLBACKS[fallback]}
            time.sleep(0.6)
    """)
    result = remote_project.run("run", "forks", "--date", "2026-10-01", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    [step] = remote_project.status("forks", "--date", "2026-10-01")["steps"]
    assert step["state"] == "succeeded" and step["duration"] >= 0.5, step


def test_the_worker_host_shows_in_status_while_the_step_runs_and_after(remote_project) -> None:
    host = socket.gethostname()
    remote_project.write_batch("where", """
        from overnight import Batch
        batch = Batch("where")
        batch.command("away", "sleep 2", queue="alpha")
    """)
    process = remote_project.start("run", "where", "--date", "2026-10-02")

    def shown_while_running() -> bool:
        text = remote_project.run("status", "where", "--date", "2026-10-02").stdout
        return "running" in text and f"on {host}" in text

    wait_for(shown_while_running, timeout=60, what="the worker host in status while the step runs")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    after = remote_project.run("status", "where", "--date", "2026-10-02").stdout
    assert f"on {host}" in after, after
    report = remote_project.run("report", "where", "--date", "2026-10-02")
    assert report.returncode == 0, report.stderr
    assert f"on {host}" in report.stdout, report.stdout


def test_a_broker_that_does_not_answer_never_holds_the_runner(project, tmp_path) -> None:
    """A broker host that takes the connection and then says nothing: the local steps go
    on at their own pace while the remote step waits (then fails after its pickup wait)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # never accepts, never answers: the kernel completes the handshakes
    port = silent.getsockname()[1]
    try:
        project.write_config(f'[celery]\nbroker = "redis://127.0.0.1:{port}/0"\npickup_timeout = "3s"\n')
        project.write_batch("stuck", """
            import time
            from overnight import Batch
            batch = Batch("stuck")
            batch.command("away", "true", queue="nowhere", after=[])
            for i in range(6):
                after = [f"tick-{i - 1}"] if i else []
                batch.command(f"tick-{i}", "date +%s.%N >> ticks; sleep 0.2", after=after)
        """)
        started = time.monotonic()
        result = project.run("run", "stuck", "--date", "2026-10-03", "--workers", "2", timeout=120)
        assert result.returncode == 1, result.stdout + result.stderr
        ticks = [float(t) for t in (project.root / "ticks").read_text().split()]
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert len(ticks) == 6 and max(gaps) < 1.2, f"the local chain stalled: gaps {gaps}"
        states = project.states("stuck", "--date", "2026-10-03")
        assert states["away"] == "failed" and all(states[f"tick-{i}"] == "succeeded" for i in range(6))
        assert time.monotonic() - started < 90
    finally:
        silent.close()


def test_worker_logs_older_than_the_keep_are_pruned(tmp_path) -> None:
    state = StateFolder(tmp_path)
    now = time.time()
    old = state.worker_run_logs("night", "2025-01-01").attempt("a", 1, "task")
    new = state.worker_run_logs("night", "2026-10-01").attempt("a", 1, "task")
    for path, age in ((old, 500 * 86400), (new, 3600)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("output\n")
        os.utime(path, (now - age, now - age))
    assert prune_worker_logs(state, keep=400 * 86400, now=now) == 1
    assert not os.path.exists(old) and not os.path.exists(os.path.dirname(old))
    assert os.path.exists(new)
