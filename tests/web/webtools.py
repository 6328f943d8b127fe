"""Helpers for the dashboard tests: a real server, a plain HTTP client, waiting for conditions."""

from __future__ import annotations

import http.cookiejar
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Project = Any  # tests/conftest.py's Project

# An operator and a viewer, as the tests log in.
OLIVE = ("olive", "operator-pass")
VIC = ("vic", "viewer-pass1")

# A batch of two steps, and the smallest one: one step that prints its name.
TWO_STEPS = """
    from overnight import Batch
    batch = Batch("demo")
    batch.command("extract", "echo extracting {date}")
    batch.command("load", "echo loading {date}")
"""
ONE_STEP = "from overnight import Batch\nbatch = Batch('demo')\nbatch.command('a', 'echo a')\n"


def add_user(project: Project, name: str, password: str, role: str = "viewer") -> None:
    result = subprocess.run(
        [sys.executable, "-m", "overnight", "user", "add", name, "--role", role, "--password-stdin"],
        cwd=project.root, env=project.env(), input=password + "\n", capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


class Server:
    """`python -m overnight web` in the project folder, on a free port; `args` go after
    `web` (--host, --certfile...); `tls`: the client's context for an HTTPS server."""

    def __init__(self, project: Project, log: Path, args: tuple[str, ...] = (),
                 tls: ssl.SSLContext | None = None, env: dict[str, str] | None = None) -> None:
        self.project = project
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "overnight", "web", "--port", str(self.port), *args],
                cwd=project.root, env=project.env(**(env or {})), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/states.css", timeout=5, context=tls).read()
                return
            except urllib.error.HTTPError:
                return  # it answers (a public server without users refuses everything)
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None


class Client:
    """Plain HTTP with a cookie jar and no redirect following: what a script would send."""

    def __init__(self, base: str, tls: ssl.SSLContext | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.base = base
        self.headers = headers or {}
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect(),
            urllib.request.HTTPSHandler(context=tls),
        )

    def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, Any, bytes]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=self.headers)
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path: str) -> tuple[int, Any, bytes]:
        return self.request("GET", path)

    def post(self, path: str, data: dict) -> tuple[int, Any, bytes]:
        return self.request("POST", path, data)

    def csrf(self, path: str = "/login") -> str:
        status, _, body = self.get(path)
        found = re.search(rb'name="csrf" value="([^"]+)"', body)
        assert found, (status, body[:500])
        return found.group(1).decode()

    def login(self, name: str, password: str) -> int:
        token = self.csrf("/login")
        status, _, _ = self.post("/login", {"csrf": token, "name": name, "password": password, "next": "/"})
        return status


def watch_console(page: Any) -> list[str]:
    """What the browser says in its console about `page` (CSP refusals land there)."""
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    return messages


def csp_refusals(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "Refused to" in m]


def colour(locator: Any, prop: str = "backgroundColor") -> str:
    return locator.evaluate(f"e => getComputedStyle(e)['{prop}']")


def rgb(hex_colour: str) -> str:
    """`#2f9e44` as the browser reports it: `rgb(47, 158, 68)`."""
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (0, 2, 4)))
