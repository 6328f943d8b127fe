"""`overnight run` end to end: real processes, a real ledger, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from clikit import OVERNIGHT, Project, alive, wait_for

CHAIN_OF_FIVE = """
    from overnight import Batch

    batch = Batch("five")
    for name in ["one", "two", "three", "four", "five"]:
        # three fails while the flag file exists; every step counts its runs in runs.txt
        check = "test ! -e broken && " if name == "three" else ""
        batch.command(name, check + f"echo {name} >> runs.txt")
"""


def runs_of(project: Project) -> list[str]:
    path = project.root / "runs.txt"
    return path.read_text().split() if path.exists() else []


def pids_with(marker: str) -> list[int]:
    """Processes whose environment carries `marker` (set only for one test's steps)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return [p for p in found if alive(p)]


# -- the sample night and the README walk-through ------------------------------------


def test_sample_night_runs_fails_on_purpose_and_resumes_without_repeating(tmp_path: Path) -> None:
    """The README's walk-through: run, break a step, fix it, resume."""
    sample = tmp_path / "sample"
    shutil.copytree(Path(__file__).parents[1] / "examples" / "sample", sample,
                    ignore=shutil.ignore_patterns(".overnight", "out", "break-import"))
    project = Project.__new__(Project)
    project.root = sample

    first = project.run("run", "nightly", "--date", "2026-11-25")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "succeeded" in first.stdout

    (sample / "break-import").touch()
    broken = project.run("run", "nightly", "--date", "2026-11-26")
    assert broken.returncode == 1
    assert "FAILED   import-products" in broken.stdout
    assert "to resume, after a fix: overnight run nightly --date 2026-11-26" in broken.stdout
    exported = (sample / "out" / "pos-2026-11-26.csv").stat().st_mtime_ns

    (sample / "break-import").unlink()
    fixed = project.run("run", "nightly", "--date", "2026-11-26")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    # Launches are counted within the night: the first launch of 2026-11-26 was launch 1.
    assert "skip     export-pos (succeeded in launch 1)" in fixed.stdout
    assert (sample / "out" / "pos-2026-11-26.csv").stat().st_mtime_ns == exported
    states = project.states("nightly", "--date", "2026-11-26")
    assert set(states.values()) == {"succeeded"}


# -- failure, blocking, resume --------------------------------------------------------


def test_failed_step_blocks_what_follows_and_resume_runs_only_the_rest(project: Project) -> None:
    project.write_batch("five", CHAIN_OF_FIVE)
    (project.root / "broken").touch()
    result = project.run("run", "five", "--date", "2026-11-26")
    assert result.returncode == 1
    assert project.states("five") == {
        "one": "succeeded", "two": "succeeded", "three": "failed",
        "four": "blocked", "five": "blocked",
    }
    assert runs_of(project) == ["one", "two"]

    (project.root / "broken").unlink()
    result = project.run("run", "five", "--date", "2026-11-26")
    assert result.returncode == 0, result.stdout
    assert runs_of(project) == ["one", "two", "three", "four", "five"]

    status = project.status("five", "--date", "2026-11-26")
    steps = {s["name"]: s for s in status["steps"]}
    first_launch, second_launch = (la["id"] for la in status["launches"])
    assert steps["one"]["launch_id"] == first_launch
    assert steps["three"]["launch_id"] == second_launch
    assert [a["state"] for a in steps["three"]["attempts"]] == ["failed", "succeeded"]
    assert [a["launch_id"] for a in steps["three"]["attempts"]] == [first_launch, second_launch]
    assert len(steps["one"]["attempts"]) == 1
    assert status["state"] == "succeeded"


def test_independent_steps_go_on_after_a_failure_unless_fail_fast(project: Project) -> None:
    project.write_batch("wide", """
        from overnight import Batch
        batch = Batch("wide")
        batch.command("bad", "exit 4", after=[])
        batch.command("after-bad", "true")
        batch.command("other", "echo other >> runs.txt", after=[])
    """)
    result = project.run("run", "wide", "--date", "2026-11-26")
    assert result.returncode == 1
    assert project.states("wide") == {"bad": "failed", "after-bad": "blocked", "other": "succeeded"}

    result = project.run("run", "wide", "--date", "2026-11-27", "--fail-fast")
    assert result.returncode == 1
    assert project.states("wide", "--date", "2026-11-27")["other"] == "pending"


def test_retries_make_more_attempts_and_the_last_one_counts(project: Project) -> None:
    project.write_batch("flaky", """
        from overnight import Batch
        batch = Batch("flaky")
        # fails on its first two attempts, succeeds on the third
        batch.command("flaky", 'echo try >> tries.txt; test "$OVERNIGHT_ATTEMPT" -ge 3',
                      retries=2, retry_delay="0.1s")
    """)
    result = project.run("run", "flaky", "--date", "2026-11-26")
    assert result.returncode == 0, result.stdout
    step = project.status("flaky")["steps"][0]
    assert [a["state"] for a in step["attempts"]] == ["failed", "failed", "succeeded"]
    assert (project.root / "tries.txt").read_text().count("try") == 3


def test_step_environment_working_folder_and_callable_context(project: Project) -> None:
    (project.root / "sub").mkdir()
    project.write_batch("env", """
        from pathlib import Path
        from overnight import Batch
        batch = Batch("env")
        batch.command("show", "echo $OVERNIGHT_BATCH $OVERNIGHT_DATE $OVERNIGHT_STEP "
                              "$OVERNIGHT_ATTEMPT $EXTRA > env.txt", env={"EXTRA": "x1"})
        batch.command("where", "pwd > where.txt", cwd="sub")

        @batch.step
        def context(ctx):
            Path("ctx.txt").write_text(f"{ctx.batch} {ctx.date} {ctx.step} {ctx.attempt}")
            ctx.log.info("hello from %s", ctx.step)
            print("printed line")
    """)
    result = project.run("run", "env", "--date", "2026-11-26")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project.root / "env.txt").read_text().split() == ["env", "2026-11-26", "show", "1", "x1"]
    assert (project.root / "sub" / "where.txt").read_text().strip() == str(project.root / "sub")
    assert (project.root / "ctx.txt").read_text() == "env 2026-11-26 context 1"
    log = project.run("logs", "env", "context")
    assert "hello from context" in log.stdout and "printed line" in log.stdout


def test_when_false_skips_the_step_and_its_dependents_still_run(project: Project) -> None:
    project.write_batch("when", """
        from overnight import Batch
        batch = Batch("when")
        batch.command("weekday-only", "echo no >> runs.txt", when=lambda d: d.weekday() < 5)
        batch.command("after", "echo after >> runs.txt")
    """)
    result = project.run("run", "when", "--date", "2026-11-28")  # a Saturday
    assert result.returncode == 0
    assert project.states("when") == {"weekday-only": "skipped", "after": "succeeded"}
    assert runs_of(project) == ["after"]


def test_failing_callable_fails_with_its_exception_in_the_log(project: Project) -> None:
    project.write_batch("boom", """
        from overnight import Batch
        batch = Batch("boom")

        @batch.step
        def explode(ctx):
            raise RuntimeError("the feed is empty")
    """)
    result = project.run("run", "boom", "--date", "2026-11-26")
    assert result.returncode == 1
    step = project.status("boom")["steps"][0]
    assert step["state"] == "failed"
    assert step["message"] == "RuntimeError: the feed is empty"
    assert "Traceback" in project.run("logs", "boom", "explode").stdout


# -- rerun, fresh, mark -----------------------------------------------------------------


def test_rerun_downstream_runs_that_step_and_its_dependents_only(project: Project) -> None:
    project.write_batch("five", CHAIN_OF_FIVE)
    assert project.run("run", "five", "--date", "2026-11-26").returncode == 0
    (project.root / "runs.txt").unlink()

    result = project.run("run", "five", "--date", "2026-11-26", "--rerun", "four")
    assert result.returncode == 0
    assert runs_of(project) == ["four"]
    (project.root / "runs.txt").unlink()

    result = project.run("run", "five", "--date", "2026-11-26", "--rerun", "three", "--downstream")
    assert result.returncode == 0
    assert runs_of(project) == ["three", "four", "five"]
    (project.root / "runs.txt").unlink()

    result = project.run("run", "five", "--date", "2026-11-26", "--fresh")
    assert result.returncode == 0
    assert runs_of(project) == ["one", "two", "three", "four", "five"]
    (project.root / "runs.txt").unlink()

    assert project.run("run", "five", "--date", "2026-11-26").returncode == 0
    assert runs_of(project) == []


def test_marks_are_recorded_with_who_and_why_and_shown_by_status(project: Project) -> None:
    project.write_batch("five", CHAIN_OF_FIVE)
    (project.root / "broken").touch()
    assert project.run("run", "five", "--date", "2026-11-26").returncode == 1

    result = project.run("mark", "five", "three", "--done", "--date", "2026-11-26",
                         "--reason", "loaded by hand", OVERNIGHT_LAUNCHED_BY="alice")
    assert result.returncode == 0, result.stderr
    assert "three: failed -> succeeded" in result.stdout
    result = project.run("run", "five", "--date", "2026-11-26")
    assert result.returncode == 0
    assert runs_of(project) == ["one", "two", "four", "five"]

    assert project.run("mark", "five", "four", "--skip", "--downstream", "--date", "2026-11-26",
                       OVERNIGHT_LAUNCHED_BY="bob").returncode == 0
    assert project.states("five")["five"] == "skipped"
    assert project.run("mark", "five", "one", "--redo", "--date", "2026-11-26").returncode == 0
    assert project.states("five")["one"] == "pending"

    status = project.status("five", "--date", "2026-11-26")
    marks = [(m["step"], m["action"], m["who"], m["reason"]) for m in status["marks"]]
    assert ("three", "done", "alice", "loaded by hand") in marks
    assert ("four", "skip", "bob", None) in marks and ("five", "skip", "bob", None) in marks
    text = project.run("status", "five", "--date", "2026-11-26").stdout
    assert "mark: three failed -> succeeded by alice" in text and "loaded by hand" in text


def test_dry_run_says_what_would_run_and_records_nothing(project: Project) -> None:
    project.write_batch("five", CHAIN_OF_FIVE)
    (project.root / "broken").touch()
    project.run("run", "five", "--date", "2026-11-26")
    before = project.query("SELECT count(*) FROM launches")
    result = project.run("run", "five", "--date", "2026-11-26", "--dry-run")
    assert result.returncode == 0
    assert "skip (succeeded in launch 1)" in result.stdout
    assert "3 of 5 steps would run" in result.stdout
    assert project.query("SELECT count(*) FROM launches") == before


# -- parallelism and timeouts ----------------------------------------------------------


def test_eight_independent_sleeps_with_eight_workers_run_side_by_side(project: Project) -> None:
    project.write_batch("fan", """
        from overnight import Batch
        batch = Batch("fan")
        for i in range(8):
            batch.command(f"sleep-{i}", "sleep 1", after=[])
    """)
    result = project.run("run", "fan", "--date", "2026-11-26", "--workers", "8")
    assert result.returncode == 0
    # All eight were running at one moment: every start came before the first end. (How
    # close the night comes to the ideal 1 s is measured by the benchmarks, not asserted
    # here, where a loaded machine would make the figure flap.)
    attempts = [a for s in project.status("fan")["steps"] for a in s["attempts"]]
    assert max(a["started_at"] for a in attempts) < min(a["ended_at"] for a in attempts)
    launch = project.status("fan")["launches"][0]
    assert launch["ended_at"] - launch["started_at"] < 2.0, "no faster than two at a time"


def test_timeout_stops_the_step_and_its_grandchildren(project: Project) -> None:
    marker = f"OVERNIGHT_TEST_MARK=timeout{os.getpid()}"
    project.write_batch("slow", """
        from overnight import Batch
        batch = Batch("slow")
        batch.command("slow", "sh -c 'sleep 100' & sleep 100", timeout="1s")
    """)
    result = project.run("run", "slow", "--date", "2026-11-26",
                         OVERNIGHT_TEST_MARK=marker.split("=")[1])
    assert result.returncode == 1
    step = project.status("slow")["steps"][0]
    assert step["state"] == "timed_out"
    assert pids_with(marker) == []


def test_callable_steps_obey_timeouts_too(project: Project) -> None:
    project.write_batch("slowpy", """
        import time
        from overnight import Batch
        batch = Batch("slowpy")

        @batch.step(timeout="0.5s")
        def forever(ctx):
            time.sleep(100)

        batch.command("after", "true", after=[])
    """)
    result = project.run("run", "slowpy", "--date", "2026-11-26", "--workers", "2")
    assert result.returncode == 1
    assert project.states("slowpy") == {"forever": "timed_out", "after": "succeeded"}


# -- crash safety, cancellation, one live launch --------------------------------------


CRASHABLE = """
    from overnight import Batch
    batch = Batch("crash")
    batch.command("first", "echo first >> runs.txt")
    batch.command("long", "echo long >> runs.txt; sh -c 'sleep 300' & sleep 300; echo never",
                  idempotent={idempotent})
    batch.command("last", "echo last >> runs.txt")
"""


def start_and_wait_for_long(project: Project, marker: str) -> subprocess.Popen[str]:
    runner = project.start("run", "crash", "--date", "2026-11-26", OVERNIGHT_TEST_MARK=marker)
    wait_for(lambda: "long" in runs_of(project) and len(pids_with(marker)) >= 3,
             what="the long step and its child")
    return runner


def test_kill_9_of_the_runner_leaves_no_step_process_and_resume_reruns_the_interrupted_step(
    project: Project,
) -> None:
    marker = f"crash{os.getpid()}"
    project.write_batch("crash", CRASHABLE.format(idempotent=True))
    runner = start_and_wait_for_long(project, marker)
    runner.kill()
    runner.wait()
    wait_for(lambda: not pids_with(marker), timeout=1.0, what="step processes to die")
    # Before any new launch, readers already see the truth: nobody is running it any more.
    status = project.status("crash")
    assert status["state"] == "crashed"
    assert {s["name"]: s["state"] for s in status["steps"]}["long"] == "interrupted"

    # the fixed step finishes quickly on the next launch
    (project.root / "crash.py").write_text(
        (project.root / "crash.py").read_text().replace("& sleep 300; echo never", "")
        .replace("sh -c 'sleep 300'", "true")
    )
    result = project.run("run", "crash", "--date", "2026-11-26")
    assert result.returncode == 0, result.stdout
    assert "died without finishing: marked crashed" in result.stdout
    assert runs_of(project) == ["first", "long", "long", "last"]
    status = project.status("crash")
    assert [la["state"] for la in status["launches"]] == ["crashed", "succeeded"]
    long_step = next(s for s in status["steps"] if s["name"] == "long")
    assert [a["state"] for a in long_step["attempts"]] == ["interrupted", "succeeded"]


def test_interrupted_step_that_is_not_idempotent_waits_for_an_operator(project: Project) -> None:
    marker = f"held{os.getpid()}"
    project.write_batch("crash", CRASHABLE.format(idempotent=False))
    runner = start_and_wait_for_long(project, marker)
    runner.kill()
    runner.wait()

    result = project.run("run", "crash", "--date", "2026-11-26")
    assert result.returncode == 1
    assert "overnight mark crash long --redo --date 2026-11-26" in result.stdout
    assert runs_of(project) == ["first", "long"]
    assert project.states("crash") == {"first": "succeeded", "long": "interrupted", "last": "blocked"}

    (project.root / "crash.py").write_text(
        (project.root / "crash.py").read_text().replace("sh -c 'sleep 300' & sleep 300; echo never", "true")
    )
    assert project.run("mark", "crash", "long", "--redo", "--date", "2026-11-26").returncode == 0
    result = project.run("run", "crash", "--date", "2026-11-26")
    assert result.returncode == 0
    assert runs_of(project) == ["first", "long", "long", "last"]


def test_dry_run_after_a_crash_in_a_step_that_is_not_idempotent_says_what_the_launch_does(
    project: Project,
) -> None:
    """The dry run follows the runner's plan: `long` held, `last` not run, exit 1 ahead."""
    marker = f"dryheld{os.getpid()}"
    project.write_batch("crash", CRASHABLE.format(idempotent=False))
    runner = start_and_wait_for_long(project, marker)
    runner.kill()
    runner.wait()

    dry = project.run("run", "crash", "--date", "2026-11-26", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    said = {line.split()[0]: line for line in dry.stdout.splitlines() if line.startswith("  ")}
    assert "HOLD (not idempotent, and interrupted" in said["long"], dry.stdout
    assert "overnight mark crash long --redo --date 2026-11-26" in said["long"]
    assert "blocked (behind long, which is held)" in said["last"], dry.stdout
    assert "skip (succeeded in launch 1)" in said["first"]
    assert "launch 1 for 2026-11-26 died without finishing" in dry.stdout
    assert "0 of 3 steps would run" in dry.stdout
    assert "a launch would exit 1: long held" in dry.stdout
    assert project.query("SELECT state FROM launches") == [("running",)]  # nothing recorded

    real = project.run("run", "crash", "--date", "2026-11-26")
    assert real.returncode == 1
    assert runs_of(project) == ["first", "long"]
    assert project.states("crash") == {"first": "succeeded", "long": "interrupted", "last": "blocked"}


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "overnight cancel"])
def test_cancel_stops_steps_records_cancelled_and_exits_130(project: Project, how: str) -> None:
    marker = f"cancel{os.getpid()}{how.replace(' ', '')}"
    project.write_batch("crash", CRASHABLE.format(idempotent=True))
    runner = start_and_wait_for_long(project, marker)
    if how == "overnight cancel":
        result = project.run("cancel", "crash")
        assert result.returncode == 0, result.stderr
    else:
        runner.send_signal(getattr(signal, how))
    assert runner.wait(timeout=15) == 130
    assert pids_with(marker) == []
    assert project.states("crash") == {"first": "succeeded", "long": "cancelled", "last": "pending"}
    assert project.status("crash")["state"] == "cancelled"


def test_a_second_launch_of_a_live_batch_exits_3_and_names_the_holder(project: Project) -> None:
    marker = f"twice{os.getpid()}"
    project.write_batch("crash", CRASHABLE.format(idempotent=True))
    runner = start_and_wait_for_long(project, marker)
    try:
        second = project.run("run", "crash", "--date", "2026-11-27")
        assert second.returncode == 3
        assert f"already running: pid {runner.pid} on " in second.stderr
        assert "since" in second.stderr
    finally:
        runner.kill()
        runner.wait()


def test_two_launches_started_together_exactly_one_runs(project: Project) -> None:
    slow_chain = CHAIN_OF_FIVE.replace('>> runs.txt"', '>> runs.txt; sleep 0.2"')
    project.write_batch("five", slow_chain)
    env = project.env()
    launches = [
        subprocess.Popen([*OVERNIGHT, "run", "five", "--date", "2026-11-26"], cwd=project.root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    codes = sorted(p.wait(timeout=30) for p in launches)
    assert codes == [0, 3]
    assert runs_of(project) == ["one", "two", "three", "four", "five"]
    assert project.query("SELECT count(*) FROM launches") == [(1,)]


def test_a_stale_holder_does_not_block(project: Project) -> None:
    marker = f"stale{os.getpid()}"
    project.write_batch("crash", CRASHABLE.format(idempotent=True))
    runner = start_and_wait_for_long(project, marker)
    runner.kill()
    runner.wait()
    result = project.run("run", "crash", "--date", "2026-11-27", "--dry-run")
    assert result.returncode == 0
    # a new launch for another date is not blocked by the dead one
    (project.root / "crash.py").write_text(
        (project.root / "crash.py").read_text().replace("sh -c 'sleep 300' & sleep 300; echo never", "true")
    )
    assert project.run("run", "crash", "--date", "2026-11-27").returncode == 0


# -- bad input: exit 2, one line, nothing in the ledger --------------------------------


BAD_MODULES = {
    "cycle": ('batch.command("a", "true", after=["b"])\nbatch.command("b", "true")', "cycle"),
    "unknown-after": ('batch.command("a", "true", after=["ghost"])', "'ghost', which is not a step"),
    "duplicate": ('batch.command("a", "true")\nbatch.command("a", "true")', "step 'a': duplicate"),
    "bad-name": ('batch.command("Not OK", "true")', "'Not OK' is not valid"),
    "syntax-error": ('batch.command("a", "true"', "syntax error"),
    "import-error": ('import no_such_module_here', "ModuleNotFoundError"),
    "bad-timeout": ('batch.command("a", "true", timeout="soon")', "step 'a': timeout: 'soon'"),
}


@pytest.mark.parametrize("case", list(BAD_MODULES))
def test_broken_batch_modules_exit_2_with_one_line_naming_file_and_step(project: Project, case: str) -> None:
    body, expected = BAD_MODULES[case]
    project.write_batch("bad", "from overnight import Batch\nbatch = Batch('bad')\n" + body + "\n")
    result = project.run("run", "bad")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bad.py" in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not project.ledger_path.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "five", "--date", "2026-02-30"], "--date 2026-02-30: not a valid date"),
        (["run", "nosuchbatch"], "unknown batch 'nosuchbatch'"),
        (["run", "five", "--rerun", "ghost"], "--rerun ghost: batch 'five' has no step"),
        (["run", "five", "stray"], "unexpected argument 'stray'"),
    ],
    ids=["impossible-date", "unknown-batch", "unknown-rerun-step", "stray-argument"],
)
def test_bad_command_lines_exit_2_and_touch_nothing(project: Project, args: list[str], expected: str) -> None:
    project.write_batch("five", CHAIN_OF_FIVE)
    result = project.run(*args)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not project.ledger_path.exists()


def test_bad_config_exits_2_naming_the_file_and_key(project: Project) -> None:
    project.write_config('[batches.x]\nmodule = "x.py"\nshedule = "0 1 * * *"\n')
    result = project.run("run", "x")
    assert result.returncode == 2
    assert "overnight.toml: [batches.x]: unknown key 'shedule'" in result.stderr


def test_without_a_config_a_batch_path_runs_with_state_under_dot_overnight(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "solo.py").write_text(
        "from overnight import Batch\nbatch = Batch('solo')\nbatch.command('here', 'pwd > here.txt')\n"
    )
    result = subprocess.run([*OVERNIGHT, "run", "jobs/solo.py", "--date", "2026-11-26"], cwd=tmp_path,
                            capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                 if k != "OVERNIGHT_CONFIG"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".overnight" / "ledger.db").exists()
    assert (folder / "here.txt").read_text().strip() == str(folder)
    status = subprocess.run([*OVERNIGHT, "status", "solo", "--json"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert '"state": "succeeded"' in status.stdout


def test_module_named_by_dotted_path(project: Project) -> None:
    (project.root / "jobs").mkdir()
    (project.root / "jobs" / "__init__.py").write_text("")
    (project.root / "jobs" / "nightly.py").write_text(
        "from overnight import Batch\nbatch = Batch('dotted')\nbatch.command('a', 'true')\n"
    )
    project.batches["dotted"] = "jobs.nightly"
    project.write_config()
    assert project.run("run", "dotted", "--date", "2026-11-26").returncode == 0


def test_plain_output_when_not_a_terminal_names_every_step(project: Project) -> None:
    project.write_batch("five", CHAIN_OF_FIVE)
    out = project.run("run", "five", "--date", "2026-11-26").stdout
    for name in ["one", "two", "three", "four", "five"]:
        assert f"ok       {name}" in out
    assert "\x1b[" not in out


def test_history_lists_runs_newest_first_with_their_launches(project: Project) -> None:
    project.write_batch("five", CHAIN_OF_FIVE)
    for day in ("2026-11-24", "2026-11-25"):
        assert project.run("run", "five", "--date", day).returncode == 0
    out = project.run("history", "five").stdout
    assert out.index("2026-11-25") < out.index("2026-11-24")
    data = project.run("history", "five", "--json").stdout
    assert '"launched_by"' in data


def test_kill_9_during_a_callable_step_leaves_none_of_its_processes(project: Project) -> None:
    marker = f"callable{os.getpid()}"
    project.write_batch("pycrash", """
        import subprocess
        from pathlib import Path
        from overnight import Batch
        batch = Batch("pycrash")

        @batch.step
        def long_python(ctx):
            Path("started").write_text("yes")
            subprocess.run(["sh", "-c", "sleep 300 & sleep 300"])
    """)
    runner = project.start("run", "pycrash", "--date", "2026-11-26", OVERNIGHT_TEST_MARK=marker)
    wait_for(lambda: (project.root / "started").exists() and len(pids_with(marker)) >= 3,
             what="the callable and its children")
    runner.kill()
    runner.wait()
    wait_for(lambda: not pids_with(marker), timeout=1.0, what="the callable's processes to die")


def test_a_command_that_cannot_start_fails_with_the_reason(project: Project) -> None:
    project.write_batch("missing", """
        from overnight import Batch
        batch = Batch("missing")
        batch.command("ghost", ["/no/such/program", "x"])
        batch.command("nowhere", "true", cwd="no-such-folder", after=[])
    """)
    result = project.run("run", "missing", "--date", "2026-11-26")
    assert result.returncode == 1
    steps = {s["name"]: s for s in project.status("missing")["steps"]}
    assert steps["ghost"]["state"] == "failed"
    assert steps["ghost"]["message"] == "command not found: /no/such/program"
    assert "no-such-folder" in steps["nowhere"]["message"]


def test_a_reader_that_goes_away_does_not_stop_the_night(project: Project) -> None:
    """`overnight run all | head -3`, or a cron pipe closed early: the night goes on."""
    project.write_batch("five", CHAIN_OF_FIVE.replace('>> runs.txt"', '>> runs.txt; sleep 0.1"'))
    runner = project.start("run", "five", "--date", "2026-11-26")
    assert runner.stdout is not None
    runner.stdout.readline()
    runner.stdout.close()  # the reader is gone; every later line hits a broken pipe
    assert runner.wait(timeout=30) == 0
    assert "Traceback" not in runner.stderr.read()
    assert project.states("five") == dict.fromkeys(["one", "two", "three", "four", "five"], "succeeded")
