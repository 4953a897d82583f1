"""Customer figures for the leadership digest: retention, ARR by band, and plays.

Each figure is one aggregation: NRR and gross retention over the renewals of the last 12
months, ARR summed per band of each account's newest score, and plays opened and closed in
the digest's day and week (closed ones by the outcome recorded) with those overdue now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, distinct, literal
from sqlmodel import Session, col, func, select

from opsloop.health.models import HealthPlay, HealthPlayStep, HealthScore
from opsloop.health.outcomes import ALL, Retention, retention
from opsloop.models import Account

DAY, WEEK = "day", "week"


@dataclass
class CustomerFigures:
    retention: Retention = field(default_factory=Retention)  # the last 12 months
    arr_by_band: dict[str, int] = field(default_factory=dict)  # band -> ARR of accounts in it now
    opened: dict[str, int] = field(default_factory=dict)  # period -> plays opened
    closed: dict[str, dict[str, int]] = field(default_factory=dict)  # period -> outcome -> plays
    open_now: int = 0
    overdue_now: int = 0  # open plays with a step past its due time


def gather(session: Session, *, week_start: datetime, day_start: datetime, until: datetime,
           now: datetime, today_local: datetime) -> CustomerFigures:
    out = CustomerFigures()
    day = today_local.date()
    year = retention(session, since=day - timedelta(days=365), until=day)
    out.retention = year.get((ALL, ALL), Retention())
    newest = select(func.max(HealthScore.id)).group_by(HealthScore.tenant_id)
    for band, arr in session.exec(
            select(HealthScore.band, func.sum(Account.arr))
            .join(Account, col(Account.id) == col(HealthScore.tenant_id))
            .where(col(HealthScore.id).in_(newest)).group_by(col(HealthScore.band))):
        out.arr_by_band[str(band)] = int(arr or 0)
    for stamp, target in ((HealthPlay.opened_at, "opened"), (HealthPlay.closed_at, "closed")):
        period = case((col(stamp) >= day_start, literal(DAY)), else_=literal(WEEK))
        rows = session.exec(select(period, HealthPlay.outcome, func.count())
                            .where(col(stamp) >= week_start, col(stamp) < until)
                            .group_by(period, col(HealthPlay.outcome))).all()
        for where, outcome, count in rows:
            for p in (DAY, WEEK) if where == DAY else (WEEK,):
                if target == "opened":
                    out.opened[p] = out.opened.get(p, 0) + int(count)
                else:
                    by = out.closed.setdefault(p, {})
                    by[str(outcome)] = by.get(str(outcome), 0) + int(count)
    is_open = col(HealthPlay.closed_at).is_(None)
    out.open_now = int(session.exec(select(func.count()).select_from(HealthPlay).where(is_open)).one())
    late = and_(col(HealthPlayStep.play_id) == col(HealthPlay.id), col(HealthPlayStep.done_at).is_(None),
                col(HealthPlayStep.due_at) <= now)
    out.overdue_now = int(session.exec(select(func.count(distinct(col(HealthPlay.id))))
                                       .join(HealthPlayStep, late).where(is_open)).one())
    return out
