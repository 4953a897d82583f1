"""Buttons: every `Button.action` (`workitem.acknowledge`, ...) goes to `Commands.press`.

The presser's roles are checked by the core exactly as for a typed command; a
refusal comes back as an ephemeral message (`replies.follow_up`) and
changes nothing. On success the card is updated through the outbox, so
everyone sees the new state; the presser also gets a private confirmation.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Services
from bot.slack.replies import follow_up
from opsloop.messages import LINK

# `family.verb`, with the `#n` Block Kit needs to tell repeated buttons apart (see blocks.action_ids)
ACTION_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*(?:#\d+)?$")


def action_of(action_id: str) -> str:
    return action_id.partition("#")[0]


def register(app: AsyncApp, services: Services) -> list[str]:
    async def on_press(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                       client: AsyncWebClient) -> None:
        await ack()
        if action_of(action["action_id"]).startswith(f"{LINK}."):
            return  # a link button: Slack opened its URL; there is nothing to do here
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id")
        work = services.pool.run(services.commands.press, action_of(action["action_id"]),
                                 str(action.get("value") or ""), actor=user)
        follow_up(work, response_url=body.get("response_url"), client=client, user=user, channel=channel,
                  trigger_id=body.get("trigger_id"))

    app.action(ACTION_ID)(on_press)
    return [ACTION_ID.pattern]
