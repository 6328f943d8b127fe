"""The dashboard's guards, over plain HTTP: what a script (or an attacker) would send."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from clikit import wait_for
from webtools import OLIVE, TWO_STEPS, VIC, Client, add_user, free_port


def launches(project) -> int:
    return project.query("SELECT count(*) FROM launches")[0][0]


# Every state-changing request the dashboard has, with otherwise valid fields.
POSTS = [
    ("/batch/demo/launch", {"date": "2026-11-21"}),
    ("/batch/demo/resume", {}),
    ("/batch/demo/cancel", {"back": "/"}),
    ("/batch/demo/backfill", {"from": "2026-11-01", "to": "2026-11-02"}),
    ("/run/demo/2026-11-20/rerun", {"step": "load"}),
    ("/run/demo/2026-11-20/mark", {"step": "load", "action": "skip", "reason": "x"}),
]


def test_anonymous_people_are_sent_to_log_in_and_cannot_post(project, site):
    """With users, pages redirect anonymous people to the login page, APIs say 401, and every
    POST is refused, even with the session's own CSRF token."""
    anon = Client(site.url)
    status, headers, _ = anon.get("/run/demo/2026-11-20")
    assert status == 303 and headers["location"].startswith("/login?next=")
    assert anon.get("/run/demo/2026-11-20/live")[0] == 401
    assert anon.get("/run/demo/2026-11-20/log/load/1/tail?offset=0")[0] == 401
    token = anon.csrf("/login")
    for path, data in POSTS:
        assert anon.post(path, {**data, "csrf": token})[0] in (401, 403), path
    assert launches(project) == 1
    assert project.query("SELECT count(*) FROM marks") == [(0,)]


def test_viewers_may_look_but_not_launch(project, site):
    """A viewer sees every page; every POST that changes something is 403."""
    vic = Client(site.url)
    assert vic.login(*VIC) == 303
    status, _, body = vic.get("/run/demo/2026-11-20")
    assert status == 200 and b"extract" in body
    assert b"Launch" not in vic.get("/")[2]
    token = vic.csrf("/")
    for path, data in POSTS:
        status, _, body = vic.post(path, {**data, "csrf": token})
        assert status == 403, (path, body)
    assert launches(project) == 1


def test_a_post_without_the_csrf_token_is_refused(project, site):
    """Even an operator's POST needs the session's token; with it the same POST works."""
    olive = Client(site.url)
    assert olive.login(*OLIVE) == 303
    launch = ("/batch/demo/launch", {"date": "2026-11-21"})
    assert olive.post(*launch)[0] == 403
    assert olive.post(launch[0], {**launch[1], "csrf": "forged"})[0] == 403
    other = Client(site.url)  # a token from someone else's session is no good either
    assert olive.post(launch[0], {**launch[1], "csrf": other.csrf("/login")})[0] == 403
    assert launches(project) == 1
    status, headers, _ = olive.post(launch[0], {**launch[1], "csrf": olive.csrf("/")})
    assert status == 303 and headers["location"] == "/run/demo/2026-11-21"
    wait_for(lambda: project.query(
        "SELECT l.state, l.trigger, l.launched_by FROM launches l JOIN runs r ON r.id = l.run_id "
        "WHERE r.date = '2026-11-21'") == [("succeeded", "web", "olive")], what="the web launch")


def test_logging_in_needs_the_token_and_the_right_password(site):
    c = Client(site.url)
    token = c.csrf("/login")
    assert c.post("/login", {"name": "olive", "password": OLIVE[1]})[0] == 403
    assert c.post("/login", {"csrf": token, "name": "olive", "password": "wrong"})[0] == 401
    assert c.post("/login", {"csrf": token, "name": "nobody", "password": "x"})[0] == 401
    status, headers, _ = c.post(
        "/login", {"csrf": token, "name": "olive", "password": OLIVE[1], "next": "//evil.example/"}
    )
    assert status == 303 and headers["location"] == "/"   # never redirected off the site
    assert c.get("/")[0] == 200


TRAVERSALS = [
    "/run/../../etc/passwd",
    "/run/demo/..%2f..%2fetc%2fpasswd",
    "/run/demo/%2e%2e%2f%2e%2e%2fetc",
    "/run/..%2fdemo/2026-11-20",
    "/run/demo/2026-11-20/log/..%2f..%2f..%2fledger.db/1",
    "/run/demo/2026-11-20/log/%2e%2e%2f%2e%2e%2fweb-secret/1",
    "/run/demo/2026-11-20/log/../../../etc/passwd/1",
    "/run/demo/2026-11-20/log/load/1/..%2f..%2f/tail",
    "/run/demo/2026-11-20/log/load/1/tail?offset=..%2f..%2f",
    "/run/demo/2026-11-20/log/load/..%2f1",
    "/run/demo/2026-11-20/log/nosuchstep/1",
    "/run/demo/2026-11-20/log/load/9",
    "/run/nosuchbatch/2026-11-20",
    "/history/..%2f..%2fetc",
    "/history/demo?nights=..%2f",
    "/static/../app.py",
    "/static/..%2fapp.py",
    "/static/%2e%2e/%2e%2e/states.py",
]


def test_names_with_dot_dot_or_unknown_names_give_404(project, site):
    """Logs are found through the ledger: no name from a request is ever a path. A name
    that is not found is a 404; a query value that is not a number, a 400."""
    olive = Client(site.url)
    assert olive.login(*OLIVE) == 303
    for path in TRAVERSALS:
        status, _, body = olive.get(path)
        assert status == (400 if "?" in path else 404), (path, status, body[:200])
        assert b"root:" not in body and b"SQLite" not in body
    token = olive.csrf("/")
    for path, data in [
        ("/batch/demo/launch", {"date": "../../etc"}),
        ("/batch/demo/launch", {"date": "%2e%2e%2f"}),
        ("/batch/..%2fdemo/launch", {"date": "2026-11-21"}),
        ("/run/demo/2026-11-20/rerun", {"step": "../load"}),
        ("/run/demo/2026-11-20/mark", {"step": "..%2fload", "action": "skip", "reason": "x"}),
        ("/run/demo/2026-11-20/mark", {"step": "load", "action": "../done", "reason": "x"}),
        ("/run/demo/..%2f2026-11-20/rerun", {"step": "load"}),
    ]:
        status, _, body = olive.post(path, {**data, "csrf": token})
        assert status == 404, (path, data, status, body[:200])
    assert launches(project) == 1
    # The real log, named properly, is served.
    status, _, body = olive.get("/run/demo/2026-11-20/log/load/1/tail?offset=0")
    assert status == 200 and body == b"loading 2026-11-20\n"
    status, headers, body = olive.get("/run/demo/2026-11-20/log/load/1/tail?offset=8")
    assert body == b"2026-11-20\n" and headers["X-Next-Offset"] == str(len(b"loading 2026-11-20\n"))


def test_a_removed_user_is_logged_out_at_once(project, site):
    vic = Client(site.url)
    assert vic.login(*VIC) == 303
    assert vic.get("/")[0] == 200
    assert project.run("user", "remove", "vic").returncode == 0
    assert vic.get("/")[0] == 303


def test_passwords_are_hashed_and_the_session_secret_is_private(project, site):
    [(stored,)] = project.query("SELECT password_hash FROM users WHERE name = 'olive'")
    assert OLIVE[1] not in stored and stored.startswith("scrypt$")
    [(other,)] = project.query("SELECT password_hash FROM users WHERE name = 'vic'")
    assert stored.split("$")[4] != other.split("$")[4]   # a salt of its own
    secret = project.state_dir / "web-secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_it_refuses_to_listen_beyond_loopback_without_users(project):
    """Exit 2 and one line, nothing served."""
    project.write_batch("demo", TWO_STEPS)
    result = project.run("web", "--host", "0.0.0.0", "--port", str(free_port()), timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no users" in result.stderr and "user add" in result.stderr


def test_with_a_user_it_may_listen_beyond_loopback(project):
    project.write_batch("demo", TWO_STEPS)
    add_user(project, *OLIVE, role="operator")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "overnight", "web", "--host", "0.0.0.0", "--port", str(port)],
        cwd=project.root, env=project.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        c = Client(f"http://127.0.0.1:{port}")

        def answers() -> bool:
            try:
                return c.get("/")[0] == 303
            except OSError:
                return False

        wait_for(answers, timeout=30, what="the server on 0.0.0.0")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_without_users_anyone_here_may_look_but_nobody_may_launch(project, serve):
    project.write_batch("demo", TWO_STEPS)
    assert project.run("run", "demo", "--date", "2026-11-20").returncode == 0
    server = serve(project)
    anon = Client(server.url)
    assert anon.get("/")[0] == 200
    assert anon.get("/run/demo/2026-11-20/live")[0] == 200
    status, _, body = anon.post("/batch/demo/launch", {"date": "2026-11-21", "csrf": anon.csrf("/login")})
    assert status == 403 and b"user add" in body
    assert launches(project) == 1


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["user", "add", "x1", "--password-stdin"], "short\n", "too short"),
        (["user", "add", "Bad Name", "--password-stdin"], "long enough pass\n", "not valid"),
        (["user", "remove", "nobody"], "", "no user 'nobody'"),
    ],
)
def test_user_commands_say_what_is_wrong_in_one_line(project, args, stdin, message):
    result = subprocess.run(
        [sys.executable, "-m", "overnight", *args], cwd=project.root, env=project.env(),
        input=stdin, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_user_list_shows_names_and_roles_never_hashes(project):
    add_user(project, *OLIVE, role="operator")
    add_user(project, *VIC)
    out = project.run("user", "list").stdout
    assert "olive" in out and "operator" in out and "vic" in out and "viewer" in out
    assert "scrypt" not in out
