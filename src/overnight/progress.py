"""What the runner tells the person (or the cron mail) watching it.

Plain timestamped lines when stdout is not a terminal; colours and a live line of what is
running when it is. Rich is imported only in the second case: cron pays nothing for it.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any, TextIO

from overnight.commandline import CommandLine
from overnight.durations import format_duration
from overnight.states import StepState

if TYPE_CHECKING:
    from overnight.executor import Job, Outcome
    from overnight.launch import LaunchResult

_WORD = {
    StepState.SUCCEEDED: "ok",
    StepState.FAILED: "FAILED",
    StepState.TIMED_OUT: "TIMEOUT",
    StepState.CANCELLED: "cancelled",
    StepState.INTERRUPTED: "INTERRUPTED",
}


class Progress:
    """Plain lines, one per event, flushed at once (so `tail -f` of a cron log keeps up)."""

    tick_interval: float | None = None  # how often the runner should call tick()

    def tick(self) -> None:
        pass

    def __init__(
        self, out: TextIO | None = None, quiet: bool = False, *,
        command_line: CommandLine | None = None, batch_arg: str | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet
        self.batch = ""
        self.date: date | None = None
        self.numbers: dict[int, int] = {}
        # For the commands we tell the reader to type: how BATCH and the config are named.
        self.command_line = command_line or CommandLine()
        self.batch_arg = batch_arg

    def _line(self, text: str, style: str = "") -> None:
        try:
            self.out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.out.flush()
        except OSError:
            self._output_lost()

    def _output_lost(self) -> None:
        """stdout went away (`overnight run all | head`, a closed cron pipe, a full disk).

        The night matters more than its commentary, and the ledger has the record: send the
        rest, and Python's flush at exit, to /dev/null instead of dying of a broken pipe.
        """
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.out.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):
            self.out = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the launch

    # -- events ----------------------------------------------------------------------------

    def launch_started(
        self, *, batch: str, date: date, launch_id: int, total: int, to_run: int,
        crashed: list[tuple[str, int]], numbers: dict[int, int] | None = None,
    ) -> None:
        """`crashed`: (date, number) of each launch found dead; `numbers`: this run's
        launches by their number within the night, the number a person is shown."""
        self.batch, self.date, self.started = batch, date, time.monotonic()
        self.numbers = numbers or {}
        for day, number in crashed:
            self._line(f"launch {number} of {batch} for {day} died without finishing: marked crashed",
                       "yellow")
        already = total - to_run
        what = f"{to_run} of {total} steps to run" + (
            f", {already} done in earlier launches or left as they are" if already else ""
        )
        self._line(f"{batch} for {date.isoformat()}: launch {self._number(launch_id)}: {what}", "bold")

    def _number(self, launch_id: int | None) -> int | str:
        return self.numbers.get(launch_id or 0, "?")

    def kill_net(self, description: str) -> None:
        if not self.quiet:
            self._line(f"kill net: {description}", "dim")

    def leftovers_emptied(self, found: int) -> None:
        self._line(f"killed {found} process group(s) or process(es) a dead launch left running", "yellow")

    def sentinel_lost(self, what: str) -> None:
        self._line(what, "yellow")

    def launch_waiting(self, what: str) -> None:
        """The launch waits for other batches' runs (after= in overnight.toml)."""
        self._line(what, "yellow")

    def launch_blocked(self, why: str) -> None:
        self._line(f"BLOCKED  {self.batch}: {why}; its steps do not run (to start anyway: --ignore-after)",
                   "bold red")

    def step_done_before(self, name: str, state: StepState, launch_id: int | None) -> None:
        if self.quiet:
            return
        by = f" in launch {self._number(launch_id)}" if launch_id else ""
        self._line(f"skip     {name} ({state}{by})", "dim")

    def step_reattached(self, job: Job) -> None:
        self._line(f"attach   {job.step.name}: still on queue {job.step.queue} "
                   f"from launch {self._number(job.launch_id)}")

    def step_held(self, name: str, batch: str, run_date: date) -> None:
        redo = self.command_line.mark_hint(self.batch_arg or batch, name, "redo", run_date.isoformat())
        self._line(
            f"HELD     {name}: not idempotent, and its last attempt did not end cleanly (a crash, "
            f"a cancel, a timeout); check what it did, then `{redo}` to run it again "
            f"(or --done if it finished)",
            "bold red",
        )

    def step_started(self, job: Job) -> None:
        if self.quiet:
            return
        if job.step.wait is not None:
            self._line(f"wait     {job.step.name}: check {job.step.wait.describe()}")
            return
        self._line(f"start    {job.step.name}" + (f" (attempt {job.number})" if job.number > 1 else ""))

    def step_waiting(self, name: str, pool: str, held_by: list[str]) -> None:
        """A ready step that waits for units of a full pool (it holds no worker meanwhile)."""
        if not self.quiet:
            by = f" (held by {', '.join(held_by)})" if held_by else ""
            self._line(f"waiting  {name} for {pool}{by}", "yellow")

    def step_stopping(self, job: Job, reason: str) -> None:
        self._line(f"stopping {job.step.name}: {reason}", "yellow")

    def step_finished(self, job: Job, outcome: Outcome, retry_in: float | None) -> None:
        took = format_duration(outcome.ended_at - job.started_at)
        if outcome.state is StepState.SUCCEEDED:
            if not self.quiet:
                self._line(f"ok       {job.step.name} {took}", "green")
            return
        word = _WORD.get(outcome.state, str(outcome.state))
        text = f"{word:<8} {job.step.name} after {took}: {outcome.message or ''}".rstrip(": ")
        if retry_in is not None:
            text += f"; retrying in {format_duration(retry_in)}"
        self._line(f"{text}  (log: {job.log_path})", "red")

    def step_failed_to_start(self, name: str, why: str) -> None:
        self._line(f"FAILED   {name}: {why}", "red")

    def step_skipped(self, name: str, why: str, word: str = "skip") -> None:
        """Not run, and done: skipped (when= said no), or adopted (done before overnight)."""
        if not self.quiet:
            self._line(f"{word:<8} {name} ({why})", "dim")

    def step_blocked(self, name: str, by: str) -> None:
        self._line(f"blocked  {name} (by {by})", "yellow")

    # Whether the predicted finish is shown as it changes (the live line of a terminal).
    outlook_wanted = False

    def outlook(self, text: str) -> None:
        """The predicted finish, as `status` says it, each time it is made again."""

    def alert(self, subject: str) -> None:
        self._line(f"ALERT    {subject}", "bold yellow")

    def cancelling(self, signal_name: str, running: int, force: bool) -> None:
        how = "killing" if force else "stopping"
        self._line(f"{signal_name}: cancelling, {how} {running} running step(s)", "yellow")

    def launch_finished(self, result: LaunchResult) -> None:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts.items()))
        assert self.date is not None
        self._line(
            f"{self.batch} for {self.date.isoformat()}: {result.state} ({counts}) "
            f"in {format_duration(result.elapsed)}",
            "bold",
        )
        if result.held:
            # A plain resume would only hold them again: the operator's word comes first.
            said, command = held_hint(self.command_line, self.batch_arg or self.batch, result.held, self.date)
            self._line(said)
            self._line(f"  {command}")
        elif result.exit_code in (1, 130):
            again = self.command_line.resume_hint(self.batch_arg or self.batch, self.date.isoformat())
            self._line(f"to resume, after a fix: {again}")


def held_hint(command_line: CommandLine, batch_arg: str, held: list[str], day: date | str) -> tuple[str, str]:
    """What to do about steps held after a crash (not idempotent, interrupted), and the
    mark that lets the night go on: a plain resume would only hold them again."""
    day = day if isinstance(day, str) else day.isoformat()
    it = "them" if len(held) > 1 else "it"
    said = (f"held: {', '.join(held)} (not idempotent, interrupted by a crash): check what {it} did, "
            f"then, to run {it} again (or with --done if {it} finished):")
    return said, command_line.mark_hint(batch_arg, held, "redo", day)


class TerminalProgress(Progress):
    """For a person at a terminal: colours, and a live line of what is running."""

    def __init__(self, **hints: Any) -> None:
        super().__init__(**hints)
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self._text = Text
        self.console = Console(highlight=False)
        self.running: dict[str, float] = {}
        self.waiting: dict[str, str] = {}  # ready steps waiting for a pool: step -> what it says
        self.ahead = ""  # the predicted finish, as the runner last made it
        # No refresh thread: the runner forks its workers, and a fork beside a thread can
        # inherit a held lock. The runner calls tick() from its loop instead.
        self.live = Live(self._status(), console=self.console, auto_refresh=False,
                         transient=True, get_renderable=self._status)
        self.live.start()

    def _status(self) -> Any:
        if not self.running and not self.waiting:
            return self._text("")
        now = time.monotonic()
        parts = [f"{n} {format_duration(now - t)}" for n, t in list(self.running.items())[:6]]
        more = len(self.running) - 6
        line = "running: " + ", ".join(parts) + (f" and {more} more" if more > 0 else "")
        if self.waiting:
            line += "; " + "; ".join(f"{n} {w}" for n, w in list(self.waiting.items())[:3])
        return self._text(f"{self.ahead}; {line}" if self.ahead else line, "cyan")

    def step_waiting(self, name: str, pool: str, held_by: list[str]) -> None:
        self.waiting[name] = f"waiting for {pool}" + (f" (held by {', '.join(held_by)})" if held_by else "")
        super().step_waiting(name, pool, held_by)

    outlook_wanted = True

    def outlook(self, text: str) -> None:
        self.ahead = text

    def _line(self, text: str, style: str = "") -> None:
        line = self._text.assemble((time.strftime("%H:%M:%S") + " ", "dim"), (text, style))
        try:
            self.console.print(line)
        except OSError:
            self._output_lost()

    tick_interval = 0.5

    def tick(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        try:
            self.live.refresh()
        except OSError:
            self._output_lost()

    def step_started(self, job: Job) -> None:
        self.running[job.step.name] = time.monotonic()
        self.waiting.pop(job.step.name, None)
        super().step_started(job)
        self._refresh()

    def step_finished(self, job: Job, outcome: Outcome, retry_in: float | None) -> None:
        self.running.pop(job.step.name, None)
        super().step_finished(job, outcome, retry_in)

    def launch_finished(self, result: LaunchResult) -> None:
        self.running.clear()
        self.waiting.clear()
        try:
            self.live.stop()
        except OSError:
            self._output_lost()
        super().launch_finished(result)


def make_progress(
    quiet: bool = False, *, command_line: CommandLine | None = None, batch_arg: str | None = None
) -> Progress:
    if sys.stdout.isatty() and not quiet:
        return TerminalProgress(command_line=command_line, batch_arg=batch_arg)
    return Progress(quiet=quiet, command_line=command_line, batch_arg=batch_arg)
