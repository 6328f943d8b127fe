"""Limits before work: who asks, and whether they may act, is known before a byte of a body
is read; a body is a small urlencoded form, and anything bigger is refused (413) without the
server's disk or memory growing, whether its size is declared or it streams in chunks."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from webtools import OLIVE, ONE_STEP, Client, add_user

from overnight.web.guards import MAX_BODY

MB = 1024 * 1024
TOTAL = 100 * MB


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class Watch:
    """The server's resident memory and its temporary folder, sampled while a body is sent."""

    def __init__(self, pid: int, tmp: Path) -> None:
        self.pid, self.tmp = pid, tmp
        self.rss0, self.rss_peak, self.tmp_peak = rss_kib(pid), 0, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.is_set():
            self.rss_peak = max(self.rss_peak, rss_kib(self.pid))
            self.tmp_peak = max(self.tmp_peak, folder_bytes(self.tmp))
            time.sleep(0.02)

    def stop(self) -> tuple[int, int]:
        self.done.set()
        self.thread.join()
        return (self.rss_peak - self.rss0) * 1024, self.tmp_peak


def send_huge(
    port: int, path: str, headers: dict[str, str], chunked: bool, cookie: str = ""
) -> tuple[int, int]:
    """POST up to TOTAL bytes; returns (the status answered, bytes the server let us send
    before it answered and closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if cookie:
        head.append(f"Cookie: {cookie}")
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {TOTAL}")
    answer = bytearray()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                answer.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    block = b"a=" + b"x" * (64 * 1024 - 2)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < TOTAL and not answer:
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
    except OSError:
        pass  # the server answered and closed: what we want
    reader.join(timeout=10)
    sock.close()
    assert answer, f"no answer after {sent} bytes"
    return int(answer.split(b" ", 2)[1]), sent


@pytest.fixture
def site(project, serve, tmp_path):
    project.write_batch("demo", ONE_STEP)
    add_user(project, *OLIVE, role="operator")
    spool = tmp_path / "server-tmp"
    spool.mkdir()
    server = serve(project, env={"TMPDIR": str(spool)})
    server.spool = spool
    Client(server.url).get("/login")  # warm: the first request's imports are not the body's cost
    return server


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MULTIPART = {"Content-Type": "multipart/form-data; boundary=xyz"}

# (who sends, where, which content type, declared or chunked, the answer)
CASES = {
    "anonymous multipart login, declared": ("anonymous", "/login", MULTIPART, False, 413),
    "anonymous multipart login, chunked": ("anonymous", "/login", MULTIPART, True, 415),
    "anonymous form login, chunked": ("anonymous", "/login", FORM, True, 413),
    "anonymous form launch, chunked": ("anonymous", "/batch/demo/launch", FORM, True, 401),
    "anonymous multipart launch, declared": ("anonymous", "/batch/demo/launch", MULTIPART, False, 413),
    "operator form launch, chunked": ("operator", "/batch/demo/launch", FORM, True, 413),
    "operator multipart mark, chunked": ("operator", "/run/demo/2026-11-20/mark", MULTIPART, True, 415),
    "anonymous form to a page, chunked": ("anonymous", "/", FORM, True, 405),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_huge_body_is_refused_without_the_server_growing(project, site, case):
    who, path, headers, chunked, expected = CASES[case]
    cookie = ""
    if who == "operator":
        olive = Client(site.url)
        assert olive.login(*OLIVE) == 303
        cookie = "; ".join(f"{c.name}={c.value}" for c in olive.jar)
    watch = Watch(site.proc.pid, site.spool)
    status, sent = send_huge(site.port, path, headers, chunked, cookie)
    grew, spooled = watch.stop()
    assert status == expected, (status, sent)
    assert sent < TOTAL  # it stopped us long before the end
    assert grew < 8 * MB, f"the server's memory grew by {grew / MB:.1f} MB"
    assert spooled < 64 * 1024, f"{spooled} bytes spooled to disk"
    assert folder_bytes(site.spool) == 0
    assert Client(site.url).get("/login")[0] == 200  # and it goes on serving


def test_a_body_just_under_the_limit_is_read_and_one_just_over_is_not(project, site):
    """The limit is MAX_BODY bytes exactly, for a login as for a button."""
    olive = Client(site.url)
    token = olive.csrf("/login")
    fits = {"csrf": token, "name": "olive", "password": OLIVE[1], "next": "/"}
    import urllib.parse

    padding = MAX_BODY - len(urllib.parse.urlencode({**fits, "pad": ""}))
    assert olive.post("/login", {**fits, "pad": "p" * padding})[0] == 303
    token = olive.csrf("/")
    over = {"csrf": token, "date": "2026-11-21"}
    padding = MAX_BODY + 1 - len(urllib.parse.urlencode({**over, "pad": ""}))
    assert olive.post("/batch/demo/launch", {**over, "pad": "p" * padding})[0] == 413
    assert project.query("SELECT count(*) FROM launches") == [(0,)]


def test_a_viewers_post_is_refused_before_its_body_is_read(project, site):
    """A refusal that does not wait for the body: the client is still sending when it comes."""
    add_user(project, "vic", "viewer-pass1")
    vic = Client(site.url)
    assert vic.login("vic", "viewer-pass1") == 303
    cookie = "; ".join(f"{c.name}={c.value}" for c in vic.jar)
    status, sent = send_huge(site.port, "/batch/demo/launch", FORM, True, cookie)
    assert status == 403 and sent < TOTAL


def test_no_temporary_file_is_left_anywhere_by_refused_bodies(project, site):
    before = set(os.listdir(site.spool))
    for chunked in (False, True):
        send_huge(site.port, "/login", MULTIPART, chunked)
    assert set(os.listdir(site.spool)) == before == set()
