"""Outbox senders for transports other than chat: email (SMTP) and webhooks (HTTP)."""

import logging
import ssl

from bot.senders.email import SmtpSender
from bot.senders.webhook import WebhookSender
from bot.settings import Settings
from opsloop.deadline import deadline_client
from opsloop.outbox import Sender

log = logging.getLogger(__name__)


def outbound_senders(settings: Settings, *, verify: ssl.SSLContext | bool = True) -> dict[str, Sender]:
    """The email and webhook transports for the outbox workers of `serve` / `socket`.

    Without OPSLOOP_SMTP_URL, email stays queued (durably) until it is set. `verify`: how
    webhook endpoints' certificates are checked (the system's CAs by default).
    """
    senders: dict[str, Sender] = {
        # a total deadline per send; redirects are not followed: a 3xx is a failure, never a detour
        "webhook": WebhookSender(deadline_client(timeout=10.0, verify=verify)),
    }
    if settings.smtp_url:
        senders["email"] = SmtpSender(settings.smtp_url)
    else:
        log.warning("OPSLOOP_SMTP_URL is not set: customer emails wait in the outbox until it is")
    return senders
