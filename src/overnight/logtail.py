"""`overnight logs`: a step's log copied out in constant memory, its last lines, or followed
while the step runs. A 1 GB log costs the reader a 1 MB buffer, not 1 GB."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 1 << 20
BACK_CHUNK = 1 << 16


def tail_offset(fd: int, lines: int) -> int:
    """Where the last `lines` lines of the open file start (0: the whole file)."""
    size = os.fstat(fd).st_size
    if lines <= 0:
        return size
    end = size
    if size and os.pread(fd, 1, size - 1) == b"\n":
        end -= 1  # the final newline ends the last line, it does not start another
    seen = 0
    position = end
    while position > 0:
        start = max(0, position - BACK_CHUNK)
        block = os.pread(fd, position - start, start)
        index = len(block)
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            seen += 1
            if seen == lines:
                return start + index + 1
        position = start
    return 0


def copy_from(fd: int, offset: int, out: BinaryIO) -> int:
    """Copy the file from `offset` to its current end; returns the new offset."""
    while True:
        data = os.pread(fd, CHUNK, offset)
        if not data:
            return offset
        out.write(data)
        offset += len(data)


def show_log(
    path: str,
    out: BinaryIO,
    *,
    tail: int | None = None,
    follow: Callable[[], bool] | None = None,
    every: float = 0.2,
) -> None:
    """Copy the log at `path` to `out` (the last `tail` lines, when given). With `follow`,
    keep copying what is appended while `follow()` says the step still runs."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        offset = 0 if tail is None else tail_offset(fd, tail)
        offset = copy_from(fd, offset, out)
        out.flush()
        while follow is not None:
            running = follow()  # asked before the last read: nothing written before it ended is missed
            offset = copy_from(fd, offset, out)
            out.flush()
            if not running:
                return
            time.sleep(every)
    finally:
        os.close(fd)
