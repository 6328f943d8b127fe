"""Login throttling: after a handful of failures, each further try waits longer.

Failures are counted per key (the name tried, and the client's address), over a sliding
WINDOW. With FREE failures or fewer a try goes ahead; beyond that the next try must wait
2, 4, 8... seconds after the latest failure (at most LONGEST), and is refused (429) until
then. A try is counted as a failure when it is admitted, before the password is checked, so
that many tries sent at once cannot all slip through; a success takes it back.

Pure: every method takes the instant. One lock, because logins are checked in a thread pool.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

FREE = 5
WINDOW = 15 * 60.0
LONGEST = 15 * 60.0
# Keys remembered at most: an attacker making up names cannot grow the memory without end
# (the oldest keys are forgotten first; their address key still holds them back).
CAPACITY = 10_000


def address_key(host: str) -> str:
    """The throttle's key for a client address. An IPv6 client usually holds a whole /64
    (2**64 addresses): counted per address it could guess without end, so count the /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"address:{host}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"address:{address.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"address:{address}"


@dataclass
class _Key:
    failures: list[float] = field(default_factory=list)
    told: bool = False  # a refusal since the latest failure was already reported


@dataclass(frozen=True)
class Verdict:
    wait: float  # seconds before a try may be admitted; 0: admitted
    first_refusal: bool = False  # the first refusal since the latest failure (worth recording)

    @property
    def admitted(self) -> bool:
        return self.wait <= 0


class Throttle:
    def __init__(self, free: int = FREE, window: float = WINDOW, longest: float = LONGEST,
                 capacity: int = CAPACITY) -> None:
        self.free, self.window, self.longest, self.capacity = free, window, longest, capacity
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._lock = threading.Lock()

    def wait_for(self, key: str, now: float) -> float:
        """Seconds before a try under `key` may be admitted (0: now)."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        entry.failures = [t for t in entry.failures if now - t < self.window]
        extra = len(entry.failures) - self.free
        if extra < 0:
            return 0.0
        return max(0.0, entry.failures[-1] + min(2.0 ** (extra + 1), self.longest) - now)

    def admit(self, keys: Sequence[str], now: float) -> Verdict:
        """Admit a try under all of `keys` (counted as a failure until `forgive`), or say
        how long to wait."""
        with self._lock:
            wait = max((self.wait_for(k, now) for k in keys), default=0.0)
            if wait > 0:
                first = False
                for k in keys:
                    entry = self._keys.get(k)
                    if entry is not None and self.wait_for(k, now) > 0 and not entry.told:
                        entry.told = first = True
                return Verdict(wait, first)
            for k in keys:
                entry = self._keys.pop(k, None) or _Key()
                entry.failures.append(now)
                entry.told = False
                self._keys[k] = entry  # the most recent last
            while len(self._keys) > self.capacity:
                self._keys.popitem(last=False)
            return Verdict(0.0)

    def forgive(self, keys: Sequence[str], now: float, clear: Sequence[str] = ()) -> None:
        """The try admitted at `now` under `keys` succeeded: take it back, and forget the
        earlier failures of the keys in `clear` (the user who just proved who they are)."""
        with self._lock:
            for k in keys:
                entry = self._keys.get(k)
                if entry is not None and now in entry.failures:
                    entry.failures.remove(now)
            for k in clear:
                self._keys.pop(k, None)
