"""`overnight backfill`: one ordinary tracked run per date, in order, resumable."""

from __future__ import annotations

import time
from datetime import date

import pytest
from mailkit import text_of

from overnight.backfill import date_range
from overnight.errors import ConfigError
from overnight.lock import holder

DATES = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]

# `load` fails for 2026-11-03 while the flag file exists: "the fix" is removing it.
BATCH = """
    from overnight import Batch

    batch = Batch("bf")
    batch.command("extract", "echo extract {date}")
    batch.command("load", 'if [ "$OVERNIGHT_DATE" = 2026-11-03 ] && [ -e broken ]; then '
                          'echo "bad rows for $OVERNIGHT_DATE"; exit 1; fi; echo loaded')
    batch.command("publish", "echo published {date}")
"""


@pytest.fixture
def bf(project):
    project.write_batch("bf", BATCH)
    (project.root / "broken").touch()
    return project


def launched_dates(project) -> list[str]:
    return [d for (d,) in project.query(
        "SELECT r.date FROM launches l JOIN runs r ON r.id = l.run_id ORDER BY l.id")]


def attempts(project, day: str) -> dict[str, int]:
    return dict(project.query(
        "SELECT a.step, count(*) FROM attempts a JOIN runs r ON r.id = a.run_id "
        "WHERE r.date = ? GROUP BY a.step", (day,)))


def last_completed(project) -> str:
    result = project.run("list", "--json")
    assert result.returncode == 0, result.stderr
    import json

    (row,) = json.loads(result.stdout)
    return row["last_completed"]


def test_a_backfill_stops_after_the_failed_date_and_the_same_command_runs_only_what_is_missing(bf):
    args = ("backfill", "bf", "--from", DATES[0], "--to", DATES[-1])
    first = bf.run(*args)
    assert first.returncode == 1, first.stderr
    assert launched_dates(bf) == DATES[:3]
    assert "date 3 of 5: 2026-11-03 failed" in first.stdout
    assert "bf for 2026-11-03: failed" in first.stdout  # the run's own output is passed through
    assert first.stdout.splitlines()[-1] == (
        "backfill of bf, 5 dates: 2 succeeded, 1 failed (2026-11-03), 2 not run")
    assert bf.states("bf", "--date", DATES[2]) == {"extract": "succeeded", "load": "failed",
                                                   "publish": "blocked"}
    assert last_completed(bf) == DATES[1]

    (bf.root / "broken").unlink()
    second = bf.run(*args)
    assert second.returncode == 0, second.stderr
    assert "date 1 of 5: 2026-11-01 already done" in second.stdout
    # Dates 1 and 2 were done: no launch; date 3 resumed (extract not run again); 4, 5 ran.
    assert launched_dates(bf) == DATES[:3] + DATES[2:]
    assert attempts(bf, DATES[0]) == {"extract": 1, "load": 1, "publish": 1}
    assert attempts(bf, DATES[2]) == {"extract": 1, "load": 2, "publish": 1}
    assert attempts(bf, DATES[4]) == {"extract": 1, "load": 1, "publish": 1}
    assert last_completed(bf) == DATES[-1]
    assert "bf" in bf.run("list").stdout and DATES[-1] in bf.run("list").stdout


def test_keep_going_runs_every_date_despite_a_failure(bf):
    result = bf.run("backfill", "bf", "--from", DATES[0], "--to", DATES[-1], "--keep-going")
    assert result.returncode == 1
    assert launched_dates(bf) == DATES
    states = dict(bf.query("SELECT date, state FROM runs"))
    assert states == {d: ("failed" if d == DATES[2] else "succeeded") for d in DATES}
    assert last_completed(bf) == DATES[-1]
    # The last line names the date that needs a look.
    assert result.stdout.splitlines()[-1] == "backfill of bf, 5 dates: 4 succeeded, 1 failed (2026-11-03)"


def test_backward_runs_the_newest_date_first(bf):
    (bf.root / "broken").unlink()
    result = bf.run("backfill", "bf", "--from", DATES[0], "--to", DATES[-1], "--backward")
    assert result.returncode == 0, result.stderr
    assert launched_dates(bf) == DATES[::-1]
    assert "date 1 of 5: 2026-11-05" in result.stdout
    assert last_completed(bf) == DATES[-1]
    assert set(bf.query("SELECT trigger FROM launches")) == {("backfill",)}


def test_a_backfill_mails_one_digest_for_the_whole_range(bf, mailbox):  # noqa: F811
    bf.write_config(mailbox.config())
    result = bf.run("backfill", "bf", "--from", DATES[0], "--to", DATES[-1], "--keep-going")
    assert result.returncode == 1
    assert len(mailbox.messages) == 1  # one for the range, none per date
    message = mailbox.messages[0]
    assert message["Subject"] == "Overnight backfill 2026-11-01 to 2026-11-05: bf: failed (5 dates: 1 failed)"
    text = text_of(message)
    assert "2026-11-03  failed" in text and "bad rows for 2026-11-03" in text
    assert f"backfill bf --from {DATES[0]} --to {DATES[-1]} --keep-going" in text


def test_a_backfill_while_the_batch_runs_exits_3(project):
    project.write_batch("bf", """
        from overnight import Batch

        batch = Batch("bf")
        batch.command("wait", "sleep 60")
    """)
    live = project.start("run", "bf", "--date", "2026-10-01")
    try:
        deadline = time.monotonic() + 30
        while holder(project.state_dir, "bf") is None:
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        result = project.run("backfill", "bf", "--from", DATES[0], "--to", DATES[1])
        assert result.returncode == 3
        assert "already running" in result.stderr
        assert launched_dates(project) == ["2026-10-01"]
    finally:
        live.terminate()
        live.wait(30)


@pytest.mark.parametrize(
    ("first", "last", "words"),
    [
        ("2026-11-05", "2026-11-01", "after --to"),
        ("2026-02-30", "2026-03-01", "--from 2026-02-30: not a valid date"),
        ("2026-11-01", "tomorrow", "--to tomorrow: not a valid date"),
        ("2000-01-01", "2026-01-01", "at most 3660"),
    ],
)
def test_bad_date_ranges_are_one_line_errors(bf, first, last, words):
    result = bf.run("backfill", "bf", "--from", first, "--to", last)
    assert result.returncode == 2
    assert words in result.stderr and result.stderr.count("\n") == 1
    assert not bf.ledger_path.exists()


def test_date_range_is_inclusive_and_reversible():
    assert date_range(date(2026, 2, 27), date(2026, 3, 1), False) == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    assert date_range(date(2026, 3, 1), date(2026, 3, 1), True) == [date(2026, 3, 1)]
    with pytest.raises(ConfigError):
        date_range(date(2026, 3, 2), date(2026, 3, 1), False)


def test_the_digest_subject_counts_failed_and_unrun_dates_apart() -> None:
    """A date a stop left unrun has nothing wrong with it: the subject does not call it failed."""
    from datetime import date
    from pathlib import Path

    from overnight.backfill import DateResult, digest, tally
    from overnight.config import Config

    config = Config(path=None, base_dir=Path("."), state_dir=Path(".overnight"))
    days = [date(2026, 11, d) for d in range(1, 6)]
    results = [DateResult(days[0], 0), DateResult(days[1], 0, already_done=True), DateResult(days[2], 1),
               DateResult(days[3], None), DateResult(days[4], None)]
    subject, text, summary = digest(config, None, "bf", results, "overnight backfill ...")
    assert subject == "Overnight backfill 2026-11-01 to 2026-11-05: bf: failed (5 dates: 1 failed, 2 not run)"
    first_line = "backfill of bf, 2026-11-01 to 2026-11-05: 2 succeeded, 1 failed (2026-11-03), 2 not run"
    assert text.startswith(first_line + "\n")
    assert tally(results[:2]) == "2 succeeded"
    interrupted = [DateResult(days[0], 130), DateResult(days[1], None)]
    assert digest(config, None, "bf", interrupted, "")[0].endswith("failed (2 dates: 1 failed, 1 not run)")
