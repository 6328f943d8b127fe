"""A few tries at talking to another server (the mail server, a webhook receiver).

Reports must never hold a night up for long: the pauses are fixed and few, an optional
deadline bounds the whole, and a failure that another try would not fix ends it at once.
(tenacity does this too, but importing it costs about 40 ms, as much as the rest of a
report; these twenty lines cost nothing.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class TryAgain(Exception):
    """Raised by an attempt: this may pass (a refused connection, a 5xx); the message says what."""


class GiveUp(Exception):
    """Raised by an attempt: another try would fail the same way (a refused login, a 4xx,
    a server that hung once); the message says what."""


@dataclass(frozen=True)
class Tried:
    ok: bool
    tries: int
    reason: str | None  # why it did not succeed (the last failure), None when it did


def with_retries(
    attempt: Callable[[float | None], None],
    pauses: Sequence[float],
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Tried:
    """Call `attempt(seconds_left)` until it returns: at most len(pauses) + 1 times, pausing
    between tries, never starting a try or a pause that would end past `deadline` (a
    `clock()` instant). `seconds_left` is None without a deadline."""
    tries = 0
    reason = "not tried"
    for pause in (*pauses, None):
        left = None if deadline is None else deadline - clock()
        if left is not None and left <= 0:
            break
        tries += 1
        try:
            attempt(left)
            return Tried(True, tries, None)
        except GiveUp as e:
            return Tried(False, tries, str(e))
        except TryAgain as e:
            reason = str(e)
        if pause is None or (deadline is not None and deadline - clock() <= pause):
            break
        sleep(pause)
    return Tried(False, tries, reason)
