"""The rough edges a new user meets in the first week, each as the user would meet it."""

from __future__ import annotations

import json
import subprocess

import pytest
from clikit import OVERNIGHT, Project, alive, wait_for

DAY = "2026-11-26"

CHAIN = """
    from overnight import Batch
    batch = Batch("five")
    for name in ["one", "two", "three", "four", "five"]:
        check = "test ! -e broken && " if name == "three" else ""
        batch.command(name, check + f"echo {name} >> runs.txt")
"""


def run_in(folder, *args: str, project: Project) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OVERNIGHT, *args], cwd=folder, env=project.env(), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


# -- the configuration is found from a subfolder ---------------------------------------


def test_status_from_a_subfolder_finds_the_config_above_and_says_which(project: Project) -> None:
    project.write_batch("five", CHAIN)
    assert project.run("run", "five", "--date", DAY).returncode == 0
    deep = project.root / "scripts" / "nightly"
    deep.mkdir(parents=True)
    result = run_in(deep, "status", "five", project=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"five for {DAY}: succeeded\n")
    assert result.stderr == f"overnight: using {project.root / 'overnight.toml'}\n"
    # Its steps still run in the project's folder, and no second state folder appears.
    again = run_in(deep, "run", "five", "--date", "2026-11-27", project=project)
    assert again.returncode == 0, again.stderr
    assert (project.root / "runs.txt").read_text().count("one") == 2
    assert not (deep / ".overnight").exists()
    # In the project's own folder it says nothing about which config it uses.
    assert project.run("status", "five").stderr == ""


def test_a_named_config_is_used_as_named_and_not_announced(project: Project, tmp_path) -> None:
    project.write_batch("five", CHAIN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_in(elsewhere, "--config", str(project.root / "overnight.toml"), "run", "five",
                    "--date", DAY, project=project)
    assert result.returncode == 0 and "using" not in result.stderr


# -- status as a gate for scripts ------------------------------------------------------


def test_status_exits_1_when_the_run_it_shows_did_not_succeed(project: Project) -> None:
    project.write_batch("five", CHAIN)
    (project.root / "broken").touch()
    assert project.run("run", "five", "--date", DAY).returncode == 1
    for args in (["status", "five"], ["status", "five", "--json"], ["status"]):
        assert project.run(*args).returncode == 1, args
    (project.root / "broken").unlink()
    assert project.run("run", "five", "--date", DAY).returncode == 0
    for args in (["status", "five"], ["status", "five", "--json"], ["status"]):
        assert project.run(*args).returncode == 0, args
    # An older night that failed is still 1 when asked for by its date.
    (project.root / "broken").touch()
    assert project.run("run", "five", "--date", "2026-11-20").returncode == 1
    assert project.run("status", "five", "--date", "2026-11-20").returncode == 1
    assert project.run("status", "five", "--date", DAY).returncode == 0


def test_status_of_a_crashed_run_exits_1_and_a_live_one_0(project: Project) -> None:
    project.write_batch("slow", """
        from overnight import Batch
        batch = Batch("slow")
        batch.command("wait", "echo $$ > wait.pid; exec sleep 60")
    """)
    runner = project.start("run", "slow", "--date", DAY)
    pid_file = project.root / "wait.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the step to start")
    assert project.run("status", "slow").returncode == 0  # running: not (yet) a failure
    runner.kill()
    runner.wait()
    wait_for(lambda: not alive(int(pid_file.read_text())), what="the step to die with its runner")
    assert project.run("status", "slow").returncode == 1  # crashed


# -- did you mean ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, toml, said",
    [
        (["run", "fiev"], None, "unknown batch 'fiev' (did you mean 'five'?)"),
        (["run", "five", "--rerun", "thre"], None, "has no step of that name (did you mean 'three'?)"),
        (["mark", "five", "fuor", "--done"], None, "has no step 'fuor' (did you mean 'four'?)"),
        (["logs", "five", "tow"], None, "has no step 'tow' (did you mean 'two'?)"),
        (["status"], "[overnight]\nstatedir = '.overnight'\n",
         "unknown key 'statedir' (did you mean 'state_dir'?)"),
        (["status"], "[overnigth]\n", "unknown key 'overnigth' (did you mean 'overnight'?)"),
        (["status"], "[batches.five]\nmodule = 'five.py'\nschedul = '0 1 * * *'\n",
         "unknown key 'schedul' (did you mean 'schedule'?)"),
    ],
    ids=["batch", "rerun-step", "mark-step", "logs-step", "config-key", "config-section", "batch-key"],
)
def test_a_near_miss_is_named_in_the_one_line(project: Project, args: list[str], toml: str | None,
                                              said: str) -> None:
    project.write_batch("five", CHAIN)
    assert project.run("run", "five", "--date", DAY).returncode == 0
    if toml is not None:
        (project.root / "overnight.toml").write_text(toml)
    result = project.run(*args)
    assert result.returncode == 2
    assert said in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


def test_a_near_miss_in_a_batch_module_is_named(project: Project) -> None:
    project.write_batch("typo", """
        from overnight import Batch
        batch = Batch("typo")
        batch.command("extract-sales", "true")
        batch.command("load", "true", after=["extract-sale"], tmeout="1m")
    """)
    said = project.run("run", "typo").stderr
    assert "unknown option tmeout= (did you mean 'timeout'?)" in said
    (project.root / "typo.py").write_text((project.root / "typo.py").read_text().replace(', tmeout="1m"', ""))
    said = project.run("run", "typo").stderr
    assert ("after= names 'extract-sale', which is not a step of batch 'typo' "
            "(did you mean 'extract-sales'?)") in said


def test_nothing_is_suggested_when_nothing_is_close(project: Project) -> None:
    project.write_batch("five", CHAIN)
    assert "did you mean" not in project.run("run", "zzzzzz").stderr


# -- history ---------------------------------------------------------------------------


def test_history_lists_nights_in_the_same_order_with_and_without_a_batch(project: Project) -> None:
    """Newest business date first either way, even when an older night was resumed last."""
    project.write_batch("five", CHAIN)
    for day in ("2026-11-24", "2026-11-25", "2026-11-26"):
        assert project.run("run", "five", "--date", day).returncode == 0
    assert project.run("run", "five", "--date", "2026-11-24", "--rerun", "one").returncode == 0

    def dates(*args: str) -> list[str]:
        return [r["date"] for r in json.loads(project.run("history", *args, "--json").stdout)["runs"]]

    assert dates("five") == dates() == ["2026-11-26", "2026-11-25", "2026-11-24"]


# -- launches counted within the night -------------------------------------------------


def test_launch_numbers_count_within_the_night(project: Project) -> None:
    project.write_batch("five", CHAIN)
    assert project.run("run", "five", "--date", "2026-11-25").returncode == 0
    (project.root / "broken").touch()
    first = project.run("run", "five", "--date", DAY)
    assert f"five for {DAY}: launch 1: 5 of 5 steps to run" in first.stdout
    (project.root / "broken").unlink()
    second = project.run("run", "five", "--date", DAY)
    assert f"five for {DAY}: launch 2: 3 of 5 steps to run" in second.stdout
    assert "skip     one (succeeded in launch 1)" in second.stdout
    text = project.run("status", "five").stdout
    assert "  launch 1: failed" in text and "  launch 2: succeeded" in text
    view = project.status("five")
    assert [la["number"] for la in view["launches"]] == [1, 2]
    assert {s["name"]: s["launch"] for s in view["steps"]} == {"one": 1, "two": 1, "three": 2, "four": 2,
                                                                "five": 2}
    history = project.run("history", "five").stdout
    assert "launch 2  " in history and "launch 1  " in history and "launch 3" not in history


# -- mark on a night that never ran ----------------------------------------------------


def test_mark_on_a_date_that_never_ran_is_refused_and_records_nothing(project: Project) -> None:
    """Part of a night that never ran: its run would have no launch and read as crashed."""
    project.write_batch("five", CHAIN)
    assert project.run("run", "five", "--date", "2026-11-25").returncode == 0
    before = project.query("SELECT * FROM runs")
    result = project.run("mark", "five", "three", "--done", "--date", DAY)
    assert result.returncode == 2
    assert result.stderr == (
        f"overnight: batch 'five' has no run for {DAY} yet: a mark before it runs must settle "
        f"every step (--done or --skip; --downstream from the first); to run it: "
        f"`overnight run five --date {DAY}`\n"
    )
    assert project.query("SELECT * FROM runs") == before
    assert "crashed" not in project.run("status").stdout


def test_a_mark_that_settles_a_night_that_never_ran_makes_a_succeeded_run(project: Project) -> None:
    """A night skipped by hand (before it runs): a proper run, succeeded, no launch; its
    own run then has nothing left to do."""
    project.write_batch("five", CHAIN)
    marked = project.run("mark", "five", "one", "--skip", "--downstream", "--date", DAY,
                         "--reason", "holiday")
    assert marked.returncode == 0, marked.stderr
    status = project.run("status", "five", "--date", DAY, "--json")
    assert status.returncode == 0, status.stderr
    seen = json.loads(status.stdout)
    assert seen["state"] == "succeeded" and seen["launches"] == []
    assert {s["state"] for s in seen["steps"]} == {"skipped"}
    assert "crashed" not in project.run("history", "five").stdout
    again = project.run("run", "five", "--date", DAY)
    assert again.returncode == 0, again.stderr
    assert not (project.root / "runs.txt").exists()


# -- a night that ends on a held step --------------------------------------------------


HELD = """
    from overnight import Batch
    batch = Batch("held")
    batch.command("first", "echo first >> runs.txt")
    batch.command("load", "echo $$ > load.pid; echo load >> runs.txt; exec sleep 300", idempotent=False)
    batch.command("last", "echo last >> runs.txt")
"""


def test_a_night_ending_on_a_held_step_ends_with_the_mark_to_type(project: Project) -> None:
    project.write_batch("held", HELD)
    runner = project.start("run", "held", "--date", DAY)
    pid_file = project.root / "load.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the load step")
    runner.kill()
    runner.wait()
    result = project.run("run", "held", "--date", DAY)
    assert result.returncode == 1
    last = result.stdout.rstrip("\n").splitlines()
    assert last[-1].split(" ", 1)[1] == f"  overnight mark held load --redo --date {DAY}"
    assert "held: load (not idempotent, interrupted by a crash)" in last[-2]
    assert "to resume" not in result.stdout
    report = project.run("report", "held", "--date", DAY).stdout
    what = report.split("What to do:\n")[1]
    assert what.index(f"overnight --config {project.root / 'overnight.toml'} mark held load --redo") < \
        what.index("then resume")
    # Typed as told, the mark says how to go on, and that works.
    module = project.root / "held.py"
    module.write_text(module.read_text().replace("exec sleep 300", "true"))
    marked = project.run("mark", "held", "load", "--redo", "--date", DAY)
    assert marked.stdout.splitlines()[-1] == f"to run it: overnight run held --date {DAY}"
    assert project.run("run", "held", "--date", DAY).returncode == 0
    assert (project.root / "runs.txt").read_text().split() == ["first", "load", "load", "last"]
