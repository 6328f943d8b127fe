"""What a failed login costs, for a name that exists and for one that does not.

    python -m benchmarks.bench_login        (or in `python -m benchmarks`, with the extras)

Starts `overnight web` behind `--trusted-proxy 127.0.0.1` (so each try can come from its own
address, and the throttle stays out of the measurement), with `n` users made through the
ledger. Then times, interleaved, `n` wrong passwords for existing users (each once) and `n`
tries of names that do not exist, over HTTP. The figure that matters is the ratio of the
medians: 1.0 means the time of a refusal tells nothing about who exists (before the stand-in
hash it was about 0.03: ~1 ms against ~40 ms).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from benchmarks.bench_web import _free_port


def _make_users(root: Path, count: int) -> None:
    from overnight.ledger import Ledger
    from overnight.web.auth import hash_password

    (root / "overnight.toml").write_text('[overnight]\nstate_dir = "state"\ntimezone = "UTC"\n')
    ledger = Ledger.open(root / "state" / "ledger.db")
    hashed = hash_password("the-real-password")  # one hash for all: the salt does not matter here
    with ledger.transaction():
        for i in range(count):
            ledger.put_user(f"user{i}", hashed, "viewer")
    ledger.close()


def _try(base: str, name: str, address: str) -> float:
    page = urllib.request.Request(base + "/login", headers={"X-Forwarded-For": address})
    with urllib.request.urlopen(page, timeout=60) as r:
        cookie = r.headers["Set-Cookie"].split(";")[0]
        token = re.search(rb'name="csrf" value="([^"]+)"', r.read()).group(1).decode()
    body = urllib.parse.urlencode({"csrf": token, "name": name, "password": "a-wrong-password"}).encode()
    post = urllib.request.Request(base + "/login", data=body, method="POST",
                                  headers={"Cookie": cookie, "X-Forwarded-For": address})
    started = time.perf_counter()
    try:
        urllib.request.urlopen(post, timeout=60).read()
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code
        e.read()
    return time.perf_counter() - started


def run(reps: int = 5) -> dict:
    count = 20 * reps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _make_users(root, count)
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "overnight", "--config", str(root / "overnight.toml"), "web",
             "--port", str(port), "--trusted-proxy", "127.0.0.1"],
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/login", timeout=5).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("overnight web did not start") from None
                    time.sleep(0.05)
            known, unknown = [], []
            for i in range(count):  # interleaved: the machine's load falls on both alike
                known.append(_try(base, f"user{i}", f"10.1.{i // 250}.{i % 250}"))
                unknown.append(_try(base, f"nobody{i}", f"10.2.{i // 250}.{i % 250}"))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    k, u = statistics.median(known), statistics.median(unknown)
    return {"tries_each": count, "existing_name_median_ms": round(k * 1000, 1),
            "unknown_name_median_ms": round(u * 1000, 1), "unknown_over_existing": round(u / k, 2)}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
