"""Slash commands: `/incident`, `/escalate`, `/exception` (whatever `Commands` knows).

The command runs in a core thread (`bot.core_pool`; the event loop only
waits on I/O). When it is done within `INLINE_ANSWER` (nearly always: one
short transaction), its answer rides on the acknowledgement itself, which
saves Slack and us a second request per command. Otherwise the command is
acknowledged at that deadline, or at once when the pool predicts it cannot
be done in time (it would queue behind other work), and the answer follows
through the response_url when it is done. Under a burst, acknowledgements therefore
stay as fast as the event loop, whatever the backlog. Errors are answered the
same way (`replies.report`); forms open a modal after the acknowledgement.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Services
from bot.slack.blocks import fallback_text
from bot.slack.replies import follow_up, reply_blocks
from opsloop.errors import OpsloopError
from opsloop.messages import Message, Reply

INLINE_ANSWER = 0.025  # seconds the acknowledgement may wait for the answer


def register(app: AsyncApp, services: Services) -> list[str]:
    """Listen to every slash command of `services.commands`; returns their names."""

    async def on_command(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        user, channel = command["user_id"], command.get("channel_id")
        answer_to = command.get("response_url")
        helped = services.commands.help_for(command["command"], command.get("text") or "")
        if helped is not None:  # the grammar alone answers it: never queued behind the core's work
            await ack(text=fallback_text(Message(text=helped.text)), blocks=reply_blocks(helped),
                      response_type="ephemeral")
            return
        in_time = services.pool.expected_wait() <= INLINE_ANSWER  # else waiting only delays the ack
        work = services.pool.run(services.commands.handle, command["command"], command.get("text") or "",
                                 actor=user, channel=channel)
        if in_time:
            await asyncio.wait({work}, timeout=INLINE_ANSWER)
        if work.done() and (work.exception() is None or isinstance(work.exception(), OpsloopError)):
            error = work.exception()
            reply = work.result() if error is None else Reply(f"✗ {error}")
            if reply.form is None:
                await ack(text=fallback_text(Message(text=reply.text)), blocks=reply_blocks(reply),
                          response_type="ephemeral")
                return
        await ack()
        follow_up(work, response_url=answer_to, client=client, user=user, channel=channel,
                  trigger_id=command.get("trigger_id"))

    names = list(services.commands.names)
    for name in names:
        app.command(name)(on_command)
    return names
