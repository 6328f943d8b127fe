"""Wait steps as a batch declares them: `batch.wait(name, check=..., every=, timeout=, ...)`.

A wait step stands for a condition outside the night (a sync queue drained, a file
arrived, another system done): its check, a command or a callable, is run every `every`
until it succeeds (the step succeeds and releases what follows) or until `timeout` (the
step is timed_out, or skipped with `on_timeout="skip"`). Pure: no I/O here; the runner
runs the checks (waitexecutor.py) and the planner says what each check's end means
(planner.after_check).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any, Literal, get_args

from overnight.durations import parse_duration
from overnight.errors import DefinitionError

OnTimeout = Literal["fail", "skip"]


@dataclass(frozen=True)
class WaitSpec:
    """How a wait step waits: seconds between checks, how long in all, before the first."""

    every: float
    timeout: float
    initial_delay: float = 0.0
    on_timeout: OnTimeout = "fail"

    def describe(self) -> str:
        from overnight.durations import format_duration

        first = f", first after {format_duration(self.initial_delay)}" if self.initial_delay else ""
        return f"every {format_duration(self.every)} for up to {format_duration(self.timeout)}{first}"


def wait_spec(
    where: str, every: object, timeout: object, initial_delay: object, on_timeout: object,
) -> WaitSpec:
    """Check a wait step's options as its author gave them, or raise DefinitionError."""
    spec_every = parse_duration(every, f"{where}: every")
    spec_timeout = parse_duration(timeout, f"{where}: timeout")
    if spec_every <= 0:
        raise DefinitionError(f"{where}: every must be more than zero")
    if spec_timeout <= 0:
        raise DefinitionError(f"{where}: timeout must be more than zero")
    delay = 0.0 if initial_delay is None else parse_duration(initial_delay, f"{where}: initial_delay")
    if on_timeout not in get_args(OnTimeout):
        raise DefinitionError(f"{where}: on_timeout = {on_timeout!r} is not one of fail, skip")
    return WaitSpec(spec_every, spec_timeout, delay, on_timeout)  # type: ignore[arg-type]


def callable_check(check: Callable[..., Any]) -> Callable[..., None]:
    """The check as a step function: a true result is "ready"; anything else (False, None,
    an exception) is "not yet", said in the log without a traceback for a plain no."""

    @wraps(check)
    def run_check(ctx: Any) -> None:
        result = check(ctx)
        if not result:
            print(f"not yet: the check returned {result!r}", flush=True)
            sys.exit(1)

    return run_check


def check_kind(where: str, check: object) -> str | tuple[str, ...] | Callable[..., Any]:
    """The check as a command (a string for the shell, an argv tuple) or a callable."""
    if callable(check):
        return check
    if isinstance(check, str) and check.strip():
        return check
    if isinstance(check, Sequence) and not isinstance(check, str) and check and all(
        isinstance(part, str) for part in check
    ):
        return tuple(check)
    raise DefinitionError(
        f"{where}: check must be a command (a string or a list of strings) or a function"
    )
