"""The one event loop: file descriptors, timers and signals, with no polling interval.

Every process of overnight that waits waits here: the runner sleeps in one ``select``
until a step's process exits (a pidfd becomes readable), a callable worker answers, a
timer is due, or a signal arrives; the scheduler daemon until its next fire or a signal;
a remote worker's pool process until its step exits, its heartbeat is due, or the
coordinator's stop request wakes it (SIGUSR2). Signal handlers only note the signal; the
wakeup fd ends the wait at once.
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import Any

Callback = Callable[[], None]


class Timer:
    __slots__ = ("when", "callback", "cancelled", "daemon")

    def __init__(self, when: float, callback: Callback, daemon: bool = False) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self.daemon = daemon  # a daemon timer (a display refresh) keeps nothing waiting

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._soon: deque[Callback] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeups)
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd: int | None = None

    # -- readers and timers --------------------------------------------------------------

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_later(self, delay: float, callback: Callback, daemon: bool = False) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), callback, daemon)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_soon(self, callback: Callback) -> None:
        """Run `callback` once the events of this turn have been handled."""
        self._soon.append(callback)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """For executors whose results arrive on another thread (e.g. a remote queue)."""
        self._soon.append(callback)
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wakeups already: the loop will run

    # -- signals -------------------------------------------------------------------------

    def add_signal_handler(self, signum: int, handler: Callable[[int], None]) -> None:
        """Python-level handlers only set flags; the wakeup fd interrupts the select."""
        if self._old_wakeup_fd is None:
            self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self._old_handlers[signum] = signal.signal(signum, lambda s, f: handler(s))

    def restore_signals(self) -> None:
        for signum, old in self._old_handlers.items():
            signal.signal(signum, old)
        self._old_handlers.clear()
        if self._old_wakeup_fd is not None:
            signal.set_wakeup_fd(self._old_wakeup_fd)
            self._old_wakeup_fd = None

    # -- running -------------------------------------------------------------------------

    def run_once(self, max_wait: float | None = None) -> None:
        """Wait for the next event (or due timer, or `max_wait` seconds) and handle
        everything that is ready."""
        timeout = max_wait
        if self._soon:
            timeout = 0.0
        elif self._timers:
            due = max(0.0, self._timers[0][0] - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        self._handle_ready(timeout)
        now = time.monotonic()
        if self._timers and self._timers[0][0] <= now:
            # Exits before timers. After a pause (SIGSTOP, a suspended VM) Python's select
            # sees the deadline passed and returns nothing without asking the kernel again
            # (PEP 475), so a step that exited long before its timeout would be timed out:
            # ask once more, without waiting, and handle what ended before firing anything.
            self._handle_ready(0.0)
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()

    def _handle_ready(self, timeout: float | None) -> None:
        for key, _ in self._selector.select(timeout):
            key.data()
        while self._soon:
            self._soon.popleft()()

    def has_timers(self) -> bool:
        """Whether a timer that matters (not cancelled, not a daemon) is still due."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return any(not t.cancelled and not t.daemon for _, _, t in self._timers)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.restore_signals()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
