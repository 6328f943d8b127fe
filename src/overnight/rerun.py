"""What `--rerun STEP... [--downstream]` runs again, said before anything runs.

One listing for every surface that runs steps again: the command line prints it (and a
terminal asks to confirm), the dashboard shows it before its re-run button does anything.
A step that is not idempotent may repeat what it did when it runs again (a load doubled,
a mail sent twice): the listing names those apart.

The steps come from the batch module (the command line: batch.Step) or from the ledger
(the dashboard: readmodel.run.StepView); anything with `name`, `after` and `idempotent`,
in declaration order, will do. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from overnight.batch import dependents_of, with_downstream


class Declared(Protocol):
    """A step as the listing needs it."""

    @property
    def name(self) -> str: ...

    @property
    def after(self) -> Sequence[str]: ...

    @property
    def idempotent(self) -> bool: ...


@dataclass(frozen=True)
class RerunListing:
    named: list[str]            # the steps asked for
    steps: list[str]            # every step that runs again, in declaration order
    not_idempotent: list[str]   # those among them that may repeat what they did

    @property
    def added(self) -> list[str]:
        """The steps --downstream brings in beyond those named."""
        return [s for s in self.steps if s not in self.named]

    @property
    def needs_a_yes(self) -> bool:
        """Worth a person's confirmation: more than was named, or a step that may repeat
        what it did."""
        return bool(self.added or self.not_idempotent)

    def summary(self) -> str:
        count = len(self.steps)
        return f"{count} step{'s' * (count != 1)} to run again: {', '.join(self.steps)}"

    def warning(self) -> str | None:
        if not self.not_idempotent:
            return None
        names = ", ".join(self.not_idempotent)
        one = len(self.not_idempotent) == 1
        return (f"{names} {'is' if one else 'are'} not idempotent: running {'it' if one else 'them'} "
                "again may repeat what it did before (a load twice, a mail sent again)")


def rerun_listing(steps: Sequence[Declared], named: Sequence[str], downstream: bool) -> RerunListing:
    """What runs again when `named` are re-run (and, with `downstream`, what depends on
    them), in the order the steps are declared."""
    chosen = set(with_downstream(list(named), dependents_of(steps)) if downstream else named)
    order = [s.name for s in steps if s.name in chosen]
    idempotent = {s.name: s.idempotent for s in steps}
    return RerunListing(
        named=list(dict.fromkeys(named)),
        steps=order,
        not_idempotent=[name for name in order if not idempotent[name]],
    )
