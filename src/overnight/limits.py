"""What the runner can honour, checked when a batch is loaded, not in the middle of a night.

Each check raises DefinitionError with one line saying what is wrong and where (``where``
names the step and the option). Used by the batch module API (batch.py) on every option.
"""

from __future__ import annotations

from collections.abc import Iterable

from overnight.errors import DefinitionError

# The longest single wait of the runner's event loop: epoll takes milliseconds in a signed
# 32-bit int (2**31 - 1 ms, 24.8 days). A timeout or a retry delay must fit in it.
MAX_WAIT_SECONDS = (2**31 - 1) // 1000
MAX_DURATION = 24 * 86400  # what a step option may say: 24 days, a round figure below that

MAX_RETRIES = 100


def check_duration(seconds: float, where: str) -> float:
    if seconds > MAX_DURATION:
        raise DefinitionError(
            f"{where}: {seconds / 86400:.6g} days is longer than the runner can wait "
            f"(at most {MAX_DURATION // 86400} days)"
        )
    return seconds


def check_retries(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise DefinitionError(f"{where}: retries must be a whole number from 0 to {MAX_RETRIES}")
    return value


def check_text(text: str, where: str) -> str:
    """No NUL: the kernel cannot pass it in an argument, a path or an environment string."""
    if "\0" in text:
        raise DefinitionError(f"{where} contains a NUL character, which no program can be given")
    return text


def check_command(command: str | Iterable[str], where: str) -> None:
    parts = [command] if isinstance(command, str) else list(command)
    for part in parts:
        check_text(part, where)


def check_env(env: dict[str, str], where: str) -> dict[str, str]:
    """Names a process environment can carry: not empty, no '=', no NUL; values no NUL."""
    for key, value in env.items():
        if not key:
            raise DefinitionError(f"{where}: env has an empty variable name")
        if "=" in key:
            raise DefinitionError(f"{where}: env variable name {key!r} contains '=', which cannot be set")
        check_text(key, f"{where}: env variable name {key!r}")
        check_text(value, f"{where}: env {key}")
    return env
