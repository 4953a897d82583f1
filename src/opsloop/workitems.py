"""Work items: declare, open and request them; move them through their lifecycle.

Each change runs in one transaction that also writes its timeline line, its
audit event and the outbox messages announcing it, and calls the hooks later
capabilities register (timers, loops, health) with the same session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.authz import Authorizer
from opsloop.cards import card, card_key, user
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import InvalidInput, NotFound, PermissionDenied
from opsloop.lifecycle import INITIAL, OPEN_STATES, transition
from opsloop.messages import Button, Message, escape
from opsloop.models import Account, Counter, OutboxMessage, TimelineEvent, WorkItem, WorkItemTenant
from opsloop.policy import Policy
from opsloop.types import Kind, Severity, State

CHAT = "chat"  # the outbox transport of the team's chat (Slack, or the console)
CARD_OF = "card_of"  # an outbox payload naming a card to render when it is sent
MAX_TITLE = 300
_SNAPSHOT = (
    "ref", "kind", "title", "severity", "state", "owner", "comms_owner", "channel", "labels",
    "acknowledged_at", "mitigated_at", "resolved_at", "closed_at", "decided_at", "expires_at",
    "expired_at",
)


@dataclass(frozen=True)
class ItemEvent:
    """What hooks are told: `action` happened to `item` (created, acknowledge, ...)."""

    item: WorkItem
    action: str
    actor: str
    at: datetime
    before: State | None
    tenants: list[str]
    note: str | None = None


Hook = Callable[[Session, ItemEvent], None]
# Contributes fields to a work item's card (clock states, runbook progress ...).
CardExtra = Callable[[Session, WorkItem], list[tuple[str, str]]]
# Contributes buttons to a work item's card, after its lifecycle buttons (Pause clock ...).
CardButtons = Callable[[Session, WorkItem], list[Button]]


@dataclass
class ItemView:
    item: WorkItem
    tenants: list[str]
    timeline: list[TimelineEvent] = field(default_factory=list)
    card: Message | None = None
    open_loops: list[str] = field(default_factory=list)  # "sales → U0SALES1", from the loops hook


class WorkItems:
    def __init__(
        self,
        db: Database,
        policy: Policy,
        clock: Clock,
        authorizer: Authorizer,
        hooks: Sequence[Hook] = (),
        after_commit: Callable[[], None] | None = None,
        card_extras: Sequence[CardExtra] = (),
        posted_hooks: Sequence[Hook] = (),
        card_buttons: Sequence[CardButtons] = (),
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.authz = authorizer
        self.hooks = list(hooks)
        self.card_extras = list(card_extras)
        # describe the item's open feedback loops, one line each (the loops capability adds one)
        self.loop_readers: list[Callable[[Session, WorkItem], list[str]]] = []
        # Called after a new item's card is queued, so what they post can thread under it
        # (a thread reply queued before its card would block the channel's lane).
        self.posted_hooks = list(posted_hooks)
        self.card_buttons = list(card_buttons)
        self.after_commit = after_commit or (lambda: None)
        # may refuse a person's lifecycle action on an item beyond their role (e.g. approving
        # their own exception): return why, or None. A refusal is audited and changes nothing.
        self.guards: list[Callable[[WorkItem, str, str], str | None]] = []

    # ------------------------------------------------------------------ creating

    def declare(
        self,
        *,
        actor: str,
        title: str,
        severity: Severity | None = None,
        tenants: Iterable[str] = (),
        labels: dict[str, str] | None = None,
        owner: str | None = None,
        channel: str | None = None,
    ) -> WorkItem:
        """Declare an incident."""
        return self._create(Kind.INCIDENT, actor=actor, title=title,
                            severity=severity or Severity.SEV3, tenants=tenants, labels=labels,
                            owner=owner or actor, channel=channel)

    def open_escalation(
        self, *, actor: str, title: str, severity: Severity | None = None,
        tenants: Iterable[str] = (), labels: dict[str, str] | None = None,
    ) -> WorkItem:
        """Open a customer escalation; it is posted to the support channel when there is one."""
        channel = "support" if "support" in self.policy.channels else "ops"
        return self._create(Kind.ESCALATION, actor=actor, title=title,
                            severity=severity or Severity.SEV3, tenants=tenants, labels=labels,
                            owner=None, channel=channel)

    def request_exception(
        self, *, actor: str, title: str, expires_in: timedelta | None = None,
        tenants: Iterable[str] = (), labels: dict[str, str] | None = None,
    ) -> WorkItem:
        """Ask for an exception; approvers decide, and an approval lapses after `expires_in`."""
        extra = {"expires_in": int(expires_in.total_seconds())} if expires_in else {}
        return self._create(Kind.EXCEPTION, actor=actor, title=title, severity=Severity.SEV4,
                            tenants=tenants, labels={**(labels or {})}, owner=actor,
                            channel="ops", extra=extra)

    def _create(
        self, kind: Kind, *, actor: str, title: str, severity: Severity,
        tenants: Iterable[str], labels: dict[str, str] | None, owner: str | None,
        channel: str | None, extra: dict[str, Any] | None = None,
    ) -> WorkItem:
        action = {Kind.INCIDENT: "incident.declare", Kind.ESCALATION: "escalation.open",
                  Kind.EXCEPTION: "exception.request"}[kind]
        self._authorize(actor, action, subject=kind.value)
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.create_in(session, kind, actor=actor, title=title, severity=severity,
                                  tenants=tenants, labels=labels, owner=owner, channel=channel,
                                  extra=extra)
        self.after_commit()
        return item

    def create_in(
        self, session: Session, kind: Kind, *, actor: str, title: str, severity: Severity,
        tenants: Iterable[str] = (), labels: dict[str, str] | None = None, owner: str | None = None,
        channel: str | None = None, extra: dict[str, Any] | None = None,
    ) -> WorkItem:
        """Create a work item in the caller's transaction (the caller has authorised `actor`)."""
        title = " ".join(title.split())
        if not title:
            raise InvalidInput(f"a {kind.value} needs a title")
        if len(title) > MAX_TITLE:
            raise InvalidInput(f"the title is {len(title)} characters; at most {MAX_TITLE}")
        tenant_ids = sorted(set(tenants))
        now = self.clock.now()
        self._check_tenants(session, tenant_ids)
        number = session.exec(
            update(Counter).where(col(Counter.name) == kind.value)
            .values(value=col(Counter.value) + 1).returning(col(Counter.value))
        ).one()[0]
        item = WorkItem(
            ref=f"{kind.prefix}-{number}", kind=kind.value, number=number, title=title,
            severity=severity.value, state=INITIAL[kind].value, owner=owner,
            created_by=actor, channel=self.policy.channel(channel or "ops"),
            labels={**(labels or {}), **{k: str(v) for k, v in (extra or {}).items()}},
            created_at=now, updated_at=now,
        )
        session.add(item)
        session.flush()
        assert item.id is not None
        for tenant in tenant_ids:
            session.add(WorkItemTenant(work_item_id=item.id, tenant_id=tenant))
        verb = {Kind.INCIDENT: "declared", Kind.ESCALATION: "opened",
                Kind.EXCEPTION: "requested"}[kind]
        line = f"{user(actor)} {verb} {item.ref}: {escape(title)}"
        self._timeline(session, item, actor, "created", line)
        audit.record(session, at=now, actor=actor, action=f"{kind.value}.created",
                     subject=item.ref, after={**_snapshot(item), "tenants": tenant_ids})
        event = ItemEvent(item, "created", actor, now, None, tenant_ids)
        self._notify(session, event)
        outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=now,
                       key=card_key(item.ref),
                       payload={"message": self.card(session, item, tenant_ids).to_json()})
        for hook in self.posted_hooks:
            hook(session, event)
        return item

    def _check_tenants(self, session: Session, tenant_ids: list[str]) -> None:
        if not tenant_ids:
            return
        known = set(session.exec(select(Account.id).where(col(Account.id).in_(tenant_ids))))
        unknown = [t for t in tenant_ids if t not in known]
        if unknown:
            raise NotFound(
                f"unknown tenant {', '.join(unknown)}: add it to the account catalog "
                "(opsloop accounts import FILE)"
            )

    # ------------------------------------------------------------------ changing

    def act(self, *, actor: str, ref: str, action: str, note: str | None = None) -> WorkItem:
        """Apply a lifecycle action (acknowledge, mitigate, resolve, close, reopen, approve, ...)."""
        kind = kind_of(ref)
        self._authorize(actor, f"{kind.value}.{action}", subject=ref.upper())
        refusal: str | None = None
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.lock(session, ref)
            refusal = next((why for guard in self.guards if (why := guard(item, actor, action))), None)
            if refusal is None:
                item = self.act_in(session, item, actor=actor, action=action, note=note)
            else:
                audit.record(session, at=self.clock.now(), actor=actor, action="permission.denied",
                             subject=item.ref, after={"attempted": f"{kind.value}.{action}",
                                                      "reason": refusal})
        if refusal is not None:
            raise PermissionDenied(refusal)
        self.after_commit()
        return item

    def act_in(
        self, session: Session, item: WorkItem, *, actor: str, action: str, note: str | None = None,
        debounce: timedelta = timedelta(0), quiet: bool = False,
    ) -> WorkItem:
        """Apply a lifecycle action to a locked item in the caller's transaction.

        `quiet` keeps the change off the item's thread (it is still on its
        timeline and card): for machine-made changes that would be noise.
        """
        now = self.clock.now()
        before = State(item.state)
        step = transition(Kind(item.kind), before, action, item.ref)
        old = _snapshot(item)
        item.state = step.target.value
        item.updated_at = now
        if step.stamp:
            setattr(item, step.stamp, now)
        if action == "reopen":
            item.mitigated_at = item.resolved_at = None
        if action == "acknowledge" and item.owner is None:
            item.owner = actor
        if action == "approve" and "expires_in" in item.labels:
            item.expires_at = now + timedelta(seconds=int(item.labels["expires_in"]))
        session.add(item)
        text = f"{user(actor)} {step.verb} {item.ref}" + (f": {escape(note)}" if note else "")
        self._changed(session, item, actor, action, text, old, now, before, note, debounce, quiet)
        return item

    def assign(
        self, *, actor: str, ref: str, owner: str | None = None, comms_owner: str | None = None
    ) -> WorkItem:
        """Set the owner and/or the comms owner."""
        kind = kind_of(ref)
        self._authorize(actor, f"{kind.value}.assign", subject=ref.upper())
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.lock(session, ref)
            old = _snapshot(item)
            parts = []
            if owner is not None:
                item.owner = owner
                parts.append(f"owner {user(owner)}")
            if comms_owner is not None:
                item.comms_owner = comms_owner
                parts.append(f"comms owner {user(comms_owner)}")
            if not parts:
                raise InvalidInput("name an owner or a comms owner")
            item.updated_at = now
            session.add(item)
            text = f"{user(actor)} made {' and '.join(parts)} of {item.ref}"
            self._changed(session, item, actor, "assign", text, old, now, State(item.state), None)
        self.after_commit()
        return item

    def add_tenants(self, *, actor: str, ref: str, tenants: Iterable[str]) -> WorkItem:
        """Name more affected accounts; their audiences are told from now on."""
        kind = kind_of(ref)
        self._authorize(actor, f"{kind.value}.tenants", subject=ref.upper())
        wanted = sorted(set(tenants))
        if not wanted:
            raise InvalidInput("name at least one tenant id")
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.lock(session, ref)
            assert item.id is not None
            self._check_tenants(session, wanted)
            known = set(self.tenants(session, item.id))
            added = [t for t in wanted if t not in known]
            if not added:
                raise InvalidInput(f"{item.ref} already names {', '.join(wanted)}")
            old = {**_snapshot(item), "tenants": sorted(known)}
            for tenant in added:
                session.add(WorkItemTenant(work_item_id=item.id, tenant_id=tenant))
            item.updated_at = now
            session.add(item)
            session.flush()
            text = f"{user(actor)} added {', '.join(added)} to {item.ref}"
            self._changed(session, item, actor, "tenants", text, old, now, State(item.state), None)
        self.after_commit()
        return item

    def record(
        self, *, actor: str, ref: str, action: str, text: str, note: str | None = None,
        permission: str | None = None,
    ) -> WorkItem:
        """A change that is not a lifecycle step (a status update, a paused clock ...).

        Authorised as `<kind>.<permission or action>`, then written like every change:
        a timeline line, an audit event, the hooks (which may refuse with a DomainError,
        undoing it all) and the refreshed card, in one transaction.
        """
        kind = kind_of(ref)
        self._authorize(actor, f"{kind.value}.{permission or action}", subject=ref.upper())
        now = self.clock.now()
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self.lock(session, ref)
            old = _snapshot(item)
            item.updated_at = now
            session.add(item)
            self._changed(session, item, actor, action, text, old, now, State(item.state), note)
        self.after_commit()
        return item

    def _changed(
        self, session: Session, item: WorkItem, actor: str, action: str, text: str,
        old: dict[str, Any], now: datetime, before: State, note: str | None,
        debounce: timedelta = timedelta(0), quiet: bool = False,
    ) -> None:
        assert item.id is not None
        tenants = self.tenants(session, item.id)
        self._timeline(session, item, actor, action, text)
        new = {**_snapshot(item), **({"tenants": tenants} if "tenants" in old else {})}
        audit.record(
            session, at=now, actor=actor, action=f"{item.kind}.{action}", subject=item.ref,
            before={k: v for k, v in old.items() if new[k] != v} | ({"note": None} if note else {}),
            after={k: v for k, v in new.items() if old[k] != v} | ({"note": note} if note else {}),
        )
        self._notify(session, ItemEvent(item, action, actor, now, before, tenants, note))
        self.announce(session, item, tenants, None if quiet else text, now, debounce=debounce)

    def announce(
        self, session: Session, item: WorkItem, tenants: list[str], line: str | None, now: datetime,
        *, debounce: timedelta = timedelta(0),
    ) -> None:
        """Refresh the item's card in place and add `line` to its thread.

        Edits of one card have a lane of their own (an edit is no new message
        in the channel) and supersede edits still waiting; `debounce` folds a
        burst of machine-made changes into at most one edit per period. A
        debounced edit is queued as "this card, as it is when sent" (rendered
        by `prepare_outbound`), so a storm queues one cheap row per card.
        """
        key = card_key(item.ref)
        lane = f"{CHAT}:{item.channel}:edit:{item.ref}"
        if debounce > timedelta(0):
            waiting = session.exec(select(OutboxMessage.id).where(
                OutboxMessage.update_key == key, OutboxMessage.status == outbox.PENDING,
                col(OutboxMessage.leased_until).is_(None))).first()
            if waiting is None:
                outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=now,
                               update_key=key, lane=lane, delay=debounce, payload={CARD_OF: item.ref})
        else:
            outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=now,
                           update_key=key, lane=lane, supersede=True,
                           payload={"message": self.card(session, item, tenants).to_json()})
        if line:
            outbox.enqueue(session, transport=CHAT, target=item.channel or "", now=now,
                           thread_key=key, payload={"message": Message(text=line).to_json()})

    def prepare_outbound(self, session: Session, message: OutboxMessage) -> None:
        """Render a card queued as `{"card_of": ref}` as it is now, just before it is sent."""
        ref = message.payload.get(CARD_OF)
        if ref is None:
            return
        item = self._find(session, ref)
        assert item.id is not None
        card_now = self.card(session, item, self.tenants(session, item.id))
        message.payload = {"message": card_now.to_json()}  # stored: the record of what was sent

    def card(self, session: Session, item: WorkItem, tenants: list[str]) -> Message:
        extra = [field for contribute in self.card_extras for field in contribute(session, item)]
        buttons = [button for contribute in self.card_buttons for button in contribute(session, item)]
        return card(item, tenants, extra, buttons)

    # ------------------------------------------------------------------ reading

    def get(self, ref: str) -> ItemView:
        with self.db.transaction() as session:
            item = self._find(session, ref)
            assert item.id is not None
            timeline = list(session.exec(
                select(TimelineEvent).where(TimelineEvent.work_item_id == item.id)
                .order_by(col(TimelineEvent.id))
            ))
            tenants = self.tenants(session, item.id)
            loops = [line for describe in self.loop_readers for line in describe(session, item)]
            return ItemView(item, tenants, timeline, self.card(session, item, tenants), loops)

    def list_items(self, *, kind: Kind | None = None, open_only: bool = True,
             limit: int = 50) -> list[ItemView]:
        with self.db.transaction() as session:
            query = select(WorkItem).order_by(col(WorkItem.id).desc()).limit(limit)
            if kind is not None:
                query = query.where(WorkItem.kind == kind.value)
            if open_only:
                states = {s.value for k in ([kind] if kind else list(Kind)) for s in OPEN_STATES[k]}
                query = query.where(col(WorkItem.state).in_(states))
            items = list(session.exec(query))
            return [ItemView(i, self.tenants(session, i.id or 0)) for i in items]

    # ------------------------------------------------------------------ helpers

    def _authorize(self, actor: str, action: str, *, subject: str) -> None:
        if self.authz.allowed(actor, action):
            return
        with self.db.transaction() as session:
            audit.record(session, at=self.clock.now(), actor=actor, action="permission.denied",
                         subject=subject, after={"attempted": action})
        raise PermissionDenied(
            f"you may not {action.replace('.', ' ')}: that needs the role "
            f"{self.authz.explain(action)}"
        )

    def _find(self, session: Session, ref: str, *, lock: bool = False) -> WorkItem:
        kind_of(ref)
        query = select(WorkItem).where(WorkItem.ref == ref.upper())
        if lock:
            query = query.with_for_update()
        item = session.exec(query).first()
        if item is None:
            raise NotFound(f"no work item {ref.upper()}")
        return item

    def lock(self, session: Session, ref: str) -> WorkItem:
        """The item, row-locked for the rest of the caller's transaction."""
        return self._find(session, ref, lock=True)

    def tenants(self, session: Session, item_id: int) -> list[str]:
        return list(session.exec(
            select(WorkItemTenant.tenant_id).where(WorkItemTenant.work_item_id == item_id)
            .order_by(col(WorkItemTenant.tenant_id))
        ))

    def _timeline(self, session: Session, item: WorkItem, actor: str, action: str, text: str) -> None:
        assert item.id is not None
        session.add(TimelineEvent(work_item_id=item.id, at=item.updated_at, actor=actor,
                                  action=action, text=text))

    def _notify(self, session: Session, event: ItemEvent) -> None:
        for hook in self.hooks:
            hook(session, event)


def kind_of(ref: str) -> Kind:
    """INC-12 -> incident; anything else that is not a work item id is InvalidInput."""
    prefix, sep, number = ref.partition("-")
    try:
        if not sep or not number.isdigit():
            raise KeyError(ref)
        return Kind.from_prefix(prefix)
    except KeyError:
        raise InvalidInput(f"{ref!r} is not a work item id (like INC-1, ESC-2 or EXC-3)") from None


def _snapshot(item: WorkItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in _SNAPSHOT}
