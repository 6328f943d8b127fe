"""The report of a run: one message that says what happened, what failed, what to do.

`build_report` turns a run (readmodel.run.RunView) into a subject, a plain-text body, an HTML
alternative and a JSON summary for webhooks. `after_launch` decides, after each launch,
whether the report goes out (mail policy, trigger, --mail/--no-mail) and records every
delivery, sent or not, in the ledger's reports table. Nothing here may change a run's
outcome: every failure becomes a recorded "not sent" and one line on stderr.
"""

from __future__ import annotations

import html
import os
import statistics
import sys
import textwrap
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from overnight import palette
from overnight.commandline import CommandLine
from overnight.config import Config
from overnight.durations import format_duration
from overnight.ledger import Ledger, RunRow
from overnight.readmodel.run import LaunchView, RunView, StepView, run_view
from overnight.reporting.deliver import channels_for, deliver, mail_recipients

TAIL_LINES = 50
# A step is "slow" when it took at least SLOW_RATIO times its median over the last nights
# and at least SLOW_MIN_EXTRA seconds more: a 1 s step taking 3 s is noise, not news. It is
# "fast" when it took at most FAST_RATIO of its median and SLOW_MIN_EXTRA seconds less: an
# import that usually takes ten minutes and took one may well have found nothing to import.
SLOW_RATIO = 2.0
FAST_RATIO = 0.5
SLOW_MIN_EXTRA = 30.0
SLOW_MIN_HISTORY = 3
# A step name is one word to a reader: a mail client must not break it at its hyphens.
NOWRAP = ' style="white-space:nowrap"'


@dataclass(frozen=True)
class Slow:
    step: str
    took: float
    usual: float   # the median
    nights: int    # how many earlier durations the median is over
    faster: bool = False  # much faster than usual, not slower


@dataclass
class Report:
    batch: str
    date: str
    state: str
    subject: str
    text: str
    html: str
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.state != "succeeded"

    def message(self, sender: str, to: list[str]) -> EmailMessage:
        from overnight.reporting.mailer import text_message

        msg = text_message(self.subject, sender, to, self.text)
        msg.add_alternative(self.html, subtype="html")
        return msg


# -- what goes in it -----------------------------------------------------------------------


def subject_for(batch: str, run_date: str, state: str, steps: list[StepView]) -> str:
    total = len(steps)
    if state == "succeeded":
        return f"Overnight for {run_date}: {batch}: succeeded ({total} step{'s' * (total != 1)})"
    bad = sum(1 for s in steps if s.failed)
    if bad == 0:  # e.g. only held or blocked steps: say how many are not done
        bad = sum(1 for s in steps if not s.done)
    return f"Overnight for {run_date}: {batch}: {state} ({bad} of {total})"


def tail(path: str | None, lines: int = TAIL_LINES, max_bytes: int = 256 * 1024) -> list[str] | None:
    """The last `lines` lines of a log (None when it cannot be read)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    return [line[:1000] for line in text.splitlines()[-lines:]]


def slow_steps(steps: list[StepView], history: dict[str, list[float]]) -> list[Slow]:
    """Steps of this run that took much longer, or much less, than their median over
    earlier nights (`faster` says which)."""
    out = []
    for s in steps:
        took = s.duration
        earlier = history.get(s.name, [])
        if took is None or s.state != "succeeded" or len(earlier) < SLOW_MIN_HISTORY:
            continue
        usual = statistics.median(earlier)
        if took >= SLOW_RATIO * usual and took - usual >= SLOW_MIN_EXTRA:
            out.append(Slow(s.name, took, usual, len(earlier)))
        elif took <= FAST_RATIO * usual and usual - took >= SLOW_MIN_EXTRA:
            out.append(Slow(s.name, took, usual, len(earlier), faster=True))
    return out


def step_note(step: StepView, launch_id: int | None) -> str:
    """Why a step is in the state it is, as a reader needs it."""
    if step.done and step.launch_id and step.launch_id != launch_id:
        return f"done by an earlier launch ({step.launch}), not run again"
    where = f"on {step.host}" if step.host else ""
    return "  ".join(part for part in (where, step.message or "") if part)


def build_report(
    config: Config, ledger: Ledger, run: RunRow, launch_id: int | None = None, *,
    batch_arg: str | None = None,
) -> Report:
    """`batch_arg`: how a command names the batch (default: its name in the config)."""
    view = run_view(ledger, run)
    if launch_id is None and view.launches:
        launch_id = view.launches[-1].id
    launch = view.launch(launch_id)
    if launch is not None and launch.not_started:
        # Its steps are those of earlier launches, if any: the news is that it did not start.
        subject = f"Overnight for {run.date}: {run.batch}: could not start"
    else:
        subject = subject_for(run.batch, run.date, view.state, view.steps)
    failed = [s for s in view.steps if s.failed]
    # Read in a mailbox or a chat: a command that works from any folder.
    command_line = CommandLine.of(config)
    again = command_line.resume_hint(batch_arg or run.batch, run.date, anywhere=True)
    held = [s.name for s in view.steps if s.held]
    context = _Context(
        run=view,
        launch=launch,
        launch_id=launch_id,
        failed=failed,
        blocked=[s for s in view.steps if s.state == "blocked"],
        slow=slow_steps(view.steps, ledger.step_durations(run.batch, run.date)),
        resume=again if view.state != "succeeded" else None,
        tails={s.name: tail(s.log_path) for s in failed},
        held=held,
        mark=command_line.hint("mark", batch_arg or run.batch, *held, "--redo", "--date", run.date,
                               anywhere=True) if held else None,
    )
    return Report(
        batch=run.batch,
        date=run.date,
        state=view.state,
        subject=subject,
        text=_text(context),
        html=_html(context, subject),
        summary=_summary(context, subject),
    )


@dataclass
class _Context:
    run: RunView
    launch: LaunchView | None
    launch_id: int | None
    failed: list[StepView]
    blocked: list[StepView]
    slow: list[Slow]
    resume: str | None
    tails: dict[str, list[str] | None]
    held: list[str] = field(default_factory=list)  # not idempotent, interrupted: an operator decides
    mark: str | None = None                         # the mark that lets them run again

    def todo(self) -> list[str]:
        """What to do, as lines (the commands alone on theirs)."""
        if self.mark:
            it = "them" if len(self.held) > 1 else "it"
            return [f"  {', '.join(self.held)}: not idempotent, and interrupted by a crash. Check what "
                    f"{it} did; to run {it} again (or with --done if {it} finished):",
                    f"    {self.mark}", "  then resume (what succeeded is skipped):", f"    {self.resume}"]
        return ["  Fix the cause, then resume (what succeeded is skipped):", f"    {self.resume}"]

    @property
    def state(self) -> str:
        return self.run.state

    @property
    def steps(self) -> list[StepView]:
        return self.run.steps

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.steps:
            counts[s.state] = counts.get(s.state, 0) + 1
        return counts

    @property
    def not_started(self) -> bool:
        return self.launch is not None and self.launch.not_started

    def headline(self) -> str:
        if self.not_started:
            assert self.launch is not None
            return f"{self.run.batch} for {self.run.date}: {self.launch.message}"
        parts = ", ".join(f"{n} {state}" for state, n in sorted(self.counts().items()))
        return f"{self.run.batch} for {self.run.date}: {self.state} ({parts})"

    def launch_line(self) -> str | None:
        la = self.launch
        if la is None:
            return None
        took = format_duration(la.took) if la.took is not None else "still running"
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(la.started_at))
        if la.not_started:  # the headline says why
            return f"launch {la.number}: {la.trigger} by {la.launched_by} on {la.host}, at {started}"
        line = f"launch {la.number}: {la.trigger} by {la.launched_by} on {la.host}, " \
               f"started {started}, took {took}"
        return line + (f"; {la.message}" if la.message else "")

    def failure_line(self, s: StepView) -> str:
        tries = len(s.attempts)
        what = s.message or s.state
        return f"{s.name}: {s.state} after {tries} attempt{'s' * (tries != 1)}: {what}"

    def slow_line(self, slow: Slow) -> str:
        return (
            f"{slow.step} took {format_duration(slow.took)}; usually {format_duration(slow.usual)} "
            f"(median of the {slow.nights} earlier attempts)"
        )


def _text(c: _Context) -> str:
    out = [c.headline()]
    if line := c.launch_line():
        out.append(line)
    if c.resume and c.not_started:
        out += ["", "What to do:", "  Fix the cause, then run it (what succeeded before is skipped):",
                f"    {c.resume}"]
    elif c.resume:
        out += ["", "What to do:", *c.todo()]
    if c.failed:
        out += ["", "Failed:"]
        for s in c.failed:
            out.append(f"  {c.failure_line(s)}")
            out.append(f"    log: {s.log_path or '(none)'}")
            lines = c.tails.get(s.name)
            if lines:
                out.append(f"    last {len(lines)} lines:")
                out += [f"    | {line}" for line in lines]
            elif lines is None and s.log_path:
                out.append("    (the log cannot be read)")
    if c.blocked:
        names = ", ".join(s.name for s in c.blocked)
        out += ["", f"Blocked, not run because a prerequisite did not succeed ({len(c.blocked)}):"]
        # Lines break between names, never inside one: `import-sales-daily` cut at a hyphen
        # reads as two steps that do not exist.
        out += textwrap.wrap(names, 88, initial_indent="  ", subsequent_indent="  ",
                             break_on_hyphens=False, break_long_words=False)
    for title, faster in (("Slower than usual:", False), ("Faster than usual:", True)):
        unusual = [s for s in c.slow if s.faster is faster]
        if unusual:
            out += ["", title]
            out += [f"  {c.slow_line(s)}" for s in unusual]
    out += ["", "Steps:"]
    width = max([4] + [len(s.name) for s in c.steps])
    out.append(f"  {'STEP':<{width}}  {'STATE':<11}  {'TIME':>8}  TRIES  NOTE")
    for s in c.steps:
        out.append(
            f"  {s.name:<{width}}  {s.state:<11}  {format_duration(s.duration):>8}  "
            f"{len(s.attempts):>5}  {step_note(s, c.launch_id)}".rstrip()
        )
    return "\n".join(out) + "\n"


def _badge(state: str) -> str:
    """A state as the dashboard shows it (palette.py); mail clients drop stylesheets."""
    look = palette.tone(state) or palette.Tone("#fff", "#000", "")
    return (
        f'<span style="background:{look.background};color:{look.text};padding:1px 7px;border-radius:9px;'
        f'font-weight:bold">{html.escape(state)}</span>'
    )


def _html(c: _Context, subject: str) -> str:
    e, state = html.escape, _badge
    out = [
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">",
        f"<title>{e(subject)}</title></head>",
        '<body style="font-family:sans-serif;font-size:14px">',
        f"<h2>{e(c.run.batch)} for {e(c.run.date)}: {state(c.state)}</h2>",
    ]
    if c.not_started and c.launch is not None:
        out.append(f"<p><b>{e(c.launch.message or '')}</b></p>")
    if line := c.launch_line():
        out.append(f"<p>{e(line)}</p>")
    if c.resume:
        out.append("<h3>What to do</h3>")
        for line in c.todo():
            if line.startswith("    "):
                out.append(f"<pre style=\"background:#f6f8fa;padding:6px\">{e(line.strip())}</pre>")
            else:
                out.append(f"<p>{e(line.strip())}</p>")
    if c.failed:
        out.append("<h3>Failed</h3>")
        for s in c.failed:
            out.append(f"<p><b{NOWRAP}>{e(s.name)}</b>: {state(s.state)} after {len(s.attempts)} "
                       f"attempt(s): {e(s.message or '')}<br>"
                       f"log: <code>{e(s.log_path or '-')}</code></p>")
            lines = c.tails.get(s.name)
            if lines:
                out.append('<pre style="background:#f6f8fa;padding:6px;font-size:12px">'
                           + e("\n".join(lines)) + "</pre>")
    if c.blocked:
        names = ", ".join(f"<span{NOWRAP}>{e(s.name)}</span>" for s in c.blocked)
        out.append(f"<h3>Blocked ({len(c.blocked)})</h3><p>not run because a prerequisite did not "
                   f"succeed: {names}</p>")
    for title, faster in (("Slower than usual", False), ("Faster than usual", True)):
        unusual = [s for s in c.slow if s.faster is faster]
        if unusual:
            out.append(f"<h3>{title}</h3><ul>")
            out += [f"<li>{e(c.slow_line(s))}</li>" for s in unusual]
            out.append("</ul>")
    out.append('<h3>Steps</h3><table cellpadding="4" style="border-collapse:collapse">')
    out.append("<tr><th align=left>step</th><th align=left>state</th><th align=right>time</th>"
               "<th align=right>tries</th><th align=left>note</th></tr>")
    for s in c.steps:
        out.append(
            f"<tr><td{NOWRAP}>{e(s.name)}</td><td>{state(s.state)}</td>"
            f"<td align=right>{e(format_duration(s.duration))}</td>"
            f"<td align=right>{len(s.attempts)}</td><td>{e(step_note(s, c.launch_id))}</td></tr>"
        )
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"


def _summary(c: _Context, subject: str) -> dict[str, Any]:
    failed = [
        {"step": s.name, "state": s.state, "message": s.message, "log_path": s.log_path, "host": s.host,
         "attempts": len(s.attempts)}
        for s in c.failed
    ]
    text = [subject]
    if c.not_started and c.launch is not None:
        text.append(f"- {c.launch.message}")
    text += [f"- {c.failure_line(s)}" for s in c.failed]
    text += [f"- {'fast' if s.faster else 'slow'}: {c.slow_line(s)}" for s in c.slow]
    if c.mark:
        text.append(f"Held (check what it did, then): {c.mark}")
    if c.resume:
        text.append(f"To resume: {c.resume}")
    return {
        "batch": c.run.batch,
        "date": c.run.date,
        "state": c.state,
        "run_id": c.run.run_id,
        "launch_id": c.launch_id,
        "subject": subject,
        "counts": c.counts(),
        "total": len(c.steps),
        "failed": failed,
        "blocked": [s.name for s in c.blocked],
        "slow": [{"step": s.step, "took": s.took, "usual": s.usual} for s in c.slow if not s.faster],
        "fast": [{"step": s.step, "took": s.took, "usual": s.usual} for s in c.slow if s.faster],
        "resume": c.resume,
        "held": c.held,
        "mark": c.mark,
        "not_started": c.not_started,
        "error": c.launch.message if c.not_started and c.launch is not None else None,
        "text": "\n".join(text),
    }


# -- sending and recording -----------------------------------------------------------------


def mail_report(config: Config, ledger: Ledger, report: Report, run_id: int, launch_id: int | None):  # noqa: ANN201
    """Mail the report and record the outcome (sent or not, and why). Returns a Delivery."""
    from overnight.reporting import mailer

    assert config.mail is not None
    to = mail_recipients(config, report.batch)
    delivery = mailer.send(config.mail, report.message(config.mail.sender, to), to)
    record_mailed(ledger, delivery, to, run_id, launch_id)
    return delivery


def record_mailed(ledger: Ledger, delivery: Any, to: list[str], run_id: int, launch_id: int | None) -> None:
    message = f"to {', '.join(to)}" if delivery.sent else delivery.reason
    with ledger.transaction():
        ledger.record_report(run_id, launch_id, "mail", "sent" if delivery.sent else "not_sent",
                             delivery.tries, message)


def post_webhooks(config: Config, ledger: Ledger, hooks: list[Any], payload: dict[str, Any],
                  run_ids: list[int], launch_id: int | None) -> list[Any]:
    """POST the payload to the hooks; record each outcome against every run in run_ids."""
    from overnight.reporting.webhooks import post_all

    results = post_all(hooks, payload)
    record_posted(ledger, results, run_ids, launch_id)
    return results


def record_posted(ledger: Ledger, results: list[Any], run_ids: list[int], launch_id: int | None) -> None:
    with ledger.transaction():
        for posted in results:
            for run_id in run_ids:
                ledger.record_report(
                    run_id, launch_id, f"webhook:{posted.hook.url}",
                    "sent" if posted.sent else "not_sent", posted.tries, posted.reason,
                )


# Launches that report by themselves (the batch's policy decides); by hand, only with --mail.
REPORTING_TRIGGERS = ("scheduled", "cron")


def reports_by_default(trigger: str | None = None) -> bool:
    """Whether a launch reports without --mail: started by the scheduler or by a line of
    `overnight cron`, not by a person watching it. `trigger`: this process's
    (OVERNIGHT_TRIGGER) unless given."""
    if trigger is None:
        trigger = os.environ.get("OVERNIGHT_TRIGGER")
    return trigger in REPORTING_TRIGGERS


def after_launch(
    config: Config, batch_name: str, ledger: Ledger, result: Any, mail: bool | None, *,
    batch_arg: str | None = None, trigger: str | None = None,
) -> None:
    """Send the reports a launch calls for. Never raises, never changes the exit code.
    `trigger`: how the launch was started, when not by this process (OVERNIGHT_TRIGGER)."""
    try:
        if mail is False or (mail is None and not reports_by_default(trigger)):
            return  # a person at a terminal sees the outcome; --no-mail silences every channel
        _after_launch(config, batch_name, ledger, result, mail, batch_arg or batch_name)
    except Exception as e:  # noqa: BLE001 - a report must never turn into a failed night
        warn(f"the report of this launch could not be made: {e}")


def _after_launch(
    config: Config, batch: str, ledger: Ledger, result: Any, mail: bool | None, batch_arg: str
) -> None:
    if mail and config.mail is None:
        warn(f"--mail: {no_mail_section(config)}: no report sent")
    failed = str(result.state) != "succeeded"
    where = channels_for(config, batch, failed, mail)
    if not where.any:
        return
    run = ledger.get_run(result.run_id)
    assert run is not None
    report = build_report(config, ledger, run, result.launch_id, batch_arg=batch_arg)
    sent = deliver(config, where, report.message, report.summary)
    # The ledger is written from this thread only, once both are done.
    if sent.mail is not None:
        record_mailed(ledger, sent.mail, sent.to, run.id, result.launch_id)
        if sent.mail.sent:
            print(f"report mailed to {', '.join(sent.to)}", flush=True)
        else:
            later = CommandLine.of(config).hint("report", batch_arg, "--date", run.date, "--send")
            warn(f"report not sent: {sent.mail.reason} (recorded; to send it later: {later})")
    if sent.posted:
        record_posted(ledger, sent.posted, [run.id], result.launch_id)
        for p in sent.posted:
            if not p.sent:
                warn(f"webhook {p.hook.url} not posted: {p.reason}")


def no_mail_section(config: Config) -> str:
    return f"{config.path or 'there is no overnight.toml, so it'} has no [mail] section"


def warn(text: str) -> None:
    sys.stderr.write(f"overnight: {text}\n")
    sys.stderr.flush()
