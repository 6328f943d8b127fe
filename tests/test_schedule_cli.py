"""`overnight next`, `overnight cron`, and how bad schedules are refused: the real CLI."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from overnight.cli.schedule import system_zone_name

BATCH = """
from overnight import Batch
batch = Batch("{name}")
batch.command("work", "echo {{date}} >> dates-{name}.txt")
"""


def configure(project, batches: dict[str, dict[str, str]]) -> None:
    """Write each batch's module and its [batches.NAME] table with the settings given."""
    tables = []
    for name, settings in batches.items():
        project.write_batch(name, BATCH.format(name=name), config=False)
        lines = [f"[batches.{name}]", f'module = "{name}.py"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        tables.append("\n".join(lines))
    project.write_config("\n\n".join(tables) + "\n")


# -- a bad schedule, zone or policy: exit 2, one line naming the batch and the setting ---------

BAD = [
    ({"schedule": "61 * * * *"}, "schedule '61 * * * *': minute 61 is out of range 0-59"),
    ({"schedule": "0 1 * *"}, "schedule '0 1 * *': expected 5 fields"),
    ({"schedule": "@fortnightly"}, "schedule '@fortnightly': unknown alias"),
    ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
    ({"dst_gap": "sometimes"}, "dst_gap = 'sometimes' is not one of shift, skip"),
    ({"dst_repeat": "middle"}, "dst_repeat = 'middle' is not one of first, last"),
    ({"catchup": "often"}, "catchup = 'often' is not one of latest, none, all"),
]


COMMANDS = [["scheduler"], ["scheduler", "--once"], ["next"], ["next", "nightly"], ["cron"]]


BAD_IDS = [f"{next(iter(setting))}{i}" for i, (setting, _) in enumerate(BAD)]


@pytest.mark.parametrize(("setting", "message"), BAD, ids=BAD_IDS)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_bad_setting_is_one_line_naming_the_batch_and_the_setting(project, setting, message, command):
    configure(project, {"nightly": {"schedule": "0 1 * * *", **setting}})
    result = project.run(*command, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("overnight: ") and "overnight.toml: [batches.nightly]: " in line
    assert message in line
    assert not project.ledger_path.exists()  # refused before anything was touched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["next", "--after", "2026-11-28T01:00:00"], "--after 2026-11-28T01:00:00: give the UTC offset"),
        (["next", "--after", "tomorrow"], "--after tomorrow: not an ISO 8601 instant"),
        (["scheduler", "--once", "--now", "2026-11-28 01:00"], "--now 2026-11-28 01:00: give the UTC offset"),
        (["scheduler", "--now", "2026-11-28T01:00:00Z"], "--now goes with --once"),
        (["next", "weekly"], "unknown batch 'weekly'"),
        (["next", "manual"], "[batches.manual] has no schedule"),
    ],
)
def test_bad_command_line_values_are_one_line_and_exit_2(project, args, message):
    configure(project, {"nightly": {"schedule": "0 1 * * *"}, "manual": {}})
    result = project.run(*args, timeout=30)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert message in line


# -- next ------------------------------------------------------------------------------------


def next_json(project, *args: str) -> list[dict]:
    result = project.run("next", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_next_lists_fire_times_in_the_batchs_zone_with_the_date_each_runs_for(project):
    configure(project, {
        "nightly": {"schedule": "30 2 * * *", "timezone": "America/New_York"},
        "late": {"schedule": "30 1 * * *", "timezone": "America/New_York", "dst_repeat": "last",
                 "date": "today"},
    })
    # Spring forward on 2026-03-08: 02:30 does not exist; it runs once, at 03:00 EDT.
    rows = next_json(project, "nightly", "-n", "3", "--after", "2026-03-07T12:00:00Z")
    assert [(r["at"], r["date"], r["shifted"]) for r in rows] == [
        ("2026-03-08T03:00:00-04:00", "2026-03-07", True),
        ("2026-03-09T02:30:00-04:00", "2026-03-08", False),
        ("2026-03-10T02:30:00-04:00", "2026-03-09", False),
    ]
    # Fall back on 2026-11-01: 01:30 happens twice; dst_repeat = last takes the EST one.
    rows = next_json(project, "late", "-n", "2", "--after", "2026-10-31T12:00:00Z")
    assert [(r["at"], r["date"]) for r in rows] == [
        ("2026-11-01T01:30:00-05:00", "2026-11-01"),
        ("2026-11-02T01:30:00-05:00", "2026-11-02"),
    ]

    text = project.run("next", "-n", "1", "--after", "2026-03-07T12:00:00Z")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["BATCH", "FIRES", "AT", "FOR", "DATE", "ZONE"]
    assert lines[1].split() == ["late", "2026-03-08", "01:30", "-05:00", "2026-03-08", "America/New_York"]
    assert lines[2].split()[:6] == [
        "nightly", "2026-03-08", "03:00", "-04:00", "2026-03-07", "America/New_York"
    ]
    assert lines[2].endswith("(02:30 falls in the DST gap)")


def test_list_shows_the_next_fire_time_with_its_offset(project):
    configure(project, {"nightly": {"schedule": "0 1 * * *", "timezone": "America/Chicago"}, "manual": {}})
    result = project.run("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["batch"]: r for r in json.loads(result.stdout)}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 01:00 -0[56]:00", rows["nightly"]["next"])
    assert rows["manual"]["next"] is None


# -- cron --------------------------------------------------------------------------------------


def test_cron_prints_working_lines_with_cron_tz_only_where_the_zone_differs(project):
    system = system_zone_name() or "UTC"
    other = "America/Chicago" if system != "America/Chicago" else "Europe/London"
    configure(project, {
        "local": {"schedule": "15 3 * * *", "timezone": system},
        "away": {"schedule": "@daily", "timezone": other, "catchup": "all"},
        "manual": {},
    })
    result = project.run("cron")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    comments = "\n".join(x for x in lines if x.startswith("#"))
    for limit in ("DST", "catch-up", "overlap", "scheduler --once", "# manual: no schedule"):
        assert limit in comments
    entries = [x for x in lines if x and not x.startswith("#")]
    assert entries[0].startswith("15 3 * * * ") and "run local" in entries[0]
    assert entries[1:] == [f"CRON_TZ={other}", entries[2]]
    assert entries[2].startswith("0 0 * * * ") and "run away" in entries[2]
    assert "# away: cron cannot honour catchup = all" in lines

    # The command of a line runs the batch, as cron would run it (in another folder).
    command = entries[0].split(" ", 5)[5]
    ran = subprocess.run(["/bin/sh", "-c", command], cwd="/", capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert project.states("local") == {"work": "succeeded"}
    assert (project.state_dir / "logs" / "cron" / "local.log").read_text().strip()
