"""Feedback loops: who hears about a work item, what they hear, and when the loop is closed.

On `created` (and when tenants are added) each audience of the policy that
applies to the item opens one loop per recipient and gets its start notice;
while the item is open, `sweep` sends cadence notices; on `resolve` every
loop gets its resolution notice, and a loop is closed once that notice was
delivered. Loops still open `loops.report_after` past resolution are reported
to the comms owner. Every notice goes through the outbox with a key per
recipient and notice, so nobody is told the same thing twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import ChoiceLoader, DictLoader, PackageLoader
from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.errors import ConfigError
from opsloop.events import ItemChanged, ItemCreated, RolloutChanged
from opsloop.lifecycle import OPEN_STATES
from opsloop.loops.context import customer_context, internal_context
from opsloop.loops.models import FeedbackLoop
from opsloop.loops.priority import ProductPriorityRule
from opsloop.messages import Message, escape
from opsloop.models import Account, OutboxMessage, WorkItem, WorkItemTenant
from opsloop.outbox import CHAT
from opsloop.policy import Audience, Policy
from opsloop.templating import check_syntax, render, sandbox
from opsloop.types import Kind, State

_OPEN = {s.value for states in OPEN_STATES.values() for s in states}


@dataclass(frozen=True)
class Recipient:
    audience: str
    transport: str
    target: str
    tenant_id: str = ""
    accounts: tuple[str, ...] = field(default=())  # the accounts this recipient hears about


class FeedbackLoops:
    def __init__(self, db: Database, policy: Policy, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        overrides = {f"{name}_{event}.j2": source for name, audience in policy.audiences.items()
                     for event, source in audience.templates.items()}
        self.env = sandbox(ChoiceLoader([DictLoader(overrides), PackageLoader("opsloop.loops", "templates")]))
        for name, audience in policy.audiences.items():
            for event, source in audience.templates.items():
                problem = check_syntax(self.env, source)
                if problem:
                    raise ConfigError(f"audiences.{name}.templates.{event}: {problem}")
        self.priority = ProductPriorityRule(policy)

    # ------------------------------------------------------------------ handlers

    def on_created(self, session: Session, event: ItemCreated) -> None:
        """Each audience the item concerns opens its loops and hears that it started."""
        self._start(session, event.item, list(event.tenants), event.at)

    def follow(self, session: Session, event: ItemChanged) -> None:
        """New tenants' audiences are told; resolution notices go out; a reopen resumes the cadence."""
        item, now = event.item, event.at
        if event.action == "tenants":
            self._start(session, item, list(event.tenants), now)
        elif event.action == "resolve":
            accounts = self._accounts(session, list(event.tenants))
            for loop in self._loops(session, item):
                loop.next_notice_at = None
                if "resolution" in self._audience_named(loop.audience).events:
                    self._notice(session, loop, item, accounts, "resolution", now)
        elif event.action == "reopen":
            for loop in self._loops(session, item):
                cadence = self._audience_named(loop.audience).cadence
                loop.next_notice_at = now + cadence if cadence else None
                session.add(loop)

    def on_rollout(self, session: Session, event: RolloutChanged) -> None:
        """A fleet rollout's wave started or finished: each of its tenants' customers hear it (when the
        customers audience lists `rollout`, and the tenant's tier is one it hears about), each from a
        context holding that one account only."""
        audience = self.policy.audiences.get("customers")
        if event.what not in ("wave", "wave_done") or not event.tenants or audience is None:
            return
        if "rollout" not in audience.events:
            return
        phase = "rollout_start" if event.what == "wave" else "rollout_done"
        tiers = {t.value for t in audience.when.tiers}
        source = self.env.loader.get_source(self.env, f"customers_{phase}.j2")[0]  # type: ignore[union-attr]
        for account in self._accounts(session, list(event.tenants)):
            if tiers and account.tier not in tiers:
                continue
            context = {"customer": {"name": account.name}, "sender": audience.from_address,
                       "change": {"at": event.at.strftime("%Y-%m-%d %H:%M UTC")}}
            text = render(self.env, source, context, what=f"audiences.customers.templates.{phase}")
            headline, _, rest = text.partition("\n")
            for transport, target in (("email", account.contact_email), ("webhook", account.webhook_url)):
                if not target:
                    continue
                payload: dict[str, Any] = (
                    {"subject": headline, "body": rest.strip(), "from": audience.from_address}
                    if transport == "email" else
                    {"json": {"event": phase, "audience": "customers", "subject": headline,
                              "text": rest.strip(), "tenant": account.id}})
                outbox.enqueue(session, transport=transport, target=target, now=event.at, payload=payload,
                               key=f"rollout:{event.rollout_id}:{account.id}:{phase}:{transport}")

    def _start(self, session: Session, item: WorkItem, tenants: list[str], now: datetime) -> None:
        accounts = self._accounts(session, tenants)
        for recipient in self._recipients(item, accounts):
            loop = self._open(session, item, recipient, now)
            if loop is not None and "start" in self._audience(recipient).events:
                self._notice(session, loop, item, accounts, "start", now)
        self.priority.observe(session, item, accounts, now)

    # ------------------------------------------------------------------ reading

    def counts(self, session: Session, item: WorkItem) -> tuple[int, int]:
        """(loops still open, loops in all) of the item."""
        total = len(self._loops(session, item))
        return (len(self.open_loops(session, item)), total) if total else (0, 0)

    def open_loops(self, session: Session, item: WorkItem) -> list[FeedbackLoop]:
        """Loops whose resolution notice has not been delivered (or not yet sent)."""
        delivered = set(session.exec(
            select(OutboxMessage.key).join(
                FeedbackLoop, col(FeedbackLoop.resolution_key) == col(OutboxMessage.key))
            .where(FeedbackLoop.work_item_id == item.id, OutboxMessage.status == outbox.SENT)
        ))
        return [loop for loop in self._loops(session, item) if loop.resolution_key not in delivered
                or "resolution" not in self._audience_named(loop.audience).events]

    def describe_open(self, session: Session, item: WorkItem) -> list[str]:
        return [f"{loop.audience} → {loop.target}" + (f" ({loop.tenant_id})" if loop.tenant_id else "")
                for loop in self.open_loops(session, item)]

    # ------------------------------------------------------------------ the sweep

    def sweep(self, limit: int = 500) -> int:
        """Send cadence notices that are due, and report loops left open too long. Returns notices."""
        now = self.clock.now()
        sent = 0
        with self.db.transaction() as session:
            due = session.exec(
                select(FeedbackLoop, WorkItem)
                .join(WorkItem, col(WorkItem.id) == col(FeedbackLoop.work_item_id))
                .where(col(FeedbackLoop.next_notice_at) <= now, col(WorkItem.state).in_(_OPEN))
                .order_by(col(FeedbackLoop.next_notice_at)).limit(limit)
                .with_for_update(skip_locked=True, of=FeedbackLoop)  # type: ignore[arg-type]
            ).all()
            for loop, item in due:
                cadence = self._audience_named(loop.audience).cadence
                assert cadence is not None and loop.next_notice_at is not None
                accounts = self._accounts(session, self._tenant_ids(session, item))
                self._notice(session, loop, item, accounts, "cadence", now)
                loop.next_notice_at = max(loop.next_notice_at + cadence, now + cadence / 2)
                session.add(loop)
                sent += 1
            self._report_overdue(session, now)
        return sent

    def _report_overdue(self, session: Session, now: datetime) -> None:
        deadline = now - self.policy.loops.report_after
        items = session.exec(
            select(WorkItem).join(FeedbackLoop, col(FeedbackLoop.work_item_id) == col(WorkItem.id))
            .where(col(WorkItem.resolved_at) <= deadline, col(FeedbackLoop.reported_at).is_(None))
            .distinct()
        ).all()
        for item in items:
            still_open = [loop for loop in self.open_loops(session, item) if loop.reported_at is None]
            for loop in self._loops(session, item):
                loop.reported_at = now
                session.add(loop)
            if not still_open:
                continue
            lines = "\n".join(f"• {loop.audience} → {loop.target}" for loop in still_open)
            who = item.comms_owner or item.owner
            target = who if who and not who.startswith("system:") else self.policy.channel("ops")
            outbox.enqueue(session, transport=CHAT, target=target, now=now,
                           key=f"loops-overdue:{item.ref}",
                           payload={"message": Message(
                               text=f"{item.ref} was resolved but {len(still_open)} feedback loop(s) "
                                    "are still open", body=lines).to_json()})

    # ------------------------------------------------------------------ helpers

    def _audience_named(self, name: str) -> Audience:
        return self.policy.audiences[name]  # type: ignore[index]

    def _audience(self, recipient: Recipient) -> Audience:
        return self._audience_named(recipient.audience)

    def _accounts(self, session: Session, tenant_ids: list[str]) -> list[Account]:
        if not tenant_ids:
            return []
        return list(session.exec(select(Account).where(col(Account.id).in_(tenant_ids))
                                 .order_by(col(Account.id))))

    def _tenant_ids(self, session: Session, item: WorkItem) -> list[str]:
        return list(session.exec(select(WorkItemTenant.tenant_id)
                                 .where(WorkItemTenant.work_item_id == item.id)))

    def _loops(self, session: Session, item: WorkItem) -> list[FeedbackLoop]:
        return list(session.exec(select(FeedbackLoop).where(FeedbackLoop.work_item_id == item.id)
                                 .order_by(col(FeedbackLoop.id))))

    def _applies(self, audience: Audience, item: WorkItem, accounts: list[Account]) -> bool:
        when = audience.when
        if when.kinds and Kind(item.kind) not in when.kinds:
            return False
        if when.severities and item.severity not in {s.value for s in when.severities}:
            return False
        return not when.tiers or any(a.tier in {t.value for t in when.tiers} for a in accounts)

    def _recipients(self, item: WorkItem, accounts: list[Account]) -> list[Recipient]:
        out: list[Recipient] = []
        for name, audience in self.policy.audiences.items():
            if not self._applies(audience, item, accounts):
                continue
            if name == "sales":
                by_owner: dict[str, list[str]] = defaultdict(list)
                for a in accounts:
                    if a.sales_owner:
                        by_owner[a.sales_owner].append(a.id)
                out += [Recipient(name, CHAT, owner, accounts=tuple(ids)) for owner, ids in by_owner.items()]
            elif name == "support":
                channels = {a.support_channel for a in accounts if a.support_channel} or {
                    self.policy.channel("support")}
                out += [Recipient(name, CHAT, channel) for channel in sorted(channels)]
                if audience.webhook is not None:
                    out.append(Recipient(name, "webhook", f"env:{audience.webhook.url_env}"))
            elif name == "customers":
                for a in accounts:
                    if a.contact_email:
                        out.append(Recipient(name, "email", a.contact_email, a.id, (a.id,)))
                    if a.webhook_url:
                        out.append(Recipient(name, "webhook", a.webhook_url, a.id, (a.id,)))
            elif name == "product":
                out.append(Recipient(name, CHAT, self.policy.channel("product")))
        return out

    def _open(self, session: Session, item: WorkItem, r: Recipient, now: datetime) -> FeedbackLoop | None:
        existing = session.exec(select(FeedbackLoop).where(
            FeedbackLoop.work_item_id == item.id, FeedbackLoop.audience == r.audience,
            FeedbackLoop.tenant_id == r.tenant_id, FeedbackLoop.transport == r.transport,
            FeedbackLoop.target == r.target)).first()
        if existing is not None:
            return None
        assert item.id is not None
        cadence = self._audience(r).cadence if "cadence" in self._audience(r).events else None
        loop = FeedbackLoop(work_item_id=item.id, audience=r.audience, tenant_id=r.tenant_id,
                            transport=r.transport, target=r.target, opened_at=now,
                            next_notice_at=now + cadence if cadence else None)
        session.add(loop)
        session.flush()
        return loop

    def _notice(self, session: Session, loop: FeedbackLoop, item: WorkItem, accounts: list[Account],
                event: str, now: datetime) -> None:
        audience = self._audience_named(loop.audience)
        context = self._context(loop, item, accounts, audience, now)
        source = self.env.loader.get_source(self.env, f"{loop.audience}_{event}.j2")[0]  # type: ignore[union-attr]
        text = render(self.env, source, context, what=f"audiences.{loop.audience}.templates.{event}")
        loop.notices += 1
        key = f"loop:{loop.id}:{event}:{loop.notices}"
        if event == "resolution":
            loop.resolution_key = key
        session.add(loop)
        headline, _, rest = text.partition("\n")
        if loop.transport == CHAT:
            payload: dict[str, Any] = {"message": Message(text=escape(headline),
                                                          body=escape(rest.strip()) or None).to_json()}
        elif loop.transport == "email":
            payload = {"subject": headline, "body": rest.strip(), "from": audience.from_address}
        else:
            payload = {"json": {"event": event, "audience": loop.audience, "subject": headline,
                                "text": rest.strip(), **self._webhook_fields(loop, item)}}
        outbox.enqueue(session, transport=loop.transport, target=loop.target, now=now, key=key,
                       payload=payload)

    def _context(self, loop: FeedbackLoop, item: WorkItem, accounts: list[Account], audience: Audience,
                 now: datetime) -> dict[str, Any]:
        if loop.audience == "customers":
            [account] = [a for a in accounts if a.id == loop.tenant_id]
            return customer_context(item, account, cadence=audience.cadence, sender=audience.from_address)
        mine = [a for a in accounts if a.sales_owner == loop.target] if loop.audience == "sales" else accounts
        return internal_context(item, accounts, mine, now)

    def _webhook_fields(self, loop: FeedbackLoop, item: WorkItem) -> dict[str, Any]:
        if loop.audience == "customers":  # public facts only
            return {"status": "resolved" if item.state in (State.RESOLVED, State.CLOSED) else "investigating",
                    "tenant": loop.tenant_id}
        return {"ref": item.ref, "title": item.title, "severity": item.severity, "state": item.state}
