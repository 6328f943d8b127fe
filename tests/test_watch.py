"""Knowing before 7am, end to end: the live prediction, the alerts by a real SMTP server
and a real webhook receiver, heartbeat pings to a real HTTP server, `check`, and the
Prometheus textfile. Real `overnight run` processes throughout."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from clikit import deadline_in, wait_for
from test_reports import Mailbox, text_of

DAY = "2026-11-26"

CHAIN = """
    from overnight import Batch

    batch = Batch("night")
    batch.command("extract", "sleep {pause}")
    batch.command("load", "sleep {pause}")
    batch.command("publish", "sleep {pause}")
"""


class Monitor:
    """A real HTTP server on 127.0.0.1 that keeps every request: (path, body, when)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, float]] = []
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                monitor.requests.append((self.path, body, time.time()))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def monitor():
    m = Monitor()
    yield m
    m.close()


def configure(project, source: str, *, batch: str = "", extra: str = "") -> None:
    project.write_batch("night", source, config=False)
    project.write_config(f'[batches.night]\nmodule = "night.py"\n{batch}\n\n{extra}')


def test_will_be_late_then_missed_deadline_each_exactly_once_while_the_night_runs(project, mailbox, monitor):
    """Acceptance 1: two nights of history; a deadline a few seconds after the start."""
    chain = CHAIN.format(pause=2)
    configure(project, chain)
    for day in ("2026-11-24", "2026-11-25"):
        assert project.run("run", "night", "--date", day).returncode == 0
    deadline = deadline_in(4)
    configure(project, chain, batch=f'deadline = "{deadline:%H:%M:%S}"',
              extra=mailbox.config() + f'\n[[webhooks]]\nurl = "{monitor.base}/hook"\n')
    started = time.time()
    night = project.start("run", "night", "--date", DAY)
    late = wait_for(lambda: [m for m in mailbox.messages if "will be late" in m["Subject"]], 10,
                    "the late alert")
    arrived = time.time()
    status = project.run("status", "night", "--date", DAY).stdout
    assert night.poll() is None, "the alert came after the night had ended"
    assert night.wait(60) == 0, night.stderr.read() if night.stderr else ""
    ended = project.query("SELECT max(ended_at) FROM launches")[0][0]

    assert arrived - started < 2.5
    subject = late[0]["Subject"]
    assert subject.startswith(f"Overnight for {DAY}: night: will be late (predicted ")
    assert subject.endswith(f", deadline {deadline:%H:%M:%S})")
    predicted = project.query("SELECT predicted FROM alerts WHERE kind = 'late'")[0][0]
    assert abs(predicted - ended) < 2.0
    assert "Critical path (what the finish waits on): extract, load, publish" in text_of(late[0])
    assert "predicted finish" in status and f"(deadline {deadline:%H:%M:%S}, late)" in status
    assert "usually" in status  # the running step against its median

    wait_for(lambda: len(mailbox.messages) == 2 and len(monitor.requests) == 2, 10,
             "the missed-deadline alert")
    time.sleep(0.5)  # nothing more may come
    subjects = [m["Subject"] for m in mailbox.messages]
    missed = f"Overnight for {DAY}: night: missed deadline ({deadline:%H:%M:%S}, not finished)"
    assert subjects == [subject, missed]
    hooks = [json.loads(body) for _, body, _ in monitor.requests]
    assert [h["alert"] for h in hooks] == ["late", "missed"]
    assert [h["subject"] for h in hooks] == subjects
    recorded = project.query(
        "SELECT kind, channel, d.state FROM alerts a JOIN alert_deliveries d ON d.alert_id = a.id"
    )
    assert sorted(recorded) == [
        ("late", "mail", "sent"), ("late", f"webhook:{monitor.base}/hook", "sent"),
        ("missed", "mail", "sent"), ("missed", f"webhook:{monitor.base}/hook", "sent"),
    ]


def run_in_process(
    project, day: str, *, workers: int = 1, long_minimum: float = 60.0, mail: bool | None = None,
):
    """One launch through the real Runner in this process, with a NightWatch whose
    "running long" threshold is `long_minimum` (the product's is a minute)."""
    from overnight.config import load_config
    from overnight.engine import Runner, RunOptions
    from overnight.ledger import Ledger
    from overnight.loader import load_batch
    from overnight.nightwatch import NightWatch, settings_for
    from overnight.progress import Progress

    config = load_config(str(project.root / "overnight.toml"))
    loaded = load_batch(str(project.root / "night.py"), config.base_dir)
    logs = config.state.run_logs("night", day)
    logs.folder.mkdir(parents=True, exist_ok=True)
    watch = NightWatch(settings_for(config, "night", mail), long_minimum=long_minimum)
    ledger = Ledger.open(config.state.ledger)
    try:
        runner = Runner(
            "night", loaded.order, ledger, options=RunOptions(date=datetime.fromisoformat(day).date(),
                                                              workers=workers),
            workdir=project.root, logs=logs, progress=Progress(out=open(os.devnull, "w")), watch=watch,
        )
        result = runner.run()
        watch.close()
        return result
    finally:
        ledger.close()


LONG_NIGHT = """
    from pathlib import Path
    from overnight import Batch

    batch = Batch("night")
    slow = (Path(__file__).parent / "slow").exists()
    batch.command("quick", "sleep 0.1", after=[])
    batch.command("load", "sleep 3" if slow else "sleep 0.5", after=[])
    batch.command("index", "sleep 3" if slow else "sleep 0.5", after=[])
"""


def test_running_long_once_per_step_still_running_at_three_times_its_median(project, mailbox):
    configure(project, LONG_NIGHT, extra=mailbox.config())
    for day in ("2026-11-24", "2026-11-25"):
        assert project.run("run", "night", "--date", day).returncode == 0
    (project.root / "slow").touch()
    started = time.time()
    result = run_in_process(project, DAY, workers=3, long_minimum=0.4)
    assert result.exit_code == 0
    subjects = sorted(m["Subject"] for m in mailbox.messages)
    assert [s.split(" (")[0] for s in subjects] == [
        f"Overnight for {DAY}: night: running long: index", f"Overnight for {DAY}: night: running long: load",
    ]
    assert all(", usually 0." in s for s in subjects)
    sent_at = [a for (a,) in project.query("SELECT at FROM alerts WHERE kind = 'long'")]
    assert all(1.2 < at - started < 2.9 for at in sent_at)  # at 3 x 0.5 s, before the steps end at 3 s


def test_no_mail_silences_the_alerts_of_a_manual_run(project, mailbox):
    configure(project, LONG_NIGHT, extra=mailbox.config())
    for day in ("2026-11-24", "2026-11-25"):
        assert project.run("run", "night", "--date", day).returncode == 0
    (project.root / "slow").touch()
    assert run_in_process(project, DAY, workers=3, long_minimum=0.4, mail=False).exit_code == 0
    assert mailbox.messages == []
    assert project.query("SELECT count(*) FROM alerts") == [(0,)]


# -- heartbeat pings --------------------------------------------------------------------------

FAILING = """
    from overnight import Batch

    batch = Batch("night")
    batch.command("extract", "echo extracted")
    batch.command("load", "echo no table >&2; exit 3")
    batch.command("publish", "echo published")
"""

SLOW = """
    from overnight import Batch

    batch = Batch("night")
    batch.command("wait", "sleep 60")
"""


def test_pings_start_then_fail_for_a_failing_night_and_start_then_success_for_a_good_one(project, monitor):
    """Acceptance 4, the first two parts; the night is too quick for the /start courier to
    win the race on its own, and the order must hold anyway."""
    url = f"{monitor.base}/ping/0b1c"
    configure(project, FAILING, batch=f'ping_url = "{url}/"')
    assert project.run("run", "night", "--date", DAY).returncode == 1
    assert monitor.paths == ["/ping/0b1c/start", "/ping/0b1c/fail"]
    body = monitor.requests[1][1]
    assert body.startswith(f"night for {DAY}: failed\n") and "load: failed" in body
    assert "blocked (1): publish" in body
    configure(project, CHAIN.format(pause=0), batch=f'ping_url = "{url}"')
    assert project.run("run", "night", "--date", "2026-11-27").returncode == 0
    assert monitor.paths[2:] == ["/ping/0b1c/start", "/ping/0b1c"]
    assert project.query("SELECT channel, state FROM reports ORDER BY id") == [
        ("ping:start", "sent"), ("ping:fail", "sent"), ("ping:start", "sent"), ("ping:success", "sent"),
    ]


def test_only_start_is_heard_after_the_runner_is_killed(project, monitor):
    """Acceptance 4, the dead-man switch: kill -9 leaves the monitor waiting for an end
    that never comes, which is what makes it raise the alarm."""
    configure(project, SLOW, batch=f'ping_url = "{monitor.base}/ping/0b1c"')
    night = project.start("run", "night", "--date", DAY)
    wait_for(lambda: monitor.paths, 20, "the /start ping")
    os.kill(night.pid, signal.SIGKILL)
    night.wait(10)
    time.sleep(1.0)
    assert monitor.paths == ["/ping/0b1c/start"]


def test_a_monitor_that_is_down_changes_nothing_and_is_recorded(project):
    dead = Monitor()
    dead.close()  # nothing listens there any more
    configure(project, FAILING, batch=f'ping_url = "{dead.base}/ping/0b1c"')
    result = project.run("run", "night", "--date", DAY)
    assert result.returncode == 1  # what the failed night exits with, pings or not
    assert "heartbeat ping" in result.stderr and "not sent" in result.stderr
    states = project.query("SELECT channel, state FROM reports ORDER BY id")
    assert states == [("ping:start", "not_sent"), ("ping:fail", "not_sent")]
    status = project.run("status", "night").stdout
    assert "report not sent (ping:fail): cannot reach it: " in status


# -- check ------------------------------------------------------------------------------------


def earlier_nights(project, seconds: dict[str, float], days: list[str]) -> None:
    """Nights that took `seconds` per step, written through the ledger's own API (as a
    long night would have left them, without spending the hours)."""
    from overnight.config import load_config
    from overnight.ledger import Ledger
    from overnight.loader import load_batch
    from overnight.states import RunState, StepState

    config = load_config(str(project.root / "overnight.toml"))
    steps = load_batch(str(project.root / "night.py"), config.base_dir).order
    ledger = Ledger.open(config.state.ledger)
    start = time.time() - 86400 * len(days)
    with ledger.transaction():
        for day in days:
            run = ledger.ensure_run("night", day)
            ledger.sync_steps(run.id, steps)
            launch = ledger.start_launch(run.id, "night", trigger="manual", launched_by="test", options={})
            for step in steps:
                ledger.set_step_state(run.id, step.name, StepState.PENDING, StepState.RUNNING, launch)
                attempt = ledger.start_attempt(run.id, step.name, 1, launch, None, start)
                start += seconds[step.name]
                ledger.finish_attempt(attempt, StepState.SUCCEEDED, start, 0, None)
                ledger.set_step_state(run.id, step.name, StepState.RUNNING, StepState.SUCCEEDED, launch)
            ledger.end_launch(launch, run.id, RunState.SUCCEEDED, None)
    ledger.close()


def test_check_critical_after_a_failed_night_ok_after_the_resume(project):
    """Acceptance 3, the first two parts."""
    configure(project, FAILING.replace('"echo no table >&2; exit 3"', '"test -e fixed"'))
    assert project.run("run", "night", "--date", DAY).returncode == 1
    failed = project.run("check", "night", "--date", DAY)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert failed.stdout.startswith(f"CRITICAL - night {DAY}: failed (1 of 3) | 'duration'=")
    assert failed.stdout.count("\n") == 1
    (project.root / "fixed").touch()
    assert project.run("run", "night", "--date", DAY).returncode == 0
    resumed = project.run("check", "night", "--date", DAY)
    assert resumed.returncode == 0 and resumed.stdout.startswith(f"OK - night {DAY}: succeeded | 'duration'=")


def test_check_critical_when_the_deadline_passed_with_no_run(project):
    """Acceptance 3, the third part: nothing ran for the night, and its deadline is gone."""
    configure(project, CHAIN.format(pause=0), batch='schedule = "0 1 * * *"\ndeadline = "06:00"')
    result = project.run("check", "night", "--date", "2026-11-20")
    assert (result.returncode, result.stdout) == (
        2, "CRITICAL - night 2026-11-20: not run, and its deadline 06:00 has passed\n"
    )
    configure(project, CHAIN.format(pause=0), batch='schedule = "0 1 * * *"')  # no deadline: its next fire
    result = project.run("check", "night", "--date", "2026-11-20")
    assert (result.returncode, result.stdout) == (
        2, "CRITICAL - night 2026-11-20: not run, and its next fire has passed\n"
    )


def test_check_unknown_when_the_ledger_cannot_be_read(project):
    """Acceptance 3, the last part."""
    configure(project, CHAIN.format(pause=0))
    assert project.run("run", "night", "--date", DAY).returncode == 0
    for leftover in project.state_dir.glob("ledger.db-*"):
        leftover.unlink()
    project.ledger_path.write_bytes(b"not a ledger at all, not even SQLite" * 100)
    result = project.run("check", "night")
    assert result.returncode == 3
    assert result.stdout.startswith("UNKNOWN - ") and "ledger" in result.stdout and result.stderr == ""


def test_check_warns_while_a_night_is_predicted_late_and_when_a_report_was_not_sent(project):
    configure(project, SLOW.replace("sleep 60", "sleep 120"))
    earlier_nights(project, {"wait": 3600.0}, ["2026-11-24", "2026-11-25"])
    deadline = deadline_in(600)
    configure(project, SLOW.replace("sleep 60", "sleep 120"), batch=f'deadline = "{deadline:%H:%M:%S}"')
    night = project.start("run", "night", "--date", DAY)
    try:
        wait_for(lambda: project.query("SELECT count(*) FROM forecasts WHERE finish IS NOT NULL")[0][0] == 1
                 if project.ledger_path.exists() else False, 20, "the first prediction")
        result = project.run("check", "night", "--date", DAY)
        assert result.returncode == 1, result.stdout
        assert result.stdout.startswith(f"WARNING - night {DAY}: running, predicted ")
        assert f", after its deadline {deadline:%H:%M:%S} | 'duration'=" in result.stdout
        assert "'deadline_margin'=-" in result.stdout
        forecast = project.status("night", "--date", DAY)["forecast"]
        assert forecast["live"] and forecast["late"] and not forecast["partial"]
        assert forecast["critical_path"] == ["wait"] and forecast["usual"] == {"wait": 3600.0}
        assert forecast["deadline"] == pytest.approx(deadline.timestamp(), abs=1)
        assert forecast["finish"] > forecast["deadline"]
    finally:
        night.send_signal(signal.SIGTERM)
        night.wait(30)
    box = Mailbox()  # not started: nothing listens
    configure(project, CHAIN.format(pause=0), batch='mail = "always"', extra=box.config())
    assert project.run("run", "night", "--date", "2026-11-27", OVERNIGHT_TRIGGER="scheduled",
                       OVERNIGHT_MAIL_RETRY_DELAYS="").returncode == 0
    result = project.run("check", "night", "--date", "2026-11-27")
    assert result.returncode == 1
    assert result.stdout.startswith("WARNING - night 2026-11-27: succeeded; not sent: mail: cannot connect")


# -- Prometheus ---------------------------------------------------------------------------------


def families(text: str) -> dict[str, list]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_the_textfile_parses_and_carries_each_batchs_last_success(project):
    """Acceptance 5, the first part: rewritten after each launch."""
    textfile = project.root / "node" / "overnight.prom"
    textfile.parent.mkdir()
    configure(project, FAILING, extra=f'[metrics]\ntextfile = "{textfile}"\n')
    assert project.run("run", "night", "--date", DAY).returncode == 1
    first = families(textfile.read_text())
    assert "overnight_last_success_timestamp_seconds" not in first or not first[
        "overnight_last_success_timestamp_seconds"]
    state = {s.labels["overnight_last_run_state"]: s.value for s in first["overnight_last_run_state"]}
    assert state["failed"] == 1.0 and state["succeeded"] == 0.0
    configure(project, CHAIN.format(pause=0), extra=f'[metrics]\ntextfile = "{textfile}"\n')
    before = time.time()
    assert project.run("run", "night", "--date", "2026-11-27").returncode == 0
    found = families(textfile.read_text())
    [success] = found["overnight_last_success_timestamp_seconds"]
    assert success.labels == {"batch": "night"} and before < success.value < time.time()
    [duration] = found["overnight_last_run_duration_seconds"]
    assert duration.labels == {"batch": "night"} and duration.value >= 0
    assert {s.labels["batch"] for s in found["overnight_report_failures"]} == {"night"}


def test_readers_never_see_a_partial_textfile(project, tmp_path):  # tmp_path: the project's folder
    """Acceptance 5, the second part: a reader parsing the file while it is rewritten again
    and again always finds a whole file (write_to_textfile renames a finished one in)."""
    from overnight.config import load_config
    from overnight.ledger import Ledger
    from overnight.metrics import write_textfile

    folder = tmp_path / "textfiles"
    folder.mkdir()
    textfile = folder / "overnight.prom"
    configure(project, CHAIN.format(pause=0), extra=f'[metrics]\ntextfile = "{textfile}"\n')
    for day in ("2026-11-24", "2026-11-25", DAY):
        assert project.run("run", "night", "--date", day).returncode == 0
    config = load_config(str(project.root / "overnight.toml"))
    ledger = Ledger.open(config.state.ledger)
    reads, problems, stop = [0], [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                text = textfile.read_text()
            except FileNotFoundError:
                problems.append("the file was missing")
                continue
            try:
                found = families(text)
                assert found["overnight_last_success_timestamp_seconds"][0].labels == {"batch": "night"}
            except Exception as e:  # noqa: BLE001 - recorded and failed on below
                problems.append(f"{e!r}: {text[-200:]!r}")
            reads[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(200):
            assert write_textfile(config, ledger, problems.append)
    finally:
        stop.set()
        thread.join()
        ledger.close()
    assert problems == [] and reads[0] > 50
    assert [p.name for p in folder.iterdir()] == ["overnight.prom"]  # no temporary left behind


def test_a_textfile_that_cannot_be_written_is_one_line_and_changes_nothing(project):
    configure(project, CHAIN.format(pause=0), extra='[metrics]\ntextfile = "no/such/folder/overnight.prom"\n')
    result = project.run("run", "night", "--date", DAY)
    assert result.returncode == 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("overnight: metrics not written to ")


# -- the final report: steps much slower or much faster than usual -------------------------------


def test_the_report_lists_steps_much_slower_and_much_faster_than_usual():
    from overnight.readmodel.run import StepView
    from overnight.reporting.report import Slow, slow_steps

    def step(name: str, took: float) -> StepView:
        return StepView(name, "succeeded", "command", name, [], None, None, took, None, [])

    history = {name: [600.0, 610.0, 590.0] for name in ("import", "export", "steady", "brief")}
    history["brief"] = [40.0, 40.0, 40.0]
    found = slow_steps([step("import", 60.0), step("export", 1300.0), step("steady", 420.0),
                        step("brief", 15.0)], history)
    # import took a tenth of its usual time (did it find anything to import?); export over
    # twice; steady 70% of usual is within reason; brief lost only 25 s: noise.
    assert found == [Slow("import", 60.0, 600.0, 3, faster=True), Slow("export", 1300.0, 600.0, 3)]


def test_the_mailed_report_has_a_faster_than_usual_section(project):
    configure(project, CHAIN.format(pause=0))
    earlier_nights(project, {"extract": 600.0, "load": 5.0, "publish": 5.0},
                   ["2026-11-22", "2026-11-23", "2026-11-24"])
    assert project.run("run", "night", "--date", DAY).returncode == 0
    shown = project.run("report", "night", "--date", DAY)
    assert "Faster than usual:\n  extract took " in shown.stdout
    assert "usually 10m00s (median of the 3 earlier attempts)" in shown.stdout
    assert "Slower than usual" not in shown.stdout


def test_usual_durations_come_from_each_steps_latest_fourteen_successes(project):
    from overnight.ledger import Ledger

    configure(project, CHAIN.format(pause=0))
    days = [f"2026-10-{d:02d}" for d in range(1, 17)]
    for i, day in enumerate(days):  # night i: every step took i + 1 seconds
        earlier_nights(project, {"extract": i + 1.0, "load": i + 1.0, "publish": i + 1.0}, [day])
    project.write_batch("other", CHAIN.format(pause=0).replace('"night"', '"other"'))
    assert project.run("run", "other", "--date", DAY).returncode == 0
    ledger = Ledger.open(project.ledger_path)
    try:
        found = ledger.recent_successes("night")
    finally:
        ledger.close()
    assert set(found) == {"extract", "load", "publish"}
    assert [round(s) for s in found["load"]] == list(range(16, 2, -1))  # newest first, 14 of them


POOLED = """
    from overnight import Batch

    batch = Batch("night")
    batch.command("import-a", "sleep 0.1", after=[], resources={"pos_db": 1})
    batch.command("import-b", "sleep 0.1", after=[], resources={"pos_db": 1})
    batch.command("report", "sleep 0.1", after=[])
    batch.command("cleanup", "sleep 0.1", after=["import-a", "import-b"], run_if="failure")
"""


def test_the_prediction_follows_the_runners_pools_and_skips_what_runs_only_after_a_failure(project):
    """Two imports share a one-unit pool: with three workers they still run one after the
    other, as the runner runs them; the cleanup runs only after a failure: it counts 0."""
    project.write_batch("night", POOLED, config=False)
    project.write_config('[resources]\npos_db = 1\n\n[batches.night]\nmodule = "night.py"\n')
    earlier_nights(project, {"import-a": 30.0, "import-b": 30.0, "report": 10.0, "cleanup": 100.0},
                   ["2026-11-24", "2026-11-25"])
    assert project.run("run", "night", "--date", DAY, "--workers", "3").returncode == 0
    [(started, first)] = project.query(
        "SELECT l.started_at, f.first_finish FROM launches l JOIN forecasts f ON f.launch_id = l.id "
        "WHERE l.id = (SELECT max(id) FROM launches)"
    )
    assert 59 < first - started < 62  # 30 s, then 30 s for the unit; not 30, not 160


def test_a_nights_deadline_follows_its_recorded_fire_and_a_launch_after_it_is_missed_at_once(project):
    """The scheduler recorded the fire of the night (at 01:00 on the 27th); a launch of that
    night by hand days later keeps the deadline of that fire (06:00 on the 27th), long
    past: the night has missed it, and says so as it starts. Another night, never fired,
    takes its deadline from the launch's start."""
    from overnight.ledger import Ledger

    configure(project, CHAIN.format(pause=0), batch='deadline = "06:00"')
    ledger = Ledger.open(project.ledger_path)
    with ledger.transaction():
        ledger.record_fire("night", "2026-11-27T01:00:00+00:00", DAY, "missed", message="the machine was off")
    ledger.close()
    assert project.run("run", "night", "--date", DAY).returncode == 0
    [(deadline,)] = project.query("SELECT deadline FROM forecasts")
    assert deadline == datetime(2026, 11, 27, 6, 0, tzinfo=UTC).timestamp()
    assert project.query("SELECT kind, subject FROM alerts") == [
        ("missed", f"Overnight for {DAY}: night: missed deadline (06:00, not finished)")
    ]
    started = time.time()
    assert project.run("run", "night", "--date", "2026-11-27").returncode == 0
    later = project.query("SELECT deadline FROM forecasts ORDER BY launch_id DESC LIMIT 1")[0][0]
    assert started < later <= started + 86400
    assert datetime.fromtimestamp(later, UTC).strftime("%H:%M:%S") == "06:00:00"


def test_an_alert_not_delivered_shows_and_is_sent_again_by_report_alerts_send(project):
    """Recorded like a report: a failed delivery is visible (status, check) and is made
    again, on the channel that failed only, by `overnight report BATCH --alerts --send`."""
    box = Mailbox()  # not listening yet
    configure(project, CHAIN.format(pause=0), batch='deadline = "06:00"', extra=box.config())
    from overnight.ledger import Ledger

    ledger = Ledger.open(project.ledger_path)
    with ledger.transaction():
        ledger.record_fire("night", "2026-11-27T01:00:00+00:00", DAY, "missed", message="off")
    ledger.close()
    assert project.run("run", "night", "--date", DAY, OVERNIGHT_MAIL_RETRY_DELAYS="").returncode == 0
    status = project.run("status", "night", "--date", DAY).stdout
    assert f"Overnight for {DAY}: night: missed deadline (06:00, not finished)" in status
    assert "    not sent (mail): cannot connect to the mail server" in status
    check = project.run("check", "night", "--date", DAY)
    assert check.returncode == 1 and "not sent: alert mail: cannot connect" in check.stdout
    box.start()
    try:
        again = project.run("report", "night", "--date", DAY, "--alerts", "--send")
        assert again.returncode == 0, again.stderr
        assert "sent again: mail" in again.stdout
        assert [m["Subject"] for m in box.messages] == [
            f"Overnight for {DAY}: night: missed deadline (06:00, not finished)"
        ]
    finally:
        box.stop()
    assert "not sent (mail)" not in project.run("status", "night", "--date", DAY).stdout
    assert project.run("check", "night", "--date", DAY).returncode == 0
    shown = project.run("report", "night", "--date", DAY, "--alerts")
    assert shown.stdout.endswith("  mail sent\n")
