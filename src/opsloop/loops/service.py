"""Feedback loops: who hears about a work item, what they hear, and when the loop is closed.

On `created` (and when tenants are added) each audience of the policy that
applies to the item opens one loop per recipient and gets its start notice;
while the item is open, `sweep` sends cadence notices; on `resolve` every
loop gets its resolution notice, and a loop is closed once that notice was
delivered. Loops still open `loops.report_after` past resolution are reported
to the comms owner. Every notice goes through the outbox with a key per
recipient and notice, so nobody is told the same thing twice.

Customers are different (`opsloop.loops.review`): they hear nothing until the
item has been open `loops.hold`, then each notice is a draft a person sends
(`send: review`, their default); a tenant named later hears of the state the
item is in then; on mitigation the customers already told get an update.
The budget: one notice per audience and recipient per state change.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.authz import Authorizer
from opsloop.bus import Bus
from opsloop.clock import Clock
from opsloop.comms.isolation import check_text
from opsloop.comms.models import NoticeDraft, last_public_update
from opsloop.db import Database
from opsloop.errors import InvalidInput
from opsloop.events import ItemChanged, ItemCreated, LoopsOverdue, RolloutChanged
from opsloop.lifecycle import OPEN_STATES
from opsloop.loops.audiences import Recipient, recipients
from opsloop.loops.config import Audience
from opsloop.loops.context import (
    REVIEW_CHANGED,
    phase_of,
    proposed_text,
    review_context,
    review_message,
    traces,
)
from opsloop.loops.models import FeedbackLoop
from opsloop.loops.notices import Notices
from opsloop.loops.priority import ProductPriorityRule
from opsloop.loops.review import REVIEW, Review, family
from opsloop.models import Account, OutboxMessage, WorkItem, WorkItemTenant
from opsloop.policy import Policy
from opsloop.templating import render
from opsloop.timers.models import Timer
from opsloop.types import OPSLOOP, Kind, State, is_system

CUSTOMERS = "customers"
HOLD = "loops.hold"  # the timer that ends an item's hold: customers may hear of it from then

_OPEN = {s.value for states in OPEN_STATES.values() for s in states}


class FeedbackLoops:
    def __init__(self, db: Database, policy: Policy, clock: Clock, authz: Authorizer, bus: Bus) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.notices = Notices(policy)
        self.bus = bus
        self.review = Review(db, policy, clock, authz, self.notices, bus)
        self.priority = ProductPriorityRule(policy)

    # ------------------------------------------------------------------ handlers

    def on_created(self, session: Session, event: ItemCreated) -> None:
        """Each audience the item concerns opens its loops and hears that it started (a maintenance
        window: that it is planned, in advance; one waiting for approval once it is approved)."""
        if event.item.kind == Kind.MAINTENANCE.value and event.item.state == State.REQUESTED.value:
            return
        self._start(session, event.item, list(event.tenants), event.at, created=True)

    def follow(self, session: Session, event: ItemChanged) -> None:
        """Drafts of a past phase are superseded; new tenants' audiences are told (the current state);
        customers hear of mitigation; resolution notices go out; a reopen resumes the cadence."""
        item, now = event.item, event.at
        if event.before != event.after:
            self.review.supersede_stale(session, item, now)
        approved_window = event.action == "approve" and item.kind == Kind.MAINTENANCE.value
        if event.action in ("tenants", "severity") or approved_window:
            self._start(session, item, list(event.tenants), now)
        elif event.action == "resolve":
            self._resolved(session, item, list(event.tenants), now)
        elif event.action in ("mitigate", "reopen"):
            if event.action == "reopen":
                for loop in self._loops(session, item):
                    cadence = self._audience_named(loop.audience).cadence
                    loop.next_notice_at = now + cadence if cadence else None
                    session.add(loop)
            customers = self._loops(session, item, CUSTOMERS)
            if customers and not self._holding(item, now):  # within the hold, the timer tells them
                told = all(loop.notices for loop in customers)
                self._announce(session, item, CUSTOMERS, customers, "update" if told else "start", now)

    def on_hold(self, session: Session, timer: Timer, now: datetime) -> str:
        """The hold is over: customers get their first notice, in the item's state now."""
        item = session.get(WorkItem, timer.work_item_id)
        if item is None:
            return "skipped: the item is gone"
        if phase_of(item.state) == "resolved":
            return "skipped: resolved within the hold"
        untold = [loop for loop in self._loops(session, item, CUSTOMERS) if not loop.notices]
        if not untold or "start" not in self._audience_named(CUSTOMERS).events:
            return "skipped: no customer to tell"
        self._announce(session, item, CUSTOMERS, untold, "start", now)
        return "fired"

    def on_rollout(self, session: Session, event: RolloutChanged) -> None:
        """A fleet rollout's wave started or finished: each of its tenants' customers are to hear it (when
        the customers audience lists `rollout`, and the tenant's tier is one it hears about), through the
        customer-communication path: a draft in review (`send: review`, the customers' default) showing
        each tenant's own text, rendered from a context holding that one account only."""
        audience = self.policy.audiences.get("customers")
        if event.what not in ("wave", "wave_done") or not event.tenants or audience is None:
            return
        if "rollout" not in audience.events:
            return
        phase = "rollout_start" if event.what == "wave" else "rollout_done"
        tiers = {t.value for t in audience.when.tiers}
        tenants = [a.id for a in self._accounts(session, list(event.tenants))
                   if (not tiers or a.tier in tiers) and (a.contact_email or a.webhook_url)]
        if not tenants:
            return
        done = "is done" if phase == "rollout_done" else "starts"
        at = event.at.strftime("%Y-%m-%d %H:%M UTC")
        text = f"Wave {event.wave + 1} of a planned update {done} ({at}): each customer gets its own notice"
        item = event.item
        if audience.sends(CUSTOMERS) == "review":
            self.review.draft_rollout(session, item, event=phase, tenants=tenants, text=text, now=event.at)
        else:
            self.review.publish(session, item, audience=CUSTOMERS, event=phase, tenants=tenants, text=text,
                                now=event.at)

    def _start(self, session: Session, item: WorkItem, tenants: list[str], now: datetime, *,
               created: bool = False) -> None:
        """Open the loops of the audiences `tenants` concern and announce them. `created`: the item was
        just created, so `tenants` are all of its tenants (the announcements need not read them again)
        and it has no loops nor hold timer yet (nothing to read either)."""
        accounts = self._accounts(session, tenants)
        told = accounts if created else None
        planned = item.kind == Kind.MAINTENANCE.value  # planned work: told in advance, no hold
        fresh: dict[str, list[FeedbackLoop]] = defaultdict(list)
        open_now = set() if created else {_identity(loop) for loop in self._loops(session, item)}
        for recipient in recipients(self.policy, item, accounts):
            loop = self._open(session, item, recipient, now, open_now)
            if loop is not None:
                fresh[recipient.audience].append(loop)
        for name, loops in fresh.items():
            audience = self._audience_named(name)
            resolved = phase_of(item.state) == "resolved"
            event = "resolution" if resolved and name == CUSTOMERS else "start"
            if event not in audience.events:
                continue
            if planned:
                event = "maintenance"
            if name != CUSTOMERS or planned:
                self._announce(session, item, name, loops, event, now, accounts=told)
            elif self._holding(item, now):
                self._hold(session, item, now, created=created)
            else:  # a tenant named later hears of the state the item is in now
                self._announce(session, item, name, loops, event, now, accounts=told)
        if not planned:  # planned work is no recurring problem
            self.priority.observe(session, item, accounts, now)

    def _resolved(self, session: Session, item: WorkItem, tenants: list[str], now: datetime) -> None:
        accounts = self._accounts(session, tenants)
        loops = self._loops(session, item)
        for loop in loops:
            loop.next_notice_at = None
            session.add(loop)
        customers = [loop for loop in loops if loop.audience == CUSTOMERS]
        if customers and not any(loop.notices for loop in customers) and self._holding(item, now):
            for loop in customers:  # resolved within the hold: no customer hears of it, nor needs to
                session.delete(loop)
            customers = []
        for name in dict.fromkeys(loop.audience for loop in loops):
            if "resolution" not in self._audience_named(name).events:
                continue
            mine = [loop for loop in (customers if name == CUSTOMERS else loops) if loop.audience == name]
            if mine:
                self._announce(session, item, name, mine, "resolution", now, accounts=accounts)

    def _announce(self, session: Session, item: WorkItem, name: str, loops: list[FeedbackLoop], event: str,
                  now: datetime, accounts: list[Account] | None = None) -> None:
        """Tell these loops' recipients of `event`: at once (send: auto) or as a draft in review."""
        audience = self._audience_named(name)
        if accounts is None:
            accounts = self._accounts(session, self._tenant_ids(session, item))
        if name != CUSTOMERS and audience.sends(name) == "auto":
            self.notices.enqueue_many(session, loops, item, accounts, event, now)
            return
        tenants = sorted({loop.tenant_id for loop in loops if loop.tenant_id})
        latest = None
        if event == "cadence" and item.id is not None:
            last = last_public_update(session, item.id, tenant=tenants[0] if len(tenants) == 1 else None,
                                      events=("start", "update"))
            latest = last.text if last else None
        text = proposed_text(item, event, latest=latest) if name == CUSTOMERS else ""
        if audience.sends(name) == "review":
            self.review.draft(session, item, audience=name, event=event, tenants=tenants, text=text,
                              actor=OPSLOOP, now=now)
        else:
            self.review.publish(session, item, audience=name, event=event, tenants=tenants, text=text,
                                now=now)

    def _holding(self, item: WorkItem, now: datetime) -> bool:
        """Whether customers are still held back (the item is younger than `loops.hold`)."""
        return (item.resolved_at or now) < item.created_at + self.policy.loops.hold

    def _hold(self, session: Session, item: WorkItem, now: datetime, *, created: bool = False) -> None:
        """One hold timer per item: when it fires, customers named by then hear the state of then.
        `created`: the item was just created, so it has none yet (not looked for)."""
        waiting = select(Timer.id).where(Timer.work_item_id == item.id, Timer.kind == HOLD,
                                         col(Timer.fired_at).is_(None))
        if not created and session.exec(waiting).first() is not None:
            return
        session.add(Timer(kind=HOLD, due_at=item.created_at + self.policy.loops.hold,
                          work_item_id=item.id, payload={}, created_at=now))

    # ------------------------------------------------------------------ a review's public part

    def review_text(self, item: WorkItem, account: Account, others: list[Account], *, what_happened: str,
                    what_we_changed: str) -> str:
        """The public part of a review as `account` reads it; refused if it would name another account."""
        words = f"{what_happened}\n{what_we_changed}".lower()
        for other in others:
            named = [t for t in traces(other) if other.id != account.id and t.lower() in words]
            if named:
                raise InvalidInput(f"the public part names another customer ({named[0]}): {account.name} "
                                   "would read it; rewrite it so each customer reads only of itself")
        audience = self._audience_named("customers")
        context = review_context(item, account, what_happened=what_happened, what_we_changed=what_we_changed,
                                 sender=audience.from_address)
        env = self.notices.env
        source = env.loader.get_source(env, "customers_review.j2")[0]  # type: ignore[union-attr]
        return render(env, source, context, what="the customers' review template")

    def share_review(self, session: Session, item: WorkItem, *, what_happened: str, what_we_changed: str,
                     actor: str, now: datetime) -> NoticeDraft:
        """Draft the review's public part for the item's customers (those its customer notices went to),
        through review like every customer notice: each reads it rendered for its own account, once a
        person allowed `notice.approve` presses Send. Refused, with nothing drafted, when the words name
        another customer or any customer (they are also what the status pages show)."""
        accounts = self._accounts(session, self._tenant_ids(session, item))
        loops = [loop for loop in self._loops(session, item, CUSTOMERS) if loop.notices]
        if not loops:
            raise InvalidInput(f"{item.ref}'s customers were never told of it (it was resolved within the "
                               "hold, or the `customers` audience did not apply to it): there is nobody to "
                               "send the customer account to")
        if REVIEW_CHANGED in what_happened:
            raise InvalidInput(f"“what happened” may not contain the line “{REVIEW_CHANGED.strip()}”")
        by_id = {a.id: a for a in accounts}
        tenants = sorted({loop.tenant_id for loop in loops if loop.tenant_id in by_id})
        for tenant in tenants:  # each account's own reading: the clearest refusal names the other
            self.review_text(item, by_id[tenant], accounts, what_happened=what_happened,
                             what_we_changed=what_we_changed)
        text = check_text(review_message(what_happened, what_we_changed),
                          session.exec(select(Account).order_by(col(Account.id))))
        if self._audience_named(CUSTOMERS).sends(CUSTOMERS) == "auto":
            return self.review.publish(session, item, audience=CUSTOMERS, event=REVIEW, tenants=tenants,
                                       text=text, now=now)
        return self.review.draft(session, item, audience=CUSTOMERS, event=REVIEW, tenants=tenants, text=text,
                                 actor=actor, now=now)

    # ------------------------------------------------------------------ reading

    def counts(self, session: Session, item: WorkItem) -> tuple[int, int]:
        """(loops still open, loops in all) of the item."""
        loops = self._loops(session, item)  # read once: the card asked for both, and read them twice
        return (len(self._still_open(session, item, loops)), len(loops)) if loops else (0, 0)

    def open_loops(self, session: Session, item: WorkItem) -> list[FeedbackLoop]:
        """Loops whose resolution notice has not been delivered (or not yet sent)."""
        return self._still_open(session, item, self._loops(session, item))

    def _still_open(self, session: Session, item: WorkItem, loops: list[FeedbackLoop]) -> list[FeedbackLoop]:
        delivered = set(session.exec(
            select(OutboxMessage.key).join(
                FeedbackLoop, col(FeedbackLoop.resolution_key) == col(OutboxMessage.key))
            .where(FeedbackLoop.work_item_id == item.id, OutboxMessage.status == outbox.SENT)
        ))
        def skipped(loop: FeedbackLoop) -> bool:  # a person decided nobody hears the resolution
            return (loop.resolution_key or "").startswith("skipped:")
        return [loop for loop in loops
                if (loop.resolution_key not in delivered and not skipped(loop))
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
            customers: dict[int, tuple[WorkItem, list[FeedbackLoop]]] = {}
            for loop, item in due:
                cadence = self._audience_named(loop.audience).cadence
                assert cadence is not None and loop.next_notice_at is not None
                loop.next_notice_at = max(loop.next_notice_at + cadence, now + cadence / 2)
                session.add(loop)
                if loop.audience == CUSTOMERS:  # one draft (or send) per item, to customers already told
                    if loop.notices:
                        customers.setdefault(item.id or 0, (item, []))[1].append(loop)
                    continue
                accounts = self._accounts(session, self._tenant_ids(session, item))
                self.notices.enqueue(session, loop, item, accounts, "cadence", now)
                sent += 1
            for item, loops in customers.values():
                if any(family(d.event) == "notice" for d in self.review.pending(session, item, CUSTOMERS)):
                    continue  # a draft waits for its reviewer: it is the next update
                self._announce(session, item, CUSTOMERS, loops, "cadence", now)
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
            who = item.comms_owner or item.owner
            self.bus.publish(session, LoopsOverdue(
                at=now, item=item, still_open=tuple((loop.audience, loop.target) for loop in still_open),
                to=who if who and not is_system(who) else self.policy.channel("ops")))

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

    def _loops(self, session: Session, item: WorkItem, audience: str | None = None) -> list[FeedbackLoop]:
        query = select(FeedbackLoop).where(FeedbackLoop.work_item_id == item.id)
        if audience is not None:
            query = query.where(FeedbackLoop.audience == audience)
        return list(session.exec(query.order_by(col(FeedbackLoop.id))))

    def _open(self, session: Session, item: WorkItem, r: Recipient, now: datetime,
              open_now: set[tuple[str, str, str, str]]) -> FeedbackLoop | None:
        """A new loop for this recipient (None: the item has one; `open_now` is what it has)."""
        if (r.audience, r.tenant_id, r.transport, r.target) in open_now:
            return None
        assert item.id is not None
        cadence = self._audience(r).cadence if "cadence" in self._audience(r).events else None
        loop = FeedbackLoop(work_item_id=item.id, audience=r.audience, tenant_id=r.tenant_id,
                            transport=r.transport, target=r.target, opened_at=now,
                            next_notice_at=now + cadence if cadence else None)
        session.add(loop)  # not flushed yet: one announced goes in with its first notice counted
        open_now.add(_identity(loop))
        return loop


def _identity(loop: FeedbackLoop) -> tuple[str, str, str, str]:
    """What makes a loop one recipient's: its audience, tenant, transport and target."""
    return loop.audience, loop.tenant_id, loop.transport, loop.target
