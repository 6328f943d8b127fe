"""`overnight init` and shell completion: the first five minutes of a new user."""

from __future__ import annotations

import subprocess
from pathlib import Path

from clikit import OVERNIGHT, Project


def overnight(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if k != "OVERNIGHT_CONFIG"} | env
    return subprocess.run([*OVERNIGHT, *args], cwd=folder, env=full, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_init_writes_a_project_that_runs_and_never_overwrites_it(tmp_path: Path) -> None:
    made = overnight(tmp_path, "init")
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nightly.py", "overnight.toml"]
    assert "overnight run nightly --dry-run" in made.stdout
    dry = overnight(tmp_path, "run", "nightly", "--date", "2026-11-27", "--dry-run")
    assert dry.returncode == 0 and "5 of 5 steps would run" in dry.stdout, dry.stdout + dry.stderr
    night = overnight(tmp_path, "run", "nightly", "--date", "2026-11-27")  # a Friday
    assert night.returncode == 0, night.stdout + night.stderr
    weekend = overnight(tmp_path, "run", "nightly", "--date", "2026-11-28")
    assert "skip     report-labor (when= is false for this date)" in weekend.stdout
    # Every line of the config is either a setting or a comment saying what one does.
    config = (tmp_path / "overnight.toml").read_text()
    assert all(line.startswith(("#", "[")) or "#" in line or not line.strip() or "=" in line
               for line in config.splitlines())
    (tmp_path / "nightly.py").write_text("# mine now\n")
    again = overnight(tmp_path, "init")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (tmp_path / "nightly.py").read_text() == "# mine now\n"


def test_the_shell_completes_commands_and_batch_names(project: Project) -> None:
    project.write_batch("nightly", 'from overnight import Batch\nbatch = Batch("nightly")\n'
                                   'batch.command("a", "true")\n')
    project.write_batch("backups", 'from overnight import Batch\nbatch = Batch("backups")\n'
                                   'batch.command("a", "true")\n')
    script = overnight(project.root, _OVERNIGHT_COMPLETE="bash_source")
    assert "complete -o nosort -F _overnight_completion overnight" in script.stdout
    commands = overnight(project.root, COMP_WORDS="overnight st", COMP_CWORD="1",
                         _OVERNIGHT_COMPLETE="bash_complete")
    assert commands.stdout.split() == ["plain,status"]
    batches = overnight(project.root, COMP_WORDS="overnight run ", COMP_CWORD="2",
                        _OVERNIGHT_COMPLETE="bash_complete")
    assert batches.stdout.split() == ["plain,backups", "plain,nightly"]
    status = overnight(project.root, COMP_WORDS="overnight status ni", COMP_CWORD="2",
                       _OVERNIGHT_COMPLETE="bash_complete")
    assert status.stdout.split() == ["plain,nightly"]
