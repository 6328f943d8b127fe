"""How fast the dashboard's two heaviest pages load, over HTTP, from a real server.

    python -m benchmarks.bench_web          (or: python benchmarks/bench_web.py)

Builds a ledger in a temporary folder, written through the ledger's own methods: a night
of 200 steps (batch `big`) and a year of nights of 50 steps each (batch `yearly`). Then
starts `overnight web` on a free port and times, as medians over `reps` requests after a
warm-up, the run page of the 200-step night and the history grid of 365 nights x 50 steps.
Target on CI-like machines: each under 300 ms over HTTP. For a person's view, the same
pages are also timed in headless Chromium to the `load` event (when it is installed).
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from overnight.ledger import Ledger
from overnight.states import RunState, StepState

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@dataclass
class FakeStep:
    """What ledger.sync_steps reads from a batch.Step."""

    name: str
    position: int
    after: tuple[str, ...]
    kind: str = "command"
    idempotent: bool = True

    def describe(self) -> str:
        return f"bin/work {self.name} {{date}}"


def _steps(count: int, width: int) -> list[FakeStep]:
    """`width` chains side by side, each step after the one `width` places before it."""
    return [
        FakeStep(f"step-{i:03d}", i, (f"step-{i - width:03d}",) if i >= width else ())
        for i in range(count)
    ]


def _record_night(ledger: Ledger, batch: str, day: str, steps: list[FakeStep], start: float,
                  fail: str | None = None) -> None:
    run = ledger.ensure_run(batch, day)
    ledger.sync_steps(run.id, steps)
    launch = ledger.start_launch(run.id, batch, trigger="schedule", launched_by="bench", options={})
    t = start
    for s in steps:
        ledger.set_step_state(run.id, s.name, StepState.PENDING, StepState.RUNNING, launch)
        took = 1.0 + (s.position * 7919 % 97) / 10
        number = ledger.start_attempt(run.id, s.name, 1, launch, f"/nonexistent/{s.name}.1.log", t)
        state = StepState.FAILED if s.name == fail else StepState.SUCCEEDED
        ledger.finish_attempt(number, state, t + took, 0 if state is StepState.SUCCEEDED else 1, None)
        ledger.set_step_state(run.id, s.name, StepState.RUNNING, state, launch)
        t += took / 4
    ledger.end_launch(launch, run.id, RunState.FAILED if fail else RunState.SUCCEEDED, None)


def build(root: Path) -> None:
    (root / "overnight.toml").write_text('[overnight]\nstate_dir = "state"\ntimezone = "UTC"\n')
    ledger = Ledger.open(root / "state" / "ledger.db")
    with ledger.transaction():
        _record_night(ledger, "big", "2026-11-26", _steps(200, 4), time.time() - 3600)
    yearly = _steps(50, 2)
    last = date(2026, 11, 26)
    with ledger.transaction():
        for back in range(365):
            day = last - timedelta(days=back)
            fail = "step-020" if back % 17 == 0 else None
            _record_night(ledger, "yearly", day.isoformat(), yearly, time.time() - 86400 * back, fail)
    ledger.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
        assert r.status == 200
    return time.perf_counter() - started, len(body)


def _browser_times(pages: dict[str, str], reps: int) -> dict:
    """The same pages in headless Chromium, to the `load` event (parsing, layout, paint of
    the SVG included): what a person waits for. Skipped when Playwright or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright is not installed"}
    if not Path(CHROMIUM).exists():
        return {"skipped": f"{CHROMIUM} is not installed"}
    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for name, url in pages.items():
            if url.endswith("/live"):
                continue
            page.goto(url, wait_until="load")  # warm-up
            times = []
            for _ in range(reps):
                started = time.perf_counter()
                page.goto(url, wait_until="load")
                times.append(time.perf_counter() - started)
            out[name] = {"median_ms": round(statistics.median(times) * 1000, 1)}
        browser.close()
    return out


def run(reps: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        built = time.perf_counter()
        build(root)
        build_s = time.perf_counter() - built
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "overnight", "--config", str(root / "overnight.toml"), "web",
             "--port", str(port)],
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    _get(base + "/login")
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("overnight web did not start") from None
                    time.sleep(0.05)
            pages = {
                "run_page_200_steps": base + "/run/big/2026-11-26",
                "run_live_json_200_steps": base + "/run/big/2026-11-26/live",
                "history_365_nights_x_50_steps": base + "/history/yearly?nights=365",
            }
            result: dict = {"reps": reps, "build_ledger_s": round(build_s, 2)}
            for name, url in pages.items():
                _get(url)  # warm-up: templates compiled, page cache filled
                times, size = zip(*(_get(url) for _ in range(reps)), strict=True)
                result[name] = {"median_ms": round(statistics.median(times) * 1000, 1),
                                "max_ms": round(max(times) * 1000, 1), "bytes": size[0]}
            result["browser"] = _browser_times(pages, reps)
            return result
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
