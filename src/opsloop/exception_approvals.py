"""Exceptions (`EXC-n`): asking the approvers, announcing decisions, and ending them on time.

Handlers of `ItemCreated` and `ItemChanged`, in the transaction of each change:
- requested: the ops channel's card carries Approve / Reject (policy
  `exceptions.ask` has `channel`), and each person who may approve gets a DM
  with the same buttons (`dm`) — never the requester, who cannot approve
  their own exception (the lifecycle refuses it, audited);
- approved / rejected: the decision is posted to the channel and DMed to
  the requester; an approval with an end time gets a durable timer;
- expired (the timer, or an approver ending it early): the requester and the
  channel are told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from opsloop import audit, outbox
from opsloop.authz import Authorizer
from opsloop.clock import Clock
from opsloop.copies import settle_copies
from opsloop.durations import format_duration
from opsloop.events import ItemChanged, ItemCreated
from opsloop.messages import Button, Message, escape, user
from opsloop.models import WorkItem
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, Kind
from opsloop.workitems import WorkItems

EXPIRE_TIMER = "exception.expire"


def time_left(item: WorkItem, now: datetime) -> str | None:
    if item.expires_at is None:
        return None
    left = item.expires_at - now
    return "ends now" if left <= timedelta(0) else f"{format_duration(_minutes(left))} left"


def _minutes(delta: timedelta) -> timedelta:
    return timedelta(minutes=max(1, int(delta.total_seconds() // 60)))


@dataclass(eq=False)
class ExceptionApprovals:
    policy: Policy
    clock: Clock
    authz: Authorizer
    items: WorkItems

    def approvers(self, requester: str) -> list[str]:
        """Everyone who may approve exceptions now (user groups resolved at this moment)."""
        people: list[str] = []
        for role in self.policy.roles_allowed("exception.approve"):
            for member in self.policy.roles.get(role, []):
                found = sorted(self.authz.directory.members(member)) if member.startswith("S") else [member]
                people += [p for p in found if p not in people and p != requester]
        return people

    # ------------------------------------------------------------------ handlers

    def ask_approvers(self, session: Session, event: ItemCreated) -> None:
        if event.item.kind == Kind.EXCEPTION.value:
            self._requested(session, event.item, event.at)

    def follow(self, session: Session, event: ItemChanged) -> None:
        """Decisions are announced (and an approval's end timed); an ending is announced."""
        item = event.item
        if item.kind != Kind.EXCEPTION.value:
            return
        if event.action in ("approve", "reject"):
            self._decided(session, item, event)
        elif event.action == "expire":
            self._expired(session, item, event)

    def _requested(self, session: Session, item: WorkItem, now: datetime) -> None:
        default = self.policy.exceptions.default_expires
        if "expires_in" not in item.labels and default is not None:
            item.labels = {**item.labels, "expires_in": str(int(default.total_seconds()))}
            session.add(item)
        ask = self.policy.exceptions.ask
        asked = self.approvers(item.created_by) if "dm" in ask else []
        lasting = _lasting(item)
        for person in asked:
            outbox.enqueue(session, transport=CHAT, target=person, now=now,
                           key=f"exception-ask:{item.ref}:{person}", payload={"message": Message(
                               text=f"🙋 {user(item.created_by)} asks for an exception: {item.ref}",
                               body=f"*{escape(item.title)}*" + (f"\n{lasting}" if lasting else ""),
                               buttons=[Button("Approve", "workitem.approve", item.ref, "primary"),
                                        Button("Reject", "workitem.reject", item.ref, "danger")],
                               context="You may approve exceptions; the requester cannot approve their own.",
                           ).to_json()})
        audit.record(session, at=now, actor=OPSLOOP, action="exception.approvers_asked", subject=item.ref,
                     after={"via": list(ask), "asked": asked})

    def _decided(self, session: Session, item: WorkItem, event: ItemChanged) -> None:
        approved = event.action == "approve"
        until = f" until {item.expires_at:%Y-%m-%d %H:%M} UTC" if approved and item.expires_at else ""
        if approved and item.expires_at is None:
            until = " with no end time"
        why = f" — {escape(event.note)}" if event.note else ""
        icon, verb = ("✅", "approved") if approved else ("⛔", "rejected")
        text = f"{icon} {item.ref} was {verb} by {user(event.actor)}{until}: {escape(item.title)}{why}"
        self._tell(session, item, text, event.at)
        # every approver's DM says who decided, and loses its buttons
        settle_copies(session, prefixes=[f"exception-ask:{item.ref}:"], outcome=text, now=event.at)
        if approved and item.expires_at is not None:
            session.add(Timer(kind=EXPIRE_TIMER, due_at=item.expires_at, work_item_id=item.id,
                              payload={"ref": item.ref}, created_at=event.at))

    def _expired(self, session: Session, item: WorkItem, event: ItemChanged) -> None:
        if event.actor == OPSLOOP:
            text = f"⌛ {item.ref} expired: {escape(item.title)}. The standard path applies again."
        else:
            text = f"⌛ {item.ref} was ended by {user(event.actor)}: {escape(item.title)}"
        self._tell(session, item, text, event.at)

    def _tell(self, session: Session, item: WorkItem, text: str, now: datetime) -> None:
        """The channel (a message of its own, not only a thread line) and the requester."""
        message = {"message": Message(text=text).to_json()}
        outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=now, payload=message)
        outbox.enqueue(session, transport=CHAT, target=item.created_by, now=now, payload=message)

    # ------------------------------------------------------------------ the timer

    def on_expire(self, session: Session, timer: Timer, now: datetime) -> str:
        """The `exception.expire` timer: an approved exception whose time is up ends."""
        item = session.get(WorkItem, timer.work_item_id, with_for_update=True)
        if item is None or item.state != "approved":
            return f"skipped: {item.state if item else 'gone'}"
        if item.expires_at is None or item.expires_at > now:
            return "skipped: it runs longer"
        self.items.act_in(session, item, actor=OPSLOOP, action="expire", quiet=True)
        return "fired"


def _lasting(item: WorkItem) -> str | None:
    seconds = item.labels.get("expires_in")
    if not seconds:
        return None
    return f"for {format_duration(timedelta(seconds=int(seconds)))} once approved"
