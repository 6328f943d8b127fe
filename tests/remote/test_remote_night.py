"""Remote steps through real Celery workers: a whole night, logs, timeouts, pickup."""

from __future__ import annotations

import signal
import socket
import time

from clikit import alive, wait_for

NIGHT = """
    import time
    from pathlib import Path
    from overnight import Batch

    batch = Batch("night")
    W = Path(__file__).with_name("witness.txt")  # the workers run in folders of their own

    def mark(name):
        with W.open("a") as f:
            f.write(f"{name} {time.time()}\\n")

    batch.command("export", f"echo exported {{date}}; echo export >> {W}")
    with batch.parallel():
        batch.command("dump-db", f"echo dump on $OVERNIGHT_STEP; sleep 0.3; echo dump-db >> {W}",
                      queue="alpha")
        batch.command("pos-export", ["sh", "-c", "echo pos export for $OVERNIGHT_DATE; echo oops >&2"],
                      queue="beta")
        batch.command("local-report", "echo local report")

    @batch.step(queue="beta")
    def publish(ctx):
        print("publishing for", ctx.date)
        ctx.log.info("published attempt %s", ctx.attempt)
        mark("publish")

    batch.command("archive", f"echo archived; echo archive >> {W}")
"""


def test_a_night_mixing_both_queues_and_local_steps_runs_in_order(remote_project):
    """Remote steps on two queues and local ones run in dependency order; status and logs
    show every step with its output, and where it ran."""
    p = remote_project
    p.write_batch("night", NIGHT)
    result = p.run("run", "night", "--date", "2026-11-26", "--workers", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(p.states("night").values()) == {"succeeded"}

    order = [line.split()[0] for line in (p.root / "witness.txt").read_text().splitlines()]
    assert order[0] == "export" and order[-1] == "archive"
    assert order.index("dump-db") < order.index("publish")

    status = p.status("night")
    steps = {s["name"]: s for s in status["steps"]}
    for name in ("dump-db", "pos-export", "publish"):
        attempt = steps[name]["attempts"][-1]
        assert attempt["remote_id"], name
        assert attempt["host"] == socket.gethostname()
        assert attempt["exit_code"] == 0
        assert 0 <= attempt["duration"] < 30
    assert steps["export"]["attempts"][-1]["remote_id"] is None

    assert p.run("logs", "night", "dump-db").stdout == "dump on dump-db\n"
    assert p.run("logs", "night", "pos-export").stdout.splitlines() == ["pos export for 2026-11-26", "oops"]
    publish_log = p.run("logs", "night", "publish").stdout
    assert "publishing for 2026-11-26" in publish_log and "published attempt 1" in publish_log
    text = p.run("status", "night").stdout
    assert "dump-db" in text and "succeeded" in text


def test_a_failing_remote_step_fails_and_blocks_what_follows(remote_project):
    p = remote_project
    p.write_batch("night", """
        from overnight import Batch
        batch = Batch("night")
        batch.command("bad", "echo about to fail; exit 3", queue="alpha", retries=1)
        @batch.step(queue="beta", after=[])
        def broken(ctx):
            raise ValueError("no such table")
        batch.command("after-bad", "echo never", after=["bad"])
    """)
    result = p.run("run", "night")
    assert result.returncode == 1
    status = {s["name"]: s for s in p.status("night")["steps"]}
    assert status["bad"]["state"] == "failed"
    assert [a["exit_code"] for a in status["bad"]["attempts"]] == [3, 3]  # retried once
    assert status["broken"]["state"] == "failed"
    assert "ValueError: no such table" in status["broken"]["attempts"][-1]["message"]
    assert "ValueError: no such table" in p.run("logs", "night", "broken").stdout
    assert status["after-bad"]["state"] == "blocked"


def test_a_remote_step_past_its_timeout_is_stopped_on_the_worker(remote_project):
    p = remote_project
    p.write_batch("night", """
        from pathlib import Path
        from overnight import Batch
        batch = Batch("night")
        PID = Path(__file__).with_name("pid.txt")
        batch.command("stuck", f"echo $$ > {PID}; echo started; sleep 60", queue="alpha", timeout="1s")
    """)
    result = p.run("run", "night")
    assert result.returncode == 1
    attempt = p.status("night")["steps"][0]["attempts"][-1]
    assert attempt["state"] == "timed_out"
    assert "timed out after 1s" in attempt["message"]
    assert p.run("logs", "night", "stuck").stdout == "started\n"
    pid = int((p.root / "pid.txt").read_text())
    wait_for(lambda: not alive(pid), 10, "the stuck step's process to be gone")


def test_cancel_stops_a_remote_step(remote_project):
    p = remote_project
    p.write_batch("night", """
        from pathlib import Path
        from overnight import Batch
        batch = Batch("night")
        PID = Path(__file__).with_name("pid.txt")
        batch.command("long", f"echo $$ > {PID}; sleep 60", queue="beta")
    """)
    runner = p.start("run", "night")
    wait_for(lambda: (p.root / "pid.txt").exists() and (p.root / "pid.txt").read_text().strip(), 30,
             "the remote step to start")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(30) == 130
    assert p.states("night") == {"long": "cancelled"}
    wait_for(lambda: not alive(int((p.root / "pid.txt").read_text())), 10, "the step's process to end")


def test_a_queue_no_worker_serves_fails_after_the_pickup_wait(remote_project, cluster):
    p = remote_project
    p.write_config(cluster.config(pickup_timeout="1s"))
    p.write_batch("night", """
        from overnight import Batch
        batch = Batch("night")
        batch.command("lonely", "echo hello", queue="nobody-here")
        batch.command("local", "echo fine", after=[])
    """)
    result = p.run("run", "night")
    assert result.returncode == 1
    status = {s["name"]: s for s in p.status("night")["steps"]}
    assert status["local"]["state"] == "succeeded"
    assert status["lonely"]["state"] == "failed"
    assert "no worker took it from queue 'nobody-here' within 1s" in status["lonely"]["message"]
    assert "nobody-here" in result.stdout


def test_a_batch_with_queues_needs_a_celery_section(project):
    project.write_batch("night", """
        from overnight import Batch
        batch = Batch("night")
        batch.command("remote", "true", queue="alpha")
    """)
    result = project.run("run", "night")
    assert result.returncode == 2
    assert "no [celery] section" in result.stderr and "Traceback" not in result.stderr


def test_worker_without_celery_settings_says_what_is_missing(project):
    result = project.run("worker", "--queue", "alpha")
    assert result.returncode == 2
    assert "no [celery] section" in result.stderr and "Traceback" not in result.stderr


def test_a_result_backend_that_is_not_redis_is_refused(project):
    project.write_config('[celery]\nbroker = "redis://127.0.0.1:1/0"\nresult_backend = "rpc://"\n')
    project.write_batch("night", """
        from overnight import Batch
        batch = Batch("night")
        batch.command("remote", "true", queue="alpha")
    """)
    result = project.run("run", "night")
    assert result.returncode == 2
    assert "result_backend must be a Redis URL" in result.stderr and "Traceback" not in result.stderr
    assert not project.ledger_path.exists() or project.query("SELECT count(*) FROM attempts") == [(0,)]


def test_a_step_waiting_for_a_busy_worker_is_not_failed_by_the_pickup_wait(remote_project, cluster):
    """The pickup wait is for queues nobody serves: behind busy workers a step waits its turn."""
    p = remote_project
    p.write_config(cluster.config(pickup_timeout="1s"))
    p.write_batch("night", """
        from pathlib import Path
        from overnight import Batch
        batch = Batch("night")
        HERE = Path(__file__).parent
        with batch.parallel():
            for i in (1, 2):  # the two worker processes of queue alpha are busy with these
                batch.command(f"hog-{i}", f"echo hog >> {HERE}/witness.txt; "
                              f"while [ ! -e {HERE}/go ]; do sleep 0.05; done", queue="alpha")
            batch.command("third", "echo third", queue="alpha")
    """)
    runner = p.start("run", "night", "--workers", "3")
    wait_for(lambda: (p.root / "witness.txt").exists() and
             len((p.root / "witness.txt").read_text().splitlines()) == 2, 30, "both hogs to start")
    time.sleep(2.5)  # past the pickup wait, with "third" still queued
    (p.root / "go").write_text("")
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, out + err
    assert p.states("night") == {"hog-1": "succeeded", "hog-2": "succeeded", "third": "succeeded"}


def test_the_mail_report_shows_remote_steps_and_the_output_of_a_failed_one(remote_project, cluster):
    from mailkit import Mailbox, text_of

    box = Mailbox()
    box.start()
    try:
        p = remote_project
        p.write_batch("night", """
            from overnight import Batch
            batch = Batch("night")
            batch.command("dump-db", "echo dumped 42 rows", queue="alpha")
            batch.command("pos-export", "echo cannot open /srv/pos/export.csv; exit 4", queue="beta")
        """, config=False)
        p.write_config('[batches.night]\nmodule = "night.py"\nmail = "always"\n\n'
                       + cluster.config() + box.config())
        result = p.run("run", "night", "--mail")
        assert result.returncode == 1
        wait_for(lambda: box.messages, 30, "the report")
        text = text_of(box.messages[0])
        assert "  dump-db " in text and "  pos-export " in text
        assert "| cannot open /srv/pos/export.csv" in text
    finally:
        box.stop()


def test_a_step_that_times_out_in_the_queue_is_timed_out_and_never_run_later(remote_project, cluster):
    from overnight.config import CeleryConfig
    from overnight.remote.celery_app import make_app

    p = remote_project
    p.write_batch("night", """
        from overnight import Batch
        batch = Batch("night")
        batch.command("queued", "echo ran", queue="nobody-yet", timeout="1s")
    """)
    result = p.run("run", "night")
    assert result.returncode == 1
    attempt = p.status("night")["steps"][0]["attempts"][-1]
    assert attempt["state"] == "timed_out"
    assert attempt["message"] == "timed out after 1s while waiting for a worker on queue 'nobody-yet'"
    app = make_app(CeleryConfig(broker=cluster.broker))
    try:  # a worker that serves the queue later finds the task given up, and drops it
        assert app.AsyncResult(attempt["remote_id"]).state == "REVOKED"
    finally:
        app.close()


def test_a_remote_steps_output_comes_back_capped_to_its_last_megabyte(remote_project):
    p = remote_project
    p.write_batch("night", """
        from overnight import Batch
        batch = Batch("night")
        batch.command("chatty", ["python3", "-c",
                      "[print(f'line {i:07d} ' + 'x' * 80) for i in range(20000)]"], queue="alpha")
    """)
    assert p.run("run", "night").returncode == 0
    log = p.run("logs", "night", "chatty").stdout
    first, *rest = log.splitlines()
    assert first.startswith("overnight: the first ") and "bytes of output are only on" in first
    assert rest[-1].startswith("line 0019999 ")
    assert 1024 * 1024 - 100 < len("\n".join(rest)) <= 1024 * 1024
