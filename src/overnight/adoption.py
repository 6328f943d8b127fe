"""Adopting work done before overnight: a step with `adopt_if=` (an imported Luigi task's
complete()) whose work for the run's date was already done is recorded `adopted`, not run.

The rule (`adoptable`, pure, the planner's): a step is asked only while the ledger has no
word of its own on it for that run: it has never had an attempt, no operator has marked
it, and this launch does not run it again on purpose (--rerun, --fresh). Once adopted (or
run, or marked), the ledger is the record: a resume skips an adopted step like a
succeeded one, `--rerun` runs it, `mark --redo` makes it run.

The question (`ask_adopt`, the runner's, when the step's turn comes, after its `when=`):
the predicate is called for the run's date in the step's working folder (Luigi's outputs
are paths relative to where Luigi ran); an answer that cannot be had (it raises) is not a
yes: the step runs.
"""

from __future__ import annotations

import os
from collections.abc import Container, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from overnight.batch import Step
from overnight.states import StepState

if TYPE_CHECKING:
    from overnight.planner import Gate

ADOPTED_NOTE = "adopted: its work for this date was done before overnight (adopt_if)"
ADOPTED_SAYS = "done before overnight: Luigi says it is complete"


def adoptable(
    steps: Sequence[Step], attempts: Mapping[str, int], marked: Container[str], rerun: Container[str],
    fresh: bool,
) -> frozenset[str]:
    """The steps this launch may adopt (see the module): a predicate, no attempt on record,
    no mark, and not run again on purpose by this launch."""
    if fresh:
        return frozenset()
    return frozenset(
        s.name for s in steps
        if s.adopt_if is not None and not attempts.get(s.name) and s.name not in marked
        and s.name not in rerun
    )


def ask_adopt(step: Step, run_date: date, workdir: Path, allowed: Container[str]) -> Gate | None:
    """Whether the step's work for `run_date` was done before overnight: a Gate that records
    it adopted, or None (it runs)."""
    if step.adopt_if is None or step.name not in allowed:
        return None
    folder = workdir / step.cwd if step.cwd else workdir
    here = os.getcwd()
    try:
        os.chdir(folder)
        done = bool(step.adopt_if(run_date))
    except BaseException:  # noqa: BLE001 - no answer is not a yes: the step runs
        # sys.exit() or a KeyboardInterrupt raised by the question itself is no answer
        # either: it must not end the night (as for when=, planner.check_when).
        done = False
    finally:
        os.chdir(here)
    if not done:
        return None
    from overnight.planner import Gate

    return Gate(StepState.ADOPTED, ADOPTED_NOTE, ADOPTED_SAYS, "adopt")
