"""Follow-ups in words: the line on the item's timeline and thread, the owner's DM, reminders, lists."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from opsloop import outbox
from opsloop.events import FollowUpClosed, FollowUpCreated, FollowUpReminded
from opsloop.messages import Button, Message, escape, link, user
from opsloop.outbox import CHAT
from opsloop.present.items import Cards
from opsloop.reviews.models import FollowUp
from opsloop.reviews.views import FollowUpView


def when(moment: datetime, zone: str | ZoneInfo) -> str:
    return moment.astimezone(ZoneInfo(zone) if isinstance(zone, str) else zone).strftime("%a %d %b %H:%M")


def status(found: FollowUp, now: datetime, zone: str) -> str:
    if found.closed_at is not None:
        return f"closed {when(found.closed_at, zone)} by {user(found.closed_by)}: {escape(found.note or '')}"
    if found.due_at <= now:
        return f"overdue since {when(found.due_at, zone)}"
    return f"due {when(found.due_at, zone)}"


def line(found: FollowUp, now: datetime, zone: str) -> str:
    """One follow-up as a line: on the review, in lists."""
    mark = "✅" if found.closed_at else ("⚠️" if found.due_at <= now else "☐")
    where = f" ({link(found.link, 'link')})" if found.link else ""
    return f"{mark} {found.ref} {escape(found.what)}{where} — {user(found.owner)}, {status(found, now, zone)}"


def list_line(view: FollowUpView, now: datetime, zone: str) -> str:
    return f"{line(view.followup, now, zone)} · from {view.item_ref}"


def card(view: FollowUpView, now: datetime, zone: str, *, for_owner: bool = False) -> Message:
    found = view.followup
    fields = [("From", f"{view.item_ref} {escape(view.item_title)}"), ("Owner", user(found.owner)),
              ("Due", when(found.due_at, zone))]
    if found.link:
        fields.append(("Link", link(found.link, found.link[:60])))
    if found.themes:
        fields.append(("Theme", escape(", ".join(found.themes))))
    buttons = [Button("Close…", "followup.close", found.ref)] if for_owner and found.closed_at is None else []
    return Message(text=f"📌 {found.ref}: {escape(found.what)}", fields=fields, buttons=buttons,
                   context=status(found, now, zone))


def reminder(view: FollowUpView, stage: str, now: datetime, zone: str) -> Message:
    found = view.followup
    said = (f"is overdue (it was due {when(found.due_at, zone)})" if stage == "overdue"
            else f"is due {when(found.due_at, zone)}")
    return Message(text=f"⏰ {found.ref} {said}: {escape(found.what)}",
                   fields=[("From", f"{view.item_ref} {escape(view.item_title)}")],
                   buttons=[Button("Close…", "followup.close", found.ref)],
                   context=f'Done? `/followup close {found.ref} "what was done"`')


class FollowUpWords:
    """A follow-up on its item's timeline and thread, and in its owner's DMs."""

    def __init__(self, cards: Cards) -> None:
        self.cards = cards

    def created(self, session: Session, event: FollowUpCreated) -> None:
        found, zone = event.followup, self.cards.policy.timezone
        said = (f"📌 {user(event.actor)} made {found.ref} for {user(found.owner)}: {escape(found.what)} — "
                f"due {when(found.due_at, zone)}")
        self.cards.story(session, event.item, event.actor, "followup.created", said, event.at)
        self.cards.say(session, event.item, said, event.at)
        view = FollowUpView(found, event.item.ref, event.item.title)
        outbox.enqueue(session, transport=CHAT, target=found.owner, now=event.at,
                       key=f"followup:{found.ref}:owner",
                       payload={"message": card(view, event.at, zone, for_owner=True).to_json()})

    def closed(self, session: Session, event: FollowUpClosed) -> None:
        found = event.followup
        said = f"✅ {user(event.actor)} closed {found.ref} ({escape(found.what)}): {escape(found.note or '')}"
        self.cards.story(session, event.item, event.actor, "followup.closed", said, event.at)
        self.cards.say(session, event.item, said, event.at)

    def reminded(self, session: Session, event: FollowUpReminded) -> None:
        found = event.followup
        message = reminder(FollowUpView(found, event.item.ref, event.item.title), event.stage, event.at,
                           self.cards.policy.timezone)
        outbox.enqueue(session, transport=CHAT, target=found.owner, now=event.at,
                       key=f"followup:{found.ref}:remind:{event.reminders}",
                       payload={"message": message.to_json()})
