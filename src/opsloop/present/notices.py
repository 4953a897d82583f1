"""Customer notices in review: the draft a reviewer reads in their DM, and its forms.

The words opsloop proposes to customers are the feature's (`opsloop.loops.context.proposed_text`);
this layer shows the draft, each tenant's exact notice and the Send / Edit / Skip buttons.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.comms.models import PENDING, SENT, SKIPPED, NoticeDraft
from opsloop.events import LoopsOverdue, NoticeDraftPosted
from opsloop.loops.review import Preview
from opsloop.messages import Button, Form, FormField, Message, escape, user
from opsloop.models import OutboxMessage, WorkItem
from opsloop.outbox import CHAT

MAX_PREVIEWS = 5  # tenants shown in full in a draft; the rest are named (each gets its own greeting)
_EVENT = {"start": "first notice", "update": "update", "cadence": "regular update",
          "resolution": "resolution notice", "review": "account of the review",
          "rollout_start": "notice that a planned update starts",
          "rollout_done": "notice that a planned update is done"}
_FIXED = ("review", "rollout_start", "rollout_done")  # words of a published review or of the templates


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


class NoticeWords:
    """Customer notices in review, as their reviewers read them in their DMs."""

    def posted(self, session: Session, event: NoticeDraftPosted) -> None:
        """The draft in each reviewer's DM: posted, or edited in place (its key counts the versions)."""
        draft = event.draft
        who = ", ".join(user(p) for p in draft.posted_to) or "nobody is allowed notice.approve"
        message = draft_message(event.item, draft, list(event.previews), f"reviewers: {who}").to_json()
        for person in draft.posted_to:
            first = f"draft:{draft.id}:{person}"
            if not event.in_place:
                outbox.enqueue(session, transport=CHAT, target=person, now=event.at, key=first,
                               payload={"message": message})
            else:
                versions = len(session.exec(select(OutboxMessage.id).where(
                    col(OutboxMessage.update_key) == first)).all())
                outbox.enqueue(session, transport=CHAT, target=person, now=event.at, update_key=first,
                               key=f"{first}:v{versions + 2}", payload={"message": message})


    def loops_overdue(self, session: Session, event: LoopsOverdue) -> None:
        """Feedback loops still open long after resolution, told to whoever answers for the item."""
        lines = "\n".join(f"• {audience} → {target}" for audience, target in event.still_open)
        message = Message(text=f"{event.item.ref} was resolved but {len(event.still_open)} feedback loop(s) "
                               "are still open", body=lines)
        outbox.enqueue(session, transport=CHAT, target=event.to, now=event.at,
                       key=f"loops-overdue:{event.item.ref}", payload={"message": message.to_json()})


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
