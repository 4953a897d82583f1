"""How a work item looks in a channel: its card, and the lines of its thread."""

from __future__ import annotations

from datetime import datetime

from opsloop.lifecycle import next_actions
from opsloop.messages import Button, Message, escape
from opsloop.models import WorkItem
from opsloop.types import Kind, State

_LABELS = {
    "acknowledge": ("Acknowledge", "primary"),
    "mitigate": ("Mitigated", None),
    "resolve": ("Resolve", "primary"),
    "close": ("Close", None),
    "reopen": ("Reopen", "danger"),
    "approve": ("Approve", "primary"),
    "reject": ("Reject", "danger"),
    "expire": ("End now", "danger"),
}
_ICON = {"sev1": "🔴", "sev2": "🟠", "sev3": "🟡", "sev4": "⚪"}


def card_key(ref: str) -> str:
    """The outbox key of a work item's card; updates and thread lines point at it."""
    return f"card:{ref}"


def user(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id else "—"


def card(
    item: WorkItem, tenants: list[str], extra: list[tuple[str, str]] | None = None,
    extra_buttons: list[Button] | None = None,
) -> Message:
    kind, state = Kind(item.kind), State(item.state)
    fields = [
        ("Severity", item.severity),
        ("State", state.value),
        ("Tenants", ", ".join(tenants) or "—"),
        ("Owner", user(item.owner)),
    ]
    if kind is not Kind.EXCEPTION:
        fields.append(("Comms", user(item.comms_owner)))
    if item.expires_at is not None:
        fields.append(("Expires", _when(item.expires_at)))
    fields += extra or []
    buttons = []
    for action in next_actions(kind, state):
        label, style = _LABELS[action]
        buttons.append(Button(label=label, action=f"workitem.{action}", value=item.ref,
                              style=style))  # type: ignore[arg-type]
    buttons += extra_buttons or []
    return Message(
        text=f"{_ICON.get(item.severity, '')} {item.ref} {escape(item.title)}".strip(),
        fields=fields,
        buttons=buttons,
        context=f"{kind.value} opened by {user(item.created_by)} at {_when(item.created_at)}",
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
