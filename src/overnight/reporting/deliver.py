"""Sending one piece of news about a batch to everyone who wants it: by mail as the
batch's `mail` policy says, and to the [[webhooks]] that match. The report of a launch,
the notice of a night that did not become a run, and any alert go out through here.

Nothing here raises for a server that is down, and nothing is recorded here: the caller
records each delivery (sent or not) where it keeps that kind of news.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from overnight.config import BATCH_DEFAULTS, Config, WebhookConfig

if TYPE_CHECKING:  # smtplib, ssl and urllib load only when something is sent
    from overnight.reporting.mailer import Delivery
    from overnight.reporting.webhooks import Posted


@dataclass(frozen=True)
class Channels:
    """Where a piece of news about a batch goes."""

    mail_to: list[str]              # empty: no mail
    hooks: list[WebhookConfig]

    @property
    def any(self) -> bool:
        return bool(self.mail_to or self.hooks)


@dataclass(frozen=True)
class Delivered:
    mail: Delivery | None           # None: no mail was wanted
    to: list[str]
    posted: list[Posted] = field(default_factory=list)


def mail_recipients(config: Config, batch: str) -> list[str]:
    bc = config.batches.get(batch)
    if bc is not None and bc.mail_to:
        return list(bc.mail_to)
    return list(config.mail.to) if config.mail else []


def wants_mail(config: Config, batch: str, failed: bool, mail: bool | None) -> bool:
    """--mail forces it, --no-mail forbids it; otherwise the batch's mail policy decides."""
    if mail is not None:
        return mail
    bc = config.batches.get(batch)
    policy = (bc or BATCH_DEFAULTS).mail
    return policy == "always" or (policy == "failure" and failed)


def channels_for(config: Config, batch: str, failed: bool, mail: bool | None = None) -> Channels:
    """Mail when the policy (or --mail) wants it and there is a [mail] section; the
    webhooks whose `when` and `batches` match. --no-mail (mail=False) silences both."""
    from overnight.reporting.webhooks import wanted

    if mail is False:
        return Channels([], [])
    to = mail_recipients(config, batch) if config.mail and wants_mail(config, batch, failed, mail) else []
    return Channels(to, [h for h in config.webhooks if wanted(h, batch, failed)])


def deliver(
    config: Config, where: Channels, message: Callable[[str, list[str]], EmailMessage],
    summary: dict[str, Any],
) -> Delivered:
    """Mail `message(sender, to)` and post `summary` to the hooks, side by side: a slow
    receiver and a slow mail server do not add up. Never raises for a server's failure."""
    from overnight.reporting import mailer
    from overnight.reporting.webhooks import post_all

    posted: list[Posted] = []
    thread = None
    if where.hooks:
        thread = threading.Thread(target=lambda: posted.extend(post_all(where.hooks, summary)), daemon=True)
        thread.start()
    delivery = None
    if where.mail_to and config.mail is not None:
        delivery = mailer.send(config.mail, message(config.mail.sender, where.mail_to), where.mail_to)
    if thread is not None:
        thread.join()
    return Delivered(delivery, list(where.mail_to), posted)
