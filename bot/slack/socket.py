"""`opsloop socket`: the same Bolt app over Slack's Socket Mode (no public URL needed).

Needs SLACK_APP_TOKEN (an app-level token, xapp-..., with `connections:write`).
The background workers (the outbox dispatcher, the scheduler) run as in HTTP mode.
A dropped connection, or Slack's `disconnect` (refresh_requested), is replaced by a new one
(a new URL from apps.connections.open); SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.bootstrap import Services
from bot.settings import Settings
from bot.slack.app import SlackApp, create_slack_app
from bot.slack.replies import finish_owed
from opsloop.errors import ConfigError

# seconds between the client's pings; a connection the network dropped without a word is noticed, and
# replaced (a new URL from apps.connections.open), within this long. Bolt's default is 10, slack_sdk's 5.
PING_INTERVAL = 5.0


@dataclass(frozen=True)
class SocketApp:
    """The Bolt app and the app-level token it connects with."""

    slack: SlackApp
    app_token: str


def socket_app(services: Services, settings: Settings) -> SocketApp:
    """Build the app for Socket Mode; refuses (ConfigError) without an app-level token."""
    if settings.slack_app_token is None or not settings.slack_app_token.get_secret_value():
        raise ConfigError("SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token "
                          "(xapp-..., scope connections:write; see README: Slack)")
    return SocketApp(create_slack_app(services, settings, socket_mode=True),
                     settings.slack_app_token.get_secret_value())


async def run_socket_mode(services: Services, socket: SocketApp, stop: asyncio.Event | None = None) -> None:
    """Connect and serve until `stop` is set (or forever), with the background workers running.

    The Socket Mode client is made here, in the running loop: it opens its aiohttp session and
    starts its envelope processor when made, and both belong to the loop that made them (made
    before `asyncio.run`, the client could not start at all)."""
    started = []
    session = socket.slack.session
    await session.open()
    handler = AsyncSocketModeHandler(socket.slack.app, socket.app_token, ping_interval=PING_INTERVAL)
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


async def run_until_signalled(services: Services, socket: SocketApp) -> None:
    """`run_socket_mode` until SIGTERM or SIGINT, then stop as `opsloop serve` does: the connection
    closed, owed answers sent, the workers stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_socket_mode(services, socket, stop)
