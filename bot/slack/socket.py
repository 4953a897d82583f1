"""`opsloop socket`: the same Bolt app over Slack's Socket Mode (no public URL needed).

Needs SLACK_APP_TOKEN (an app-level token, xapp-..., with `connections:write`).
The background workers (the outbox dispatcher, the scheduler) run as in HTTP mode.
"""

from __future__ import annotations

import asyncio

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.bootstrap import Services
from bot.settings import Settings
from bot.slack.app import SharedSession, create_slack_app
from bot.slack.replies import finish_owed
from opsloop.errors import ConfigError


def socket_handler(services: Services, settings: Settings) -> tuple[AsyncSocketModeHandler, SharedSession]:
    if settings.slack_app_token is None or not settings.slack_app_token.get_secret_value():
        raise ConfigError("SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token "
                          "(xapp-..., scope connections:write; see README: Slack)")
    slack_app = create_slack_app(services, settings, socket_mode=True)
    handler = AsyncSocketModeHandler(slack_app.app, settings.slack_app_token.get_secret_value())
    return handler, slack_app.session


async def run_socket_mode(services: Services, handler: AsyncSocketModeHandler, session: SharedSession,
                          stop: asyncio.Event | None = None) -> None:
    """Connect and serve until `stop` is set (or forever), with the background workers running."""
    started = []
    await session.open()
    try:
        for worker in services.background:
            worker.start()
            started.append(worker)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await (stop or asyncio.Event()).wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await finish_owed(services.pool)  # before the workers stop: its messages still go out
        for worker in reversed(started):
            worker.stop()
        await session.close()
