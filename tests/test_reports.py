"""Reports after a launch: a real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pytest
from mailkit import Mailbox, free_port, html_of, text_of

from overnight.readmodel.run import StepView
from overnight.reporting.report import Slow, slow_steps, subject_for

DATE = "2026-11-26"
FAST_RETRIES = {"OVERNIGHT_MAIL_RETRY_DELAYS": "0.1,0.1"}
SCHEDULED = {"OVERNIGHT_TRIGGER": "scheduled", **FAST_RETRIES}

NIGHT = """
    import sys
    from overnight import Batch

    batch = Batch("nightly")
    batch.command("export", "echo exported {date}")
    batch.command("load", "for i in $(seq 1 60); do echo load line $i; done; exit 1")
    batch.command("publish", "echo published")
    batch.command("vacuum", "echo vacuumed", after=[])
"""

CLEAN = """
    from overnight import Batch

    batch = Batch("nightly")
    batch.command("export", "echo exported {date}")
    batch.command("publish", "echo published")
"""


def setup(project, source: str, mail: str = "failure", extra: str = "") -> None:
    """The batch `nightly` with its [batches] table written by hand (for its mail policy)."""
    project.write_batch("nightly", source, config=False)
    project.write_config(f'[batches.nightly]\nmodule = "nightly.py"\nmail = "{mail}"\n\n{extra}')


# -- 1. one message per failed night; nothing for a clean one --------------------------------


def test_a_failed_scheduled_night_mails_one_report_with_steps_tail_and_resume_command(project, mailbox):
    setup(project, NIGHT, extra=mailbox.config())
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert result.returncode == 1, result.stderr
    assert len(mailbox.received) == 1
    rcpts, message = mailbox.received[0]
    assert rcpts == ["ops@example.com"]
    assert message["Subject"] == f"Overnight for {DATE}: nightly: failed (1 of 4)"
    text = text_of(message)
    for step in ("export", "load", "publish", "vacuum"):
        assert f"  {step} " in text
    assert "load line 60" in text and "load line 11" in text
    assert "load line 10\n" not in text  # the last 50 lines, not more
    assert str(project.state_dir / "logs" / "nightly" / DATE / "load.1.log") in text
    config = project.root / "overnight.toml"
    assert f"overnight --config {config} run nightly --date {DATE}" in text
    assert "publish" in html_of(message) and "load line 60" in html_of(message)
    assert project.query("SELECT channel, state FROM reports") == [("mail", "sent")]


def test_mail_failure_policy_sends_nothing_for_a_clean_night(project, mailbox):
    setup(project, CLEAN, mail="failure", extra=mailbox.config())
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert result.returncode == 0, result.stderr
    assert mailbox.received == []


def test_mail_always_reports_a_clean_night_and_names_steps_done_by_an_earlier_launch(project, mailbox):
    setup(project, CLEAN, mail="always", extra=mailbox.config())
    assert project.run("run", "nightly", "--date", DATE, **SCHEDULED).returncode == 0
    assert project.run("run", "nightly", "--date", DATE, **SCHEDULED).returncode == 0
    subject = f"Overnight for {DATE}: nightly: succeeded (2 steps)"
    assert [m["Subject"] for m in mailbox.messages] == [subject, subject]
    second = text_of(mailbox.messages[1])
    assert "done by an earlier launch (1), not run again" in second
    assert "overnight --config" not in second  # nothing to resume


def test_a_manual_launch_mails_only_when_asked(project, mailbox):
    setup(project, NIGHT, mail="always", extra=mailbox.config())
    assert project.run("run", "nightly", "--date", DATE).returncode == 1
    assert mailbox.received == []
    assert project.run("run", "nightly", "--date", DATE, "--mail").returncode == 1
    assert len(mailbox.received) == 1
    assert project.run("run", "nightly", "--date", DATE, "--no-mail", **SCHEDULED).returncode == 1
    assert len(mailbox.received) == 1


def test_batch_mail_to_overrides_the_mail_section(project, mailbox):
    setup(project, NIGHT, extra=mailbox.config())
    project.write_config(
        '[batches.nightly]\nmodule = "nightly.py"\nmail_to = ["night@example.com"]\n\n' + mailbox.config()
    )
    project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert [r for r, _ in mailbox.received] == [["night@example.com"]]


def test_mail_flag_without_a_mail_section_warns_once_and_keeps_the_exit_code(project):
    setup(project, CLEAN)
    result = project.run("run", "nightly", "--date", DATE, "--mail")
    assert result.returncode == 0
    assert result.stderr.count("[mail]") == 1
    assert project.query("SELECT count(*) FROM reports") == [(0,)]


# -- 2. a mail server that is down -------------------------------------------------------------


def test_with_the_mail_server_down_the_run_is_unchanged_and_report_send_delivers_later(project):
    box = Mailbox()  # not started: nothing listens on its port
    setup(project, NIGHT, extra=box.config())
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert result.returncode == 1  # what a failed night exits with, mail or not
    assert project.states("nightly")["load"] == "failed"
    assert "report not sent" in result.stderr
    status = project.run("status", "nightly")
    why = (f"report not sent (mail): cannot connect to the mail server 127.0.0.1:{box.port}: "
           "connection refused")
    assert why in status.stdout
    assert why in project.run("history", "nightly").stdout
    assert project.query("SELECT state, tries FROM reports") == [("not_sent", 3)]

    shown = project.run("report", "nightly", "--date", DATE)
    assert shown.returncode == 0
    assert f"Subject: Overnight for {DATE}: nightly: failed (1 of 4)" in shown.stdout
    assert "load line 60" in shown.stdout

    box.start()
    try:
        sent = project.run("report", "nightly", "--date", DATE, "--send", **FAST_RETRIES)
        assert sent.returncode == 0, sent.stderr
        assert [m["Subject"] for m in box.messages] == [f"Overnight for {DATE}: nightly: failed (1 of 4)"]
        assert "load line 60" in text_of(box.messages[0])
    finally:
        box.stop()
    assert "report not sent" not in project.run("status", "nightly").stdout


def test_a_clean_night_with_the_mail_server_down_still_exits_0(project):
    box = Mailbox()
    setup(project, CLEAN, mail="always", extra=box.config())
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert result.returncode == 0
    assert project.status("nightly")["state"] == "succeeded"
    assert project.status("nightly")["reports"][0]["state"] == "not_sent"


def test_report_send_without_a_reachable_server_exits_1_and_records_it(project):
    box = Mailbox()
    setup(project, NIGHT, extra=box.config())
    project.run("run", "nightly", "--date", DATE)
    result = project.run("report", "nightly", "--send", **FAST_RETRIES)
    assert result.returncode == 1
    assert "connection refused" in result.stderr
    assert project.query("SELECT channel, state FROM reports") == [("mail", "not_sent")]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_the_password_comes_from_the_variable_named_by_password_env(project):
    box = Mailbox()
    box.start(password="s3cret")
    try:
        setup(project, NIGHT, extra=box.config(user='"night"', password_env='"NIGHT_SMTP_PASSWORD"'))
        wrong = project.run("run", "nightly", "--date", DATE, **SCHEDULED, NIGHT_SMTP_PASSWORD="nope")
        assert wrong.returncode == 1
        assert box.received == []
        right = project.run("run", "nightly", "--date", DATE, **SCHEDULED, NIGHT_SMTP_PASSWORD="s3cret")
        assert right.returncode == 1
        assert len(box.received) == 1
    finally:
        box.stop()
    assert "s3cret" not in (project.root / "overnight.toml").read_text()
    ((state, tries, message), _) = project.query("SELECT state, tries, message FROM reports ORDER BY id")
    assert state == "not_sent" and tries == 1 and "refused the login of night" in message


def test_a_missing_password_variable_is_reported_not_retried(project, mailbox):
    setup(project, NIGHT, extra=mailbox.config(user='"night"', password_env='"NO_SUCH_SMTP_PASSWORD"'))
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert result.returncode == 1
    assert project.query("SELECT state, tries, message FROM reports") == [
        ("not_sent", 1, "the environment variable NO_SUCH_SMTP_PASSWORD (password_env) is not set")
    ]


# -- 3. webhooks ----------------------------------------------------------------------------------


def test_a_webhook_receiver_gets_the_json_summary(project, receiver):
    setup(project, NIGHT, extra=f'[[webhooks]]\nurl = "{receiver.url}"\nwhen = "failure"\n')
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert result.returncode == 1
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["batch"] == "nightly" and body["date"] == DATE and body["state"] == "failed"
    assert body["counts"] == {"failed": 1, "blocked": 1, "succeeded": 2}
    assert [f["step"] for f in body["failed"]] == ["load"]
    assert body["failed"][0]["message"]
    assert body["resume"].endswith(f"run nightly --date {DATE}")
    assert body["text"].startswith(f"Overnight for {DATE}: nightly: failed (1 of 4)")
    assert "load" in body["text"]
    assert project.query("SELECT channel, state FROM reports") == [(f"webhook:{receiver.url}", "sent")]


def test_webhook_when_failure_and_batches_filter_are_obeyed(project, receiver):
    setup(project, CLEAN, extra=(
        f'[[webhooks]]\nurl = "{receiver.url}"\nwhen = "failure"\n\n'
        f'[[webhooks]]\nurl = "{receiver.url}?other"\nwhen = "always"\nbatches = ["other"]\n'
    ))
    assert project.run("run", "nightly", "--date", DATE, **SCHEDULED).returncode == 0
    assert receiver.bodies == []


def test_a_hanging_receiver_delays_the_end_of_the_run_by_its_timeout_at_most(project, hanging_receiver):
    hook = f'[[webhooks]]\nurl = "{hanging_receiver.url}"\nwhen = "always"\ntimeout = 2\n'
    setup(project, CLEAN, extra=hook)
    started = time.monotonic()
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    took = time.monotonic() - started
    assert result.returncode == 0
    assert len(hanging_receiver.bodies) == 1
    assert took < 2 + 10  # the receiver hangs for a minute; the run waits 2 s for it
    assert project.query("SELECT state, message FROM reports") == [("not_sent", "no answer within 2s")]
    assert "report not sent (webhook:" in project.run("status", "nightly").stdout


def test_a_refused_webhook_is_recorded_and_does_not_change_the_exit_code(project):
    url = f"http://127.0.0.1:{free_port()}/hook"
    setup(project, NIGHT, extra=f'[[webhooks]]\nurl = "{url}"\n')
    result = project.run("run", "nightly", "--date", DATE, **SCHEDULED)
    assert result.returncode == 1
    ((state, tries, message),) = project.query("SELECT state, tries, message FROM reports")
    assert state == "not_sent" and tries == 3 and "refused" in message


# -- 4. mail-run --------------------------------------------------------------------------------


def test_mail_run_mails_the_output_and_keeps_the_exit_code(project, mailbox):
    project.write_config(mailbox.config())
    result = project.run("mail-run", "--subject", "Weekly export", "--", "sh", "-c", "echo hi; exit 3")
    assert result.returncode == 3, result.stderr
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["Subject"] == "Weekly export [exit code 3]"
    body = text_of(message)
    assert "\nhi\n" in body and "Exit code: 3" in body and "Run time:" in body


def test_mail_run_to_overrides_the_recipients_and_merges_stderr(project, mailbox):
    project.write_config(mailbox.config())
    result = project.run("mail-run", "-s", "S", "--to", "a@example.com", "--to", "b@example.com",
                         "--", "sh", "-c", "echo out; echo err >&2")
    assert result.returncode == 0
    ((rcpts, message),) = mailbox.received
    assert rcpts == ["a@example.com", "b@example.com"]
    assert message["Subject"] == "S"
    assert "out\nerr\n" in text_of(message)


def test_mail_run_skip_if_empty_sends_nothing_for_no_output(project, mailbox):
    project.write_config(mailbox.config())
    assert project.run("mail-run", "-s", "S", "--skip-if-empty", "--", "true").returncode == 0
    assert project.run("mail-run", "-s", "S", "--skip-if-empty", "--", "sh", "-c", "exit 4").returncode == 4
    assert mailbox.received == []
    assert project.run("mail-run", "-s", "S", "--skip-if-empty", "--", "echo", "x").returncode == 0
    assert len(mailbox.received) == 1


def test_mail_run_usage_errors_exit_2(project, mailbox):
    project.write_config(mailbox.config())
    no_command = project.run("mail-run", "--subject", "S")
    assert no_command.returncode == 2
    no_subject = project.run("mail-run", "--", "true")
    assert no_subject.returncode == 2
    project.write_config("")
    no_mail = project.run("mail-run", "-s", "S", "--", "true")
    assert no_mail.returncode == 2
    assert no_mail.stderr.count("\n") == 1 and "[mail]" in no_mail.stderr
    assert mailbox.received == []


def test_mail_run_of_a_missing_program_mails_why_and_exits_127(project, mailbox):
    project.write_config(mailbox.config())
    result = project.run("mail-run", "-s", "S", "--", "no-such-program-here")
    assert result.returncode == 127
    assert "cannot run no-such-program-here" in text_of(mailbox.messages[0])


# -- the report's pure parts --------------------------------------------------------------------


def _step(name: str, state: str, duration: float | None) -> StepView:
    return StepView(name, state, "command", name, [], None, None, duration, None, [])


def test_a_step_much_slower_than_its_median_is_pointed_out():
    steps = [_step("export", "succeeded", 200.0), _step("load", "succeeded", 61.0),
             _step("quick", "succeeded", 3.0), _step("new", "succeeded", 500.0)]
    history = {"export": [40.0, 50.0, 45.0, 300.0], "load": [40.0, 41.0, 39.0], "quick": [1.0, 1.0, 1.0],
               "new": [10.0, 10.0]}
    # export: 200 s against a median of 47.5 s; load is only 1.5 times usual; quick gained
    # 2 s only; new has too little history to say what is usual.
    assert slow_steps(steps, history) == [Slow("export", 200.0, 47.5, 4)]


def test_the_subject_counts_failed_steps_out_of_all():
    steps = [_step("a", "succeeded", 1), _step("b", "timed_out", 1), _step("c", "blocked", None),
             _step("d", "failed", 1)]
    assert subject_for("all", DATE, "failed", steps) == f"Overnight for {DATE}: all: failed (2 of 4)"
    one = subject_for("all", DATE, "succeeded", steps[:1])
    assert one == f"Overnight for {DATE}: all: succeeded (1 step)"


def test_a_mail_server_that_hangs_is_given_its_timeout_once(project):
    with socket.socket() as silent:  # accepts connections (the kernel does) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        setup(project, CLEAN, mail="always", extra=(
            f'[mail]\nhost = "127.0.0.1"\nport = {port}\ntimeout = 1\nto = ["ops@example.com"]\n'))
        started = time.monotonic()
        result = project.run("run", "nightly", "--date", DATE, "--mail")
        took = time.monotonic() - started
    assert result.returncode == 0
    assert took < 1 + 10  # one try of 1 s, no retries of a hung server
    assert project.query("SELECT state, tries, message FROM reports") == [
        ("not_sent", 1, f"the mail server 127.0.0.1:{port} did not answer in time")
    ]


def test_the_report_points_out_a_step_much_slower_than_on_earlier_nights(project):
    setup(project, CLEAN)
    backfill = project.run("backfill", "nightly", "--from", "2026-11-20", "--to", "2026-11-23", "--no-mail")
    assert backfill.returncode == 0, backfill.stderr
    # Make the recorded history say: export took 10 s on the first three nights, 100 s on the fourth.
    import sqlite3

    conn = sqlite3.connect(project.ledger_path)
    with conn:
        conn.execute("UPDATE attempts SET ended_at = started_at + (CASE WHEN run_id = "
                     "(SELECT id FROM runs WHERE date = '2026-11-23') THEN 100 ELSE 10 END) "
                     "WHERE step = 'export'")
    conn.close()
    shown = project.run("report", "nightly", "--date", "2026-11-23")
    assert shown.returncode == 0, shown.stderr
    assert ("Slower than usual:\n  export took 1m40s; usually 10.0s (median of the 3 earlier attempts)"
            in shown.stdout)
    earlier = project.run("report", "nightly", "--date", "2026-11-22")
    assert "Slower than usual" not in earlier.stdout


def test_the_report_never_breaks_a_step_name_at_its_hyphens(project):
    """Blocked steps are listed as wrapped text: a line may end between two names, never
    inside one (`import-sales-` / `daily` reads as two steps that do not exist)."""
    names = [f"import-{kind}-nightly-{i}" for i, kind in enumerate(["sales", "labor", "stock", "prices"] * 4)]
    steps = "\n".join(f'    batch.command("{n}", "true")' for n in names)
    setup(project, f'\n    from overnight import Batch\n    batch = Batch("nightly")\n'
                   f'    batch.command("first-step", "exit 1")\n{steps}\n')
    assert project.run("run", "nightly", "--date", DATE).returncode == 1
    shown = project.run("report", "nightly", "--date", DATE).stdout
    heading = "Blocked, not run because a prerequisite did not succeed (16):\n"
    blocked = shown.split(heading)[1].split("\n\n")[0]
    assert len(blocked.splitlines()) > 1  # it did wrap
    listed = [name.strip() for name in blocked.replace("\n", " ").split(",")]
    assert listed == names
    for line in blocked.splitlines():
        assert not line.rstrip().endswith("-"), line
