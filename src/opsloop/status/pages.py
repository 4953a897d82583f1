"""What a status page shows, as data (the words and markup are `opsloop.present.status_pages`).

- A tenant's page (`GET /status/t/TOKEN`): the tenant's own name, its open
  incidents and those resolved in the last 90 days, each with its public facts
  only (how bad, since when, which stage, until when) and the updates a person
  approved for it, and its 90-day availability against its contract.
- The public page (`GET /status`): the incidents (and escalations) their comms
  owner marked public, with the updates approved for everyone; no tenant is named.

Nothing internal is read into these objects — no title, reference, owner,
label or other tenant — so a template cannot show what is not there. Items
are known to readers only by `key`, an HMAC of the item's id under the status
key: stable (for feed readers and anchors), but it tells nobody the id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, or_, select

from opsloop.clock import Clock
from opsloop.comms.models import public_item_ids, public_updates
from opsloop.db import Database
from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.policy import Policy
from opsloop.status.availability import WINDOW, Availability, availability
from opsloop.status.links import StatusLinks
from opsloop.types import Kind, State

log = logging.getLogger(__name__)

SHOWN = 50  # incidents on one page, newest first
_OPEN = (State.TRIGGERED.value, State.ACKNOWLEDGED.value, State.MITIGATED.value)


@dataclass(frozen=True)
class Update:
    at: datetime
    state: str  # the item's state the update describes
    text: str


@dataclass(frozen=True)
class Incident:
    key: str
    state: str
    severity: str
    started: datetime
    resolved: datetime | None
    updates: tuple[Update, ...]  # newest first

    @property
    def is_open(self) -> bool:
        return self.state in _OPEN

    @property
    def changed(self) -> datetime:
        """When anything readers see last changed (an Atom entry's `updated`)."""
        moments = [self.started, *(u.at for u in self.updates)]
        if self.resolved is not None:
            moments.append(self.resolved)
        return max(moments)


@dataclass(frozen=True)
class PublicPage:
    incidents: list[Incident]  # open first, then resolved; newest first within each
    at: datetime

    @property
    def open(self) -> list[Incident]:
        return [i for i in self.incidents if i.is_open]

    @property
    def recent(self) -> list[Incident]:
        return [i for i in self.incidents if not i.is_open]


@dataclass(frozen=True, kw_only=True)
class TenantPage(PublicPage):
    """One tenant's page: the public page's shape, with its name, availability and feed."""

    name: str
    availability: Availability
    feed_key: str  # a stable id for its Atom feed


def mentions(text: str, trace: str) -> bool:
    """Whether `trace` (a tenant's id, name or contact) appears in `text` as a whole word, in any case."""
    return re.search(rf"(?<![\w@.+-]){re.escape(trace)}(?![\w@-])", text, re.IGNORECASE) is not None


@dataclass(eq=False)
class StatusPages:
    db: Database
    policy: Policy
    clock: Clock
    links: StatusLinks

    def tenant(self, token: str) -> TenantPage | None:
        """The page a token opens; None when it opens none (the caller answers 404, as for a wrong path)."""
        tenant = self.links.tenant_of(token)
        if tenant is None:
            return None
        now = self.clock.now()
        with self.db.snapshot() as session:
            account = session.get(Account, tenant)
            if account is None:
                return None
            items = session.exec(
                select(WorkItem).join(WorkItemTenant, col(WorkItemTenant.work_item_id) == col(WorkItem.id))
                .where(WorkItemTenant.tenant_id == tenant, *self._shown(now, kinds=(Kind.INCIDENT,)))
                .order_by(col(WorkItem.created_at).desc(), col(WorkItem.id).desc()).limit(SHOWN)).all()
            found = availability(session, [tenant], until=now, policy=self.policy.status)[tenant]
            incidents = self._incidents(session, items, tenant=tenant)
        return TenantPage(incidents=incidents, at=now, name=account.name, availability=found,
                          feed_key=self.links.opaque(f"tenant:{tenant}"))

    def public(self) -> PublicPage:
        now = self.clock.now()
        with self.db.snapshot() as session:
            items = session.exec(
                select(WorkItem).where(col(WorkItem.id).in_(public_item_ids(session)),
                                       *self._shown(now, kinds=(Kind.INCIDENT, Kind.ESCALATION)))
                .order_by(col(WorkItem.created_at).desc(), col(WorkItem.id).desc()).limit(SHOWN)).all()
            incidents = self._incidents(session, items, tenant=None)
        return PublicPage(incidents, now)

    @staticmethod
    def _shown(now: datetime, *, kinds: tuple[Kind, ...]) -> tuple[ColumnElement[bool], ...]:
        """Items open now, or resolved within the availability window (they explain its number)."""
        return (col(WorkItem.kind).in_([k.value for k in kinds]), col(WorkItem.created_at) <= now,
                or_(col(WorkItem.resolved_at).is_(None), col(WorkItem.resolved_at) >= now - WINDOW))

    def _incidents(self, session: Session, items: Sequence[WorkItem], *,
                   tenant: str | None) -> list[Incident]:
        out = []
        others = session.exec(select(Account).where(Account.id != tenant)).all() if items else []
        for item in items:
            assert item.id is not None
            updates = tuple(reversed(self._updates(session, item.id, tenant=tenant, others=others)))
            out.append(Incident(self.links.opaque(f"item:{item.id}"), item.state, item.severity,
                                item.created_at, item.resolved_at, updates))
        return sorted(out, key=lambda i: not i.is_open)  # stable: newest first within open and resolved

    def _updates(self, session: Session, item_id: int, *, tenant: str | None,
                 others: Sequence[Account]) -> list[Update]:
        """The updates a person approved: for everyone the item touches, and (on a tenant's page) those
        sent to that tenant alone. One that names any other tenant is withheld: it was checked when it
        was written, but a tenant added to the catalog since could be named in it."""
        shown = []
        for update in public_updates(session, item_id, tenant=tenant):
            named = next((a.id for a in others for trace in (a.name, a.id, a.contact_email)
                          if trace and mentions(update.text, trace)), None)
            if named is not None:
                log.warning("status page: public update %s of item %s names tenant %s: withheld",
                            update.id, item_id, named)
                continue
            shown.append(Update(update.approved_at, update.state, update.text))
        return shown
