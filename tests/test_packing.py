"""The runner's fast paths keep their promises: what the speed work changed, checked by
behaviour (steps ending together, log files made ahead, the sentinel's shared table)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from clikit import alive, wait_for


def test_steps_that_end_together_are_each_recorded_and_release_their_dependents(project):
    project.write_batch("wave", """
        from overnight import Batch
        batch = Batch("wave")
        with batch.parallel():
            for i in range(6):
                batch.command(f"p{i}", "true")
        batch.command("bad", "exit 3", after=[])
        batch.command("after-bad", "true", after=["bad"])
        batch.command("last", "true", after=[f"p{i}" for i in range(6)])
    """)
    result = project.run("run", "wave", "--workers", "8", "--date", "2026-01-05")
    assert result.returncode == 1, result.stdout + result.stderr
    states = project.states("wave", "--date", "2026-01-05")
    assert {states[f"p{i}"] for i in range(6)} == {"succeeded"}
    assert states["bad"] == "failed"
    assert states["after-bad"] == "blocked"
    assert states["last"] == "succeeded"
    # Every attempt that ran has its end recorded: none is left "running".
    assert project.query("SELECT count(*) FROM attempts WHERE state = 'running'") == [(0,)]
    assert project.query("SELECT count(*) FROM attempts")[0][0] == 8


def test_a_log_file_made_ahead_holds_the_output_and_unused_ones_are_removed(project):
    project.write_batch("logs", """
        from overnight import Batch
        batch = Batch("logs")
        batch.command("first", "echo one")
        batch.command("second", "echo two; exit 1")
        batch.command("third", "echo three")
    """)
    result = project.run("run", "logs", "--date", "2026-01-06")
    assert result.returncode == 1
    folder = project.state_dir / "logs" / "logs" / "2026-01-06"
    assert (folder / "first.1.log").read_text() == "one\n"
    assert (folder / "second.1.log").read_text() == "two\n"
    # `third` never ran (blocked): no empty log file pretends it did.
    assert sorted(p.name for p in folder.iterdir()) == ["first.1.log", "second.1.log"]
    logs = project.run("logs", "logs", "second", "--date", "2026-01-06")
    assert logs.stdout == "two\n"


def test_a_retried_step_writes_each_attempt_to_its_own_log(project, tmp_path: Path):
    flag = tmp_path / "flag"
    project.write_batch("retry", f"""
        from overnight import Batch
        batch = Batch("retry")
        batch.command("flaky", "if [ -e {flag} ]; then echo fine; else touch {flag}; echo bad; exit 1; fi",
                      retries=1)
        batch.command("next", "echo next")
    """)
    result = project.run("run", "retry", "--date", "2026-01-07")
    assert result.returncode == 0, result.stdout + result.stderr
    folder = project.state_dir / "logs" / "retry" / "2026-01-07"
    assert (folder / "flaky.1.log").read_text() == "bad\n"
    assert (folder / "flaky.2.log").read_text() == "fine\n"
    assert (folder / "next.1.log").read_text() == "next\n"


def test_when_the_runner_is_killed_its_steps_and_their_children_die_with_it(project, tmp_path: Path):
    # The steps drop the launch's token, so only the process groups the runner handed to
    # the sentinel can find them.
    pids = tmp_path / "pids"
    project.write_batch("doomed", f"""
        from overnight import Batch
        batch = Batch("doomed")
        with batch.parallel():
            for i in range(3):
                batch.command(f"s{{i}}", ["env", "-u", "OVERNIGHT_LAUNCH_TOKEN", "sh", "-c",
                              "sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"])
    """)
    runner = project.start("run", "doomed", "--workers", "3", "--date", "2026-01-08")
    try:
        assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 6), "steps did not start"
        started = [int(p) for p in pids.read_text().split()]
        assert all(alive(p) for p in started)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        assert wait_for(lambda: not any(alive(p) for p in started)), "step processes outlived the runner"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        for pid in (int(p) for p in pids.read_text().split()) if pids.exists() else ():
            if alive(pid):  # the test failed: leave nothing behind
                os.kill(pid, signal.SIGKILL)
    # The next launch finds the dead one and runs the interrupted steps again.
    pids.unlink()
    project.write_batch("doomed", """
        from overnight import Batch
        batch = Batch("doomed")
        with batch.parallel():
            for i in range(3):
                batch.command(f"s{i}", "true")
    """)
    again = project.run("run", "doomed", "--date", "2026-01-08")
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(project.states("doomed", "--date", "2026-01-08").values()) == {"succeeded"}


def test_a_bare_program_name_runs_from_the_steps_own_path(project, tmp_path: Path):
    mine = tmp_path / "mybin"
    mine.mkdir()
    tool = mine / "hello"
    tool.write_text("#!/bin/sh\necho \"mine: $0 $1\"\n")
    tool.chmod(0o755)
    project.write_batch("paths", f"""
        import os
        from overnight import Batch
        batch = Batch("paths")
        batch.command("first", ["hello", "a"], env={{"PATH": "{mine}:" + os.environ["PATH"]}})
        batch.command("missing", ["no-such-program-here"])
    """)
    result = project.run("run", "paths", "--date", "2026-01-09")
    assert result.returncode == 1
    folder = project.state_dir / "logs" / "paths" / "2026-01-09"
    assert (folder / "first.1.log").read_text() == f"mine: {tool} a\n"
    status = project.status("paths", "--date", "2026-01-09")
    missing = next(s for s in status["steps"] if s["name"] == "missing")
    assert missing["state"] == "failed"
    assert "no-such-program-here" in (missing["message"] or "")


def test_callables_in_one_worker_each_see_their_own_environment_and_log(project, tmp_path: Path):
    seen = tmp_path / "seen"
    project.write_batch("envs", f"""
        import os
        from overnight import Batch
        batch = Batch("envs")

        def look(ctx):
            ctx.log.info("hello from %s", ctx.step)
            with open({str(seen)!r}, "a") as f:
                f.write(f"{{ctx.step}} {{os.environ['OVERNIGHT_STEP']}} "
                        f"{{os.environ.get('ONLY_FIRST', '-')}} {{os.environ['OVERNIGHT_ATTEMPT']}}\\n")

        batch.step(look, name="first", env={{"ONLY_FIRST": "yes"}})
        batch.step(look, name="second")
        batch.step(look, name="third", env={{"ONLY_FIRST": "again"}})
    """)
    result = project.run("run", "envs", "--date", "2026-01-10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert seen.read_text().splitlines() == ["first first yes 1", "second second - 1", "third third again 1"]
    folder = project.state_dir / "logs" / "envs" / "2026-01-10"
    assert "INFO hello from second" in (folder / "second.1.log").read_text()
