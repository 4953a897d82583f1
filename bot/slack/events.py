"""Events API: mentioning the bot (`@opsloop help`) answers with what it can do, in a thread."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncSay

from bot.bootstrap import Services
from bot.slack.replies import later


def register(app: AsyncApp, services: Services) -> list[str]:
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        later(say(text=services.commands.help(), thread_ts=event.get("thread_ts") or event.get("ts")))

    app.event("app_mention")(on_mention)
    return ["app_mention"]
