"""Outbox senders for transports other than chat: email (SMTP) and webhooks (HTTP)."""

import logging

import httpx

from bot.senders.email import SmtpSender
from bot.senders.file import FileSender
from bot.senders.webhook import WebhookSender
from bot.settings import Settings
from opsloop.outbox import Sender

log = logging.getLogger(__name__)


def outbound_senders(settings: Settings) -> dict[str, Sender]:
    """The email, webhook and file transports for the outbox worker of `serve` / `socket`.

    Without OPSLOOP_SMTP_URL, email stays queued (durably) until it is set.
    """
    senders: dict[str, Sender] = {
        # redirects are not followed: a webhook answering 3xx is a failure, never a detour
        "webhook": WebhookSender(httpx.Client(timeout=10.0, follow_redirects=False)),
        "file": FileSender(),  # copies of signed audit checkpoints (audit.checkpoint_to: a directory)
    }
    if settings.smtp_url:
        senders["email"] = SmtpSender(settings.smtp_url)
    else:
        log.warning("OPSLOOP_SMTP_URL is not set: customer emails wait in the outbox until it is")
    return senders
