"""What the known renewal outcomes can be compared with: the score some days before each renewal
(from the daily series) and the intervention that preceded it (prompt answers and plays).

Each lookup is one query however many outcomes there are: the daily series is joined on
(tenant, a window of days before the renewal date) and ranked per outcome, so it reads a few
index entries per outcome rather than every day of every account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal
from sqlalchemy import select as sa_select  # sqlmodel's is typed for at most four columns
from sqlmodel import Session, col, select

from opsloop.health.models import HealthDaily, HealthPlay, HealthPrompt, RenewalOutcome

TOLERANCE = 7  # days: a score this much older than the day asked for still stands for it (downtime)
LOOKBACK = timedelta(days=365)  # an intervention this long before a renewal is attributed to it


@dataclass(frozen=True)
class Known:
    """One renewal outcome with what preceded it."""

    id: int
    tenant: str
    date: date
    outcome: str
    arr_before: int
    arr_after: int


@dataclass(frozen=True)
class Before:
    score: int
    band: str
    units: dict[str, float]


@dataclass(frozen=True)
class Intervention:
    answer: str  # taken | snoozed | dismissed | open (never answered)
    playbook: str | None


def known(session: Session, *, until: date) -> list[Known]:
    columns = (col(RenewalOutcome.id), col(RenewalOutcome.tenant_id), col(RenewalOutcome.date),
               col(RenewalOutcome.outcome), col(RenewalOutcome.arr_before), col(RenewalOutcome.arr_after))
    rows = session.execute(sa_select(*columns).where(col(RenewalOutcome.date) <= until)
                           .order_by(col(RenewalOutcome.date), col(RenewalOutcome.id)))
    return [Known(*row) for row in rows]


def _days_before(session: Session, column: Any, days: int) -> Any:
    """`column - days` as a date, in the dialect's own arithmetic (SQLite keeps dates as text)."""
    if session.get_bind().dialect.name == "sqlite":
        return func.date(column, f"-{days} days")
    return column - literal(days)


def scores_before(session: Session, days: int, *, units: bool = False) -> dict[int, Before]:
    """Outcome id -> the last daily score on or before `days` days before its renewal date (at
    most TOLERANCE days older), for every outcome that has one."""
    window = and_(col(HealthDaily.tenant_id) == col(RenewalOutcome.tenant_id),
                  col(HealthDaily.day) >= _days_before(session, RenewalOutcome.date, days + TOLERANCE),
                  col(HealthDaily.day) <= _days_before(session, RenewalOutcome.date, days))
    rank = func.row_number().over(partition_by=col(RenewalOutcome.id),
                                  order_by=col(HealthDaily.day).desc()).label("rank")
    extra = (col(HealthDaily.units),) if units else ()
    ranked = (sa_select(col(RenewalOutcome.id).label("outcome"), col(HealthDaily.score),
                        col(HealthDaily.band), *extra, rank).join(HealthDaily, window).subquery())
    picked = sa_select(*[c for c in ranked.c if c.name != "rank"]).where(ranked.c.rank == 1)
    out = {}
    for row in session.execute(picked):
        out[int(row[0])] = Before(int(row[1]), str(row[2]), dict(row[3]) if units else {})
    return out


def interventions(session: Session, outcomes: list[Known]) -> dict[int, Intervention]:
    """Outcome id -> the last intervention in the year before its renewal: a play (taken, with the
    playbook it ran) or else the last prompt and what its CSM answered."""
    tenants = {o.tenant for o in outcomes}
    if not tenants:
        return {}
    prompts: dict[str, list[tuple[datetime, str, str | None, int]]] = {}
    columns = (col(HealthPrompt.tenant_id), col(HealthPrompt.opened_at), col(HealthPrompt.status),
               col(HealthPrompt.playbook), col(HealthPrompt.id))
    for tenant, opened, status, playbook, pid in session.execute(
            sa_select(*columns).where(col(HealthPrompt.tenant_id).in_(tenants))):
        prompts.setdefault(tenant, []).append((opened, status, playbook, int(pid or 0)))
    plays: dict[str, list[tuple[datetime, str]]] = {}
    for tenant, opened, playbook in session.exec(
            select(HealthPlay.tenant_id, HealthPlay.opened_at, HealthPlay.playbook_id)
            .where(col(HealthPlay.tenant_id).in_(tenants))):
        plays.setdefault(tenant, []).append((opened, playbook))
    out = {}
    for o in outcomes:
        end = datetime.combine(o.date + timedelta(days=1), datetime.min.time()).replace(tzinfo=UTC)
        start = end - LOOKBACK
        ran = [p for p in plays.get(o.tenant, []) if start <= p[0] < end]
        if ran:
            out[o.id] = Intervention("taken", max(ran)[1])
            continue
        asked = [p for p in prompts.get(o.tenant, []) if start <= p[0] < end]
        if asked:
            _, status, playbook, _ = max(asked, key=lambda p: (p[0], p[3]))
            out[o.id] = Intervention(status, playbook)
    return out

