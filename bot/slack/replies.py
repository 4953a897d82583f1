"""Showing a `Reply` to the person who asked: an ephemeral message, or a modal for a form.

`report` is the one place an error becomes a message. Listeners call it for
errors after their `ack()`, the app's `@app.error` handler for the rest: an
exception escaping a listener *after* ack makes Bolt (1.30) undo the
acknowledgement (Slack then sees a 500, or a 404 after a 3 s wait).

`later` runs what follows the acknowledgement as its own task, so the
acknowledgement goes out at once (the app runs with process_before_response,
see `bot.slack.app`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.core_pool import DRAIN_TIMEOUT, Pool
from bot.slack.blocks import MAX_BLOCKS, MAX_SECTION_TEXT, chunks, fallback_text, modal, render
from opsloop.errors import OpsloopError
from opsloop.messages import Message, Reply

log = logging.getLogger(__name__)
_running: set[asyncio.Task[object]] = set()  # a task nobody references may be collected mid-flight


def later(work: Coroutine[Any, Any, object]) -> None:
    """Run `work` after the acknowledgement; it must report its own errors."""
    task = asyncio.ensure_future(work)
    _running.add(task)
    task.add_done_callback(_finished)


async def finish_owed(pool: Pool, timeout: float = DRAIN_TIMEOUT) -> None:
    """Before a server stops: carry out what was acknowledged, then send the answers owed."""
    await asyncio.to_thread(pool.drain, timeout)
    if _running:
        await asyncio.wait(set(_running), timeout=timeout)


def _finished(task: asyncio.Task[object]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("work after a Slack acknowledgement failed", exc_info=task.exception())


def reply_blocks(reply: Reply) -> list[dict[str, Any]]:
    """The reply's text (cut into sections of Slack's size) followed by its message, if any."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": part}}
                                    for part in chunks(reply.text, MAX_SECTION_TEXT)]
    if reply.message is not None:
        blocks += render(reply.message)
    return blocks[:MAX_BLOCKS]


async def show(
    reply: Reply,
    *,
    response_url: str | None,
    client: AsyncWebClient,
    user: str,
    channel: str | None,
    trigger_id: str | None,
) -> None:
    """Open the reply's form as a modal, or tell `user` privately what happened."""
    if reply.form is not None and trigger_id:
        await client.views_open(trigger_id=trigger_id, view=modal(reply.form, channel=channel))
        return
    await tell(reply, response_url=response_url, client=client, user=user, channel=channel)


async def tell(
    reply: Reply | str,
    *,
    response_url: str | None,
    client: AsyncWebClient,
    user: str | None,
    channel: str | None,
) -> None:
    """An ephemeral message: through the request's response_url when there is one, else
    chat.postEphemeral in the channel it came from. With neither, there is nobody to tell."""
    reply = reply if isinstance(reply, Reply) else Reply(reply)
    text, blocks = fallback_text(Message(text=reply.text)), reply_blocks(reply)
    if response_url:
        # the app's shared HTTP session (see app.SharedSession): no new connection pool per answer
        webhook = AsyncWebhookClient(response_url, session=client.session)
        await webhook.send(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
    elif channel and user:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)


def follow_up(
    work: Awaitable[Reply],
    *,
    response_url: str | None,
    client: AsyncWebClient,
    user: str,
    channel: str | None,
    trigger_id: str | None = None,
) -> None:
    """After the acknowledgement: show `work`'s reply when it is done, or report its error."""

    async def answer() -> None:
        try:
            await show(await work, response_url=response_url, client=client, user=user, channel=channel,
                       trigger_id=trigger_id)
        except Exception as error:
            await report(error, response_url=response_url, client=client, user=user, channel=channel)

    later(answer())


async def report(
    error: Exception,
    *,
    response_url: str | None,
    client: AsyncWebClient,
    user: str | None,
    channel: str | None,
) -> None:
    """Domain errors are told to the person who caused them; anything else is a bug, logged."""
    if isinstance(error, OpsloopError):
        text = f"✗ {error}"
    else:
        log.error("Slack request failed", exc_info=error)
        text = "✗ something went wrong on our side (details are in the opsloop log)"
    try:
        await tell(text, response_url=response_url, client=client, user=user, channel=channel)
    except Exception:  # Slack itself may be what failed
        log.exception("could not tell %s about an error", user)
