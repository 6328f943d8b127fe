"""Every bad input gets one line on stderr, exit code 2, and leaves the ledger as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import faultkit
import pytest
from badinput import CASES, GOOD_BATCH, GOOD_CONFIG, Case, markdown, normalise

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
MESSAGES: dict[str, str] = {}   # case id -> normalised message, for the docs table


def overnight(root: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "OVERNIGHT_CONFIG"}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "overnight", *args], cwd=root, env=full, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose ledger already holds a run: the cases must leave it untouched."""
    root = tmp_path_factory.mktemp("good")
    (root / "overnight.toml").write_text(GOOD_CONFIG)
    (root / "good.py").write_text(GOOD_BATCH)
    result = overnight(root, ["run", "good", "--date", "2026-11-01"])
    assert result.returncode == 0, result.stderr
    return root


def run_case(case: Case, template: Path, where: Path) -> tuple[subprocess.CompletedProcess[str], str, str]:
    root = where / "project"
    shutil.copytree(template, root)
    for name, content in case.files.items():
        if isinstance(content, bytes):
            (root / name).write_bytes(content)
        else:
            (root / name).write_text(content)
    ledger = root / ".overnight" / "ledger.db"
    before = faultkit.ledger_dump(ledger)
    result = overnight(root, case.args, case.env)
    return result, before, faultkit.ledger_dump(ledger)


def test_the_corpus_is_big_and_each_case_named_once() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_the_ledger_alone(
    case: Case, template: Path, tmp_path: Path
) -> None:
    result, before, after = run_case(case, template, tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, f"{len(lines)} lines on stderr: {result.stderr[:2000]}"
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr[:500]}"
    assert result.stdout == "", result.stdout[:500]
    assert lines[0].startswith("overnight"), lines[0][:200]
    assert len(lines[0]) <= 400, f"a {len(lines[0])}-character line: {lines[0][:200]}..."
    assert before == after, "the ledger changed"
    MESSAGES[case.id] = normalise(lines[0], str(tmp_path / "project"))


def test_the_docs_table_is_generated_from_the_corpus(template: Path, tmp_path: Path) -> None:
    """docs/bad-input.md is this corpus with its messages; rewrite it with OVERNIGHT_UPDATE_DOCS=1."""
    for case in CASES:
        if case.id not in MESSAGES:  # not run in this session (-k): run it now
            where = tmp_path / case.id
            where.mkdir()
            result, _, _ = run_case(case, template, where)
            MESSAGES[case.id] = normalise(result.stderr.strip(), str(where / "project"))
    text = markdown(MESSAGES)
    if os.environ.get("OVERNIGHT_UPDATE_DOCS"):
        DOCS.parent.mkdir(exist_ok=True)
        DOCS.write_text(text)
    assert DOCS.exists() and DOCS.read_text() == text, (
        f"{DOCS} is out of date: run OVERNIGHT_UPDATE_DOCS=1 pytest {Path(__file__).name}"
    )


def test_overnight_alone_prints_its_help_not_one_crushed_line(tmp_path: Path) -> None:
    """The one exception to one line: no command at all is a request for the help."""
    result = overnight(tmp_path, [])
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: overnight [OPTIONS] COMMAND [ARGS]...\n")
    assert "\n  run " in result.stderr and "Traceback" not in result.stderr
