"""The dashboard's users (a name, a password hash and a role) and their sessions.

A session is a row here, not only a signed cookie, so that it can be ended from outside:
logging out ends one; a new password or role (`overnight user add` on an existing name)
and removing the user end all of that user's sessions at once.
"""

from __future__ import annotations

import time

from overnight.ledger.database import Database
from overnight.ledger.rows import SELECT_SESSION, SELECT_USER, SessionRow, UserRow


class UserRecords(Database):
    def users(self) -> list[UserRow]:
        return self._all(UserRow._make, f"{SELECT_USER} ORDER BY name")

    def get_user(self, name: str) -> UserRow | None:
        return self._one(UserRow._make, f"{SELECT_USER} WHERE name = ?", (name,))

    def count_users(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM users").fetchone()[0])

    def put_user(self, name: str, password_hash: str, role: str) -> bool:
        """Add a user, or replace its password and role and end its sessions; True if it
        is new. In a transaction."""
        new = self.get_user(name) is None
        self._write(
            "INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, "
            "role = excluded.role",
            (name, password_hash, role, time.time()),
        )
        self.end_sessions_of(name)
        return new

    def remove_user(self, name: str) -> bool:
        """Remove a user and end its sessions. In a transaction."""
        self.end_sessions_of(name)
        return self._write("DELETE FROM users WHERE name = ?", (name,)).rowcount == 1

    # -- sessions ----------------------------------------------------------------------------

    def start_session(self, id_hash: str, user: str, now: float) -> None:
        """In a transaction."""
        self._write(
            "INSERT INTO sessions (id_hash, user, created_at, seen_at) VALUES (?, ?, ?, ?)",
            (id_hash, user, now, now),
        )

    def get_session(self, id_hash: str) -> SessionRow | None:
        return self._one(SessionRow._make, f"{SELECT_SESSION} WHERE id_hash = ?", (id_hash,))

    def touch_session(self, id_hash: str, now: float) -> None:
        """In a transaction."""
        self._write("UPDATE sessions SET seen_at = ? WHERE id_hash = ?", (now, id_hash))

    def end_session(self, id_hash: str) -> None:
        """In a transaction."""
        self._write("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))

    def end_sessions_of(self, user: str) -> int:
        """In a transaction; how many were ended."""
        return self._write("DELETE FROM sessions WHERE user = ?", (user,)).rowcount

    def forget_sessions(self, seen_before: float, created_before: float) -> int:
        """Drop the sessions idle since `seen_before` or older than `created_before`; in a
        transaction. They no longer let anyone in anyway: this only keeps the table small."""
        return self._write(
            "DELETE FROM sessions WHERE seen_at < ? OR created_at < ?", (seen_before, created_before)
        ).rowcount

    def count_sessions(self, user: str | None = None) -> int:
        if user is None:
            return int(self.conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM sessions WHERE user = ?", (user,)).fetchone()[0])
