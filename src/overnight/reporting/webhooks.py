"""POSTing a run's JSON summary to [[webhooks]] URLs (chat tools, monitoring).

Each hook gets at most its `timeout`, in total, retries included: a receiver that hangs
delays the end of the run by its timeout and no more. A refused connection or a 5xx answer
is retried (twice, after a short pause) while time is left; a timeout is not retried,
since a receiver that hung once would most likely hang again. The hooks are posted side
by side, so several slow receivers cost the longest timeout, not their sum.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from overnight.config import WebhookConfig
from overnight.reporting.retry import GiveUp, Tried, TryAgain, with_retries

RETRY_PAUSES = (0.5, 1.0)


@dataclass(frozen=True)
class Posted:
    hook: WebhookConfig
    sent: bool
    tries: int
    reason: str | None


def wanted(hook: WebhookConfig, batch: str, failed: bool) -> bool:
    if hook.batches is not None and batch not in hook.batches:
        return False
    return hook.when == "always" or failed


def post_all(hooks: list[WebhookConfig], payload: dict[str, Any]) -> list[Posted]:
    """Post `payload` to every hook at once; return when each has answered or run out of time."""
    body = json.dumps(payload).encode()
    results: dict[int, Posted] = {}
    threads = []
    for i, hook in enumerate(hooks):
        # Daemon threads: one stuck past its deadline must not keep the process alive.
        t = threading.Thread(target=lambda i=i, hook=hook: results.__setitem__(i, _post(hook, body)),
                             daemon=True, name=f"webhook-{i}")
        t.start()
        threads.append((i, hook, t, time.monotonic() + hook.timeout))
    out = []
    for i, hook, t, deadline in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 0.2)
        out.append(results.get(i) or Posted(hook, False, 1, f"no answer within {hook.timeout:g}s"))
    return out


def _post(hook: WebhookConfig, body: bytes) -> Posted:
    tried = post(hook.url, body, "application/json", hook.timeout, "the receiver")
    return Posted(hook, tried.ok, tried.tries, tried.reason)


def post(url: str, body: bytes, content_type: str, timeout: float, who: str) -> Tried:
    """POST `body` to `url`: a few tries within `timeout` seconds in all (RETRY_PAUSES);
    a 4xx or a receiver that hung is not tried again. Never raises. `who` names the other
    side in a failure ("the receiver answered 500 Internal Server Error")."""
    def attempt(left: float | None) -> None:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": content_type, "User-Agent": "overnight"},
        )
        try:
            with urllib.request.urlopen(request, timeout=left) as answer:
                answer.read(65536)
        except urllib.error.HTTPError as e:
            said = f"{who} answered {e.code} {e.reason}"
            # A 4xx: our request is wrong for it, and the same one again will not do better.
            raise (TryAgain(said) if e.code >= 500 else GiveUp(said)) from None
        except (urllib.error.URLError, OSError) as e:
            inner = getattr(e, "reason", e)
            if isinstance(e, TimeoutError) or isinstance(inner, TimeoutError):
                raise GiveUp(f"no answer within {timeout:g}s") from None
            raise TryAgain(f"cannot reach it: {getattr(inner, 'strerror', None) or inner}") from None

    return with_retries(attempt, RETRY_PAUSES, deadline=time.monotonic() + timeout)
