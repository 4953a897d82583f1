"""Neutral `Message`s and `Form`s rendered as Slack Block Kit, within Slack's limits.

Slack refuses a whole message (`invalid_blocks`) when one limit is crossed,
so every limit is enforced here rather than hoped for: at most 50 blocks,
section text 3000 characters, 10 fields per section (2000 characters each),
button text 75 characters, 25 elements per actions block. Text that does not
fit is cut with an ellipsis; blocks that do not fit are replaced by a note.
"""

from __future__ import annotations

import json
from typing import Any

from opsloop.messages import Button, Form, FormField, Message

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTIONS = 25
MAX_FALLBACK_TEXT = 3000
MAX_MODAL_TITLE = 24
MAX_OPTION_TEXT = 75

Block = dict[str, Any]


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def chunks(text: str, size: int) -> list[str]:
    """Split at line breaks where possible so a long body reads well across sections."""
    parts: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > 0 else size
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        parts.append(text)
    return parts


def _button(button: Button, action_id: str) -> Block:
    element: Block = {
        "type": "button",
        "text": _plain(button.label, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "value": clip(button.value, MAX_BUTTON_VALUE),
    }
    if button.style is not None:
        element["style"] = button.style
    if button.url is not None:
        element["url"] = button.url
    return element


def action_ids(buttons: list[Button]) -> list[str]:
    """Block Kit wants action ids unique within a block: repeats get a `#n` suffix
    (the listener strips it, see `bot.slack.actions.action_of`)."""
    seen: dict[str, int] = {}
    ids = []
    for button in buttons:
        count = seen.get(button.action, 0)
        seen[button.action] = count + 1
        ids.append(button.action if count == 0 else f"{button.action}#{count}")
    return ids


def render(message: Message) -> list[Block]:
    """The message as Block Kit blocks (never more than 50, every text within limits)."""
    head = clip(f"*{message.text}*", MAX_SECTION_TEXT)
    blocks: list[Block] = [{"type": "section", "text": _mrkdwn(head)}]
    fields = [clip(f"*{label}*\n{value}", MAX_FIELD_TEXT) for label, value in message.fields]
    for start in range(0, len(fields), MAX_FIELDS):
        blocks.append({"type": "section", "fields": [_mrkdwn(f) for f in fields[start:start + MAX_FIELDS]]})
    if message.body:
        blocks += [{"type": "section", "text": _mrkdwn(part)}
                   for part in chunks(message.body, MAX_SECTION_TEXT)]
    tail: list[Block] = []
    buttons = message.buttons
    ids = action_ids(buttons)
    for start in range(0, len(buttons), MAX_ACTIONS):
        tail.append({"type": "actions", "block_id": f"actions.{start // MAX_ACTIONS}",
                     "elements": [_button(b, i) for b, i in zip(buttons[start:start + MAX_ACTIONS],
                                                                  ids[start:start + MAX_ACTIONS],
                                                                  strict=True)]})
    if message.context:
        tail.append({"type": "context", "elements": [_mrkdwn(clip(message.context, MAX_SECTION_TEXT))]})
    room = MAX_BLOCKS - len(tail)
    if len(blocks) > room:
        # keep the buttons and the context: a card that cannot be acted on is worse than a short one
        note = _mrkdwn("_… more than Slack shows in one message; see `status` for the rest._")
        blocks = [*blocks[: room - 1], {"type": "context", "elements": [note]}]
    return blocks + tail


def fallback_text(message: Message) -> str:
    """The top-level `text`: what notifications and screen readers show."""
    return clip(message.text, MAX_FALLBACK_TEXT)


# --------------------------------------------------------------------------- forms (modals)


def _input(field: FormField) -> Block:
    element: Block
    if field.options:
        options = [{"text": _plain(o, MAX_OPTION_TEXT), "value": o} for o in field.options]
        element = {"type": "static_select", "action_id": field.name, "options": options}
        if field.initial in field.options:
            element["initial_option"] = options[field.options.index(field.initial)]
    else:
        element = {"type": "plain_text_input", "action_id": field.name, "multiline": field.multiline}
        if field.initial:
            element["initial_value"] = field.initial
        if field.placeholder:
            element["placeholder"] = _plain(field.placeholder, 150)
    return {"type": "input", "block_id": field.name, "label": _plain(field.label, 2000),
            "optional": field.optional, "element": element}


def modal(form: Form, *, channel: str | None) -> Block:
    """A modal view for `form`. `private_metadata` carries the form's context and the
    channel the command was typed in (so the answer can be shown there)."""
    return {
        "type": "modal",
        "callback_id": form.id,
        "title": _plain(form.title, MAX_MODAL_TITLE),
        "submit": _plain(form.submit_label, MAX_MODAL_TITLE),
        "close": _plain("Cancel", MAX_MODAL_TITLE),
        "private_metadata": json.dumps({"context": form.context, "channel": channel}),
        "blocks": [_input(f) for f in form.fields][:MAX_BLOCKS],
    }


def form_values(view: dict[str, Any]) -> dict[str, str]:
    """What was filled in, by field name (a text input's value or a select's option)."""
    values: dict[str, str] = {}
    for block_id, inputs in view.get("state", {}).get("values", {}).items():
        for state in inputs.values():
            if state.get("type") == "static_select":
                chosen = state.get("selected_option") or {}
                values[block_id] = str(chosen.get("value") or "")
            else:
                values[block_id] = str(state.get("value") or "")
    return values


def form_metadata(view: dict[str, Any]) -> tuple[str, str | None]:
    """(the form's context, the channel it was opened from) out of `private_metadata`."""
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return "", None
    if not isinstance(data, dict):
        return "", None
    channel = data.get("channel")
    return str(data.get("context") or ""), channel if isinstance(channel, str) else None
