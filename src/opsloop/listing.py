"""Lists and search over work items: `/incident list closed sev1 tenant:acme since:7d mine "db"`.

Newest first, a page at a time, and always with the total: a list never stops
short without saying how many more there are and how to see them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from opsloop.errors import NotFound
from opsloop.lifecycle import OPEN_STATES
from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.types import Kind, Severity, State

PAGE_SIZE = 20

# which items a list shows, per kind: a word -> the states it stands for (None: every state)
WHICH: dict[Kind, dict[str, frozenset[State] | None]] = {
    kind: {"open": OPEN_STATES[kind], "resolved": frozenset({State.RESOLVED}),
           "closed": frozenset({State.CLOSED}), "all": None}
    for kind in (Kind.INCIDENT, Kind.ESCALATION)
} | {
    Kind.EXCEPTION: {"open": OPEN_STATES[Kind.EXCEPTION], "requested": frozenset({State.REQUESTED}),
                     "approved": frozenset({State.APPROVED}), "rejected": frozenset({State.REJECTED}),
                     "expired": frozenset({State.EXPIRED}), "all": None},
}
for _kind in Kind:  # every other kind (maintenance windows, ...): open ones, or all of them
    WHICH.setdefault(_kind, {"open": OPEN_STATES[_kind], "all": None})


@dataclass(frozen=True)
class ItemQuery:
    """What a person asked to see; `mine` is the person (owner, comms owner, a role, or who opened it)."""

    kind: Kind
    which: str = "open"
    severity: Severity | None = None
    tenant: str | None = None
    since: timedelta | None = None
    mine: str | None = None
    text: str | None = None
    page: int = 1

    def next(self) -> ItemQuery:
        return replace(self, page=self.page + 1)


@dataclass(frozen=True)
class ListedItem:
    item: WorkItem
    tenants: list[str]


@dataclass(frozen=True)
class ItemPage:
    query: ItemQuery
    items: list[ListedItem]
    total: int  # every item that matches, on every page
    now: datetime

    @property
    def first(self) -> int:
        return (self.query.page - 1) * PAGE_SIZE + 1

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @property
    def more(self) -> bool:
        return self.last < self.total


def search(session: Session, query: ItemQuery, now: datetime, *,
           role_items: Callable[[str], Any] | None = None) -> ItemPage:
    """One page of the items `query` asks for, newest first, with how many match in all.

    `role_items(person)` (optional) gives a subquery of the ids of items where the person holds a role,
    so that `mine` also finds them."""
    if query.tenant is not None and session.get(Account, query.tenant) is None:
        raise NotFound(f"unknown tenant {query.tenant}: no account with that id in the catalog")
    conditions: list[Any] = [WorkItem.kind == query.kind.value]
    states = WHICH[query.kind][query.which]
    if states is not None:
        conditions.append(col(WorkItem.state).in_(sorted(s.value for s in states)))
    if query.severity is not None:
        conditions.append(WorkItem.severity == query.severity.value)
    if query.since is not None:
        conditions.append(col(WorkItem.created_at) >= now - query.since)
    if query.tenant is not None:
        conditions.append(col(WorkItem.id).in_(
            select(WorkItemTenant.work_item_id).where(WorkItemTenant.tenant_id == query.tenant)))
    if query.mine is not None:
        who = query.mine
        mine: list[Any] = [col(WorkItem.owner) == who, col(WorkItem.comms_owner) == who,
                           col(WorkItem.created_by) == who]
        if role_items is not None:
            mine.append(col(WorkItem.id).in_(role_items(who)))
        conditions.append(or_(*mine))
    if query.text:
        conditions.append(col(WorkItem.title).icontains(query.text, autoescape=True))
    total = session.exec(select(func.count()).select_from(WorkItem).where(*conditions)).one()
    rows = list(session.exec(
        select(WorkItem).where(*conditions)
        .order_by(col(WorkItem.created_at).desc(), col(WorkItem.id).desc())
        .offset((query.page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    tenants: dict[int, list[str]] = {i.id: [] for i in rows if i.id is not None}
    if tenants:
        for item_id, tenant in session.exec(
                select(WorkItemTenant.work_item_id, WorkItemTenant.tenant_id)
                .where(col(WorkItemTenant.work_item_id).in_(list(tenants)))
                .order_by(col(WorkItemTenant.tenant_id))):
            tenants[item_id].append(tenant)
    return ItemPage(query, [ListedItem(i, tenants.get(i.id or 0, [])) for i in rows], int(total), now)
