"""The night as its readers see it: typed views of runs, steps, attempts and launches.

`status`, `history`, `list`, every `--json`, the mailed report, backfill's digest and the
dashboard read these, never the ledger's rows: what a state means to a reader is decided
here once. In particular a launch recorded live whose runner is gone (nobody holds the
batch's lock) reads as crashed, and its steps as states.after_runner_died says, before
the next launch records it so (the same rule that launch applies): see liveness.py.

One module per kind of view, so that a command pays to define only the views it reads
(`status` imports run.py alone): run (one run, all about it), history (runs counted, the
scheduler's records), batches (`status` without a batch, `list`, the dashboard's first
page), grid (the dashboard's history grid). Each is built in a fixed number of queries
whatever the size of the run or the history (docs/performance.md).

The views are plain dataclasses without generated equality: each generated method (and
frozen's guarded __setattr__) costs time at import, on every command; readers never change
or compare views (compare `as_data`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any


def _fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A field named after a Python keyword ends in "_" (MarkView.from_); JSON says "from".
    return {name.rstrip("_"): value for name, value in pairs}


def as_data(view: Any) -> Any:
    """A view (or a list of views) as plain data for JSON."""
    if isinstance(view, list):
        return [as_data(v) for v in view]
    return asdict(view, dict_factory=_fields)


def to_json(view: Any) -> str:
    return json.dumps(as_data(view), indent=2) + "\n"
