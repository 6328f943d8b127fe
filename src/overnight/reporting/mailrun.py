"""`overnight mail-run`: run any command and mail what it printed (as rattail's
`run-n-mail --keep-exit-code` does), for the odd job that is not part of a batch.

The output goes to a temporary file as it comes, never into memory: a command that prints
gigabytes costs disk for as long as it runs, and the mail holds its head and its tail.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import BinaryIO

from overnight.durations import format_duration
from overnight.reporting.mailer import new_message

# Past this much output, the mail keeps the head and the tail: the end is where errors are.
MAX_OUTPUT = 2 * 1024 * 1024
CHUNK = 65536


class Output:
    """What the command printed, kept in a temporary file (deleted when closed)."""

    def __init__(self) -> None:
        self.file: BinaryIO = tempfile.TemporaryFile(prefix="overnight-mail-run-")
        self.size = 0
        self.blank = True  # nothing but whitespace so far

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.size += len(chunk)
        if self.blank and chunk.strip():
            self.blank = False

    def read(self, start: int, length: int) -> bytes:
        self.file.seek(start)
        return self.file.read(length)

    def text(self) -> str:
        """All of it, or its head and tail when it is longer than MAX_OUTPUT."""
        if self.size <= MAX_OUTPUT:
            return self.read(0, self.size).decode("utf-8", "replace")
        half = MAX_OUTPUT // 2
        head = self.read(0, half).decode("utf-8", "replace")
        tail = self.read(self.size - half, half).decode("utf-8", "replace")
        return f"{head}\n[... {self.size - MAX_OUTPUT} bytes left out ...]\n{tail}"

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class Finished:
    command: list[str]
    output: Output
    exit_code: int
    started: float
    took: float


def run_command(command: list[str], echo: bool) -> Finished:
    """Run `command` with stdout and stderr merged; `echo` copies its output to ours."""
    started = time.time()
    t0 = time.monotonic()
    output = Output()
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    except OSError as e:
        output.write(f"overnight mail-run: cannot run {command[0]}: {e.strerror or e}\n".encode())
        return Finished(command, output, 127 if isinstance(e, FileNotFoundError) else 126,
                        started, time.monotonic() - t0)
    assert proc.stdout is not None
    with proc:
        while chunk := proc.stdout.read1(CHUNK):
            output.write(chunk)
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    code = proc.returncode
    if code < 0:  # killed by a signal: say so the way a shell would
        code = 128 - code
    return Finished(command, output, code, started, time.monotonic() - t0)


def build_message(subject: str, done: Finished) -> EmailMessage:
    text = done.output.text()
    status = "succeeded" if done.exit_code == 0 else "failed"
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(done.started))
    header = (
        f"Command:   {shlex.join(done.command)}\n"
        f"Host:      {socket.gethostname()}\n"
        f"Started:   {started}\n"
        f"Run time:  {format_duration(done.took)}\n"
        f"Exit code: {done.exit_code} ({status})\n"
    )
    msg = new_message(subject if done.exit_code == 0 else f"{subject} [exit code {done.exit_code}]")
    msg.set_content(header + "\n" + (text if text.strip() else "(no output)\n"))
    return msg
