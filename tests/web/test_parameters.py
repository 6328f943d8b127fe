"""Every path, query and form value a request can carry, thrown at every route with odd
values (other digits, huge numbers, NUL, empty, negative, encodings, junk cookies): the
answer is a 4xx or a page, never a 5xx, and the server logs no traceback."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections.abc import Iterator

import pytest
from clikit import Project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webtools import OLIVE, ONE_STEP, Server, add_user

DAY = "2026-11-20"

ODD = [
    "", "0", "-1", "+1", "1e3", "0x10", " 1", "1 ", "1_000", "²", "٣", "१२", "Ⅻ", "１",
    "9" * 30, "1" * 5000, "NaN", "inf", "\x00", "a\x00b", "%00", "\n", "\r\nX-Injected: 1",
    "..", "../..", "%2e%2e%2f", "\\..\\", "/", "//evil.example", "http://evil.example",
    "💥", "\u202e", "\ufeff", "\x7f", "2026-02-30", "2026-13-01", "2026-11-20\x00", "9999-99-99",
    "<script>alert(1)</script>", "'; DROP TABLE runs; --", "x" * 10_000, "%ff%fe", "\udcff",
]

# Slots whose value is only compared ("1" or not) or only ends up in a redirect, while the
# rest of their request starts a command (a second each): the worst of the odd values.
SHORT = ["", "\x00", "1" * 5000, "²", "\r\nX-Injected: 1", "\udcff", "//evil.example"]
FLAGS = {"downstream", "confirmed", "back"}

# Each route with its slots: {name} in the path, ?name= in the query, or a form field.
# Other slots get a value that works, so that the odd one is what the code meets.
GOOD = {
    "batch": "demo", "date": DAY, "step": "a", "attempt": "1", "offset": "0", "nights": "30",
    "before": "5", "next": "/", "from": "2026-11-01", "to": "2026-11-02", "action": "skip",
    "reason": "checked by hand", "downstream": "1", "confirmed": "1", "back": "/", "name": "olive",
    "password": "wrong-pass",
}
ROUTES = [
    ("GET", "/", [], []),
    ("GET", "/login", ["next"], []),
    ("GET", "/run/{batch}", [], []),
    ("GET", "/run/{batch}/{date}", [], []),
    ("GET", "/run/{batch}/{date}/live", [], []),
    ("GET", "/run/{batch}/{date}/log/{step}/{attempt}", [], []),
    ("GET", "/run/{batch}/{date}/log/{step}/{attempt}/tail", ["offset"], []),
    ("GET", "/history/{batch}", ["nights"], []),
    ("GET", "/audit", ["before"], []),
    ("GET", "/metrics", [], []),
    ("POST", "/batch/{batch}/launch", [], ["date"]),
    ("POST", "/batch/{batch}/resume", [], []),
    ("POST", "/batch/{batch}/cancel", [], ["back"]),
    ("POST", "/batch/{batch}/backfill", [], ["from", "to"]),
    ("POST", "/run/{batch}/{date}/rerun", [], ["step", "downstream", "confirmed"]),
    ("POST", "/run/{batch}/{date}/mark", [], ["step", "action", "reason", "downstream"]),
    ("POST", "/login", [], ["name", "password", "next"]),
    ("POST", "/logout", [], []),
]


def slots() -> Iterator[tuple[str, str, str]]:
    for method, path, query, form in ROUTES:
        for name in re.findall(r"{(\w+)}", path):
            yield method, path, name
        for name in query + form:
            yield method, path, name


SLOTS = list(slots())


class Site:
    """A server with one run, a working session of an operator and its CSRF token."""

    def __init__(self, root) -> None:
        self.project = Project(root)
        # The batch can no longer be imported when the values are thrown: a button that
        # gets through starts a command that stops at once, instead of a night.
        self.project.write_batch("demo", ONE_STEP)
        assert self.project.run("run", "demo", "--date", DAY).returncode == 0
        (root / "demo.py").write_text("this is not python(\n")
        add_user(self.project, *OLIVE, role="operator")
        self.server = Server(self.project, root / "web.log", ("--trusted-proxy", "127.0.0.1"))
        self.conn: http.client.HTTPConnection | None = None
        self.cookie = ""
        status, headers, _ = self.send("POST", "/login", {"name": OLIVE[0], "password": OLIVE[1],
                                                           "csrf": self.token()})
        assert status == 303, status
        self.cookie = self._cookie(headers) or self.cookie
        self.csrf = self.token("/")
        self.requests = 0

    def _cookie(self, headers) -> str:
        for key, value in headers:
            if key.lower() == "set-cookie" and value.startswith("overnight_session="):
                return value.split(";")[0]
        return ""

    def token(self, path: str = "/login") -> str:
        status, headers, body = self.send("GET", path)
        self.cookie = self._cookie(headers) or self.cookie
        return re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()

    def send(self, method: str, target: str, form: dict | None = None, cookie: str | None = None,
             address: str = "192.0.2.1") -> tuple[int, list, bytes]:
        body = urllib.parse.urlencode(form, errors="surrogatepass").encode() if form is not None else None
        headers = {"Cookie": self.cookie if cookie is None else cookie, "X-Forwarded-For": address}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for _ in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
            try:
                self.conn.request(method, target, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, response.getheaders(), data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
        raise AssertionError(f"no answer to {method} {target!r}")

    def throw(self, method: str, path: str, slot: str, value: str, cookie: str | None = None) -> int:
        """One request with `value` in `slot`; returns the status."""
        self.requests += 1
        values = {**GOOD, slot: value}
        def fill(m: re.Match) -> str:
            return urllib.parse.quote(values[m.group(1)], safe="", errors="surrogatepass")

        target = re.sub(r"{(\w+)}", fill, path)
        route = next(r for r in ROUTES if r[0] == method and r[1] == path)
        query = {name: values[name] for name in route[2]}
        if query:
            target += "?" + urllib.parse.urlencode(query, errors="surrogatepass")
        form = {name: values[name] for name in route[3]} if method == "POST" else None
        if form is not None:
            form["csrf"] = self.csrf
        # Each request from its own address: the login throttle is not what is tested here.
        status, _, body = self.send(method, target, form, cookie, address=f"10.{self.requests % 250}.0.1")
        assert status < 500, (method, target, form, status, body[:300])
        return status

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.stop()
        log = (self.server.log).read_text(errors="replace")
        assert "Traceback" not in log and "Exception" not in log, log[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("params"))
    yield site
    site.close()


@pytest.mark.parametrize(("method", "path", "slot"), SLOTS, ids=[f"{m} {p} {s}" for m, p, s in SLOTS])
def test_odd_values_in_every_slot_never_give_a_5xx(site, method, path, slot):
    statuses = {site.throw(method, path, slot, value) for value in (SHORT if slot in FLAGS else ODD)}
    assert statuses  # every value was answered (each checked < 500 in throw)


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(slot=st.sampled_from([s for s in SLOTS if s[0] == "GET"]), value=st.text(max_size=40))
def test_any_text_in_any_page_slot_never_gives_a_5xx(site, slot, value):
    site.throw(*slot, value)


JUNK_COOKIES = [
    "overnight_session=", "overnight_session=junk", "overnight_session=a.b.c",
    "overnight_session=" + "A" * 4000, "overnight_session=\"x\"", "=; ;;", "overnight_session=%00",
]


@pytest.mark.parametrize("cookie", JUNK_COOKIES)
def test_junk_cookies_are_a_stranger_not_an_error(site, cookie):
    for method, path, _, _ in ROUTES:
        status = site.throw(method, path, "batch", "demo", cookie=cookie)
        assert status in (200, 303, 401, 403, 404, 429), (method, path, status)


def test_every_route_and_every_value_the_dashboard_reads_is_thrown_at():
    """A route or a query/form value added later is in ROUTES, or this fails: the odd
    values above reach everything a request can carry."""
    from pathlib import Path

    from starlette.routing import Route

    import overnight.web
    from overnight.web.app import ROUTES as APP_ROUTES

    served = {(method, r.path) for r in APP_ROUTES if isinstance(r, Route)
              for method in r.methods - {"HEAD"} if not r.path.endswith(".css")}
    assert served == {(method, path) for method, path, _, _ in ROUTES}
    source = "".join(p.read_text() for p in Path(overnight.web.__file__).parent.glob("*.py"))
    read = set(re.findall(r'(?:query_params|form)\.get\("(\w+)"', source)) - {"csrf"}
    thrown = {name for _, _, query, form in ROUTES for name in query + form}
    assert read and read <= thrown, read - thrown
