"""Hostile crontabs and hostile state folders against the import and prune guarantees.

- A command is kept verbatim: whatever its quotes, backslashes, braces, unicode or length,
  the step the import writes runs exactly what cron ran (checked by running both and
  comparing their output), or the line is refused with why.
- prune never removes anything outside the state folder, whatever the records name or
  the folders link to, and never a night that did not succeed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

OVERNIGHT = [sys.executable, "-m", "overnight"]

# What cron runs for each line (after its \% becomes %), as `sh -c` would.
HOSTILE_COMMANDS = {
    "single-quotes": "echo 'it''s' 'a b'",
    "double-quotes": 'echo "say \\"hi\\"" "$((1 + 2))"',
    "backslashes": "printf 'a\\\\b\\tc\\n'",
    "triple-quotes": "echo '\"\"\"' \"'''\"",
    "dollar-and-backticks": "echo $((6 * 7)) `echo sub` ${NOPE:-default}",
    "awk-braces": "echo 1 2 | awk '{print $2}'",
    "escaped-percent": "date -d 2026-01-02 +\\%Y\\%m\\%d",
    "unicode": "echo héllo ✓ 日本",
    "pipes-and-lists": "echo a | tr a b; echo c && echo d || echo e",
    "redirections": "echo out 2>&1 >/dev/stdout",
    "tabs-inside": "printf 'x\\ty\\n'",
    "a-hash-inside": "echo '#not a comment' # and a real one",
    "long": "echo " + "x" * 4000,
    "no-name-to-take": "'' 2>/dev/null; : ; echo ok",
    "python-keywords": "echo import from class def lambda None",
    "a-newline-escape": "printf 'one\\ntwo\\n'",
}

REFUSED = {
    "fills-date": ("echo {date}", "which overnight would fill in"),
    "fills-batch-format": ("echo {batch}", "which overnight would fill in"),
    "stdin-percent": ("mail -s hi root%body", "unescaped %"),
}


def run(folder: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "OVERNIGHT_CONFIG"}
    return subprocess.run([*OVERNIGHT, *args], cwd=folder, env=env, capture_output=True, timeout=120,
                          input=stdin)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One crontab of every hostile command, a minute apart, imported and run once."""
    folder = tmp_path_factory.mktemp("hostile")
    lines = [f"{i} 2 * * * {command}" for i, command in enumerate(HOSTILE_COMMANDS.values())]
    lines += [f"{30 + i} 2 * * * {command}" for i, (command, _) in enumerate(REFUSED.values())]
    done = run(folder, "import", "crontab", "-", stdin="\n".join(lines).encode() + b"\n")
    assert done.returncode == 0, done.stderr
    ran = run(folder, "run", "night-0200", "--date", "2026-11-26")
    assert ran.returncode == 0, ran.stdout.decode() + ran.stderr.decode()
    return folder, done.stdout.decode().splitlines()


@pytest.mark.parametrize("case", list(HOSTILE_COMMANDS))
def test_a_hostile_command_runs_exactly_as_cron_ran_it(imported: tuple[Path, list[str]], case: str) -> None:
    folder, _ = imported
    command = HOSTILE_COMMANDS[case]
    as_cron = command.replace("\\%", "%")
    expected = subprocess.run(["/bin/sh", "-c", as_cron], cwd=folder, capture_output=True, timeout=30)
    from overnight.importing.crontab import step_name  # the name the import gave it

    names: set[str] = set()
    for other in HOSTILE_COMMANDS.values():
        name = step_name(other, names)
        if other == command:
            break
    log = folder / ".overnight" / "logs" / "night-0200" / "2026-11-26" / f"{name}.1.log"
    assert log.read_bytes() == expected.stdout + expected.stderr


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_line_overnight_cannot_keep_verbatim_is_refused_with_why(
    imported: tuple[Path, list[str]], case: str,
) -> None:
    _, said = imported
    command, why = REFUSED[case]
    at = next(i for i, line in enumerate(said) if line.endswith(command))
    assert why in said[at + 1]


def test_every_hostile_step_has_a_valid_unique_name(imported: tuple[Path, list[str]]) -> None:
    folder, _ = imported
    from overnight.loader import load_batch

    loaded = load_batch(str(folder / "night-0200.py"), folder)
    assert len(loaded.batch.steps) == len(HOSTILE_COMMANDS)
    assert [s.command for s in loaded.order] == [c.replace("\\%", "%") for c in HOSTILE_COMMANDS.values()]


# -- prune against a hostile state folder ------------------------------------------------


def test_prune_leaves_everything_outside_the_state_folder_whatever_points_there(tmp_path: Path) -> None:
    """Links in every place prune looks (a night's folder, a batch's folder, the scheduler's,
    the dashboard's and the workers' logs) and records naming outside files: none of their
    targets is touched."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "overnight.toml").write_text('[overnight]\nstate_dir = ".overnight"\ntimezone = "UTC"\n\n'
                                            '[batches.b]\nmodule = "b.py"\n')
    (project / "b.py").write_text('from overnight import Batch\nbatch = Batch("b")\n'
                                  'batch.command("s", "echo hi")\n')
    for day in ("2020-01-01", "2020-01-02", "2026-01-01"):
        assert run(project, "run", "b", "--date", day).returncode == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = [outside / f"keep-{i}.log" for i in range(6)]
    for path in precious:
        path.write_text("precious\n")
    logs = project / ".overnight" / "logs"
    (logs / "b" / "2020-01-01" / "link.log").symlink_to(precious[0])
    (logs / "b" / "2019-12-31").symlink_to(outside, target_is_directory=True)  # a night folder that is a link
    (logs / "scheduler" / "b").mkdir(parents=True)
    (logs / "scheduler" / "b" / "2020-01-01-20200101T010000Z.log").symlink_to(precious[1])
    (logs / "web").mkdir()
    (logs / "web" / "20200101-010101-run-1-1.log").symlink_to(precious[2])
    remote = project / ".overnight" / "remote-logs" / "b"
    remote.mkdir(parents=True)
    (remote / "2020-01-01").symlink_to(outside, target_is_directory=True)
    import sqlite3

    conn = sqlite3.connect(project / ".overnight" / "ledger.db")
    with conn:
        conn.execute("UPDATE attempts SET log_path = ? WHERE run_id = (SELECT id FROM runs WHERE date = ?)",
                     (str(precious[3]), "2020-01-02"))
    conn.close()
    pruned = run(project, "prune", "--older-than", "400d")
    assert pruned.returncode == 0, pruned.stderr
    assert all(path.read_text() == "precious\n" for path in precious)
    assert sorted(p.name for p in outside.iterdir()) == sorted(p.name for p in precious)
    assert (logs / "b" / "2026-01-01").exists()  # the last success
