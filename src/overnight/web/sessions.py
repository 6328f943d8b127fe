"""What makes a dashboard session good: pure rules over a session's record and an instant.

The cookie carries only a random session id (signed, with the CSRF token and flash
messages); the ledger keeps the SHA-256 of that id with its user and times
(ledger/users.py). A session is good while its row exists, its user exists, it has been
used within IDLE and it is younger than LIFETIME. Logging out, a new password or role, and
removing the user delete rows, so a copied cookie stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets

from overnight.ledger import SessionRow

IDLE = 12 * 3600  # a session unused this long has ended (a page left open keeps it alive)
LIFETIME = 14 * 86400  # and none lasts longer than this, used or not
# `seen_at` is written at most this often: a page polling every second costs one write a
# minute, not one a second, against a ledger the runners are writing to.
TOUCH_EVERY = 60.0


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def hash_id(session_id: str) -> str:
    """What the ledger stores: a copy of the ledger gives nobody a working cookie."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def alive(session: SessionRow, now: float) -> bool:
    return now - session.seen_at <= IDLE and now - session.created_at <= LIFETIME


def needs_touch(session: SessionRow, now: float) -> bool:
    return now - session.seen_at >= TOUCH_EVERY


def forget_before(now: float) -> tuple[float, float]:
    """`(seen_before, created_before)` of the sessions that can no longer be good."""
    return now - IDLE, now - LIFETIME
