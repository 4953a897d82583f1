"""Work items: declare, open and request them; move them through their lifecycle.

Each change runs in one transaction that writes its audit event and publishes
what happened (`ItemCreated`, `ItemChanged`) to the handler table, whose
handlers (clocks, runbooks, loops, health, the card and its thread) work in
the same transaction: the change and everything it causes land together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.authz import Authorizer
from opsloop.bus import Bus
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import InvalidInput, NotFound
from opsloop.events import ItemChanged, ItemCreated
from opsloop.incident_roles.models import roles_held
from opsloop.lifecycle import FINAL, INITIAL, refusal, transition
from opsloop.listing import ItemPage, ItemQuery, search
from opsloop.models import Account, Counter, TimelineEvent, WorkItem, WorkItemTenant
from opsloop.policy import Policy
from opsloop.types import Kind, Severity, State, is_system

MAX_TITLE = 300
_SNAPSHOT = (
    "ref", "kind", "title", "severity", "state", "owner", "comms_owner", "channel", "labels",
    "acknowledged_at", "mitigated_at", "resolved_at", "closed_at", "decided_at", "expires_at",
    "expired_at",
)


@dataclass
class ItemView:
    item: WorkItem
    tenants: list[str]
    timeline: list[TimelineEvent] = field(default_factory=list)


class WorkItems:
    def __init__(self, db: Database, policy: Policy, clock: Clock, authorizer: Authorizer, bus: Bus) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.authz = authorizer
        self.bus = bus

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
        self.authz.require(actor, action, subject=kind.value)
        with self.db.transaction() as session:
            audit.lock_chain(session)
            return self.create_in(session, kind, actor=actor, title=title, severity=severity,
                                  tenants=tenants, labels=labels, owner=owner, channel=channel,
                                  extra=extra)

    def create_in(
        self, session: Session, kind: Kind, *, actor: str, title: str, severity: Severity,
        tenants: Iterable[str] = (), labels: dict[str, str] | None = None, owner: str | None = None,
        channel: str | None = None, extra: dict[str, Any] | None = None, state: State | None = None,
    ) -> WorkItem:
        """Create a work item in the caller's transaction (the caller has authorised `actor`); `state`
        overrides the kind's first state (a maintenance window that needs approval is `requested`)."""
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
            severity=severity.value, state=(state or INITIAL[kind]).value, owner=owner,
            created_by=actor, channel=self.policy.channel(channel or "ops"),
            labels={**(labels or {}), **{k: str(v) for k, v in (extra or {}).items()}},
            created_at=now, updated_at=now,
        )
        session.add(item)
        session.flush()
        assert item.id is not None
        for tenant in tenant_ids:
            session.add(WorkItemTenant(work_item_id=item.id, tenant_id=tenant))
        audit.record(session, at=now, actor=actor, action=f"{kind.value}.created",
                     subject=item.ref, after={**_snapshot(item), "tenants": tenant_ids})
        self.bus.publish(session, ItemCreated(at=now, item=item, actor=actor, tenants=tuple(tenant_ids)))
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

    def act(self, *, actor: str, ref: str, action: str, note: str | None = None, forced: bool = False
            ) -> WorkItem:
        """Apply a lifecycle action (acknowledge, mitigate, resolve, close, reopen, approve, ...);
        `forced` overrides what a handler would refuse (a close with runbook steps open), for `note`."""
        attempted = self._authorize(actor, ref, action)
        with self._locked(ref) as (session, item):
            why = refusal(item, actor, action)  # beyond roles: e.g. nobody approves their own exception
            if why is None:
                return self.act_in(session, item, actor=actor, action=action, note=note, forced=forced)
        raise self.authz.refuse(actor, attempted, subject=item.ref, reason=why, detail={"reason": why})

    def act_in(
        self, session: Session, item: WorkItem, *, actor: str, action: str, note: str | None = None,
        debounce: timedelta = timedelta(0), quiet: bool = False, forced: bool = False,
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
        machine_ack = action == "acknowledge" and is_system(actor)
        if step.stamp and not (machine_ack and not self.policy.sla.machine_ack_meets_response):
            setattr(item, step.stamp, now)  # an integration's ack is on the record, not a response time
        if action == "reopen":
            item.mitigated_at = item.resolved_at = item.closed_at = None
        if action == "acknowledge" and item.owner is None and not is_system(actor):
            item.owner = actor  # an integration acknowledging (Events v2) is no owner: nobody took it
        if action == "approve" and "expires_in" in item.labels:
            item.expires_at = now + timedelta(seconds=int(item.labels["expires_in"]))
        session.add(item)
        self._changed(session, item, actor, action, old, now, before, note, debounce, quiet, forced=forced)
        return item

    def change_severity(self, *, actor: str, ref: str, severity: Severity, reason: str | None = None
                        ) -> WorkItem:
        """A new severity: its handlers re-evaluate the SLA policy (time used is kept), the escalation
        chain, the audiences and the dedicated channel, in the same transaction."""
        self._authorize(actor, ref, "severity")
        now = self.clock.now()
        with self._locked(ref) as (session, item):
            if item.severity == severity.value:
                raise InvalidInput(f"{item.ref} is already {severity.value}")
            if State(item.state) in FINAL:
                raise InvalidInput(f"{item.ref} is {item.state}: reopen it to change its severity")
            old = _snapshot(item)
            item.severity = severity.value
            item.updated_at = now
            session.add(item)
            self._changed(session, item, actor, "severity", old, now, State(item.state), reason)
        return item

    def record_held_in(self, session: Session, item: WorkItem, *, actor: str, action: str,
                       before: dict[str, Any], after: dict[str, Any], note: str | None = None) -> None:
        """A change of something the item holds beyond its own fields (e.g. an incident role), in the
        caller's transaction on a locked item: audited and published like every change."""
        now = self.clock.now()
        item.updated_at = now
        session.add(item)
        assert item.id is not None
        tenants = self.tenants(session, item.id)
        audit.record(session, at=now, actor=actor, action=f"{item.kind}.{action}", subject=item.ref,
                     before=before, after=after | ({"note": note} if note else {}))
        changed = {k: (before.get(k), after.get(k)) for k in {*before, *after}}
        self.bus.publish(session, ItemChanged(
            at=now, item=item, action=action, actor=actor, before=State(item.state), after=State(item.state),
            tenants=tuple(tenants), note=note, changed=changed))

    def assign(
        self, *, actor: str, ref: str, owner: str | None = None, comms_owner: str | None = None
    ) -> WorkItem:
        """Set the owner and/or the comms owner."""
        self._authorize(actor, ref, "assign")
        if owner is None and comms_owner is None:
            raise InvalidInput("name an owner or a comms owner")
        now = self.clock.now()
        with self._locked(ref) as (session, item):
            old = _snapshot(item)
            if owner is not None:
                item.owner = owner
            if comms_owner is not None:
                item.comms_owner = comms_owner
            item.updated_at = now
            session.add(item)
            named = {"owner": owner, "comms_owner": comms_owner}
            self._changed(session, item, actor, "assign", old, now, State(item.state), None,
                          named={k: v for k, v in named.items() if v is not None})
        return item

    def add_tenants(self, *, actor: str, ref: str, tenants: Iterable[str]) -> WorkItem:
        """Name more affected accounts; their audiences are told from now on."""
        self._authorize(actor, ref, "tenants")
        wanted = sorted(set(tenants))
        if not wanted:
            raise InvalidInput("name at least one tenant id")
        now = self.clock.now()
        with self._locked(ref) as (session, item):
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
            self._changed(session, item, actor, "tenants", old, now, State(item.state), None)
        return item

    def record(
        self, *, actor: str, ref: str, action: str, note: str | None = None, permission: str | None = None,
    ) -> WorkItem:
        """A change that is not a lifecycle step (a status update, a paused clock ...).

        Authorised as `<kind>.<permission or action>`, then written like every change:
        an audit event and `ItemChanged` (whose handlers may refuse with a DomainError,
        undoing it all), in one transaction.
        """
        self._authorize(actor, ref, permission or action)
        now = self.clock.now()
        with self._locked(ref) as (session, item):
            old = _snapshot(item)
            item.updated_at = now
            session.add(item)
            self._changed(session, item, actor, action, old, now, State(item.state), note)
        return item

    def record_in(self, session: Session, item: WorkItem, *, actor: str, action: str,
                  note: str | None = None, quiet: bool = False) -> None:
        """`record` for a locked item in the caller's transaction (the caller has authorised `actor`)."""
        now = self.clock.now()
        old = _snapshot(item)
        item.updated_at = now
        session.add(item)
        self._changed(session, item, actor, action, old, now, State(item.state), note, quiet=quiet)

    def _changed(
        self, session: Session, item: WorkItem, actor: str, action: str, old: dict[str, Any], now: datetime,
        before: State, note: str | None, debounce: timedelta = timedelta(0), quiet: bool = False,
        named: dict[str, Any] | None = None, forced: bool = False,
    ) -> None:
        """Audit the change and publish it; `named` are fields the person set, changed or not."""
        assert item.id is not None
        tenants = self.tenants(session, item.id)
        new = {**_snapshot(item), **({"tenants": tenants} if "tenants" in old else {})}
        audit.record(
            session, at=now, actor=actor, action=f"{item.kind}.{action}", subject=item.ref,
            before={k: v for k, v in old.items() if new[k] != v} | ({"note": None} if note else {}),
            after={k: v for k, v in new.items() if old[k] != v} | ({"note": note} if note else {})
            | ({"forced": True} if forced else {}),
        )
        changed = {k: (v, new[k]) for k, v in old.items() if new[k] != v or k in (named or {})}
        self.bus.publish(session, ItemChanged(
            at=now, item=item, action=action, actor=actor, before=before, after=State(item.state),
            tenants=tuple(tenants), note=note, changed=changed, quiet=quiet, debounce=debounce,
            forced=forced))

    # ------------------------------------------------------------------ reading

    def get(self, ref: str) -> ItemView:
        with self.db.transaction() as session:
            return self.view(session, ref)

    def view(self, session: Session, ref: str) -> ItemView:
        """The item, its tenants and its timeline."""
        item = find(session, ref)
        assert item.id is not None
        timeline = list(session.exec(
            select(TimelineEvent).where(TimelineEvent.work_item_id == item.id).order_by(col(TimelineEvent.id))
        ))
        return ItemView(item, self.tenants(session, item.id), timeline)

    def search(self, query: ItemQuery) -> ItemPage:
        """A page of the items `query` asks for, newest first, with the total (see `opsloop.listing`)."""
        with self.db.transaction() as session:
            return search(session, query, self.clock.now(), role_items=roles_held)

    # ------------------------------------------------------------------ helpers

    def _authorize(self, actor: str, ref: str, permission: str) -> str:
        """`actor` may `<kind>.<permission>` the item `ref` names (else PermissionDenied); returns which."""
        attempted = f"{kind_of(ref).value}.{permission}"
        self.authz.require(actor, attempted, subject=ref.upper())
        return attempted

    @contextmanager
    def _locked(self, ref: str) -> Iterator[tuple[Session, WorkItem]]:
        """A change's transaction: the audit chain locked first, then the item row-locked."""
        with self.db.transaction() as session:
            audit.lock_chain(session)
            yield session, self.lock(session, ref)

    def lock(self, session: Session, ref: str) -> WorkItem:
        """The item, row-locked for the rest of the caller's transaction."""
        return find(session, ref, lock=True)

    def tenants(self, session: Session, item_id: int) -> list[str]:
        return list(session.exec(
            select(WorkItemTenant.tenant_id).where(WorkItemTenant.work_item_id == item_id)
            .order_by(col(WorkItemTenant.tenant_id))
        ))


def find(session: Session, ref: str, *, lock: bool = False) -> WorkItem:
    """The work item `ref` names (any case; `lock`: row-locked for the rest of the caller's transaction)."""
    kind_of(ref)
    query = select(WorkItem).where(WorkItem.ref == ref.upper())
    if lock:
        query = query.with_for_update()
    item = session.exec(query).first()
    if item is None:
        raise NotFound(f"no work item {ref.upper()}")
    return item


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
