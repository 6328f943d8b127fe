"""A throwaway project folder and the real CLI in a real subprocess (see conftest.project)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from overnight.statefolder import StateFolder

OVERNIGHT = [sys.executable, "-m", "overnight"]

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 60.0, what: str = "") -> T:
    """Poll `condition` until it returns something true, and return that; fail the test
    with what was awaited when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Project:
    """A folder with an overnight.toml; batches are written into it by the tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.batches: dict[str, str] = {}
        self.extra_config = ""
        self.write_config()

    @property
    def state_dir(self) -> Path:
        return self.root / ".overnight"

    @property
    def ledger_path(self) -> Path:
        return StateFolder(self.state_dir).ledger

    def write_config(self, extra: str | None = None) -> None:
        if extra is not None:
            self.extra_config = textwrap.dedent(extra)
        lines = ['[overnight]', 'state_dir = ".overnight"', 'timezone = "UTC"', ""]
        for name, module in self.batches.items():
            lines += [f"[batches.{name}]", f'module = "{module}"', ""]
        (self.root / "overnight.toml").write_text("\n".join(lines) + "\n" + self.extra_config)

    def write_batch(self, name: str, source: str, config: bool = True) -> Path:
        """Write `name`.py (source is dedented) and list it in overnight.toml."""
        path = self.root / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        if config:
            self.batches[name] = f"{name}.py"
            self.write_config()
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("OVERNIGHT_CONFIG", None)
        env["OVERNIGHT_KILL_GRACE"] = env.get("OVERNIGHT_KILL_GRACE", "2")
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*OVERNIGHT, *args], cwd=self.root, env=self.env(**env), capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*OVERNIGHT, *args], cwd=self.root, env=self.env(**env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )

    def status(self, batch: str, *args: str) -> dict:
        result = self.run("status", batch, "--json", *args)
        assert result.returncode in (0, 1), result.stderr  # 1: the run shown did not succeed
        view = json.loads(result.stdout)
        assert result.returncode == (view["state"] in ("failed", "crashed", "cancelled")), view["state"]
        return view

    def states(self, batch: str, *args: str) -> dict[str, str]:
        return {s["name"]: s["state"] for s in self.status(batch, *args)["steps"]}

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(self.ledger_path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


class Daemon:
    """A running `overnight scheduler`, its stderr collected line by line."""

    def __init__(self, project, **env: str) -> None:
        self.proc = project.start("scheduler", **env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 30) -> str:
        wait_for(lambda: any(text in x for x in self.lines), timeout, what=f"{text!r} in {self.lines}")
        return next(x for x in self.lines if text in x)

    def cpu_ticks(self) -> int:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime: fields 14 and 15 of stat

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def skew_to(instant: datetime) -> str:
    """OVERNIGHT_CLOCK_SKEW that makes the daemon's clock read `instant` now."""
    return str(instant.timestamp() - time.time())


def deadline_in(seconds: float) -> datetime:
    """A deadline `seconds` from now, to the second and never on a whole minute: a deadline
    on the minute is written HH:MM (no seconds) by every reader, so a test that spells it
    HH:MM:SS would fail one run in sixty."""
    instant = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return instant + timedelta(seconds=1) if instant.second == 0 else instant
