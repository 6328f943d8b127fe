"""`overnight import crontab`: the lines of one night become a batch run as a chain; the
files written are ones a person would write; what cannot be translated is said."""

from __future__ import annotations

import subprocess
import textwrap
from datetime import date

import pytest
from clikit import OVERNIGHT, Project

from overnight.importing.crontab import group_nights, read_crontab, step_name

EOD = """\
    MAILTO=ops@example.com
    PATH=/usr/local/bin:/usr/bin:/bin
    # end of day, five minutes apart just to be safe
    0 1 * * *    echo export-pos >> {root}/ran.txt
    5 1 * * *    echo import-products >> {root}/ran.txt
    15 1 * * *   echo report-sales >> {root}/ran.txt
    45 1 * * 1-5 echo report-labor >> {root}/ran.txt
    0 4 * * *    echo backup >> {root}/ran.txt
    @reboot      /usr/local/bin/start-queue
"""

SATURDAY = "2026-11-28"   # the night of Saturday: cron fires its 01:xx lines on Sunday
WEDNESDAY = "2026-11-25"  # the night of Wednesday: fired on Thursday
FRIDAY = "2026-11-27"     # the night of Friday: fired on Saturday


def write_crontab(project: Project) -> str:
    path = project.root / "crontab.txt"
    path.write_text(textwrap.dedent(EOD).format(root=project.root))
    return str(path)


def imported(project: Project) -> subprocess.CompletedProcess[str]:
    (project.root / "overnight.toml").unlink()  # the import writes its own
    crontab = write_crontab(project)
    result = project.run("import", "crontab", crontab)
    assert result.returncode == 0, result.stderr
    return result


def ran(project: Project) -> list[str]:
    path = project.root / "ran.txt"
    lines = path.read_text().split() if path.exists() else []
    if path.exists():
        path.unlink()
    return lines


def test_five_eod_lines_become_two_batches_run_packed_and_in_order(project: Project) -> None:
    said = imported(project).stdout
    assert "night-0100: 4 lines from 01:00, schedule \"0 1 * * *\"" in said
    assert "night-0400: 1 line from 04:00, schedule \"0 4 * * *\"" in said
    listed = project.run("list", "--json")
    assert [(b["batch"], b["schedule"]) for b in __import__("json").loads(listed.stdout)] == [
        ("night-0100", "0 1 * * *"), ("night-0400", "0 4 * * *")]

    first = project.run("run", "night-0100", "--date", WEDNESDAY)
    assert first.returncode == 0, first.stdout + first.stderr
    assert ran(project) == ["export-pos", "import-products", "report-sales", "report-labor"]
    # Packed: each started as the one before it ended, not at its crontab minute.
    attempts = project.status("night-0100", "--date", WEDNESDAY)["steps"]
    starts = [s["attempts"][0]["started_at"] for s in attempts]
    assert starts[-1] - starts[0] < 30

    assert project.run("run", "night-0400", "--date", WEDNESDAY).returncode == 0
    assert ran(project) == ["backup"]


@pytest.mark.parametrize("night, runs_it", [(SATURDAY, False), (FRIDAY, False), (WEDNESDAY, True)])
def test_the_weekday_only_line_keeps_its_days(project: Project, night: str, runs_it: bool) -> None:
    """Cron ran it at 01:45 Monday to Friday: for the nights of Sunday to Thursday. The
    night of Saturday (fired on Sunday) and of Friday (fired on Saturday) skip it."""
    imported(project)
    assert project.run("run", "night-0100", "--date", night).returncode == 0
    assert ("report-labor" in ran(project)) is runs_it
    states = project.states("night-0100", "--date", night)
    assert states["echo-report-labor"] == ("succeeded" if runs_it else "skipped")


def test_the_module_reads_as_a_person_would_write_it(project: Project) -> None:
    imported(project)
    module = (project.root / "night-0100.py").read_text()
    assert module.startswith(
        '"""night-0100: 4 lines of a crontab that ran between 01:00 and 01:45, as one batch.')
    assert "from overnight.batch import cron_days\n" in module
    assert "# crontab line 4: 0 1 * * *    echo export-pos" in module
    assert f'batch.command("echo-export-pos", "echo export-pos >> {project.root}/ran.txt")' in module
    assert "# cron ran it Monday to Friday at 01:45: the nights dated the day before" in module
    assert 'when=cron_days("* * 1-5", next_day=True))' in module
    config = (project.root / "overnight.toml").read_text()
    assert '# to = ["ops@example.com"]' in config
    assert (project.root / "night-0400.py").read_text().count("batch.command(") == 1


def test_what_cannot_be_translated_is_said_and_the_lines_to_remove_are_listed(project: Project) -> None:
    said = imported(project).stdout
    assert "  line 9: @reboot      /usr/local/bin/start-queue\n    @reboot: runs at start-up" in said
    assert "  line 2: PATH=/usr/local/bin:/usr/bin:/bin\n    an environment line" in said
    assert "MAILTO=ops@example.com: overnight mails one report per night" in said
    remove = said.split("remove these lines from your crontab (crontab -e):\n")[1].splitlines()
    assert [line.split()[5] if not line.strip().startswith("@") else line for line in remove] == [
        "echo"] * 5
    assert len(remove) == 5 and not any("@reboot" in line for line in remove)


def test_it_reads_standard_input_and_refuses_to_overwrite(project: Project) -> None:
    text = textwrap.dedent(EOD).format(root=project.root)
    (project.root / "overnight.toml").unlink()
    done = subprocess.run([*OVERNIGHT, "import", "crontab", "-"], input=text, cwd=project.root,
                          env=project.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    before = {p.name: p.read_text() for p in project.root.glob("*.py")}
    again = subprocess.run([*OVERNIGHT, "import", "crontab", "-"], input=text, cwd=project.root,
                           env=project.env(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert again.stderr == (f"overnight: {project.root / 'overnight.toml'}: already exists; overnight import "
                            "crontab writes only new files (move it aside, or run it in an empty folder)\n")
    assert {p.name: p.read_text() for p in project.root.glob("*.py")} == before


def test_a_crontab_with_no_nightly_line_is_one_line_and_writes_nothing(project: Project) -> None:
    (project.root / "overnight.toml").unlink()
    (project.root / "cron.txt").write_text("*/5 * * * * /usr/bin/poll\n@reboot /usr/bin/x\n")
    result = project.run("import", "crontab", "cron.txt")
    assert result.returncode == 2
    assert result.stderr == ("overnight: cron.txt: no line runs once a night at a fixed time; nothing to "
                             "import (line 1: runs more than once a day (*/5 *): overnight runs a batch "
                             "once per date)\n")
    assert sorted(p.name for p in project.root.iterdir()) == ["cron.txt"]


# -- the rules, as tables --------------------------------------------------------------


def lines_at(*times: str) -> list:
    text = "\n".join(f"{t.split(':')[1]} {t.split(':')[0]} * * * job-{i}" for i, t in enumerate(times))
    return read_crontab(text).lines


@pytest.mark.parametrize(
    "times, nights",
    [
        (["01:00", "01:05", "01:15", "01:45", "04:00"], [["01:00", "01:05", "01:15", "01:45"], ["04:00"]]),
        (["23:30", "23:50", "00:10", "02:00"], [["02:00"], ["23:30", "23:50", "00:10"]]),
        (["01:00", "02:00", "03:00"], [["01:00", "02:00", "03:00"]]),   # an hour apart: one night
        (["01:00", "02:01"], [["01:00"], ["02:01"]]),                   # more than an hour: two
        (["05:00"], [["05:00"]]),
    ],
    ids=["eod-and-backup", "across-midnight", "hourly-chain", "just-over-an-hour", "one-line"],
)
def test_lines_within_an_hour_are_one_night(times: list[str], nights: list[list[str]]) -> None:
    found = group_nights(lines_at(*times))
    assert [[line.clock for line in night.lines] for night in found] == nights


def test_a_night_across_midnight_is_for_the_evening_it_starts_in() -> None:
    (night,) = group_nights(lines_at("23:30", "00:10"))
    assert night.for_today
    assert [night.fire_day(line) for line in night.lines] == [0, 1]
    (early,) = group_nights(lines_at("01:00"))
    assert not early.for_today and early.fire_day(early.first) == 1


@pytest.mark.parametrize(
    "line, why",
    [
        ("*/10 1 * * * poll", "runs more than once a day"),
        ("0 1-3 * * * twice", "runs more than once a day"),
        ("@hourly tick", "@hourly runs every hour"),
        ("@reboot start", "@reboot: runs at start-up"),
        ("0 1 * * 9 x", "day rule '* * 9'"),
        ("0 25 * * * x", "no such time of day"),
        ("0 1 * * * echo 50% done", "an unescaped %"),
        ("0 1 * *", "not a crontab line"),
    ],
)
def test_a_line_that_is_not_once_a_night_is_said_why(line: str, why: str) -> None:
    found = read_crontab(line)
    assert found.lines == [] and why in found.untranslated[0][2]


def test_escaped_percent_signs_are_what_cron_runs_and_aliases_are_times() -> None:
    found = read_crontab("@daily date +\\%Y-\\%m-\\%d > /tmp/today\nCRON_TZ=America/Chicago\n30 2 * * * x")
    assert [(line.clock, line.command, line.zone) for line in found.lines] == [
        ("00:00", "date +%Y-%m-%d > /tmp/today", None), ("02:30", "x", "America/Chicago")]


@pytest.mark.parametrize(
    "command, name",
    [
        ("/usr/local/bin/export-pos --all", "export-pos"),
        ("cd /srv/app && bin/rattail --config=app/cron.conf import-csv products", "rattail-import-csv"),
        ("sudo -u postgres pg_dump -Fc mydb > /backups/db.dump", "pg_dump-mydb"),
        ("python3 /srv/scripts/nightly_report.py", "nightly_report.py"),
        ("FOO=1 ./run.sh", "run.sh"),
        ("/bin/bash -c '/usr/local/bin/backup --all'", "backup"),
        ("timeout 2h nice -n 10 /usr/bin/reindex", "reindex"),
    ],
)
def test_step_names_come_from_the_program(command: str, name: str) -> None:
    assert step_name(command, set()) == name


def test_step_names_are_unique() -> None:
    taken: set[str] = set()
    assert [step_name("/bin/backup", taken) for _ in range(3)] == ["backup", "backup-2", "backup-3"]


def test_cron_days_matches_cron_for_every_day_of_a_year() -> None:
    """The when= the import writes says what cron did, for each date of 2026."""
    from datetime import datetime, timedelta

    from cronsim import CronSim

    from overnight.batch import cron_days

    for rule in ("* * 1-5", "1,15 * *", "* 2 *", "1 * 1", "L * *"):
        same_day, next_day = cron_days(rule), cron_days(rule, next_day=True)
        fires: set[date] = set()
        it = CronSim(f"45 1 {rule}", datetime(2025, 12, 31, 12))
        while (fire := next(it)).year <= 2026:
            fires.add(fire.date())
        day = date(2026, 1, 1)
        while day.year == 2026:
            assert same_day(day) is (day in fires), (rule, day)
            assert next_day(day - timedelta(days=1)) is (day in fires), (rule, day)
            day += timedelta(days=1)
