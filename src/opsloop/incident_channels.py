"""A dedicated channel per serious incident (policy key `incident_channels`).

The channel's id is only known once the chat side has created it, yet the
incident's card must be posted *there*, after the responders were invited,
and nothing may be lost if the chat side is down. So the creation is itself
an outbox message, and the card waits behind it:

1. When an incident of a listed severity is declared, `on_created` (first in
   the `ItemCreated` row of the table) points the item's `channel` at a placeholder,
   `pending:INC-7`, and queues an outbox *operation* on that lane:
   `{"op": "channel.create", "ref", "name", "invite", "fallback"}`.
   `WorkItems` then queues the card with the placeholder as its target, on
   the same lane, so the dispatcher delivers the operation first and the card
   only once the operation is done (one in-flight message per lane).
2. The chat sender performs the operation (create, then invite) and reports
   the new channel with `created`, which stores the real id on the item (and
   audits it, and publishes `ChannelSettled`) before the operation is marked sent. A retried operation finds
   the id already stored and does not create a second channel.
3. Messages whose target is still a placeholder are resolved with `resolve`
   at send time; later cards, updates and thread lines use the real id.
4. If the channel cannot be made at all (a permanent refusal), `failed`
   falls back to the channel the incident would have had (`ops`), so the
   card still goes out and the refusal is on the timeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from opsloop import audit, outbox
from opsloop.bus import Bus
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.events import ChannelSettled, ItemChanged, ItemCreated
from opsloop.models import OutboxMessage, WorkItem
from opsloop.outbox import CHAT
from opsloop.policy import Policy
from opsloop.types import OPSLOOP, Kind
from opsloop.workitems import find

PENDING = "pending:"
CREATE_CHANNEL = "channel.create"
MAX_NAME = 80  # Slack's limit for a channel name
_USER = re.compile(r"^[UWS][A-Z0-9]+$")


def channel_name(prefix: str, number: int, title: str) -> str:
    """`inc-` 7 "EU DB primary down!" -> `inc-7-eu-db-primary-down` (Slack's name rules)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    name = f"{prefix}{number}" + (f"-{slug}" if slug else "")
    return name[:MAX_NAME].rstrip("-_")


def is_pending(target: str | None) -> bool:
    return bool(target) and str(target).startswith(PENDING)


@dataclass(eq=False)
class DedicatedChannels:
    db: Database
    policy: Policy
    clock: Clock
    bus: Bus

    # ------------------------------------------------------------------ in the declaring transaction

    def on_created(self, session: Session, event: ItemCreated) -> None:
        """Queue the channel's creation and make everything said about the item wait for it."""
        config = self.policy.incident_channels
        item = event.item
        if config is None or item.kind != Kind.INCIDENT or item.severity not in config.severities:
            return
        fallback = item.channel or self.policy.channel("ops")
        item.channel = f"{PENDING}{item.ref}"
        session.add(item)
        outbox.enqueue(session, transport=CHAT, target=item.channel, now=event.at,
                       key=f"channel:{item.ref}", payload=self._operation(item, event.actor, fallback))

    def on_changed(self, session: Session, event: ItemChanged) -> None:
        """An incident raised to a listed severity gets its channel now (its card stays where it is,
        and the new channel is told where; see `Cards.channel_settled`)."""
        config = self.policy.incident_channels
        item = event.item
        if (event.action != "severity" or config is None or item.kind != Kind.INCIDENT
                or item.severity not in config.severities or is_pending(item.channel)):
            return
        key = f"channel:{item.ref}"
        if session.exec(select(OutboxMessage.id).where(OutboxMessage.key == key)).first() is not None:
            return  # it has had its channel (or the attempt) already
        fallback = item.channel or self.policy.channel("ops")
        item.channel = f"{PENDING}{item.ref}"
        session.add(item)
        outbox.enqueue(session, transport=CHAT, target=item.channel, now=event.at, key=key,
                       payload=self._operation(item, event.actor, fallback))

    def _operation(self, item: WorkItem, actor: str, fallback: str) -> dict[str, Any]:
        config = self.policy.incident_channels
        assert config is not None
        invite: list[str] = []
        for target in [*config.invite, actor, item.owner or ""]:
            members = self.policy.roles.get(target[5:], []) if target.startswith("role:") else [target]
            invite += [m for m in members if _USER.match(m) and m not in invite]
        return {"op": CREATE_CHANNEL, "ref": item.ref, "fallback": fallback, "invite": invite,
                "name": channel_name(config.prefix, item.number, item.title)}

    # ------------------------------------------------------------------ from the chat sender

    def resolve(self, target: str) -> str | None:
        """The channel a target stands for: itself, or a pending channel's id (None: not made yet)."""
        if not is_pending(target):
            return target
        with self.db.transaction() as session:
            channel = find(session, target[len(PENDING):]).channel
        return None if is_pending(channel) else channel

    def created(self, ref: str, channel: str) -> None:
        """The channel exists: remember it on the item (people are told where the incident lives)."""
        self._settle(ref, channel, "incident.channel", reason=None)

    def failed(self, ref: str, fallback: str, reason: str) -> None:
        """No channel could be made: the incident stays where it would have been."""
        self._settle(ref, fallback, "incident.channel_failed", reason=reason)

    def _settle(self, ref: str, channel: str, action: str, *, reason: str | None) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = find(session, ref, lock=True)
            if not is_pending(item.channel):
                return  # settled by an earlier attempt
            before = item.channel
            item.channel = channel
            session.add(item)
            audit.record(session, at=now, actor=OPSLOOP, action=action, subject=ref,
                         before={"channel": before}, after={"channel": channel})
            self.bus.publish(session, ChannelSettled(at=now, item=item, channel=channel,
                                                     created=reason is None, reason=reason))

    def channel_of(self, ref: str) -> str | None:
        """The item's channel if it is settled (a retried operation must not create a second one)."""
        with self.db.transaction() as session:
            channel = find(session, ref).channel
        return None if is_pending(channel) else channel

