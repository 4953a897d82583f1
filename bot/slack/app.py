"""The Bolt app: made by a factory, listeners registered per surface, one error handler.

    create_app(services, settings) -> AsyncApp

No app object exists at import time. Every listener acknowledges first and
runs the synchronous core in a worker thread (`asyncio.to_thread`), so the
event loop only ever waits on I/O. Domain errors (`OpsloopError`) become an
ephemeral message to the person who caused them; anything else is a bug,
logged with its traceback, and the person is told something went wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Services
from bot.settings import Settings
from bot.slack import actions, commands, events, views
from bot.slack.replies import report
from opsloop.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackApp:
    """The app and what it listens to (the manifest must declare exactly this)."""

    app: AsyncApp
    commands: list[str]
    actions: list[str]
    views: list[str]
    events: list[str]


def create_app(services: Services, settings: Settings, *, socket_mode: bool = False) -> AsyncApp:
    return create_slack_app(services, settings, socket_mode=socket_mode).app


def create_slack_app(services: Services, settings: Settings, *, socket_mode: bool = False) -> SlackApp:
    """Build the Bolt app. Over HTTP every request must carry Slack's signature (made with
    SLACK_SIGNING_SECRET); in Socket Mode requests arrive over the app's own authenticated
    WebSocket instead, so no signing secret is needed there."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...; see README: Slack)")
    secret = settings.slack_signing_secret
    if not socket_mode and (secret is None or not secret.get_secret_value()):
        raise ConfigError("SLACK_SIGNING_SECRET is not set: without it Slack's requests cannot be verified")
    client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(),
                            base_url=_slash(settings.slack_api_url))
    app = AsyncApp(
        client=client,
        signing_secret=secret.get_secret_value() if secret is not None else "",
        request_verification_enabled=not socket_mode,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    app.error(_on_error)
    return SlackApp(
        app=app,
        commands=commands.register(app, services),
        actions=actions.register(app, services),
        views=views.register(app, services),
        events=events.register(app, services),
    )


async def _on_error(error: Exception, context: AsyncBoltContext, client: AsyncWebClient) -> None:
    await report(error, respond=context.respond, client=client, user=context.user_id,
                 channel=context.channel_id)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
