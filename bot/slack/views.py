"""Modal submissions: a filled-in `Form` goes to `Commands.submit`.

Unlike commands and buttons, a submission is acknowledged *after* the core
ran: only the acknowledgement can keep the modal open and show a refusal next
to the field it concerns (`response_action: errors`). Submitting is one short
transaction, far inside Slack's 3 s.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Services
from bot.slack.blocks import form_metadata, form_values
from bot.slack.replies import later, tell
from opsloop.errors import OpsloopError

MAX_ERROR = 150  # what Slack shows under a field


def register(app: AsyncApp, services: Services) -> list[str]:
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                        client: AsyncWebClient) -> None:
        user = body["user"]["id"]
        context, channel = form_metadata(view)
        values = form_values(view)
        try:
            reply = await services.pool.run(services.commands.submit, view["callback_id"], context,
                                            values, actor=user)
        except OpsloopError as error:
            field = _field_of(str(error), values)
            await ack(response_action="errors", errors={field: str(error)[:MAX_ERROR]})
            return
        await ack()
        later(tell(reply, response_url=None, client=client, user=user, channel=channel))

    forms = list(services.commands.forms)
    for form_id in forms:
        app.view(form_id)(on_submit)
    return forms


def _field_of(message: str, values: dict[str, str]) -> str:
    """The field an error names (`severity: ...`), else the first field."""
    named = message.partition(":")[0].strip()
    return named if named in values else next(iter(values), "")
