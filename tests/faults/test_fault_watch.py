"""Attacks on the lookout's guarantees (issue 12), each a class of cases.

1. News never changes a night: for every way a receiver can fail (nobody listening, a
   receiver that never answers, a 5xx, a 4xx), for alerts (webhooks) and heartbeat pings
   alike, the night ends as it would without them (exit code, step states), each delivery
   is recorded as not sent, and the failure is one line on stderr, never a traceback.
2. Each alert goes out once, whoever races for it: processes claiming the same alert at
   the same moment through real SQLite, for every kind; exactly one wins.
3. An alert claimed is delivered even when the runner dies the next instant (kill -9):
   the courier is a process of its own, in its own session; when the runner died before
   its courier was born, the scheduler's next pass sends the abandoned alert. Never twice.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from clikit import deadline_in, wait_for
from test_reports import Mailbox

DAY = "2026-11-26"

NIGHT = """
    from overnight import Batch

    batch = Batch("night")
    batch.command("extract", "echo extracted")
    batch.command("load", "sleep {pause}; exit 3")
    batch.command("publish", "echo published")
    batch.command("vacuum", "echo vacuumed", after=[])
"""
OUTCOME = {"extract": "succeeded", "load": "failed", "publish": "blocked", "vacuum": "succeeded"}


class Broken:
    """A receiver that fails in one way: 'refused', 'hangs', '500' or '404'."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.server: ThreadingHTTPServer | None = None
        self.sock: socket.socket | None = None
        if how == "refused":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]  # closed again: nobody listens there
        elif how == "hangs":
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(64)  # connections complete in the kernel; nobody ever answers
            port = self.sock.getsockname()[1]
        else:
            code = int(how)

            class Handler(BaseHTTPRequestHandler):
                def do_POST(self) -> None:  # noqa: N802 - http.server's name
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    self.send_response(code)
                    self.end_headers()

                def log_message(self, *args: object) -> None:
                    pass

            self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self.server.daemon_threads = True
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
            port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/x"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.sock is not None:
            self.sock.close()


@pytest.fixture(params=["refused", "hangs", "500", "404"])
def broken(request):
    receiver = Broken(request.param)
    yield receiver
    receiver.close()


def write(project, *, pause: float, batch: str = "", extra: str = "") -> None:
    project.write_batch("night", NIGHT.format(pause=pause), config=False)
    project.write_config(f'[batches.night]\nmodule = "night.py"\n{batch}\n\n{extra}')


def test_a_failing_receiver_never_changes_the_night(project, broken):
    """Class 1: the missed-deadline alert to a webhook, and the pings, all to a broken receiver."""
    deadline = deadline_in(3)
    write(project, pause=5, batch=f'deadline = "{deadline:%H:%M:%S}"\nping_url = "{broken.url}"',
          extra=f'[[webhooks]]\nurl = "{broken.url}"\ntimeout = "3s"\n')
    began = time.monotonic()
    result = project.run("run", "night", "--date", DAY, timeout=120)
    took = time.monotonic() - began
    assert "Traceback" not in result.stderr
    assert result.returncode == 1, result.stderr
    assert project.states("night") == OUTCOME
    channels = project.query("SELECT channel, state FROM reports ORDER BY id")
    assert channels == [("ping:start", "not_sent"), ("ping:fail", "not_sent")]
    assert project.query("SELECT kind, state FROM alerts") == [("missed", "made")]
    delivered = project.query("SELECT channel, state FROM alert_deliveries")
    assert delivered == [(f"webhook:{broken.url}", "not_sent")]
    failures = [line for line in result.stderr.splitlines() if "not sent" in line or "not posted" in line]
    assert len(failures) == 3, result.stderr  # the start ping (by its courier), the alert, the end ping
    assert all(line.startswith("overnight: ") for line in failures)
    assert took < 5 + 3 * 15, "a broken receiver held `overnight run` past its bounds"


KINDS = [("late", "1"), ("missed", ""), ("long", "load")]


@pytest.mark.parametrize(("kind", "key"), KINDS, ids=[k for k, _ in KINDS])
def test_an_alert_is_claimed_once_whoever_races_for_it(project, kind, key):
    """Class 2: eight processes claim the same alert at the same instant; one wins."""
    write(project, pause=0)
    assert project.run("run", "night", "--date", DAY).returncode == 1
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from overnight.ledger import Ledger\n"
        "ledger = Ledger.open(Path(sys.argv[1]))\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "with ledger.transaction():\n"
        f"    won = ledger.claim_alert('night', '{DAY}', '{kind}', '{key}', 'subject')\n"
        "print('won' if won else 'lost')\n"
    )
    start = time.time() + 1.5
    racers = [
        subprocess.Popen([sys.executable, "-c", script, str(project.ledger_path), str(start)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    said = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert said == ["lost"] * 7 + ["won"]
    assert project.query("SELECT count(*) FROM alerts") == [(1,)]


def alerts_recorded(project) -> int:
    try:
        return project.query("SELECT count(*) FROM alerts")[0][0]
    except sqlite3.OperationalError:  # the ledger is not there yet, or not its tables
        return 0


def test_an_alert_claimed_is_delivered_though_the_runner_dies_at_once(project):
    """Class 3: kill -9 of the runner the moment its alert is recorded. Its courier (or,
    when the runner died before the courier was born, the scheduler's pass for abandoned
    alerts) delivers it, once: a later pass sends nothing more."""
    box = Mailbox()
    box.start()
    try:
        deadline = deadline_in(3)
        write(project, pause=30, batch=f'deadline = "{deadline:%H:%M:%S}"', extra=box.config())
        night = project.start("run", "night", "--date", DAY)
        wait_for(lambda: alerts_recorded(project), 20, "the alert to be recorded")
        os.kill(night.pid, signal.SIGKILL)
        night.wait(10)
        subject = f"Overnight for {DAY}: night: missed deadline ({deadline:%H:%M:%S}, not finished)"
        try:
            wait_for(lambda: box.messages, 20, "the alert's mail")
        except AssertionError:  # killed between the record and the courier's start
            assert project.query("SELECT state FROM alerts") == [("due",)]
            assert project.query("SELECT count(*) FROM alert_deliveries") == [(0,)]
            assert abandoned_pass(project).returncode == 0
        assert [m["Subject"] for m in box.messages] == [subject]
        wait_for(lambda: project.query("SELECT state FROM alerts") == [("made",)], 20,
                 "the delivery recorded")
        assert project.query("SELECT channel, state FROM alert_deliveries") == [("mail", "sent")]
        assert abandoned_pass(project).returncode == 0
        assert [m["Subject"] for m in box.messages] == [subject]
    finally:
        box.stop()


def abandoned_pass(project) -> subprocess.CompletedProcess[str]:
    """A scheduler pass that takes any alert still due as abandoned by its sender."""
    return project.run("scheduler", "--once", OVERNIGHT_REPORT_ABANDONED_AFTER="0")


def test_an_alert_its_runner_never_handed_to_a_courier_is_sent_by_the_scheduler(project):
    """Class 3, the narrow case made certain: an alert recorded as due and never handed to
    a courier (its runner died at once) is sent by the scheduler's pass once it counts as
    abandoned, and only once; before that, the pass leaves it to its sender."""
    from overnight.ledger import Ledger

    box = Mailbox()
    box.start()
    try:
        write(project, pause=0, batch='deadline = "06:00"', extra=box.config())
        subject = f"Overnight for {DAY}: night: will be late (predicted 07:10, deadline 06:00)"
        ledger = Ledger.open(project.ledger_path)
        with ledger.transaction():
            ledger.claim_alert("night", DAY, "late", "", subject)
        ledger.close()
        assert project.run("scheduler", "--once").returncode == 0  # 15 minutes not yet passed
        assert box.messages == [] and project.query("SELECT state FROM alerts") == [("due",)]
        assert abandoned_pass(project).returncode == 0
        assert abandoned_pass(project).returncode == 0
        assert [m["Subject"] for m in box.messages] == [subject]
        assert project.query("SELECT channel, state FROM alert_deliveries") == [("mail", "sent")]
    finally:
        box.stop()
