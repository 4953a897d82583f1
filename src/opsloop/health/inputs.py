"""Gathering a score's inputs with SQL aggregations, for many tenants at once.

A handful of grouped queries serve any number of tenants (the daily recompute
reads every account in one pass): counts are `GROUP BY tenant`, the evidence
(the worst few items per tenant) uses a window function, the newest signal per
tenant and kind a `MAX(at)` join.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

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
           recent: timedelta) -> dict[str, Inputs]:
    """The inputs of each tenant named, as of `now`."""
    out = {tenant: Inputs() for tenant in tenants}
    if not out:
        return out
    since = now - window
    _incidents(session, out, since)
    _breaches(session, out, since)
    _open_items(session, out)
    _signals(session, out, since, now - recent)
    return out


def _incidents(session: Session, out: dict[str, Inputs], since: datetime) -> None:
    touching = (col(WorkItemTenant.tenant_id).in_(out), WorkItem.kind == Kind.INCIDENT.value,
                col(WorkItem.created_at) >= since)
    joined = select(WorkItemTenant.tenant_id, WorkItem.severity, func.count()).join(
        WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
    for tenant, severity, count in session.exec(joined.where(*touching).group_by(
            WorkItemTenant.tenant_id, WorkItem.severity)).all():
        out[tenant].incidents[severity] = count
    rank = func.row_number().over(partition_by=col(WorkItemTenant.tenant_id),
                                  order_by=(_SEVERITY_ORDER, col(WorkItem.created_at).desc())).label("rank")
    ranked = (select(WorkItemTenant.tenant_id, WorkItem.id, rank)
              .join(WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
              .where(*touching).subquery())
    rows = session.exec(select(ranked.c.tenant_id, WorkItem.ref, WorkItem.severity, WorkItem.title)
                        .join(WorkItem, col(WorkItem.id) == ranked.c.id)
                        .where(ranked.c.rank <= EVIDENCE).order_by(ranked.c.tenant_id, ranked.c.rank)).all()
    for tenant, ref, severity, title in rows:
        out[tenant].incident_refs.append(ItemRef(ref, severity, title))


def _breaches(session: Session, out: dict[str, Inputs], since: datetime) -> None:
    where = (col(WorkItemTenant.tenant_id).in_(out), SlaClock.state == BREACHED,
             col(SlaClock.settled_at) >= since)
    base = select(WorkItemTenant.tenant_id, func.count()).join(
        SlaClock, col(SlaClock.work_item_id) == col(WorkItemTenant.work_item_id))
    for tenant, count in session.exec(base.where(*where).group_by(WorkItemTenant.tenant_id)).all():
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
        out[tenant].breach_refs.append(f"{ref} {target}")


def _open_items(session: Session, out: dict[str, Inputs]) -> None:
    kinds = {Kind.ESCALATION: OPEN_STATES[Kind.ESCALATION], Kind.EXCEPTION: OPEN_STATES[Kind.EXCEPTION]}
    is_open = [and_(col(WorkItem.kind) == kind.value, col(WorkItem.state).in_([s.value for s in states]))
               for kind, states in kinds.items()]
    rows = session.exec(
        select(WorkItemTenant.tenant_id, WorkItem.kind, WorkItem.ref)
        .join(WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
        .where(col(WorkItemTenant.tenant_id).in_(out), or_(*is_open))
        .order_by(col(WorkItem.created_at).desc())
    ).all()
    for tenant, kind, ref in rows:  # few per tenant: open items are closed in days, not kept open
        inputs = out[tenant]
        if kind == Kind.ESCALATION.value:
            inputs.open_escalations += 1
            if len(inputs.escalation_refs) < EVIDENCE:
                inputs.escalation_refs.append(ref)
        else:
            inputs.open_exceptions += 1
            if len(inputs.exception_refs) < EVIDENCE:
                inputs.exception_refs.append(ref)


def _signals(session: Session, out: dict[str, Inputs], since: datetime, recent_since: datetime) -> None:
    in_window = (col(HealthSignal.tenant_id).in_(out), col(HealthSignal.at) >= since)
    newest = (select(HealthSignal.tenant_id, HealthSignal.kind, func.max(HealthSignal.at).label("at"))
              .where(*in_window, col(HealthSignal.kind).in_(("usage", "nps")))
              .group_by(HealthSignal.tenant_id, HealthSignal.kind).subquery())
    for tenant, kind, value in session.exec(
            select(HealthSignal.tenant_id, HealthSignal.kind, HealthSignal.value).join(newest, and_(
                col(HealthSignal.tenant_id) == newest.c.tenant_id, col(HealthSignal.kind) == newest.c.kind,
                col(HealthSignal.at) == newest.c.at))).all():
        setattr(out[tenant], kind, value)
    is_recent = col(HealthSignal.at) >= recent_since
    for tenant, recent, before in session.exec(
            select(HealthSignal.tenant_id,
                   func.avg(case((is_recent, HealthSignal.value))),
                   func.avg(case((~is_recent, HealthSignal.value))))
            .where(*in_window, HealthSignal.kind == "tickets").group_by(HealthSignal.tenant_id)).all():
        out[tenant].tickets_recent = None if recent is None else float(recent)
        out[tenant].tickets_before = None if before is None else float(before)
