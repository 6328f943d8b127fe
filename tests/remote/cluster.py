"""Helpers for the remote tests: a real redis-server and real `overnight worker` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from clikit import wait_for

from overnight.config import CeleryConfig
from overnight.remote.celery_app import make_app

HEARTBEAT = "0.5"  # seconds: a dead worker is noticed after lost_after(0.5) = 2.5 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT,
        )
        wait_for(self.ping, 10, "redis-server to answer")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Worker:
    """`overnight worker` on one queue, in a folder of its own (its host)."""

    def __init__(self, home: Path, broker: str, queue: str, concurrency: int = 2) -> None:
        self.home = home
        self.queue = queue
        self.broker = broker
        self.concurrency = concurrency
        home.mkdir(parents=True, exist_ok=True)
        (home / "overnight.toml").write_text(
            f'[overnight]\nstate_dir = ".overnight"\n\n[celery]\nbroker = "{broker}"\n'
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        env = dict(os.environ)
        env.pop("OVERNIGHT_CONFIG", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "overnight", "worker", "--queue", self.queue,
             "--concurrency", str(self.concurrency), "--name", f"{self.queue}-{os.getpid()}@test",
             "--loglevel", "INFO"],
            cwd=self.home, env=env, stdin=subprocess.DEVNULL,
            stdout=open(self.home / "worker.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            wait_until_serving(self.broker, [self.queue])

    def kill(self) -> None:
        """kill -9 of the worker's main process, as a crash of its host would be."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def wait_until_serving(broker: str, queues: list[str], timeout: float = 60) -> None:
    app = make_app(CeleryConfig(broker=broker))

    def serving() -> bool:
        try:
            answer = app.control.inspect(timeout=0.5).active_queues() or {}
        except Exception:  # noqa: BLE001 - broker not there yet
            return False
        served = {q["name"] for qs in answer.values() for q in qs}
        return all(q in served for q in queues)

    try:
        wait_for(serving, timeout, f"workers on {queues}")
    finally:
        app.close()


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = Redis(root / "redis")
        self.workers: dict[str, Worker] = {}

    @property
    def broker(self) -> str:
        return self.redis.url

    def config(self, pickup_timeout: str = "20s", broker: str | None = None) -> str:
        return f'[celery]\nbroker = "{broker or self.broker}"\npickup_timeout = "{pickup_timeout}"\n'
