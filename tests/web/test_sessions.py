"""Sessions live in the ledger: a cookie copied before a logout, a new password, a new role
or the user's removal no longer works after it, and a session left idle ends. Each case
replays the captured cookie the way an attacker would, and tries to launch with it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from webtools import OLIVE, Client, add_user

from overnight.web import sessions

# (The `site` fixture has a viewer too: olive's removal leaves a user, so pages need a login.)


def launches(project) -> int:
    return project.query("SELECT count(*) FROM launches")[0][0]


def replay(site, stolen: Client) -> Client:
    """A fresh client holding a copy of `stolen`'s cookies, as an attacker would."""
    thief = Client(site.url)
    for cookie in stolen.jar:
        thief.jar.set_cookie(cookie)
    return thief


def try_to_launch(client: Client, token: str) -> int:
    return client.post("/batch/demo/launch", {"date": "2026-11-21", "csrf": token})[0]


def change_password(project, name: str, password: str, role: str = "operator") -> None:
    add_user(project, name, password, role=role)


# Each way a session must end, done from where an operator would do it.
ENDINGS = {
    "logout": lambda project, olive, token: olive.post("/logout", {"csrf": token}),
    "a new password": lambda project, olive, token: change_password(project, "olive", "a-new-password"),
    "a new role": lambda project, olive, token: change_password(project, "olive", OLIVE[1], "viewer"),
    "removal": lambda project, olive, token: project.run("user", "remove", "olive"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_cookie_copied_before_the_session_ended_is_refused_after(project, site, ending):
    olive = Client(site.url)
    assert olive.login(*OLIVE) == 303
    token = olive.csrf("/")
    thief = replay(site, olive)
    assert thief.get("/")[0] == 200  # the copy works while the session does

    ENDINGS[ending](project, olive, token)

    assert thief.get("/")[0] == 303  # sent to log in
    assert thief.get("/run/demo/2026-11-20/live")[0] == 401
    assert try_to_launch(thief, token) == 401
    assert launches(project) == 1
    assert project.query("SELECT count(*) FROM sessions WHERE user = 'olive'") == [(0,)]


def test_a_session_left_idle_ends_and_one_in_use_does_not(project, site):
    """Times are moved in the ledger, not waited for: the rule is sessions.alive."""
    idle, busy = Client(site.url), Client(site.url)
    assert idle.login(*OLIVE) == 303 and busy.login(*OLIVE) == 303
    idle_token = idle.csrf("/")
    conn = sqlite3.connect(project.ledger_path)
    with conn:
        # Both were last seen just over the idle limit ago...
        conn.execute("UPDATE sessions SET seen_at = seen_at - ?", (sessions.IDLE + 60,))
    conn.close()
    # ...but one was seen since (it moves the clock of its row forward through its request).
    busy_hash = sessions.hash_id(_sid(busy))
    conn = sqlite3.connect(project.ledger_path)
    with conn:
        conn.execute("UPDATE sessions SET seen_at = seen_at + ? WHERE id_hash = ?",
                     (sessions.IDLE, busy_hash))
    conn.close()
    assert idle.get("/")[0] == 303
    assert try_to_launch(idle, idle_token) == 401
    assert busy.get("/")[0] == 200


def test_no_session_outlives_its_lifetime_however_busy(project, site):
    olive = Client(site.url)
    assert olive.login(*OLIVE) == 303
    conn = sqlite3.connect(project.ledger_path)
    with conn:
        conn.execute("UPDATE sessions SET created_at = created_at - ?", (sessions.LIFETIME + 1,))
    conn.close()
    assert olive.get("/")[0] == 303


def test_the_ledger_keeps_a_hash_of_the_session_id_never_the_id(project, site):
    olive = Client(site.url)
    assert olive.login(*OLIVE) == 303
    sid = _sid(olive)
    stored = project.query("SELECT id_hash FROM sessions")
    assert stored == [(sessions.hash_id(sid),)] and sid not in str(stored)


def test_logging_in_again_gives_a_new_session_and_the_old_one_still_ends_on_logout(project, site):
    first, second = Client(site.url), Client(site.url)
    assert first.login(*OLIVE) == 303 and second.login(*OLIVE) == 303
    assert _sid(first) != _sid(second)
    assert second.post("/logout", {"csrf": second.csrf("/")})[0] == 303
    assert first.get("/")[0] == 200  # logging out ends that session, not the user's others
    assert second.get("/")[0] == 303


def _sid(client: Client) -> str:
    """The session id inside the signed cookie (base64 JSON before the signature)."""
    import base64
    import json

    [cookie] = [c for c in client.jar if c.name == "overnight_session"]
    payload = cookie.value.split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def test_user_add_on_an_existing_name_says_its_sessions_ended(project, site):
    olive = Client(site.url)
    assert olive.login(*OLIVE) == 303
    result = subprocess.run(
        [sys.executable, "-m", "overnight", "user", "add", "olive", "--role", "operator", "--password-stdin"],
        cwd=project.root, env=project.env(), input="another-pass\n", capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "(1 dashboard session ended)" in result.stdout, result.stdout
