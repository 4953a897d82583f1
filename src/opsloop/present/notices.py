"""Customer notices in review: the words opsloop proposes, and the draft a reviewer reads.

The proposed public text never names a tenant (it goes to every tenant of the item and onto the
status pages); each tenant's notice wraps it in that tenant's own greeting.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.comms.models import PENDING, SENT, SKIPPED, NoticeDraft
from opsloop.loops.context import impact, phase_of, when
from opsloop.messages import Button, Form, FormField, Message, escape, user
from opsloop.models import WorkItem

MAX_PREVIEWS = 5  # tenants shown in full in a draft; the rest are named (each gets its own greeting)
_EVENT = {"start": "first notice", "update": "update", "cadence": "regular update",
          "resolution": "resolution notice", "review": "account of the review",
          "rollout_start": "notice that a planned update starts",
          "rollout_done": "notice that a planned update is done"}
_FIXED = ("review", "rollout_start", "rollout_done")  # words of a published review or of the templates


def proposed_text(item: WorkItem, event: str, *, latest: str | None = None) -> str:
    """What opsloop proposes to tell customers for `event` in the item's current state."""
    started, hurt = when(item.created_at), impact(item.severity)
    phase = phase_of(item.state)
    if event == "resolution" or phase == "resolved":
        return (f"The problem that began at {started} was resolved at {when(item.resolved_at)}. "
                "The service is working normally again.")
    if event == "cadence":
        still = f"We are still working on the problem that began at {started}."
        return f"{still}\n\nOur last update: {latest}" if latest else still
    if phase == "monitoring":
        return (f"A fix has been applied and we are monitoring the results. Between {started} and "
                f"{when(item.mitigated_at)} some users may have seen {hurt}.")
    return f"Since {started} some users may see {hurt}. Our engineers are working on it now."


@dataclass(frozen=True)
class Preview:
    """One tenant's notice as it would go out."""

    tenant: str  # the account's name
    to: str  # how: email or webhook (never the address: it would outlive an erasure in DMs)
    subject: str
    body: str


def draft_message(item: WorkItem, draft: NoticeDraft, previews: list[Preview], reviewers: str) -> Message:
    """The draft as its reviewers see it: the exact text each tenant gets, and Send / Edit / Skip."""
    assert draft.id is not None
    what = _EVENT.get(draft.event, draft.event)
    shown = previews[:MAX_PREVIEWS]
    parts = [f"*To {escape(p.tenant)}* ({escape(p.to)})\n*{escape(p.subject)}*\n{_quote(p.body)}"
             for p in shown]
    if len(previews) > MAX_PREVIEWS:
        rest = sorted({p.tenant for p in previews[MAX_PREVIEWS:]})
        parts.append(f"…and {escape(', '.join(rest))}, each with its own greeting and the same text.")
    if not previews:
        parts.append("No customer is told by email or webhook (no tenant with a contact): sending "
                     "publishes it on the status pages.")
    buttons = [] if draft.status != PENDING else [
        Button("Send", "notice.send", str(draft.id), style="primary"),
        *([] if draft.event in _FIXED else [Button("Edit", "notice.edit", str(draft.id))]),
        Button("Skip", "notice.skip", str(draft.id), style="danger"),
    ]
    return Message(
        text=f"{_status(draft)}Customer {what} for {item.ref} ({draft.state}) — review before it is sent",
        fields=[("Public text", escape(draft.text))],
        body="\n\n".join(parts),
        buttons=buttons,
        context=f"draft {draft.id} · nothing reaches a customer until someone presses Send · {reviewers}",
    )


def _status(draft: NoticeDraft) -> str:
    if draft.status == SENT:
        return f"✅ Sent by {user(draft.decided_by)}: "
    if draft.status == SKIPPED:
        return f"⏭️ Skipped by {user(draft.decided_by)}: "
    if draft.status != PENDING:
        return "♻️ Superseded (the incident moved on, or a newer draft replaces it): "
    return "📝 "


def _quote(text: str) -> str:
    return "\n".join(f"> {escape(line)}" if line else ">" for line in text.splitlines())


def edit_form(draft: NoticeDraft, ref: str) -> Form:
    """Edit the public text of a draft (a Slack modal)."""
    return Form(id="notice.edit", title="Edit the notice", submit_label="Save draft",
                usage=f'/incident update {ref} --public "text" (drafts it again with your text)',
                fields=[FormField("text", "Public text (name no customer)", multiline=True,
                                  initial=draft.text)],
                context=str(draft.id))


def public_update_form(ref: str) -> Form:
    """Write a public update (the card's Public update button)."""
    return Form(id="notice.public", title="Public update", submit_label="Draft it",
                usage=f'/incident update {ref} --public "text"',
                fields=[FormField("text", "What customers should read (name no customer)", multiline=True)],
                context=ref)
