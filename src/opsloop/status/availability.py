"""A tenant's availability over the last 90 days, from the incidents that touched it, against its contract.

Counted as Atlassian Statuspage counts uptime: the time a tenant's incidents
were open (from opening until mitigated, else resolved; still open: until
now), weighted by how badly they hurt — a sev1 (a major outage) in full, a
sev2 (a partial outage) at 30%, a sev3 or sev4 (degraded, minor) not at all.
Overlapping incidents count once, at the heaviest weight of the moment, so
two incidents at once are not twice the downtime.

The contract is the policy's `status.contract` for the account's tier; the
error budget is the downtime it allows over the window (99.99% over 90 days:
12 minutes 58 seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from opsloop.durations import format_duration
from opsloop.models import Account, WorkItem, WorkItemTenant
from opsloop.status.config import StatusPolicy
from opsloop.types import Kind, State

WINDOW = timedelta(days=90)
WEIGHTS = {"sev1": 1.0, "sev2": 0.3}  # major outage, partial outage; anything less is no downtime
_OPEN = (State.TRIGGERED.value, State.ACKNOWLEDGED.value)


@dataclass(frozen=True)
class Availability:
    tenant: str
    since: datetime
    until: datetime
    downtime: timedelta  # weighted
    incidents: int  # incidents that touched the tenant within the window (any severity)
    contract: float | None  # the percentage promised to its tier, if any

    @property
    def percent(self) -> float:
        span = (self.until - self.since).total_seconds()
        return 100.0 if span <= 0 else 100.0 * (1 - self.downtime.total_seconds() / span)

    @property
    def met(self) -> bool | None:
        """Within the contract (None: nothing promised)."""
        return None if self.contract is None else self.percent >= self.contract

    @property
    def allowed(self) -> timedelta | None:
        """The downtime the contract allows over the window (the error budget)."""
        if self.contract is None:
            return None
        span = (self.until - self.since).total_seconds()
        return timedelta(seconds=round(span * (100 - self.contract) / 100))

    def summary(self) -> str:
        """For people inside: `99.982% over 90 days · contract 99.99%: missed (23m of 12m58s allowed)`."""
        line = f"{shown(self.percent)} over {WINDOW.days} days"
        if self.contract is None or self.allowed is None:
            return line + " · no contract for its tier (status.contract)"
        verdict = "met" if self.met else "missed"
        used = format_duration(self.downtime) if self.downtime else "no downtime"
        return (f"{line} · contract {self.contract:g}%: {verdict} "
                f"({used} of {format_duration(self.allowed)} allowed)")


    def brief(self) -> str:
        """For a list line: `availability 99.990% (90d; contract 99.99%: missed)`."""
        contract = "no contract" if self.contract is None else \
            f"contract {self.contract:g}%: {'met' if self.met else 'missed'}"
        return f"availability {shown(self.percent)} ({WINDOW.days}d; {contract})"


def shown(percent: float) -> str:
    """Three decimals, cut rather than rounded: 99.99995% with any downtime never reads as 100.000%."""
    cut = int(percent * 1000) / 1000
    return f"{cut:.3f}%"


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime
    weight: float


def weighted_downtime(spans: Iterable[Span]) -> timedelta:
    """The time covered by the spans, each moment at the heaviest weight of the spans open then."""
    edges: list[tuple[datetime, int, float]] = []
    for span in spans:
        if span.weight > 0 and span.end > span.start:
            edges += [(span.start, 1, span.weight), (span.end, -1, span.weight)]
    edges.sort(key=lambda edge: edge[0])
    total, open_weights, last = 0.0, [], None
    for moment, change, weight in edges:
        if last is not None and open_weights:
            total += (moment - last).total_seconds() * max(open_weights)
        if change > 0:
            open_weights.append(weight)
        else:
            open_weights.remove(weight)
        last = moment
    return timedelta(seconds=total)


def span_of(item: WorkItem, since: datetime, until: datetime) -> Span:
    """The incident's impact, clipped to the window."""
    ended = None if item.state in _OPEN else (item.mitigated_at or item.resolved_at or item.closed_at)
    end = until if ended is None else min(ended, until)
    return Span(max(item.created_at, since), end, WEIGHTS.get(item.severity, 0.0))


def availability(
    session: Session, tenants: Sequence[str], *, until: datetime, policy: StatusPolicy
) -> dict[str, Availability]:
    """Each tenant's availability over the 90 days up to `until` (unknown tenants are left out)."""
    since = until - WINDOW
    tiers = dict(session.exec(select(Account.id, Account.tier).where(col(Account.id).in_(tenants))).all())
    ended = func.coalesce(WorkItem.mitigated_at, WorkItem.resolved_at, WorkItem.closed_at)
    rows = session.exec(
        select(WorkItemTenant.tenant_id, WorkItem)
        .join(WorkItem, col(WorkItem.id) == col(WorkItemTenant.work_item_id))
        .where(col(WorkItemTenant.tenant_id).in_(list(tiers)), WorkItem.kind == Kind.INCIDENT.value,
               col(WorkItem.created_at) < until,
               (col(WorkItem.state).in_(_OPEN)) | ended.is_(None) | (ended > since))
    ).all()
    spans: dict[str, list[Span]] = {tenant: [] for tenant in tiers}
    for tenant, item in rows:
        spans[tenant].append(span_of(item, since, until))
    return {tenant: Availability(tenant, since, until, weighted_downtime(spans[tenant]), len(spans[tenant]),
                                 policy.promised(tier))
            for tenant, tier in tiers.items()}
