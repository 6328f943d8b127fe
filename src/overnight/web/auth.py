"""Dashboard users: scrypt password hashes, roles, the session secret and CSRF tokens.

Nothing here imports the web framework, so `overnight user add` stays light.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from overnight.errors import ConfigError

ROLES = ("viewer", "operator")

# scrypt at n=2**14, r=8 costs about 16 MiB and some tens of milliseconds: cheap for a login,
# dear for someone guessing passwords from a stolen ledger.
_N, _R, _P = 2**14, 8, 1
# Logins arrive on a pool of 40 threads: forty scrypts at once would take 640 MiB, and even
# one at a time, each thread's malloc arena keeps its 16 MiB after it (312 MB measured after
# a flood). So every scrypt runs on one thread of its own: 16 MiB at most, kept once, and a
# flood of logins queues rather than grows the server.
_SCRYPT_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrypt")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    secret = password.encode(errors="surrogatepass")
    return _SCRYPT_THREAD.submit(hashlib.scrypt, secret, salt=salt, n=n, r=r, p=p, dklen=dklen).result()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _N, _R, _P, 32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p), len(digest) // 2)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), digest)


_STAND_IN: str | None = None


def stand_in_hash() -> str:
    """A hash of a random password, made once: checked when the name is unknown."""
    global _STAND_IN
    if _STAND_IN is None:
        _STAND_IN = hash_password(secrets.token_urlsafe(16))
    return _STAND_IN


def check_login(password: str, stored: str | None) -> bool:
    """The password against a user's stored hash, or against a stand-in when there is no such
    user (`stored` None): either way one scrypt at the same cost, so the time a refusal
    takes does not tell who exists."""
    if stored is None:
        check_password(password, stand_in_hash())
        return False
    return check_password(password, stored)


def session_secret(path: Path) -> str:
    """The key that signs session cookies (at `path`): made once, readable by its owner only."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        # O_EXCL: when two servers start at once, one writes and the other reads its key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"{path}: cannot create the session secret ({e.strerror})") from None
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
