"""Floods of logins against a real `overnight web`: many at once, from many addresses or
one, for many names or one. The server's memory stays bounded (scrypt is 16 MiB a try:
forty at once was 640 MiB), nothing answers 5xx, and the throttle admits no more tries per
name or address than it allows, however many arrive together."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))

from webtools import ONE_STEP, Client, Server, add_user  # noqa: E402

from overnight.web.throttle import FREE  # noqa: E402

MB = 1024 * 1024
AT_ONCE = 40

FLOODS = {
    # name of the flood: (the name tried by attacker i, the address of attacker i)
    "many names from many addresses": (lambda i: f"nobody{i}", lambda i: f"198.51.100.{i + 1}"),
    "one name from many addresses": (lambda i: "olive", lambda i: f"198.51.100.{i + 1}"),
    "many names from one address": (lambda i: f"nobody{i}", lambda i: "203.0.113.9"),
    "many names from one IPv6 /64": (lambda i: f"nobody{i}", lambda i: f"2001:db8:5:6::{i + 1:x}"),
}


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.parametrize("flood", list(FLOODS))
def test_a_flood_of_logins_keeps_the_server_small_and_the_throttle_whole(project, tmp_path, flood):
    project.write_batch("demo", ONE_STEP)
    add_user(project, "olive", "operator-pass", role="operator")
    server = Server(project, tmp_path / "web.log", ("--trusted-proxy", "127.0.0.1"))
    try:
        name_of, address_of = FLOODS[flood]
        clients = [Client(server.url, headers={"X-Forwarded-For": address_of(i)}) for i in range(AT_ONCE)]
        tokens = [c.csrf() for c in clients]
        Client(server.url).login("olive", "operator-pass")  # the first scrypt's memory is not the flood's
        before, peak, done = rss(server.proc.pid), 0, threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss(server.proc.pid))
                time.sleep(0.005)

        statuses: list[int] = []
        start = threading.Barrier(AT_ONCE + 1)

        def attack(i: int) -> None:
            start.wait()
            form = {"csrf": tokens[i], "name": name_of(i), "password": f"guess-{i}"}
            statuses.append(clients[i].post("/login", form)[0])

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=attack, args=(i,)) for i in range(AT_ONCE)]
        for t in threads:
            t.start()
        start.wait()
        for t in threads:
            t.join(120)
        done.set()
        watcher.join()

        assert len(statuses) == AT_ONCE and set(statuses) <= {401, 429}, statuses
        grew = (peak - before) / MB
        assert grew < 64, f"{flood}: the server grew by {grew:.0f} MB"
        one_key = flood != "many names from many addresses"
        admitted = statuses.count(401)
        assert admitted == (FREE if one_key else AT_ONCE), statuses
        log = (tmp_path / "web.log").read_text()
        assert "Traceback" not in log, log[-2000:]
    finally:
        server.stop()


def test_throttled_tries_do_not_fill_the_audit_record(project, tmp_path):
    """A refused try costs an attacker nothing, so it writes nothing: one row per lockout,
    not one per try (200 tries in a row)."""
    add_user(project, "olive", "operator-pass", role="operator")
    server = Server(project, tmp_path / "web.log")
    try:
        guesser = Client(server.url)
        token = guesser.csrf()
        body = {"csrf": token, "name": "olive", "password": "nope"}
        for _ in range(200):
            guesser.post("/login", body)
        rows = dict(project.query(
            "SELECT outcome, count(*) FROM audit WHERE action = 'login' GROUP BY outcome"))
        # Each try admitted after a wait fails again and starts a new lockout: one row each.
        assert FREE <= rows["failed"] < FREE + 5 and rows["throttled"] == rows["failed"] - FREE + 1, rows
    finally:
        server.stop()
