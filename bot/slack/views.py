"""Modal submissions: a filled-in `Form` goes to `Commands.submit`.

Unlike commands and buttons, a submission is acknowledged *after* the core
ran: only the acknowledgement can keep the modal open and show a refusal next
to the field it concerns (`response_action: errors`). Submitting is one short
transaction, far inside Slack's 3 s, but not when the core is busy (a burst
of declares queued ahead): a submission that cannot be done within
`SUBMIT_WAIT` closes the modal at once and its outcome, success or refusal,
follows as a private message. Slack would otherwise show the person an
error while the submission still went through, inviting a second one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Services
from bot.slack.blocks import form_metadata, form_values
from bot.slack.replies import follow_up
from opsloop.errors import OpsloopError

MAX_ERROR = 150  # what Slack shows under a field
SUBMIT_WAIT = 2.0  # seconds a submission may keep Slack waiting (it gives up at 3)


def register(app: AsyncApp, services: Services) -> list[str]:
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                        client: AsyncWebClient) -> None:
        user = body["user"]["id"]
        context, channel = form_metadata(view)
        values = form_values(view)
        in_time = services.pool.expected_wait() <= SUBMIT_WAIT
        work = services.pool.run(services.commands.submit, view["callback_id"], context, values, actor=user)
        if in_time:
            await asyncio.wait({work}, timeout=SUBMIT_WAIT)
        if work.done() and isinstance(work.exception(), OpsloopError):
            error = str(work.exception())
            await ack(response_action="errors", errors={_field_of(error, values): error[:MAX_ERROR]})
            return
        await ack()
        follow_up(work, response_url=None, client=client, user=user, channel=channel)

    forms = list(services.commands.forms)
    for form_id in forms:
        app.view(form_id)(on_submit)
    return forms


def _field_of(message: str, values: dict[str, str]) -> str:
    """The field an error names (`severity: ...`), else the first field."""
    named = message.partition(":")[0].strip()
    return named if named in values else next(iter(values), "")
