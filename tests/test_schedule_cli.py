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
    ({"overlap": "sometimes"}, "overlap = 'sometimes' is not one of queue, skip"),
    # More than once a day: a run is one batch for one business date (never a silent no-op).
    ({"schedule": "*/30 * * * *"}, "schedule '*/30 * * * *' fires 48 times a day, but a run is one batch"),
    ({"schedule": "@hourly"}, "schedule '@hourly' fires 24 times a day"),
    ({"schedule": "0 1,13 * * *"}, "schedule '0 1,13 * * *' fires 2 times a day"),
    ({"schedule": "0,30 1 * * *", "date": "today"}, "schedule '0,30 1 * * *' fires 2 times a day"),
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
    result = project.run("cron", "--cron-tz")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    comments = "\n".join(x for x in lines if x.startswith("#"))
    for limit in ("DST", "catch-up", "overlap", "scheduler --once", "# manual: no schedule", "honours it"):
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
    assert project.status("local")["launches"][0]["trigger"] == "cron"


def machine_lines(project, *args: str) -> list[str]:
    result = project.run("cron", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    ("schedule", "written"),
    [
        # Kolkata keeps UTC+5:30 all year: 01:30 there is 20:00 UTC the day before.
        ("30 1 * * *", "0 20 * * * "),
        ("15 4 * * 0", "45 22 * * 6 "),  # Sunday 04:15 there is Saturday 22:45 UTC
    ],
)
def test_without_cron_tz_a_line_is_written_in_the_machines_zone(project, schedule, written):
    """Debian's cron ignores CRON_TZ: wall times of another zone would fire at the wrong hour.
    (How each schedule moves, DST included, is tested with fixed instants in test_crontab.py.)"""
    configure(project, {"away": {"schedule": schedule, "timezone": "Asia/Kolkata"}})
    lines = machine_lines(project, "--no-cron-tz", "--machine-zone", "UTC")
    assert not any(x.startswith("CRON_TZ") for x in lines)
    [entry] = [x for x in lines if x and not x.startswith("#")]
    assert entry.startswith(written) and "OVERNIGHT_TRIGGER=cron" in entry and "run away" in entry
    assert f"# away: {schedule} in Asia/Kolkata, written in this machine's zone" in lines
    assert not any("the two zones' difference changes" in x for x in lines)


def test_a_line_in_a_zone_with_other_dst_days_says_from_when_it_is_an_hour_off(project):
    configure(project, {"away": {"schedule": "0 23 * * *", "timezone": "America/Chicago"}})
    lines = machine_lines(project, "--no-cron-tz", "--machine-zone", "UTC")
    assert any(re.match(r"#   from \d{4}-\d\d-\d\d the two zones' difference changes", x) for x in lines)


def test_a_day_of_month_that_would_cross_midnight_is_said_not_written_wrong(project):
    configure(project, {"monthly": {"schedule": "0 23 1 * *", "timezone": "America/Chicago"}})
    lines = machine_lines(project, "--no-cron-tz", "--machine-zone", "UTC")
    assert not [x for x in lines if x and not x.startswith("#")]
    assert any("cannot be written in this machine's zone: it moves to the next day" in x for x in lines)
    assert any(x.startswith("# mkdir -p") and "run monthly" in x for x in lines)
