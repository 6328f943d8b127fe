"""The one event loop (runner, scheduler daemon, remote worker): real signals, real
processes, a real thread. No sleeps decide anything: each wait ends on an event."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from overnight.loop import EventLoop


def test_a_signal_ends_a_long_wait_and_its_handler_only_notes_it() -> None:
    loop = EventLoop()
    seen: list[int] = []
    before = signal.getsignal(signal.SIGUSR2)
    try:
        loop.add_signal_handler(signal.SIGUSR2, seen.append)
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        started = time.monotonic()
        while not seen:
            loop.run_once(max_wait=60)
        assert seen == [signal.SIGUSR2]
        assert time.monotonic() - started < 30  # the signal ended it, not the 60 s bound
    finally:
        loop.close()
    assert signal.getsignal(signal.SIGUSR2) == before  # close() gives the signal back


def test_a_child_exit_wakes_the_loop_through_its_pidfd() -> None:
    loop = EventLoop()
    child = subprocess.Popen(["sh", "-c", "exit 3"])
    pidfd = os.pidfd_open(child.pid)
    ended: list[int] = []
    try:
        loop.add_reader(pidfd, lambda: ended.append(child.wait()))
        while not ended:
            loop.run_once(max_wait=60)
        assert ended == [3]
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        loop.close()


def test_a_result_from_another_thread_runs_on_the_loops_thread() -> None:
    loop = EventLoop()
    ran_on: list[str] = []
    try:
        worker = threading.Thread(
            target=lambda: loop.call_soon_threadsafe(lambda: ran_on.append(threading.current_thread().name)),
        )
        worker.start()
        while not ran_on:
            loop.run_once(max_wait=60)
        worker.join()
        assert ran_on == [threading.main_thread().name]
    finally:
        loop.close()


def test_timers_fire_in_order_and_cancelled_or_daemon_ones_keep_nothing_waiting() -> None:
    loop = EventLoop()
    fired: list[str] = []
    try:
        loop.call_later(0.02, lambda: fired.append("second"))
        loop.call_later(0.0, lambda: fired.append("first"))
        loop.call_later(0.0, lambda: fired.append("never")).cancel()
        loop.call_later(3600, lambda: fired.append("display"), daemon=True)
        while loop.has_timers():
            loop.run_once()
        assert fired == ["first", "second"]
    finally:
        loop.close()


def test_max_wait_bounds_a_wait_with_nothing_to_wait_for() -> None:
    loop = EventLoop()
    try:
        loop.run_once(max_wait=0.0)  # returns: nothing registered, nothing due
        later = loop.call_later(3600, lambda: None)
        loop.run_once(max_wait=0.0)  # the far timer does not stretch the bound
        later.cancel()
    finally:
        loop.close()
