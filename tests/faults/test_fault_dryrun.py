"""`--dry-run` says what the launch then does, whatever state a crash or a failure left.

The defect this class covers: the dry run re-implemented the runner's decisions and drifted
from them (after `kill -9` during a step that is not idempotent it said `run (was running)`;
the launch held the step and exited 1). Now both follow one planner; each case here builds
a real ledger situation (real runners, real kill -9, real failures), asks the dry run, then
makes the real launch with the same options and compares, step by step: what runs, what is
held, what is blocked, what is left, how many run, and the exit code.
"""

from __future__ import annotations

import pytest
from clikit import Project, wait_for

DATE = "2026-11-26"  # a Thursday: `weekend` is skipped by its when=

PREDICTABLE = """
    from overnight import Batch

    batch = Batch("pred")


    def cmd(name, **options):
        # Fails while break-NAME exists; stays running while hold-NAME exists.
        batch.command(name, f"echo {name} >> ran.txt; test ! -e break-{name} && "
                            f"if [ -e hold-{name} ]; then sleep 300; fi", **options)


    cmd("prepare")
    with batch.parallel():
        cmd("pay", idempotent=False)
        cmd("report")
        cmd("mail", idempotent=False)
    cmd("post")
    cmd("tidy", after=[])
    cmd("fragile", after=["tidy"])
    cmd("weekend", after=[], when=lambda d: d.weekday() >= 5)
"""

# (running when the runner is killed, failing in the first launch, the resume's options)
CASES = {
    "kill-during-pay": ({"pay"}, set(), []),
    "kill-during-pay-and-mail": ({"pay", "mail"}, set(), []),
    "kill-during-report": ({"report"}, set(), []),
    "kill-during-pay-and-report": ({"pay", "report"}, set(), []),
    "kill-during-prepare": ({"prepare"}, set(), []),
    "kill-during-post": ({"post"}, set(), []),
    "kill-during-pay-then-rerun-pay": ({"pay"}, set(), ["--rerun", "pay"]),
    "kill-during-pay-then-rerun-tidy": ({"pay"}, set(), ["--rerun", "tidy"]),
    "kill-during-pay-then-rerun-prepare-downstream": ({"pay"}, set(), ["--rerun", "prepare", "--downstream"]),
    "kill-during-pay-then-fresh": ({"pay"}, set(), ["--fresh"]),
    "fragile-failed-then-kill-during-mail": ({"mail"}, {"fragile"}, []),
    "pay-failed-cleanly": (set(), {"pay"}, []),
    "fragile-failed": (set(), {"fragile"}, []),
    "all-succeeded": (set(), set(), []),
}

VERBS = ("run", "skip", "leave", "HOLD", "blocked", "await", "fail", "running")


def first_launch(project: Project, running: set[str], failing: set[str]) -> None:
    """Leave the ledger as a night that crashed with `running` steps in flight and
    `failing` steps failed (or ended by itself, when nothing is left running)."""
    for name in running:
        (project.root / f"hold-{name}").touch()
    for name in failing:
        (project.root / f"break-{name}").touch()
    runner = project.start("run", "pred", "--date", DATE, "--workers", "8")
    if not running:
        runner.communicate(timeout=60)
    else:
        def ready() -> bool:
            if not running <= set(ran_steps(project)):
                return False  # (and the ledger may not exist yet)
            failed = {s for (s,) in project.query("SELECT step FROM attempts WHERE state = 'failed'")}
            return failing <= failed

        try:
            wait_for(ready, what=f"{sorted(running)} running and {sorted(failing)} failed")
        finally:
            runner.kill()
            runner.communicate()
    for path in [*project.root.glob("hold-*"), *project.root.glob("break-*")]:
        path.unlink()


def ran_steps(project: Project) -> list[str]:
    path = project.root / "ran.txt"
    return path.read_text().split() if path.exists() else []


def prediction(stdout: str) -> dict[str, tuple[str, str]]:
    """Per step: the verb, and the state named in brackets ("leave as it is (failed; ...)")."""
    said = {}
    for line in stdout.splitlines():
        words = line.split()
        if line.startswith("  ") and len(words) >= 2 and words[0] != "$" and not line.startswith("  ("):
            verb = words[1]
            assert verb in VERBS, line
            named = line.partition("(")[2].replace(";", " ").replace(")", " ").split()
            said[words[0]] = (verb, named[0] if named else "")
    return said


@pytest.mark.parametrize("case", list(CASES))
def test_the_dry_run_says_what_the_launch_then_does(project: Project, case: str) -> None:
    running, failing, options = CASES[case]
    project.write_batch("pred", PREDICTABLE)
    first_launch(project, running, failing)
    before = dict(project.query("SELECT name, state FROM steps"))

    dry = project.run("run", "pred", "--date", DATE, "--workers", "8", "--dry-run", *options)
    assert dry.returncode == 0, dry.stderr
    said = prediction(dry.stdout)
    assert set(said) == set(before), dry.stdout

    launches = project.query("SELECT count(*) FROM launches")[0][0]
    real = project.run("run", "pred", "--date", DATE, "--workers", "8", *options)
    new_launch = launches + 1
    ran = {s for (s,) in project.query("SELECT step FROM attempts WHERE launch_id = ?", (new_launch,))}
    after = dict(project.query("SELECT name, state FROM steps"))
    where = f"{case}: dry run said\n{dry.stdout}\nthe launch said\n{real.stdout}"

    assert {s for s, (verb, _) in said.items() if verb == "run"} == ran, where
    for step, (verb, named) in said.items():
        expected = {
            "HOLD": "interrupted", "blocked": "blocked", "run": "succeeded",
            "leave": named, "skip": "skipped" if named == "when=" else named,
        }[verb]
        assert after[step] == expected, f"{step}: {where}"
    assert f"{len(ran)} of {len(before)} steps would run" in dry.stdout, where
    assert real.returncode == (1 if "a launch would exit 1" in dry.stdout else 0), where


def test_the_dry_run_beside_a_live_launch_says_it_runs_and_that_a_launch_would_exit_3(
    project: Project,
) -> None:
    project.write_batch("pred", PREDICTABLE)
    (project.root / "hold-pay").touch()
    runner = project.start("run", "pred", "--date", DATE, "--workers", "8")
    try:
        wait_for(lambda: "pay" in ran_steps(project), what="pay running")
        dry = project.run("run", "pred", "--date", DATE, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "a launch would exit 3 until it ends" in dry.stdout, dry.stdout
        assert prediction(dry.stdout)["pay"][0] == "running", dry.stdout
        assert "died without finishing" not in dry.stdout
        assert project.run("run", "pred", "--date", DATE).returncode == 3
        assert project.query("SELECT state FROM steps WHERE name = 'pay'") == [("running",)]
    finally:
        runner.kill()
        runner.communicate()
