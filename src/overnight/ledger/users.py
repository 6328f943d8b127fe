"""The dashboard's users: a name, a password hash and a role."""

from __future__ import annotations

import time

from overnight.ledger.database import Database
from overnight.ledger.rows import SELECT_USER, UserRow


class UserRecords(Database):
    def users(self) -> list[UserRow]:
        return self._all(UserRow._make, f"{SELECT_USER} ORDER BY name")

    def get_user(self, name: str) -> UserRow | None:
        return self._one(UserRow._make, f"{SELECT_USER} WHERE name = ?", (name,))

    def count_users(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM users").fetchone()[0])

    def put_user(self, name: str, password_hash: str, role: str) -> bool:
        """Add a user, or replace its password and role; True if it is new. In a transaction."""
        new = self.get_user(name) is None
        self._write(
            "INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, "
            "role = excluded.role",
            (name, password_hash, role, time.time()),
        )
        return new

    def remove_user(self, name: str) -> bool:
        return self._write("DELETE FROM users WHERE name = ?", (name,)).rowcount == 1
