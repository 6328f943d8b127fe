"""What a failed step says about itself: the words a person reads at 2am in `status`,
the report and the dashboard, the same for every kind of step."""

from __future__ import annotations

import os
import signal

from clikit import Project, wait_for

DAY = "2026-11-26"


def test_exit_127_names_the_command_that_was_not_found_for_every_kind_of_command(project: Project) -> None:
    """A shell line, a pipeline whose second program is missing and an argv list: each
    says `command not found: NAME` (the program the shell named), not `exit code 127`."""
    project.write_batch("missing", """
        from overnight import Batch
        batch = Batch("missing")
        batch.command("shell-line", "no-such-tool-xyz --date {date}", after=[])
        batch.command("second-in-line", "true && echo hi | also-missing-abc", after=[])
        batch.command("argv", ["no-such-argv-tool", "x"], after=[])
        batch.command("bad-folder", "true", cwd="no-such-folder", after=[])
    """)
    assert project.run("run", "missing", "--date", DAY).returncode == 1
    messages = {s["name"]: s["message"] for s in project.status("missing")["steps"]}
    assert messages["shell-line"] == "command not found: no-such-tool-xyz"
    assert messages["second-in-line"] == "command not found: also-missing-abc"
    assert messages["argv"] == "command not found: no-such-argv-tool"
    # A folder that is not there is not a missing command: the error says what it is.
    assert "no-such-folder" in messages["bad-folder"] and "not found" not in messages["bad-folder"]


def test_a_command_and_a_python_step_killed_by_a_signal_say_it_the_same_way(project: Project) -> None:
    project.write_batch("killed", """
        import os, time
        from pathlib import Path
        from overnight import Batch
        batch = Batch("killed")
        batch.command("command", ["sh", "-c", "echo $$ > command.pid; exec sleep 60"], after=[])

        @batch.step(after=[])
        def python(ctx):
            Path("python.pid").write_text(str(os.getpid()))
            time.sleep(60)
    """)
    runner = project.start("run", "killed", "--date", DAY, "--workers", "2")
    for name in ("command", "python"):
        pid_file = project.root / f"{name}.pid"
        wait_for(lambda f=pid_file: f.exists() and f.read_text().strip(), what=f"the {name} step")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert runner.wait(timeout=60) == 1
    messages = {s["name"]: s["message"] for s in project.status("killed")["steps"]}
    assert messages == {"command": "killed by SIGKILL (signal 9)", "python": "killed by SIGKILL (signal 9)"}
