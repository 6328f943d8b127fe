"""Errors a user can cause, each carrying the exit code the CLI turns it into.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; no traceback
is ever shown for one of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


class OvernightError(Exception):
    """A problem the user can fix; its message is one line that says what and where."""

    exit_code = 2


class DefinitionError(OvernightError):
    """A batch module that cannot be run: bad step, cycle, import failure."""


class ConfigError(OvernightError):
    """overnight.toml (or a command-line value) that is not valid."""


class LedgerError(OvernightError):
    """The ledger cannot be opened or written: permissions, disk full, corruption."""

    exit_code = 2


class AlreadyRunning(OvernightError):
    """Another live launch holds the batch."""

    exit_code = 3


class NotConfirmed(OvernightError):
    """A person at a terminal said no: nothing was done (as for a cancel)."""

    exit_code = 130


class InvalidTransition(RuntimeError):
    """A state change the transition table forbids: a bug, never a user's mistake."""


def shown(value: object, limit: int = 60, quote: bool = True) -> str:
    """A value the user typed, cut short for a message: a hostile 10,000-character name
    must not become a 10,000-character error line. Quoted with repr (which also shows
    control characters); with quote=False a short printable value is shown as it is."""
    if not quote and isinstance(value, str) and value.isprintable() and len(value) <= limit:
        return value
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(str(value))} characters)"


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """" (did you mean 'x'?)" when `word` looks like a typo of one of `choices`, else "".

    For the end of an error message about an unknown key, batch, step or option: a close
    spelling is the likeliest fix, and naming it saves a trip to the docs.
    """
    if not isinstance(word, str) or len(word) > 200:
        return ""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
