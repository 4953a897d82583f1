"""What the digest reads: per-target attainment, breaches, MTTA and MTTR over a period."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import mean
from typing import NamedTuple

from sqlmodel import Session, col, func, select

from opsloop.models import WorkItem
from opsloop.sla.models import BREACHED, MET, NO_RESPONSE, SETTLED, SlaClock


@dataclass(frozen=True)
class Outcomes:
    met: int = 0
    breached: int = 0
    no_response: int = 0  # response targets nobody answered (the alerts resolved): a miss, never "met"

    @property
    def total(self) -> int:
        return self.met + self.breached + self.no_response

    @property
    def ratio(self) -> float | None:
        """The share of clocks that met their target, or None when none settled."""
        return self.met / self.total if self.total else None


class Breach(NamedTuple):
    """A breached clock: the item's ref, the target and when it breached (a row of the query below)."""

    ref: str
    target: str
    breached_at: datetime


@dataclass(frozen=True)
class Attainment:
    targets: dict[str, Outcomes] = field(default_factory=dict)  # response / update / resolution
    breaches: list[Breach] = field(default_factory=list)
    mtta: timedelta | None = None  # mean time from open to acknowledged by a person
    mttr: timedelta | None = None  # mean time from open to resolved
    acknowledged: int = 0
    resolved: int = 0


def attainment(session: Session, *, since: datetime, until: datetime, kind: str | None = None) -> Attainment:
    """Clocks settled (met or breached) in [since, until), and MTTA / MTTR of items acknowledged /
    resolved in it. Durations are wall time; targets were measured in each policy's calendar."""
    counts: dict[str, dict[str, int]] = {}
    settled = (col(SlaClock.settled_at) >= since, col(SlaClock.settled_at) < until,
               col(SlaClock.state).in_(SETTLED))
    by_kind = (WorkItem.kind == kind,) if kind else ()
    rows = session.exec(
        select(SlaClock.target, SlaClock.state, func.count())
        .join(WorkItem, col(WorkItem.id) == col(SlaClock.work_item_id))
        .where(*settled, *by_kind).group_by(SlaClock.target, SlaClock.state)
    ).all()
    for target, state, count in rows:
        counts.setdefault(target, {})[state] = count
    breaches = [Breach(ref, target, at) for ref, target, at in session.exec(
        select(WorkItem.ref, SlaClock.target, SlaClock.settled_at)
        .join(WorkItem, col(WorkItem.id) == col(SlaClock.work_item_id))
        .where(*settled, SlaClock.state == BREACHED, *by_kind).order_by(col(SlaClock.settled_at))
    ).all() if at is not None]
    acked = _spans(session, WorkItem.acknowledged_at, since, until, kind)
    resolved = _spans(session, WorkItem.resolved_at, since, until, kind)
    return Attainment(
        targets={t: Outcomes(c.get(MET, 0), c.get(BREACHED, 0), c.get(NO_RESPONSE, 0))
                 for t, c in counts.items()},
        breaches=breaches,
        mtta=_mean(acked), mttr=_mean(resolved), acknowledged=len(acked), resolved=len(resolved),
    )


def _spans(session: Session, stamp: datetime | None, since: datetime, until: datetime,
           kind: str | None) -> list[timedelta]:
    column = col(stamp)
    query = select(WorkItem.created_at, column).where(column >= since, column < until)
    if kind:
        query = query.where(WorkItem.kind == kind)
    return [end - start for start, end in session.exec(query).all() if end is not None]


def _mean(spans: list[timedelta]) -> timedelta | None:
    return timedelta(seconds=mean(s.total_seconds() for s in spans)) if spans else None
