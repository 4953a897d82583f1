"""What SLA warnings, breaches and escalation pages say, and where."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from opsloop import outbox
from opsloop.copies import settle_copies
from opsloop.durations import format_duration
from opsloop.events import ClockBreached, ClockWarned, EscalationExhausted, EscalationPaged, ItemChanged
from opsloop.incident_channels import is_pending
from opsloop.messages import Button, Message, channel, escape, user
from opsloop.models import WorkItem
from opsloop.outbox import CHAT
from opsloop.present.clocks import human
from opsloop.present.items import Cards
from opsloop.sla.escalation import PAGE
from opsloop.timers.models import Timer
from opsloop.types import State


def page_message(item: WorkItem, chain: str, where: str) -> Message:
    return Message(
        text=f"📟 You are paged: {item.ref} {escape(item.title)} ({item.severity})",
        fields=[("State", item.state), ("Channel", "its own, being created" if is_pending(item.channel)
                                                    else channel(item.channel))],
        buttons=[Button(label="Acknowledge", action="workitem.acknowledge", value=item.ref,
                        style="primary")],
        context=f"escalation {chain}, {where}",
    )



class ClockWords:
    """Warnings and breaches in the item's thread (also shown in the channel), pages by DM."""

    def __init__(self, cards: Cards) -> None:
        self.cards = cards

    def warned(self, session: Session, event: ClockWarned) -> None:
        name = "an update" if event.target == "update" else f"the {event.target} target"
        self._tell(session, event.item, f"⏳ {event.item.ref}: {human(event.left)} left for {name} "
                   f"({_target(event.target_seconds)}; {round(event.fraction * 100)}% used)", event.at)

    def breached(self, session: Session, event: ClockBreached) -> None:
        target, ref = _target(event.target_seconds), event.item.ref
        self._tell(session, event.item, f"🚨 {ref}: no update for {target} (the update target)"
                   if event.target == "update" else f"🚨 {ref} missed its {event.target} target ({target})",
                   event.at)

    def paged(self, session: Session, event: EscalationPaged) -> None:
        item = event.item
        where = f"level {event.level} of {event.levels}, round {event.round} of {event.rounds}"
        for person in event.users:
            outbox.enqueue(session, transport=CHAT, target=person, now=event.at,
                           key=f"page:{event.timer_id}:{person}",
                           payload={"message": page_message(item, event.chain, where).to_json()})
        if not event.users:
            line = f"⚠️ Nobody to page for {item.ref} at {where} ({', '.join(event.notify)})"
        else:
            line = f"📟 Paged {', '.join(user(u) for u in event.users)} for {item.ref} ({where})"
        self._tell(session, item, line, event.at)

    def settle_pages(self, session: Session, event: ItemChanged) -> None:
        """Someone took it (acknowledged, or it went further): every page's DM says who, buttons gone."""
        if event.before != State.TRIGGERED or event.after == State.TRIGGERED:
            return
        item = event.item
        timers = session.exec(select(Timer.id).where(Timer.work_item_id == item.id, Timer.kind == PAGE)).all()
        if timers:
            outcome = f"✅ {item.ref} was {event.after.value} by {user(event.actor)}: {escape(item.title)}"
            settle_copies(session, prefixes=[f"page:{t}:" for t in timers], outcome=outcome, now=event.at)

    def exhausted(self, session: Session, event: EscalationExhausted) -> None:
        rounds = f"{event.rounds} round{'s' if event.rounds > 1 else ''}"
        self._tell(session, event.item, f"🚨 Nobody acknowledged {event.item.ref} after {rounds} of "
                   f"{event.chain}", event.at)

    def _tell(self, session: Session, item: WorkItem, line: str, at: datetime) -> None:
        """The card refreshed, then a line in the thread that also shows in the channel."""
        self.cards.refresh(session, item, at)
        self.cards.say(session, item, line, at, broadcast=True)


def _target(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))
