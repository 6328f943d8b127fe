"""Sending one email through the [mail] server, with a few bounded retries.

A mail server that is down must never fail a night: `send` does not raise, it says what
happened (`Delivery`), and the caller records that in the ledger so nothing is lost.
"""

from __future__ import annotations

import email.policy
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from overnight.config import MailConfig
from overnight.reporting.retry import GiveUp, TryAgain, with_retries

# Pauses between tries: 4 tries, about 7 s of waiting at most on top of the connection
# attempts (a refused connection fails at once). OVERNIGHT_MAIL_RETRY_DELAYS="0.1,0.1"
# overrides it (the tests use that; an empty value means a single try).
DEFAULT_RETRY_DELAYS = (1.0, 2.0, 4.0)
# A server that accepts the connection and then hangs gets at most this long, whatever
# [mail] timeout says, and is not tried again: the worst case stays bounded.
MAX_TRY_SECONDS = 20.0


# Python folds a header longer than 78 characters by moving its whole value to the next
# line, which some readers then show with a leading space; our subjects are short enough
# to leave on one line (RFC 5322 allows up to 998).
POLICY = email.policy.default.clone(max_line_length=200)


def new_message(subject: str) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["Subject"] = subject
    return message


def text_message(subject: str, sender: str, to: list[str], text: str) -> EmailMessage:
    """A plain-text message from `sender` to `to`: reports, notices and alerts alike."""
    message = new_message(subject)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content(text)
    return message


@dataclass(frozen=True)
class Delivery:
    sent: bool
    tries: int
    reason: str | None  # why it was not sent (the last error), None when sent


class PermanentError(Exception):
    """A failure a retry cannot fix (a missing password, a refused login)."""


def retry_delays() -> tuple[float, ...]:
    text = os.environ.get("OVERNIGHT_MAIL_RETRY_DELAYS")
    if text is None:
        return DEFAULT_RETRY_DELAYS
    try:
        return tuple(max(0.0, float(part)) for part in text.split(",") if part.strip())
    except ValueError:
        return DEFAULT_RETRY_DELAYS


def recipients(mail: MailConfig, override: list[str] | None) -> list[str]:
    return list(override) if override else list(mail.to)


def send(mail: MailConfig, message: EmailMessage, to: list[str]) -> Delivery:
    """Send `message` to `to`; retry a few times on failure. Never raises."""
    if not to:
        return Delivery(False, 0, "no recipients: set [mail] to (or the batch's mail_to)")
    if "From" not in message:
        message["From"] = mail.sender
    if "To" not in message:
        message["To"] = ", ".join(to)
    stamp(message, mail.sender)

    def attempt(_left: float | None) -> None:
        try:
            _send_once(mail, message, to)
        except PermanentError as e:
            raise GiveUp(str(e)) from None
        except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
            if _timed_out(e):  # a server that hung once will likely hang again: do not wait twice
                raise GiveUp(describe(mail, e)) from None
            raise TryAgain(describe(mail, e)) from None

    tried = with_retries(attempt, retry_delays())
    return Delivery(tried.ok, tried.tries, tried.reason)


def stamp(message: EmailMessage, sender: str) -> None:
    """Date and Message-ID, which RFC 5322 asks of every message: without them some
    servers add their own and some spam filters score the mail down."""
    from email.utils import formatdate, make_msgid

    if "Date" not in message:
        message["Date"] = formatdate(localtime=True)
    if "Message-ID" not in message:
        # The sender's domain, not socket.getfqdn() (which may wait on DNS for seconds).
        domain = sender.rpartition("@")[2].strip(" >") or "localhost"
        message["Message-ID"] = make_msgid("overnight", domain=domain)


def _send_once(mail: MailConfig, message: EmailMessage, to: list[str]) -> None:
    timeout = min(mail.timeout, MAX_TRY_SECONDS)
    password = None
    if mail.user:
        if not mail.password_env:
            raise PermanentError("[mail] user is set but password_env is not (name the variable)")
        password = os.environ.get(mail.password_env)
        if password is None:
            raise PermanentError(f"the environment variable {mail.password_env} (password_env) is not set")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if mail.security == "tls":
        smtp = smtplib.SMTP_SSL(mail.host, mail.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(mail.host, mail.port, timeout=timeout)
    with smtp:
        if mail.security == "starttls":
            smtp.starttls(context=context)
        if mail.user and password is not None:
            try:
                smtp.login(mail.user, password)
            except smtplib.SMTPAuthenticationError as e:
                raise PermanentError(f"the server refused the login of {mail.user}: {_text(e)}") from None
        smtp.send_message(message, from_addr=mail.sender, to_addrs=to)


def describe(mail: MailConfig, error: BaseException) -> str:
    """One line: what went wrong talking to which server."""
    where = f"{mail.host}:{mail.port}"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to the mail server {where}: connection refused"
    if _timed_out(error):
        return f"the mail server {where} did not answer in time"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"the mail server {where} refused the recipients: " + ", ".join(error.recipients)
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the mail server {where} said {error.smtp_code} {_text(error)}"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"the mail server {where} closed the connection"
    if isinstance(error, OSError) and error.strerror:
        return f"cannot reach the mail server {where}: {error.strerror}"
    return f"mail server {where}: {error}"


def _timed_out(error: BaseException) -> bool:
    # smtplib turns a read that timed out into SMTPServerDisconnected("... timed out").
    return isinstance(error, TimeoutError) or (
        isinstance(error, smtplib.SMTPServerDisconnected) and "timed out" in str(error)
    )


def _text(error: smtplib.SMTPResponseException) -> str:
    raw = error.smtp_error
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
