"""Mail hygiene, attacked: every kind of message overnight sends carries `Date:` and a
unique `Message-ID:`, and mail-run mails the head and tail of any amount of output,
whatever bytes it is made of, through a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import email.utils

import pytest
from mailkit import text_of

from overnight.reporting.mailrun import MAX_OUTPUT

FAST = {"OVERNIGHT_MAIL_RETRY_DELAYS": "0.1", "OVERNIGHT_TRIGGER": "scheduled"}
FAILS = 'from overnight import Batch\nbatch = Batch("nightly")\nbatch.command("work", "echo no; exit 1")\n'


def configure(project, mailbox, source: str = FAILS, **settings: str) -> None:
    (project.root / "nightly.py").write_text(source)
    extra = "".join(f'{k} = "{v}"\n' for k, v in settings.items())
    project.write_config(f'[batches.nightly]\nmodule = "nightly.py"\nschedule = "0 1 * * *"\n{extra}\n'
                         + mailbox.config())


def a_failed_night(project) -> None:
    assert project.run("run", "nightly", "--date", "2026-11-20", **FAST).returncode == 1


def a_launch_that_cannot_start(project) -> None:
    (project.root / "nightly.py").write_text("import no_such_package_xyz\n")
    assert project.run("run", "nightly", "--date", "2026-11-20", **FAST).returncode == 2


def a_missed_night(project) -> None:
    for now in ("2026-11-20T12:00:00Z", "2026-11-21T12:00:00Z"):
        assert project.run("scheduler", "--once", "--now", now, **FAST).returncode == 0


def a_backfill_digest(project) -> None:
    result = project.run("backfill", "nightly", "--from", "2026-11-19", "--to", "2026-11-20", "--mail",
                         "--keep-going", **FAST)
    assert result.returncode == 1


def a_report_sent_again(project) -> None:
    assert project.run("run", "nightly", "--date", "2026-11-20").returncode == 1
    assert project.run("report", "nightly", "--send", **FAST).returncode == 0


def a_mail_run(project) -> None:
    assert project.run("mail-run", "-s", "Export", "--", "sh", "-c", "echo out; exit 4").returncode == 4


KINDS = {
    "run-report": (a_failed_night, {}),
    "could-not-start": (a_launch_that_cannot_start, {}),
    "fire-notice": (a_missed_night, {"catchup": "none"}),
    "backfill-digest": (a_backfill_digest, {}),
    "report-send": (a_report_sent_again, {}),
    "mail-run": (a_mail_run, {}),
}


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
def test_every_kind_of_message_has_a_date_and_a_unique_message_id(project, mailbox, kind):
    make, settings = KINDS[kind]
    configure(project, mailbox, **settings)
    make(project)
    assert mailbox.messages, f"{kind}: nothing was mailed"
    ids = [m["Message-ID"] for m in mailbox.messages]
    for message in mailbox.messages:
        assert email.utils.parsedate_to_datetime(message["Date"]).tzinfo is not None
        assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith("@example.com>")
    assert len(set(ids)) == len(ids)


def marked(size: int) -> bytes:
    """`size` bytes of output that begin with HEAD-MARK and end with TAIL-MARK."""
    head, tail = b"HEAD-MARK\n", b"TAIL-MARK\n"
    middle = size - len(head) - len(tail)
    return head + (b"x" * 79 + b"\n") * (middle // 80) + b"y" * (middle % 80) + tail


@pytest.mark.parametrize(
    "size", [1, 4096, MAX_OUTPUT - 1, MAX_OUTPUT, MAX_OUTPUT + 1, 3 * MAX_OUTPUT + 7],
    ids=["one-byte", "4k", "just-under", "exactly", "just-over", "three-times-and-then-some"],
)
def test_mail_run_keeps_the_head_and_the_tail_of_any_size_of_output(project, mailbox, size):
    project.write_config(mailbox.config())
    data = marked(size) if size > 20 else b"z" * size
    (project.root / "out.bin").write_bytes(data)
    result = project.run("mail-run", "-s", "Sizes", "--", "cat", "out.bin")
    assert result.returncode == 0, result.stderr
    [message] = mailbox.messages
    body = text_of(message)
    if size > MAX_OUTPUT:
        assert f"[... {size - MAX_OUTPUT} bytes left out ...]" in body
        assert "HEAD-MARK" in body and "TAIL-MARK" in body
    else:
        assert "bytes left out" not in body
        assert data.decode() in body


@pytest.mark.parametrize(
    "output",
    [b"", b"   \n\t\n", b"\xff\xfe not utf-8 \xc3", b"no newline at the end", b"\x00\x01\x02 control"],
    ids=["nothing", "only-whitespace", "invalid-utf8", "no-final-newline", "control-bytes"],
)
def test_mail_run_mails_any_bytes_and_skips_only_what_is_blank(project, mailbox, output):
    project.write_config(mailbox.config())
    (project.root / "out.bin").write_bytes(output)
    skipped = project.run("mail-run", "-s", "Odd", "--skip-if-empty", "--", "cat", "out.bin")
    assert skipped.returncode == 0, skipped.stderr
    assert bool(mailbox.messages) == bool(output.strip())
    sent = project.run("mail-run", "-s", "Odd", "--", "cat", "out.bin")
    assert sent.returncode == 0, sent.stderr
    body = text_of(mailbox.messages[-1])
    assert ("(no output)" in body) == (not output.strip())
