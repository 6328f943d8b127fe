"""What happens when a worker, the coordinator or the broker dies in the middle of a night."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess

from clikit import OVERNIGHT, alive, wait_for

from .cluster import Redis, Worker

SLOW_ON_FIRST_ATTEMPT = """
    from pathlib import Path
    from overnight import Batch
    batch = Batch("night")
    W = Path(__file__).with_name("witness.txt")
    batch.command(
        "slow",
        f"echo start $OVERNIGHT_ATTEMPT $$ >> {W}; "
        f"if [ $OVERNIGHT_ATTEMPT = 1 ]; then sleep 60; fi; echo end >> {W}",
        queue="{queue}",
    )
    batch.command("after", "echo after")
"""


def witness(project) -> list[str]:  # noqa: ANN001
    path = project.root / "witness.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_kill_9_of_a_worker_interrupts_its_step_and_a_resume_runs_it_again(remote_project, cluster):
    """The step is interrupted (never succeeded), its process dies with the worker, and
    being idempotent it runs again on the next resume."""
    p = remote_project
    doomed = Worker(cluster.root / "host-doomed", cluster.broker, "doomed", concurrency=1)
    doomed.start()
    try:
        p.write_batch("night", SLOW_ON_FIRST_ATTEMPT.replace("{queue}", "doomed"))
        runner = p.start("run", "night")
        wait_for(lambda: witness(p), 30, "the remote step to start")
        step_pid = int(witness(p)[0].split()[2])
        doomed.kill()
        assert runner.wait(60) == 1
        steps = {s["name"]: s for s in p.status("night")["steps"]}
        assert steps["slow"]["state"] == "interrupted"
        assert "stopped answering" in steps["slow"]["attempts"][-1]["message"]
        assert steps["after"]["state"] == "blocked"
        wait_for(lambda: not alive(step_pid), 10, "the step's process to die with its worker")

        doomed.start()
        result = p.run("run", "night")
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        doomed.stop()
    assert [line.split()[:2] for line in witness(p)] == [["start", "1"], ["start", "2"], ["end"]]
    attempts = p.status("night")["steps"][0]["attempts"]
    assert [a["state"] for a in attempts] == ["interrupted", "succeeded"]


def test_a_worker_killed_mid_step_is_retried_per_the_steps_retries(remote_project, cluster):
    p = remote_project
    doomed = Worker(cluster.root / "host-doomed2", cluster.broker, "doomed2", concurrency=1)
    doomed.start()
    try:
        p.write_batch("night", SLOW_ON_FIRST_ATTEMPT.replace("{queue}", "doomed2").replace(
            'queue="doomed2",', 'queue="doomed2", retries=1, retry_delay="1s",'))
        runner = p.start("run", "night")
        wait_for(lambda: witness(p), 30, "the remote step to start")
        doomed.kill()
        doomed.start()
        assert runner.wait(90) == 0
    finally:
        doomed.stop()
    assert [line.split()[:2] for line in witness(p)] == [["start", "1"], ["start", "2"], ["end"]]


COORDINATOR = """
    from pathlib import Path
    from overnight import Batch
    batch = Batch("night")
    W = Path(__file__).with_name("witness.txt")
    GO = Path(__file__).with_name("go")
    batch.command("remote", f"echo start >> {W}; while [ ! -e {GO} ]; do sleep 0.05; done; "
                  f"echo remote output; echo end >> {W}", queue="alpha")
    batch.command("local-after", "echo after")
"""


def _kill_coordinator_during_remote_step(p) -> None:  # noqa: ANN001
    p.write_batch("night", COORDINATOR)
    runner = p.start("run", "night")
    wait_for(lambda: witness(p) == ["start"], 30, "the remote step to start")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(10)
    assert p.query("SELECT state, remote_id IS NOT NULL FROM attempts") == [("running", 1)]


def test_kill_9_of_the_coordinator_leaves_the_remote_step_running_and_a_resume_reattaches(remote_project):
    """The remote step goes on; the next run waits for it, records it, and does not run it twice."""
    p = remote_project
    _kill_coordinator_during_remote_step(p)
    assert p.states("night")["remote"] == "running"
    resume = p.start("run", "night")
    wait_for(lambda: p.query("SELECT state FROM launches WHERE id = 2") == [("running",)], 30,
             "the second launch to start")
    (p.root / "go").write_text("")  # only now may the remote step end
    out, err = resume.communicate(timeout=60)
    assert resume.returncode == 0, out + err
    assert "attach   remote" in out
    assert witness(p) == ["start", "end"]  # one run, not two
    steps = {s["name"]: s for s in p.status("night")["steps"]}
    assert steps["remote"]["state"] == "succeeded" and steps["local-after"]["state"] == "succeeded"
    assert len(steps["remote"]["attempts"]) == 1
    assert p.run("logs", "night", "remote").stdout == "remote output\n"


def test_a_remote_step_that_finished_while_the_coordinator_was_dead_is_recorded_not_rerun(remote_project):
    p = remote_project
    _kill_coordinator_during_remote_step(p)
    (p.root / "go").write_text("")
    wait_for(lambda: witness(p) == ["start", "end"], 30, "the remote step to finish on its own")
    result = p.run("run", "night")
    assert result.returncode == 0, result.stdout + result.stderr
    assert witness(p) == ["start", "end"]
    assert p.states("night") == {"remote": "succeeded", "local-after": "succeeded"}
    assert p.query("SELECT count(*) FROM attempts WHERE step = 'remote'") == [(1,)]


def test_a_broker_that_stops_mid_night_fails_clearly_and_the_night_resumes_once_it_is_back(project, cluster,
                                                                                          monkeypatch):
    monkeypatch.setenv("OVERNIGHT_REMOTE_HEARTBEAT", "0.5")
    redis = Redis(cluster.root / "redis-flaky")
    redis.start()
    worker = Worker(cluster.root / "host-flaky", redis.url, "flaky", concurrency=1)
    worker.start()
    p = project
    try:
        p.write_config(f'[celery]\nbroker = "{redis.url}"\npickup_timeout = "60s"\n')
        p.write_batch("night", f"""
            from pathlib import Path
            from overnight import Batch
            batch = Batch("night")
            W = Path(__file__).with_name("witness.txt")
            batch.command("first", f"echo first >> {{W}}", queue="flaky")
            batch.command("broker-dies", ["bash", "-c", "kill {redis.process.pid}; "
                          "while (exec 3<>/dev/tcp/127.0.0.1/{redis.port}) 2>/dev/null; do sleep 0.05; done"])
            batch.command("second", f"echo second >> {{W}}", queue="flaky")
        """)
        result = p.run("run", "night")
        assert result.returncode == 1
        assert "cannot reach the broker redis://127.0.0.1" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr
        assert p.states("night") == {"first": "succeeded", "broker-dies": "succeeded", "second": "failed"}
        assert witness(p) == ["first"]

        redis.start()
        result = p.run("run", "night", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert set(p.states("night").values()) == {"succeeded"}
        assert witness(p) == ["first", "second"]
    finally:
        worker.stop()
        redis.stop()


def test_with_the_coordinator_dead_the_worker_still_enforces_the_timeout(remote_project):
    """The worker's own timeout is the backstop; the next run records the step timed out."""
    p = remote_project
    p.write_batch("night", """
        from pathlib import Path
        from overnight import Batch
        batch = Batch("night")
        W = Path(__file__).with_name("witness.txt")
        batch.command("stuck", f"echo start $$ >> {W}; sleep 60; echo end >> {W}", queue="beta", timeout="2s")
    """)
    runner = p.start("run", "night")
    wait_for(lambda: witness(p), 30, "the remote step to start")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(10)
    step_pid = int(witness(p)[0].split()[1])
    wait_for(lambda: not alive(step_pid), 30, "the worker to stop the step at its timeout")
    result = p.run("run", "night")
    assert result.returncode == 1
    attempts = p.status("night")["steps"][0]["attempts"]
    assert [a["state"] for a in attempts] == ["timed_out"]
    assert "timed out after 2s" in attempts[0]["message"]
    assert witness(p)[1:] == []  # never got to its end, and was not started again


def test_a_task_lost_by_the_broker_is_sent_again_and_runs_once(remote_project, cluster):
    """A broker that loses a queued message (restarted without its data): the step is sent
    again after the pickup wait instead of waiting forever."""
    import redis

    p = remote_project
    p.write_config(cluster.config(pickup_timeout="1s"))
    p.write_batch("night", """
        from pathlib import Path
        from overnight import Batch
        batch = Batch("night")
        HERE = Path(__file__).parent
        with batch.parallel():
            for i in (1, 2):  # the two worker processes of queue beta are busy with these
                batch.command(f"hog-{i}", f"echo hog >> {HERE}/hogs.txt; "
                              f"while [ ! -e {HERE}/go ]; do sleep 0.05; done", queue="beta")
            batch.command("third", f"echo third >> {HERE}/witness.txt", queue="beta")
    """)
    broker = redis.Redis.from_url(cluster.broker)
    runner = p.start("run", "night", "--workers", "3")
    try:
        wait_for(lambda: broker.llen("beta") == 1, 30, "the third step to wait in the queue")
        broker.delete("beta")  # lost, as by a broker restarted without its data
        (p.root / "go").write_text("")
        out, err = runner.communicate(timeout=60)
    finally:
        broker.close()
    assert runner.returncode == 0, out + err
    assert witness(p) == ["third"]
    assert p.states("night")["third"] == "succeeded"


def test_marking_a_step_still_on_its_queue_names_the_command_that_collects_it(remote_project):
    """After kill -9 of the coordinator its remote step may still run on its worker: a mark
    is refused, and the command it names, typed as shown, collects the step's result (the
    batch is run by path here: the command must name it by its path)."""
    p = remote_project
    module = p.write_batch("night", config=False, source="""
        from pathlib import Path
        from overnight import Batch
        batch = Batch("night")
        W = Path(__file__).with_name("witness.txt")
        G = Path(__file__).with_name("gate")
        batch.command(
            "remote", f"echo start >> {W}; while [ ! -e {G} ]; do sleep 0.05; done; echo end >> {W}",
            queue="alpha",
        )
    """)
    runner = p.start("run", "night.py", "--date", "2026-11-26")
    wait_for(lambda: witness(p), 30, "the remote step to start")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(10)
    refused = p.run("mark", "night.py", "remote", "--done", "--date", "2026-11-26")
    assert refused.returncode == 2, refused.stderr
    hint = re.search(r"run `([^`]+)` to collect its result first", refused.stderr)
    assert hint, refused.stderr
    assert hint.group(1) == f"overnight run {module} --date 2026-11-26"
    (p.root / "gate").touch()
    collected = subprocess.run([*OVERNIGHT, *shlex.split(hint.group(1))[1:]], cwd=p.root, env=p.env(),
                               capture_output=True, text=True, timeout=120)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert p.states("night") == {"remote": "succeeded"}
    assert witness(p) == ["start", "end"]  # run once, its result collected, not run again
