"""Logging in from outside: guesses slow down and then are refused (429), per name and per
client address, and every login, failure and action is in the audit record operators read."""

from __future__ import annotations

import re

import pytest
from webtools import OLIVE, VIC, Client

from overnight.web.throttle import FREE


@pytest.fixture
def proxied(with_users, serve):
    """Behind a proxy on this machine that says who the client is (X-Forwarded-For)."""
    return serve(with_users, "--trusted-proxy", "127.0.0.1")


def client_from(site, address: str) -> Client:
    return Client(site.url, headers={"X-Forwarded-For": address})


def test_fifteen_wrong_passwords_are_refused_with_429_and_then_so_is_the_right_one(project, site):
    guesser = Client(site.url)
    statuses, waits = [], []
    for i in range(15):
        token = guesser.csrf("/login")
        status, headers, _ = guesser.post("/login", {"csrf": token, "name": "olive", "password": f"guess{i}"})
        statuses.append(status)
        waits.append(headers.get("Retry-After"))
    assert statuses == [401] * FREE + [429] * (15 - FREE)
    assert all(w is not None and int(w) >= 1 for w in waits[FREE:])
    assert guesser.login(*OLIVE) == 429  # the right password is no help while it is held back
    assert project.query("SELECT count(*) FROM sessions") == [(0,)]
    rows = project.query("SELECT who, address, action, outcome FROM audit WHERE action = 'login'")
    assert rows.count(("olive", "127.0.0.1", "login", "failed")) == FREE
    assert rows.count(("olive", "127.0.0.1", "login", "throttled")) == 1  # once, not once per try


def test_one_name_guessed_from_many_addresses_is_held_back_and_others_are_not(project, proxied):
    for i in range(FREE):
        assert client_from(proxied, f"198.51.100.{i}").login("olive", f"guess{i}") == 401
    assert client_from(proxied, "198.51.100.200").login(*OLIVE) == 429
    assert client_from(proxied, "198.51.100.201").login(*VIC) == 303
    addresses = {a for (a,) in project.query("SELECT address FROM audit WHERE outcome = 'failed'")}
    assert addresses == {f"198.51.100.{i}" for i in range(FREE)}


def test_many_names_guessed_from_one_address_are_held_back(project, proxied):
    for i in range(FREE):
        assert client_from(proxied, "203.0.113.7").login(f"nobody{i}", "whatever1") == 401
    assert client_from(proxied, "203.0.113.7").login(*VIC) == 429
    assert client_from(proxied, "203.0.113.8").login(*VIC) == 303


def test_a_forged_forwarded_for_without_a_trusted_proxy_is_no_fresh_address(project, site):
    """Each guess says it comes from elsewhere; with no --trusted-proxy the server believes
    only the socket: the guesses are counted against 127.0.0.1 and recorded from there."""
    for i in range(FREE):
        assert client_from(site, f"198.51.100.{i}").login(f"nobody{i}", "whatever1") == 401
    assert client_from(site, "198.51.100.250").login(*VIC) == 429
    addresses = {a for (a,) in project.query("SELECT address FROM audit WHERE action = 'login'")}
    assert addresses == {"127.0.0.1"}


def test_a_success_clears_the_names_failures(project, site):
    olive = Client(site.url)
    for i in range(FREE - 1):
        assert olive.login("olive", f"typo{i}") == 401
    assert olive.login(*OLIVE) == 303
    other = Client(site.url)
    assert other.login("olive", "typo again") == 401  # olive's slate is clean: not 429


def test_an_unknown_name_and_a_wrong_password_get_the_same_answer(project, site):
    unknown, known = Client(site.url), Client(site.url)
    a = unknown.post("/login", {"csrf": unknown.csrf(), "name": "nobody", "password": "x" * 12})
    b = known.post("/login", {"csrf": known.csrf(), "name": "olive", "password": "x" * 12})
    assert a[0] == b[0] == 401
    strip = re.compile(rb'value="[^"]*"')  # the form's CSRF tokens differ
    assert strip.sub(b"", a[2]) == strip.sub(b"", b[2])


def test_operators_read_who_did_what_from_where_on_the_audit_page(project, site):
    olive, vic = Client(site.url), Client(site.url)
    assert Client(site.url).login("olive", "wrong-pass") == 401
    assert olive.login(*OLIVE) == 303
    token = olive.csrf("/")
    assert olive.post("/batch/demo/launch", {"date": "2026-11-21", "csrf": token})[0] == 303
    assert vic.login(*VIC) == 303
    assert vic.post("/batch/demo/launch", {"date": "2026-11-22", "csrf": vic.csrf("/")})[0] == 403

    status, _, body = olive.get("/audit")
    assert status == 200
    rows = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r'<tr id="audit-\d+".*?</tr>', body.decode(), re.S)
    ]
    seen = [(who, where, what, on, outcome) for _, who, where, what, on, outcome, _ in rows]
    assert seen[:5] == [
        ("vic", "127.0.0.1", "launch", "/batch/demo/launch", "refused"),
        ("vic", "127.0.0.1", "login", "", "ok"),
        ("olive", "127.0.0.1", "launch", "demo 2026-11-21", "ok"),
        ("olive", "127.0.0.1", "login", "", "ok"),
        ("olive", "127.0.0.1", "login", "", "failed"),
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", when) for when, *_ in rows)
    assert vic.get("/audit")[0] == 403
    assert Client(site.url).get("/audit")[0] == 303


def test_the_audit_page_pages_back_through_older_entries(project, site):
    import sqlite3

    conn = sqlite3.connect(project.ledger_path)
    with conn:
        conn.executemany(
            "INSERT INTO audit (at, who, address, action, target, outcome) "
            "VALUES (?, 'x', 'cli', ?, NULL, 'ok')",
            [(1_800_000_000 + i, f"entry{i}") for i in range(250)],
        )
    conn.close()
    olive = Client(site.url)
    assert olive.login(*OLIVE) == 303
    seen, path = [], "/audit"
    while path:
        body = olive.get(path)[2].decode()
        seen += re.findall(r"<td>(entry\d+)</td>", body)
        more = re.search(r'id="older" href="([^"]+)"', body)
        path = more.group(1).replace("&amp;", "&") if more else ""
    assert seen == [f"entry{i}" for i in reversed(range(250))]
