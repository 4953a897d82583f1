"""Gathering a score's inputs with SQL aggregations, for many tenants at once.

A handful of grouped queries serve any number of tenants (the daily recompute
reads every account in one pass): counts are `GROUP BY tenant`, the evidence
(the worst few items per tenant) uses a window function, the newest signal per
tenant and kind a `MAX(at)` join.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_
from sqlmodel import Session, col, select

from opsloop.health.models import HealthSignal
from opsloop.health.score import Inputs, ItemRef
from opsloop.lifecycle import OPEN_STATES
from opsloop.models import WorkItem, WorkItemTenant
from opsloop.sla.models import BREACHED, SlaClock
from opsloop.types import Kind

EVIDENCE = 3  # items named per factor
_SEVERITY_ORDER = case({"sev1": 1, "sev2": 2, "sev3": 3, "sev4": 4}, value=col(WorkItem.severity), else_=5)


def gather(session: Session, tenants: Sequence[str], *, now: datetime, window: timedelta,
           recent: timedelta, every: bool = False) -> dict[str, Inputs]:
    """The inputs of each tenant named, as of `now`.

    `every` says `tenants` are all the accounts: the queries then read the window
    without a tenant filter, which is what a planner does best with (SQLite, given
    a long IN list, probes it once per incident instead)."""
    out = {tenant: Inputs() for tenant in tenants}
    if not out:
        return out
    since = now - window
    only = _All() if every else out
    _incidents(session, out, only, since)
    _breaches(session, out, only, since)
    _open_items(session, out, only)
    _signals(session, out, only, since, now - recent)
    return out


class _All:
    """Stands for "every tenant" where a filter would take the list."""


def _of(column: Any, only: dict[str, Inputs] | _All) -> tuple[Any, ...]:
    return () if isinstance(only, _All) else (col(column).in_(only),)


def _incidents(session: Session, out: dict[str, Inputs], only: dict[str, Inputs] | _All,
               since: datetime) -> None:
    touching = (*_of(WorkItemTenant.tenant_id, only), WorkItem.kind == Kind.INCIDENT.value,
                col(WorkItem.created_at) >= since)
    joined = select(WorkItemTenant.tenant_id, WorkItem.severity, func.count()).join(
        WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
    for tenant, severity, count in session.exec(joined.where(*touching).group_by(
            WorkItemTenant.tenant_id, WorkItem.severity)).all():
        if tenant in out:
            out[tenant].incidents[severity] = count
    rank = func.row_number().over(partition_by=col(WorkItemTenant.tenant_id),
                                  order_by=(_SEVERITY_ORDER, col(WorkItem.created_at).desc())).label("rank")
    # the ranked rows carry what the evidence shows (plain columns: building thousands of WorkItem
    # objects cost more than the queries); joining the ranked subquery back to work_items made SQLite
    # rescan it per row, and reading them in a second query by id was a statement more
    ranked = (select(WorkItemTenant.tenant_id, WorkItem.ref, WorkItem.severity, WorkItem.title)
              .add_columns(rank)
              .join(WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
              .where(*touching).subquery())
    for tenant, ref, severity, title in session.exec(
            select(ranked.c.tenant_id, ranked.c.ref, ranked.c.severity, ranked.c.title)
            .where(ranked.c.rank <= EVIDENCE).order_by(ranked.c.tenant_id, ranked.c.rank)).all():
        if tenant in out:
            out[tenant].incident_refs.append(ItemRef(ref, severity, title))


def _breaches(session: Session, out: dict[str, Inputs], only: dict[str, Inputs] | _All,
              since: datetime) -> None:
    where = (*_of(WorkItemTenant.tenant_id, only), SlaClock.state == BREACHED,
             col(SlaClock.settled_at) >= since)
    base = select(WorkItemTenant.tenant_id, func.count()).join(
        SlaClock, col(SlaClock.work_item_id) == col(WorkItemTenant.work_item_id))
    for tenant, count in session.exec(base.where(*where).group_by(WorkItemTenant.tenant_id)).all():
        if tenant in out:
            out[tenant].breaches = count
    rank = func.row_number().over(partition_by=col(WorkItemTenant.tenant_id),
                                  order_by=col(SlaClock.settled_at).desc()).label("rank")
    ranked = (select(WorkItemTenant.tenant_id, WorkItem.ref, SlaClock.target, rank)
              .join(SlaClock, col(SlaClock.work_item_id) == col(WorkItemTenant.work_item_id))
              .join(WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
              .where(*where).subquery())
    for tenant, ref, target in session.exec(
            select(ranked.c.tenant_id, ranked.c.ref, ranked.c.target).where(ranked.c.rank <= EVIDENCE)
            .order_by(ranked.c.tenant_id, ranked.c.rank)).all():
        if tenant in out:
            out[tenant].breach_refs.append(f"{ref} {target}")


def _open_items(session: Session, out: dict[str, Inputs], only: dict[str, Inputs] | _All) -> None:
    kinds = {Kind.ESCALATION: OPEN_STATES[Kind.ESCALATION], Kind.EXCEPTION: OPEN_STATES[Kind.EXCEPTION]}
    is_open = [and_(col(WorkItem.kind) == kind.value, col(WorkItem.state).in_([s.value for s in states]))
               for kind, states in kinds.items()]
    rows = session.exec(
        select(WorkItemTenant.tenant_id, WorkItem.kind, WorkItem.ref)
        .join(WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
        .where(*_of(WorkItemTenant.tenant_id, only), or_(*is_open))
        .order_by(col(WorkItem.created_at).desc())
    ).all()
    for tenant, kind, ref in rows:  # few per tenant: open items are closed in days, not kept open
        inputs = out.get(tenant)
        if inputs is None:
            continue
        if kind == Kind.ESCALATION.value:
            inputs.open_escalations += 1
            if len(inputs.escalation_refs) < EVIDENCE:
                inputs.escalation_refs.append(ref)
        else:
            inputs.open_exceptions += 1
            if len(inputs.exception_refs) < EVIDENCE:
                inputs.exception_refs.append(ref)


def _signals(session: Session, out: dict[str, Inputs], only: dict[str, Inputs] | _All, since: datetime,
             recent_since: datetime) -> None:
    in_window = (*_of(HealthSignal.tenant_id, only), col(HealthSignal.at) >= since)
    newest = (select(HealthSignal.tenant_id, HealthSignal.kind, func.max(HealthSignal.at).label("at"))
              .where(*in_window, col(HealthSignal.kind).in_(("usage", "nps")))
              .group_by(HealthSignal.tenant_id, HealthSignal.kind).subquery())
    for tenant, kind, value in session.exec(
            select(HealthSignal.tenant_id, HealthSignal.kind, HealthSignal.value).join(newest, and_(
                col(HealthSignal.tenant_id) == newest.c.tenant_id, col(HealthSignal.kind) == newest.c.kind,
                col(HealthSignal.at) == newest.c.at))).all():
        if tenant in out:
            setattr(out[tenant], kind, value)
    is_recent = col(HealthSignal.at) >= recent_since
    for tenant, recent, before in session.exec(
            select(HealthSignal.tenant_id,
                   func.avg(case((is_recent, HealthSignal.value))),
                   func.avg(case((~is_recent, HealthSignal.value))))
            .where(*in_window, HealthSignal.kind == "tickets").group_by(HealthSignal.tenant_id)).all():
        if tenant in out:
            out[tenant].tickets_recent = None if recent is None else float(recent)
            out[tenant].tickets_before = None if before is None else float(before)
