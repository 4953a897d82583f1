"""Turning bootstrapped services into Slack-facing ones (for `opsloop serve` and `opsloop socket`).

`wire_slack` adds what only makes sense when Slack is really there: user
groups read from Slack, and the outbox dispatcher delivering through the
Slack sender (which creates dedicated incident channels for real), run as a
worker per transport and woken by every commit that wrote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from bot.bootstrap import Services
from bot.outbox_workers import transport_workers
from bot.slack.directory import SlackDirectory
from bot.slack.sender import SlackSender, web_client
from opsloop.errors import ConfigError
from opsloop.outbox import CHAT, Dispatcher, Sender

log = logging.getLogger(__name__)

PACE = timedelta(seconds=1)  # Slack allows about one message per second per channel


class ThrottledWake:
    """Wakes the outbox worker at most every `gap` seconds: a burst of commits (hundreds a
    second under load) then costs one delivery pass, not one each; a wake it skips is
    caught by the worker's idle poll. Slack's pace of one message a second per channel
    makes the difference invisible."""

    def __init__(self, wake: Callable[[], None], *, gap: float = 0.05) -> None:
        self.wake = wake
        self.gap = gap
        self._last = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.gap:
            self._last = now
            self.wake()


def wire_slack(services: Services, *, idle: float = 0.5,
               extra_senders: Mapping[str, Sender] | None = None) -> Dispatcher:
    """Attach Slack to `services`; returns the dispatcher (its workers queued as background workers).

    `extra_senders` deliver the outbox's other transports (email, webhooks), each transport on
    threads of its own (bot.outbox_workers).
    """
    settings = services.settings
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...; see README: Slack)")
    client = web_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    directory = SlackDirectory(client)
    services.authz.directory = directory
    sender = SlackSender(client, channels=services.channels, directory=directory)
    senders: dict[str, Sender] = {**(extra_senders or {}), CHAT: sender}
    dispatcher = Dispatcher(services.db, senders, services.clock, pace={CHAT: PACE},
                            prepare=services.cards.prepare_outbound)
    services.db.after_commit = ThrottledWake(dispatcher.wake)
    services.background.extend(transport_workers(dispatcher, idle=idle))
    return dispatcher
