"""The commands overnight tells people to type work when typed: each hint here is run for real.

A hint names the batch as the command line takes it (its name in overnight.toml, or the
path of its module) and names `--config` when the user did, or when it is read away from
the project folder (a mail, a webhook, a backfill digest).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest
from clikit import OVERNIGHT, Project
from mailkit import text_of

DATE = "2026-11-26"

# `load` fails while the file `broken` exists in the project folder; removing it is the fix.
# (FLAGS: that folder, so the steps find it whichever folder they run in.)
FLAKY = """
    from overnight import Batch

    F = FLAGS
    batch = Batch("flaky")
    batch.command("extract", f"echo extract >> {F}/ran.txt")
    batch.command("load", f"if [ -e {F}/broken ]; then echo bad rows; exit 1; fi; echo load >> {F}/ran.txt")
    batch.command("publish", f"echo publish >> {F}/ran.txt")
"""


def flaky(project: Project) -> str:
    return FLAKY.replace("FLAGS", repr(shlex.quote(str(project.root))))


def hint_after(prefix: str, text: str) -> str:
    found = re.search(rf"{re.escape(prefix)}\s*(.+)", text)
    assert found, f"no {prefix!r} in:\n{text}"
    return found.group(1).strip()


def run_hint(project: Project, hint: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Type `hint` in `cwd`, with none of the environment that made it (no OVERNIGHT_CONFIG)."""
    words = shlex.split(hint)
    assert words[0] == "overnight", hint
    return subprocess.run(
        [*OVERNIGHT, *words[1:]], cwd=cwd, env=project.env(**env), capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )


def fail_then_fix(project: Project, *args: str, cwd: Path | None = None, **env: str) -> str:
    """Run `overnight ARGS` so that it fails at `load`, fix the cause, return the resume hint."""
    (project.root / "broken").touch()
    result = subprocess.run(
        [*OVERNIGHT, *args], cwd=cwd or project.root, env=project.env(**env), capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    (project.root / "broken").unlink()
    return hint_after("to resume, after a fix:", result.stdout)


def assert_resumed(project: Project, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skip     extract (succeeded in launch 1)" in result.stdout
    assert (project.root / "ran.txt").read_text().split() == ["extract", "load", "publish"]


def test_a_batch_named_in_the_config_resumes_by_its_name(project: Project) -> None:
    project.write_batch("flaky", flaky(project))
    hint = fail_then_fix(project, "run", "flaky", "--date", DATE)
    assert hint == f"overnight run flaky --date {DATE}"
    assert_resumed(project, run_hint(project, hint, project.root))


@pytest.mark.parametrize("with_config", [True, False], ids=["beside-a-config", "no-config"])
@pytest.mark.parametrize("folder", ["", "night's $work `x` & more"], ids=["plain", "shell-characters"])
def test_a_batch_run_by_path_resumes_by_its_path(project: Project, with_config: bool, folder: str) -> None:
    """The path is absolute and quoted for a shell, whatever characters it holds."""
    if not with_config:
        (project.root / "overnight.toml").unlink()
    module = project.root / folder / "flaky night.py"
    module.parent.mkdir(exist_ok=True)
    module.write_text(textwrap.dedent(flaky(project)))
    relative = str(module.relative_to(project.root))
    hint = fail_then_fix(project, "run", relative if "/" in relative else f"./{relative}", "--date", DATE)
    assert shlex.split(hint) == ["overnight", "run", str(module), "--date", DATE]
    assert_resumed(project, run_hint(project, hint, project.root))


@pytest.mark.parametrize("how", ["--config", "OVERNIGHT_CONFIG"])
def test_a_config_named_by_the_user_is_named_in_the_hint(project: Project, tmp_path: Path, how: str) -> None:
    project.write_batch("flaky", flaky(project))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = project.root / "overnight.toml"
    if how == "--config":
        hint = fail_then_fix(project, "--config", str(config), "run", "flaky", "--date", DATE, cwd=elsewhere)
    else:
        hint = fail_then_fix(project, "run", "flaky", "--date", DATE, cwd=elsewhere,
                             OVERNIGHT_CONFIG=str(config))
    assert hint == f"overnight --config {config} run flaky --date {DATE}"
    assert_resumed(project, run_hint(project, hint, elsewhere))
    assert not (elsewhere / ".overnight").exists()  # the same ledger, not a new one here


def test_the_report_mails_a_hint_that_works_from_any_folder_for_a_batch_run_by_path(
    project: Project, mailbox, tmp_path: Path  # noqa: F811
) -> None:
    module = project.write_batch("flaky", flaky(project), config=False)
    project.write_config(mailbox.config())
    fail_then_fix(project, "run", "flaky.py", "--date", DATE, "--mail")
    (message,) = mailbox.messages
    hint = hint_after("Fix the cause, then resume (what succeeded is skipped):", text_of(message))
    assert hint == f"overnight --config {project.root / 'overnight.toml'} run {module} --date {DATE}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_resumed(project, run_hint(project, hint, elsewhere))


def test_the_backfill_digest_names_a_command_that_finishes_the_range(
    project: Project, mailbox, tmp_path: Path  # noqa: F811
) -> None:
    module = project.write_batch("flaky", flaky(project), config=False)
    project.write_config(mailbox.config())
    (project.root / "broken").touch()
    result = project.run("backfill", "flaky.py", "--from", "2026-11-01", "--to", "2026-11-02", "--mail")
    assert result.returncode == 1, result.stdout + result.stderr
    (project.root / "broken").unlink()
    hint = hint_after("(dates and steps already done are skipped):", text_of(mailbox.messages[0]))
    config = project.root / "overnight.toml"
    assert hint == f"overnight --config {config} backfill {module} --from 2026-11-01 --to 2026-11-02"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = run_hint(project, hint, elsewhere)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "backfill of flaky, 2 dates: 2 succeeded" in again.stdout
