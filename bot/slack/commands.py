"""Slash commands: `/incident`, `/escalate`, `/exception` (whatever `Commands` knows).

Acknowledged first (Slack wants an answer within 3 s), then the command runs
in a worker thread so the event loop keeps acknowledging others, then the
answer goes back through the response_url; errors too (`replies.report`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Services
from bot.slack.replies import report, show


def register(app: AsyncApp, services: Services) -> list[str]:
    """Listen to every slash command of `services.commands`; returns their names."""

    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                         client: AsyncWebClient) -> None:
        await ack()
        user, channel = command["user_id"], command.get("channel_id")
        try:
            reply = await asyncio.to_thread(services.commands.handle, command["command"],
                                            command.get("text") or "", actor=user, channel=channel)
            await show(reply, respond=respond, client=client, user=user, channel=channel,
                       trigger_id=command.get("trigger_id"))
        except Exception as error:
            await report(error, respond=respond, client=client, user=user, channel=channel)

    names = list(services.commands.names)
    for name in names:
        app.command(name)(on_command)
    return names
