"""adopt_if= on any step: asked in the step's own folder when its turn comes; an answer that
cannot be had is not a yes; adopted steps let what follows run, and read as adopted."""

from __future__ import annotations

from clikit import Project

DAY = "2026-11-26"

NIGHT = """
    import os
    from pathlib import Path
    from overnight import Batch

    def done_before(day):
        return Path(f"done-{day}").exists()   # relative: asked in the step's folder

    def broken(day):
        raise RuntimeError("no answer")

    batch = Batch("night")
    batch.command("extract", "echo extract >> ../ran.txt", cwd="work", adopt_if=done_before)
    batch.command("load", "echo load >> ran.txt", adopt_if=broken)
    batch.command("weekly", "echo weekly >> ran.txt", adopt_if=lambda day: True, when=lambda day: False)
    batch.command("publish", "echo publish >> ran.txt")
"""


def test_adoption_is_asked_in_the_steps_folder_and_a_failing_question_means_run(project: Project) -> None:
    project.write_batch("night", NIGHT)
    (project.root / "work").mkdir()
    (project.root / "work" / f"done-{DAY}").touch()
    (project.root / f"done-{DAY}").touch()  # in the project's folder: not where extract is asked
    result = project.run("run", "night", "--date", DAY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project.root / "ran.txt").read_text().split() == ["load", "publish"]
    states = project.states("night", "--date", DAY)
    assert states == {"extract": "adopted", "load": "succeeded", "weekly": "skipped", "publish": "succeeded"}
    # Another date: extract's work was not done before; it runs.
    assert project.run("run", "night", "--date", "2026-11-27").returncode == 0
    assert (project.root / "ran.txt").read_text().split() == ["load", "publish", "extract", "load", "publish"]
