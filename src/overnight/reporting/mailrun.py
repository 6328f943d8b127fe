"""`overnight mail-run`: run any command and mail what it printed (as rattail's
`run-n-mail --keep-exit-code` does), for the odd job that is not part of a batch."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage

from overnight.durations import format_duration
from overnight.reporting.mailer import new_message

# Past this much output, the mail keeps the head and the tail: the end is where errors are.
MAX_OUTPUT = 2 * 1024 * 1024


@dataclass(frozen=True)
class Finished:
    command: list[str]
    output: bytes
    exit_code: int
    started: float
    took: float


def run_command(command: list[str], echo: bool) -> Finished:
    """Run `command` with stdout and stderr merged; `echo` copies its output to ours."""
    started = time.time()
    t0 = time.monotonic()
    chunks: list[bytes] = []
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    except OSError as e:
        text = f"overnight mail-run: cannot run {command[0]}: {e.strerror or e}\n".encode()
        return Finished(command, text, 127 if isinstance(e, FileNotFoundError) else 126,
                        started, time.monotonic() - t0)
    assert proc.stdout is not None
    with proc:
        while chunk := proc.stdout.read1(65536):
            chunks.append(chunk)
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    code = proc.returncode
    if code < 0:  # killed by a signal: say so the way a shell would
        code = 128 - code
    return Finished(command, b"".join(chunks), code, started, time.monotonic() - t0)


def build_message(subject: str, done: Finished) -> EmailMessage:
    text = done.output.decode("utf-8", "replace")
    if len(done.output) > MAX_OUTPUT:
        half = MAX_OUTPUT // 2
        head = done.output[:half].decode("utf-8", "replace")
        rest = done.output[-half:].decode("utf-8", "replace")
        text = f"{head}\n[... {len(done.output) - MAX_OUTPUT} bytes left out ...]\n{rest}"
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
