"""Notices in review: nothing reaches a customer until a person allowed to sends it.

An audience with `send: review` (customers, by default) does not hear from opsloop directly: each
notice becomes a `NoticeDraft` posted by DM to the item's comms owner (or, when none is named, to
everyone allowed `notice.approve`), with the exact text each tenant would get and Send / Edit /
Skip. A draft describes one public phase of its item (investigating, monitoring, resolved); when
the item moves to another, the draft is superseded, never sent stale. A newer draft for the same
item and audience replaces a pending one (and takes over its tenants). Who sent, edited or skipped
which text is audited; what was sent to customers is kept as a `PublicUpdate`, which is all the
status pages show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from opsloop import audit, outbox
from opsloop.bus import Bus
from opsloop.comms.isolation import check_public_text
from opsloop.comms.models import PENDING, SENT, SKIPPED, SUPERSEDED, NoticeDraft, PublicItem, PublicUpdate
from opsloop.errors import InvalidInput, NotFound
from opsloop.events import NoticeDraftPosted
from opsloop.loops.context import phase_of
from opsloop.loops.models import FeedbackLoop
from opsloop.loops.notices import Notices
from opsloop.messages import user
from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.service import Service
from opsloop.types import OPSLOOP, is_system

APPROVE = "notice.approve"
REVIEW = "review"  # a published review's public part (what happened, what we changed), per tenant
ROLLOUT = ("rollout_start", "rollout_done")  # a fleet rollout's wave began / ended, per tenant


@dataclass(frozen=True)
class Preview:
    """One tenant's notice as it would go out."""

    tenant: str  # the account's name
    to: str  # how: email or webhook (never the address: it would outlive an erasure in DMs)
    subject: str
    body: str


def family(event: str) -> str:
    """Drafts replace pending drafts of their own family only: the item's notices (start, update,
    cadence, resolution), a review's account, a rollout wave's notices."""
    return REVIEW if event == REVIEW else "rollout" if event in ROLLOUT else "notice"


@dataclass(eq=False)
class Review(Service):
    notices: Notices
    bus: Bus

    # ------------------------------------------------------------------ drafting (caller's transaction)

    def draft(self, session: Session, item: WorkItem, *, audience: str, event: str, tenants: list[str],
              text: str, actor: str, now: datetime) -> NoticeDraft:
        """Draft a notice for review; a pending draft of the same item and audience is replaced."""
        assert item.id is not None
        pending = [d for d in self.pending(session, item, audience) if family(d.event) == family(event)]
        merged = sorted(set(tenants).union(*(d.tenants for d in pending)))
        if event in ("update", "cadence") and any(d.event == "start" for d in pending):
            event = "start"  # some of its tenants never heard the start: they read this as the first notice
        written = [d for d in pending if not is_system(d.created_by) and d.event != "resolution"]
        if is_system(actor) and written and event != "resolution":
            # keep the words a person wrote
            text, event = written[-1].text, "start" if event == "start" else written[-1].event
        draft = NoticeDraft(work_item_id=item.id, audience=audience, event=event, state=phase_of(item.state),
                            tenants=merged, text=text, created_at=now, created_by=actor)
        session.add(draft)
        session.flush()
        for old in pending:
            self._close(session, item, old, SUPERSEDED, OPSLOOP, now, superseded_by=draft.id)
        draft.posted_to = self.reviewers(item)
        session.add(draft)
        audit.record(session, at=now, actor=actor, action="notice.drafted", subject=item.ref,
                     after={"draft": draft.id, "audience": audience, "event": event, "tenants": merged,
                            "text": text, "reviewers": draft.posted_to})
        self._post(session, item, draft, now)
        return draft

    def draft_rollout(self, session: Session, item: WorkItem, *, event: str, tenants: list[str], text: str,
                      now: datetime) -> NoticeDraft:
        """A rollout wave's customer notice for review: one draft per wave and event, never merged. A
        wave that is done takes its tenants out of a pending draft saying it starts (stale for them)."""
        assert item.id is not None and event in ROLLOUT
        if event == "rollout_done":
            for old in self.pending(session, item, "customers"):
                if old.event != "rollout_start" or not set(old.tenants) & set(tenants):
                    continue
                left = [t for t in old.tenants if t not in tenants]
                if not left:
                    self._close(session, item, old, SUPERSEDED, OPSLOOP, now)
                    continue
                audit.record(session, at=now, actor=OPSLOOP, action="notice.narrowed", subject=item.ref,
                             before={"tenants": old.tenants}, after={"draft": old.id, "tenants": left})
                old.tenants = left
                session.add(old)
                self._post(session, item, old, now, edit=True)
        draft = NoticeDraft(work_item_id=item.id, audience="customers", event=event,
                            state=phase_of(item.state), tenants=sorted(tenants), text=text, created_at=now,
                            created_by=OPSLOOP)
        session.add(draft)
        session.flush()
        draft.posted_to = self.reviewers(item)
        session.add(draft)
        audit.record(session, at=now, actor=OPSLOOP, action="notice.drafted", subject=item.ref,
                     after={"draft": draft.id, "audience": "customers", "event": event,
                            "tenants": draft.tenants, "text": text, "reviewers": draft.posted_to})
        self._post(session, item, draft, now)
        return draft

    def publish(self, session: Session, item: WorkItem, *, audience: str, event: str, tenants: list[str],
                text: str, now: datetime) -> NoticeDraft:
        """Send at once (`send: auto`): kept and audited like a draft sent by opsloop itself."""
        assert item.id is not None
        draft = NoticeDraft(work_item_id=item.id, audience=audience, event=event, state=phase_of(item.state),
                            tenants=tenants, text=text, created_at=now, created_by=OPSLOOP, status=SENT,
                            decided_at=now, decided_by=OPSLOOP)
        session.add(draft)
        session.flush()
        self.deliver(session, item, draft, OPSLOOP, now)
        return draft

    def pending(self, session: Session, item: WorkItem, audience: str | None = None) -> list[NoticeDraft]:
        query = select(NoticeDraft).where(NoticeDraft.work_item_id == item.id, NoticeDraft.status == PENDING)
        if audience is not None:
            query = query.where(NoticeDraft.audience == audience)
        return list(session.exec(query.order_by(col(NoticeDraft.id))))

    def supersede_stale(self, session: Session, item: WorkItem, now: datetime) -> None:
        """Drafts describing another phase than the item's now are superseded (never sent stale)."""
        phase = phase_of(item.state)
        for draft in self.pending(session, item):
            if draft.state != phase and draft.event not in ROLLOUT:  # a wave's notice is of the wave
                self._close(session, item, draft, SUPERSEDED, OPSLOOP, now)

    def reviewers(self, item: WorkItem) -> list[str]:
        """The comms owner, or everyone allowed `notice.approve`."""
        if item.comms_owner and not is_system(item.comms_owner):
            return [item.comms_owner]
        people: list[str] = []
        for role in self.policy.roles_allowed(APPROVE):
            people += [p for p in self.authz.people(role) if p not in people]
        return people

    # ------------------------------------------------------------------ deciding (a transaction each)

    def send(self, *, actor: str, draft_id: int) -> NoticeDraft:
        """Send a draft to its recipients now, as its reviewer approved it."""
        self._allowed(actor, draft_id, "send notices to customers")
        with self.db.transaction() as session:
            item, draft = self._decidable(session, draft_id)
            now = self.clock.now()
            phase = phase_of(item.state)
            if draft.state != phase and draft.event not in ROLLOUT:
                raise InvalidInput(f"{item.ref} is {phase} now and this draft says {draft.state}: "
                                   "it is stale. A new draft follows the change")
            self.deliver(session, item, draft, actor, now)
            self._close(session, item, draft, SENT, actor, now)
            return draft

    def deliver(self, session: Session, item: WorkItem, draft: NoticeDraft, actor: str, now: datetime) -> int:
        """Queue the draft's text to each recipient of its audience and tenants; keep it (public update)."""
        assert item.id is not None and draft.id is not None
        if draft.event in ROLLOUT:
            return self._deliver_rollout(session, item, draft, actor, now)
        accounts = self._accounts(session, item)
        loops = self.loops_for(session, item, draft.audience, draft.tenants)
        for loop in loops:
            self.notices.enqueue(session, loop, item, accounts, draft.event, now, message=draft.text)
        if draft.audience == "customers":
            everyone = sorted(a.id for a in accounts) == sorted(draft.tenants)
            for tenant in [None] if everyone else draft.tenants:
                session.add(PublicUpdate(work_item_id=item.id, tenant_id=tenant, state=draft.state,
                                         event=draft.event, text=draft.text, approved_by=actor,
                                         approved_at=now, draft_id=draft.id))
        audit.record(session, at=now, actor=actor, action="notice.sent", subject=item.ref,
                     after={"draft": draft.id, "audience": draft.audience, "event": draft.event,
                            "tenants": draft.tenants, "text": draft.text, "recipients": len(loops)})
        return len(loops)

    def _deliver_rollout(self, session: Session, item: WorkItem, draft: NoticeDraft, actor: str,
                         now: datetime) -> int:
        """A wave's notice to each of its tenants' contacts, each rendered for that account alone. Not
        a public update: it is about a planned change, not the state of the item."""
        audience = self.notices.audience("customers")
        sent = 0
        for account, transport, target in self._contacts(session, draft.tenants):
            headline, rest = self.notices.render_rollout(account, draft.event, draft.created_at)
            payload: dict[str, Any] = (
                {"subject": headline, "body": rest, "from": audience.from_address}
                if transport == "email" else
                {"json": {"event": draft.event, "audience": "customers", "subject": headline, "text": rest,
                          "tenant": account.id}})
            outbox.enqueue(session, transport=transport, target=target, now=now, payload=payload,
                           key=f"notice:{draft.id}:{account.id}:{transport}")
            sent += 1
        audit.record(session, at=now, actor=actor, action="notice.sent", subject=item.ref,
                     after={"draft": draft.id, "audience": draft.audience, "event": draft.event,
                            "tenants": draft.tenants, "text": draft.text, "recipients": sent})
        return sent

    def _contacts(self, session: Session, tenants: list[str]) -> list[tuple[Account, str, str]]:
        """(account, transport, address) of each contact these tenants have, by tenant id."""
        accounts = session.exec(select(Account).where(col(Account.id).in_(tenants)).order_by(col(Account.id)))
        return [(a, transport, target) for a in accounts
                for transport, target in (("email", a.contact_email), ("webhook", a.webhook_url)) if target]

    def skip(self, *, actor: str, draft_id: int) -> NoticeDraft:
        """Nobody is told this one; a skipped resolution notice closes its loops."""
        self._allowed(actor, draft_id, "skip notices to customers")
        with self.db.transaction() as session:
            item, draft = self._decidable(session, draft_id)
            now = self.clock.now()
            if draft.event == "resolution":
                for loop in self.loops_for(session, item, draft.audience, draft.tenants):
                    loop.resolution_key = f"skipped:{draft.id}"
                    session.add(loop)
            audit.record(session, at=now, actor=actor, action="notice.skipped", subject=item.ref,
                         after={"draft": draft.id, "event": draft.event, "tenants": draft.tenants})
            self._close(session, item, draft, SKIPPED, actor, now)
            return draft

    def edit(self, *, actor: str, draft_id: int, text: str) -> NoticeDraft:
        """Change the public text of a pending draft (checked again); it stays in review."""
        self._allowed(actor, draft_id, "edit notices to customers")
        with self.db.transaction() as session:
            item, draft = self._decidable(session, draft_id)
            if family(draft.event) != "notice":
                source = "the published review" if draft.event == REVIEW else "the customers' templates"
                raise InvalidInput(f"the words of this notice are {source}'s, rendered for each customer: "
                                   "Send it or Skip it")
            new = check_public_text(session, text)
            now = self.clock.now()
            audit.record(session, at=now, actor=actor, action="notice.edited", subject=item.ref,
                         before={"text": draft.text}, after={"draft": draft.id, "text": new})
            draft.text = new
            session.add(draft)
            self._post(session, item, draft, now, edit=True)
            return draft

    def public_update(self, *, actor: str, ref: str, text: str) -> NoticeDraft:
        """Draft a public update in the person's words, through review like every customer notice."""
        self._require(actor, self._find(ref), "write public updates")
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self._item(session, ref=ref, lock=True)
            words = check_public_text(session, text)
            now = self.clock.now()
            tenants = [t for t in self._tenant_ids(session, item)
                       if self.loops_for(session, item, "customers", [t])]
            return self.draft(session, item, audience="customers", event="update", tenants=tenants,
                              text=words, actor=actor, now=now)

    def set_public(self, *, actor: str, ref: str, public: bool) -> WorkItem:
        """Show the item on the public status page (or stop showing it)."""
        self._require(actor, self._find(ref), "mark incidents public")
        with self.db.transaction() as session:
            audit.lock_chain(session)
            item = self._item(session, ref=ref, lock=True)
            assert item.id is not None
            row = session.get(PublicItem, item.id)
            if (row is not None) == public:
                raise InvalidInput(f"{item.ref} is already {'public' if public else 'not public'}")
            now = self.clock.now()
            if public:
                session.add(PublicItem(work_item_id=item.id, set_by=actor, set_at=now))
            else:
                session.delete(row)
            audit.record(session, at=now, actor=actor, action="status.public", subject=item.ref,
                         before={"public": not public}, after={"public": public})
            return item

    def draft_of(self, draft_id: int) -> tuple[WorkItem, NoticeDraft]:
        with self.db.snapshot() as session:
            draft = session.get(NoticeDraft, draft_id)
            if draft is None:
                raise NotFound(f"no notice draft {draft_id}")
            item = session.get(WorkItem, draft.work_item_id)
            assert item is not None
            return item, draft

    # ------------------------------------------------------------------ helpers

    def loops_for(self, session: Session, item: WorkItem, audience: str,
                  tenants: list[str]) -> list[FeedbackLoop]:
        query = select(FeedbackLoop).where(FeedbackLoop.work_item_id == item.id,
                                           FeedbackLoop.audience == audience)
        if audience == "customers":
            query = query.where(col(FeedbackLoop.tenant_id).in_(tenants))
        return list(session.exec(query.order_by(col(FeedbackLoop.id))))

    def previews(self, session: Session, item: WorkItem, draft: NoticeDraft, now: datetime) -> list[Preview]:
        if draft.event in ROLLOUT:
            return [Preview(account.name, transport, *self.notices.render_rollout(account, draft.event,
                                                                                  draft.created_at))
                    for account, transport, _ in self._contacts(session, draft.tenants)]
        accounts = self._accounts(session, item)
        names = {a.id: a.name for a in accounts}
        out: list[Preview] = []
        for loop in self.loops_for(session, item, draft.audience, draft.tenants):
            subject, body = self.notices.render(loop, item, accounts, draft.event, now, message=draft.text)
            # by transport, never the address: a contact stays in the catalog and the customer's own rows
            out.append(Preview(names.get(loop.tenant_id, loop.target), loop.transport, subject, body))
        return out

    def _post(self, session: Session, item: WorkItem, draft: NoticeDraft, now: datetime, *,
              edit: bool = False, final: bool = False) -> None:
        """The draft to each reviewer: posted, or edited in place (edit / final). The event carries the
        row as it stands now (a copy), so a later change in this transaction does not rewrite it."""
        self.bus.publish(session, NoticeDraftPosted(
            at=now, item=item, draft=NoticeDraft.model_validate(draft.model_dump()),
            previews=tuple(self.previews(session, item, draft, now)), in_place=edit or final))

    def _close(self, session: Session, item: WorkItem, draft: NoticeDraft, status: str, actor: str,
               now: datetime, superseded_by: int | None = None) -> None:
        draft.status, draft.decided_by, draft.decided_at = status, actor, now
        draft.superseded_by = superseded_by
        session.add(draft)
        if status == SUPERSEDED:
            audit.record(session, at=now, actor=actor, action="notice.superseded", subject=item.ref,
                         after={"draft": draft.id, "by": superseded_by, "phase": phase_of(item.state)})
        self._post(session, item, draft, now, final=True)

    def _allowed(self, actor: str, draft_id: int, doing: str) -> None:
        """Refuse (and audit, in a transaction of its own) before the change's transaction begins."""
        item, _ = self.draft_of(draft_id)
        self._require(actor, item, doing)

    def _find(self, ref: str) -> WorkItem:
        with self.db.snapshot() as session:
            return self._item(session, ref=ref)

    def _decidable(self, session: Session, draft_id: int) -> tuple[WorkItem, NoticeDraft]:
        audit.lock_chain(session)
        draft = session.get(NoticeDraft, draft_id)
        if draft is None:
            raise NotFound(f"no notice draft {draft_id}")
        item = session.get(WorkItem, draft.work_item_id)
        assert item is not None
        item = self._item(session, ref=item.ref, lock=True)
        session.refresh(draft, with_for_update=True)
        if draft.status != PENDING:
            by = f" by {user(draft.decided_by)}" if draft.status in (SENT, SKIPPED) else ""
            raise InvalidInput(f"this draft was already {draft.status}{by}: nothing was changed")
        return item, draft

    def _require(self, actor: str, item: WorkItem, doing: str) -> None:
        self.authz.require(actor, APPROVE, subject=item.ref, doing=doing, owners=(item.comms_owner,),
                           owner_is=f"the comms owner of {item.ref}")

    def _item(self, session: Session, *, ref: str, lock: bool = False) -> WorkItem:
        query = select(WorkItem).where(WorkItem.ref == ref.upper())
        found = session.exec(query.with_for_update() if lock else query).first()
        if found is None:
            raise NotFound(f"no work item {ref.upper()}")
        return found

    def _tenant_ids(self, session: Session, item: WorkItem) -> list[str]:
        return list(session.exec(select(WorkItemTenant.tenant_id)
                                 .where(WorkItemTenant.work_item_id == item.id)
                                 .order_by(col(WorkItemTenant.tenant_id))))

    def _accounts(self, session: Session, item: WorkItem) -> list[Account]:
        ids = self._tenant_ids(session, item)
        return list(session.exec(select(Account).where(col(Account.id).in_(ids)).order_by(col(Account.id))))
