"""The Bolt app: made by a factory, listeners registered per surface, one error handler.

    create_app(services, settings) -> AsyncApp

No app object exists at import time. Every listener acknowledges first and
runs the synchronous core in a core thread (`services.pool`), so the
event loop only ever waits on I/O. Domain errors (`OpsloopError`) become an
ephemeral message to the person who caused them; anything else is a bug,
logged with its traceback, and the person is told something went wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Services
from bot.settings import Settings
from bot.slack import actions, commands, events, views
from bot.slack.replies import report
from opsloop.errors import ConfigError

log = logging.getLogger(__name__)


class SharedSession:
    """One aiohttp session for every call the app makes (Web API and response_url answers).

    slack_sdk otherwise opens a new session, and a new connection, per call:
    under load that was most of the event loop's time. It is opened inside
    the running loop (aiohttp requires it), by the server's start-up."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def open(self) -> None:
        self.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        if self.client.session is not None:
            await self.client.session.close()
            self.client.session = None


@dataclass(frozen=True)
class SlackApp:
    """The app and what it listens to (the manifest must declare exactly this)."""

    app: AsyncApp
    session: SharedSession
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
        # listeners ack and hand the rest to `replies.later` themselves; without this Bolt runs each
        # listener as a task and polls for its ack every 10 ms, which sets a floor under every answer
        process_before_response=True,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    app.error(_on_error)
    return SlackApp(
        app=app,
        session=SharedSession(client),
        commands=commands.register(app, services),
        actions=actions.register(app, services),
        views=views.register(app, services),
        events=events.register(app, services),
    )


async def _on_error(error: Exception, context: AsyncBoltContext, client: AsyncWebClient) -> None:
    await report(error, response_url=context.response_url, client=client, user=context.user_id,
                 channel=context.channel_id)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
