"""The digest's figures, each from one SQL aggregation over indexed columns.

Periods are local days of the policy's time zone: `day` is the reported day
(yesterday, as of the build) and `week` the seven days ending with it. Each
query reads the week's range once and splits day from week with a CASE
bucket, so a figure costs one index range scan, never a Python loop over
rows. Only bounded lists (the day's breaches, the oldest open items, the
largest at-risk accounts) come back as rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, distinct, func, literal, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.digest.control import Point
from opsloop.health.leadership import CustomerFigures
from opsloop.health.leadership import gather as customer_figures
from opsloop.health.models import HealthScore
from opsloop.health.score import AT_RISK
from opsloop.loops.models import FeedbackLoop
from opsloop.models import Account, OutboxMessage, WorkItem, WorkItemTenant
from opsloop.remediation.models import PENDING, RemediationCall
from opsloop.reviews.digest import ReviewFigures
from opsloop.reviews.digest import gather as review_figures
from opsloop.sla.attainment import Outcomes
from opsloop.sla.models import BREACHED, MET, NO_RESPONSE, SETTLED, SlaClock
from opsloop.status.availability import Availability, availability
from opsloop.status.config import StatusPolicy
from opsloop.types import Kind, State

DAY, WEEK = "day", "week"
SHOWN = 8  # rows of a list shown; the rest is counted
OPEN_KINDS = (Kind.ESCALATION, Kind.EXCEPTION)  # the kinds whose oldest open items are listed


@dataclass(frozen=True)
class Window:
    week_start: datetime  # local midnight seven days before `until`
    day_start: datetime  # local midnight of the reported day
    until: datetime  # local midnight after it


@dataclass(frozen=True)
class Speed:
    count: int = 0
    mean: float | None = None  # seconds
    target: float | None = None  # mean SLA target of the same items' clocks, seconds


class Tenant(NamedTuple):
    """An account a breach touched, as the breach line names it (a row of the accounts table)."""

    id: str
    name: str
    arr: int


@dataclass(frozen=True)
class BreachLine:
    ref: str
    title: str
    severity: str
    target: str
    tenants: list[Tenant]


@dataclass(frozen=True)
class OpenItem:
    ref: str
    title: str
    state: str
    created_at: datetime


@dataclass(frozen=True)
class AtRisk:
    id: str
    name: str
    arr: int
    renewal: date | None
    score: int
    availability: Availability | None = None  # its last 90 days against its contract


@dataclass
class Figures:
    opened: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)  # period -> (kind, sev)
    resolved: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    mtta: dict[str, dict[str, Speed]] = field(default_factory=dict)  # period -> kind -> speed
    mttr: dict[str, dict[str, Speed]] = field(default_factory=dict)
    attainment: dict[str, dict[str, Outcomes]] = field(default_factory=dict)  # period -> target
    breaches: list[BreachLine] = field(default_factory=list)  # the day's, the first SHOWN
    breach_count: int = 0
    breach_arr: int = 0  # ARR of the distinct accounts touched by the day's breaches
    open_counts: dict[str, int] = field(default_factory=dict)  # kind -> open now
    oldest: dict[str, list[OpenItem]] = field(default_factory=dict)  # kind -> the oldest SHOWN
    at_risk: list[AtRisk] = field(default_factory=list)  # largest ARR first, SHOWN
    at_risk_count: int = 0
    at_risk_arr: int = 0
    loops_open: int = 0
    loops_items: int = 0
    loops_resolved: int = 0  # open loops whose item is already resolved: someone was not told
    remediation: dict[str, dict[str, int]] = field(default_factory=dict)  # period -> state -> calls
    awaiting_approval: int = 0
    customers: CustomerFigures = field(default_factory=CustomerFigures)  # NRR, ARR by band, plays
    reviews: ReviewFigures = field(default_factory=ReviewFigures)  # overdue reviews, follow-ups; recurrences


def seconds(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """`end - start` in seconds, in the dialect's own date arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0  # type: ignore[no-any-return]
    return func.extract("epoch", end - start)  # type: ignore[return-value]


def bucket(column: Any, window: Window) -> ColumnElement[str]:
    return case((col(column) >= window.day_start, literal(DAY)), else_=literal("before"))


def in_week(column: Any, window: Window) -> ColumnElement[bool]:
    return and_(col(column) >= window.week_start, col(column) < window.until)


def _split(rows: Any) -> dict[str, dict[Any, int]]:
    """(key, bucket, count) rows -> {day: {key: n}, week: {key: n}} (the week includes the day)."""
    out: dict[str, dict[Any, int]] = {DAY: {}, WEEK: {}}
    for key, where, count in rows:
        if where == DAY:
            out[DAY][key] = out[DAY].get(key, 0) + count
        out[WEEK][key] = out[WEEK].get(key, 0) + count
    return out


def gather(session: Session, window: Window, *, now: datetime, status: StatusPolicy) -> Figures:
    """Every figure of the window; what is "open" or "at risk" is as of `now` (for a past day: its end)."""
    figures = Figures()
    _flow(session, window, figures)
    figures.mtta = _speed(session, window, WorkItem.acknowledged_at, "response")
    figures.mttr = _speed(session, window, WorkItem.resolved_at, "resolution")
    _attainment(session, window, figures)
    _breaches(session, window, figures)
    _open_items(session, figures, now)
    _at_risk(session, figures, now, status)
    _loops(session, figures, now)
    _remediation(session, window, figures)
    figures.customers = customer_figures(session, week_start=window.week_start, day_start=window.day_start,
                                         until=window.until, now=now, today_local=window.until)
    figures.reviews = review_figures(session, week_start=window.week_start, until=window.until, now=now)
    return figures


def _flow(session: Session, window: Window, figures: Figures) -> None:
    for stamp, target in ((WorkItem.created_at, figures.opened), (WorkItem.resolved_at, figures.resolved)):
        where = bucket(stamp, window)
        rows = session.exec(
            select(WorkItem.kind, WorkItem.severity, where, func.count())
            .where(in_week(stamp, window)).group_by(WorkItem.kind, WorkItem.severity, where)
        ).all()
        target.update(_split(((kind, sev), b, n) for kind, sev, b, n in rows))


def _speed(session: Session, window: Window, stamp: Any, clock_target: str) -> dict[str, dict[str, Speed]]:
    where = bucket(stamp, window)
    span = seconds(session, WorkItem.created_at, stamp)
    spans = _weighted(session.exec(
        select(WorkItem.kind, where, func.count(), func.avg(span))
        .where(in_week(stamp, window)).group_by(WorkItem.kind, where)
    ).all())
    on_item = and_(col(SlaClock.work_item_id) == col(WorkItem.id), col(SlaClock.target) == clock_target)
    targets = _weighted(session.exec(
        select(WorkItem.kind, where, func.count(), func.avg(SlaClock.target_seconds))
        .join(SlaClock, on_item).where(in_week(stamp, window)).group_by(WorkItem.kind, where)
    ).all())
    return {period: {kind: Speed(count, mean, targets[period].get(kind, (0, None))[1])
                     for kind, (count, mean) in kinds.items()} for period, kinds in spans.items()}


def _weighted(rows: Any) -> dict[str, dict[str, tuple[int, float | None]]]:
    """(kind, bucket, count, mean) rows -> {period: {kind: (count, mean)}}: the week's mean is
    the count-weighted mean of its buckets, i.e. the mean over all its items."""
    sums: dict[str, dict[str, tuple[int, float]]] = {DAY: {}, WEEK: {}}
    for kind, where, count, avg in rows:
        if avg is None:
            continue
        for period in (DAY, WEEK) if where == DAY else (WEEK,):
            n, total = sums[period].get(kind, (0, 0.0))
            sums[period][kind] = (n + int(count), total + float(avg) * int(count))
    return {period: {kind: (n, total / n if n else None) for kind, (n, total) in kinds.items()}
            for period, kinds in sums.items()}


def _attainment(session: Session, window: Window, figures: Figures) -> None:
    where = bucket(SlaClock.settled_at, window)
    rows = session.exec(
        select(SlaClock.target, SlaClock.state, where, func.count())
        .where(in_week(SlaClock.settled_at, window), col(SlaClock.state).in_(SETTLED))
        .group_by(SlaClock.target, SlaClock.state, where)
    ).all()
    split = _split(((target, state), b, n) for target, state, b, n in rows)
    for period, counts in split.items():
        targets = sorted({t for t, _ in counts})
        figures.attainment[period] = {t: Outcomes(counts.get((t, MET), 0), counts.get((t, BREACHED), 0),
                                                  counts.get((t, NO_RESPONSE), 0))
                                      for t in targets}


def _breaches(session: Session, window: Window, figures: Figures) -> None:
    day = (col(SlaClock.settled_at) >= window.day_start, col(SlaClock.settled_at) < window.until,
           SlaClock.state == BREACHED)
    figures.breach_count = int(session.exec(select(func.count()).select_from(SlaClock).where(*day)).one())
    rows = session.exec(
        select(WorkItem, SlaClock.target)
        .join(WorkItem, col(WorkItem.id) == col(SlaClock.work_item_id)).where(*day)
        .order_by(col(SlaClock.settled_at), col(SlaClock.id)).limit(SHOWN)
    ).all()
    tenants: dict[int, list[Tenant]] = {}
    if rows:
        for item_id, tid, name, arr in session.exec(
            select(WorkItemTenant.work_item_id, Account.id, Account.name, Account.arr)
            .join(Account, col(Account.id) == col(WorkItemTenant.tenant_id))
            .where(col(WorkItemTenant.work_item_id).in_({item.id for item, _ in rows}))
            .order_by(col(Account.arr).desc())
        ).all():
            tenants.setdefault(item_id, []).append(Tenant(tid, name, arr))
    figures.breaches = [BreachLine(item.ref, item.title, item.severity, target, tenants.get(item.id or 0, []))
                        for item, target in rows]
    touched = (select(WorkItemTenant.tenant_id)
               .join(SlaClock, col(SlaClock.work_item_id) == col(WorkItemTenant.work_item_id)).where(*day))
    total = session.exec(select(func.sum(Account.arr)).where(col(Account.id).in_(touched))).one()
    figures.breach_arr = int(total or 0)


def _open_at(kind: Kind, at: datetime) -> tuple[ColumnElement[bool], ...]:
    """Open at `at`, read from the transition times (so a past day's digest sees that day's state)."""
    opened = (col(WorkItem.kind) == kind.value, col(WorkItem.created_at) < at)
    if kind is Kind.EXCEPTION:  # requested or approved: not yet rejected, not yet expired
        rejected = and_(col(WorkItem.state) == State.REJECTED.value, col(WorkItem.decided_at) < at)
        return (*opened, or_(col(WorkItem.expired_at).is_(None), col(WorkItem.expired_at) >= at), ~rejected)
    return (*opened, or_(col(WorkItem.resolved_at).is_(None), col(WorkItem.resolved_at) >= at),
            or_(col(WorkItem.closed_at).is_(None), col(WorkItem.closed_at) >= at))


def _state_at(item: WorkItem, at: datetime) -> str:
    if item.kind == Kind.EXCEPTION.value:
        decided = item.decided_at is not None and item.decided_at < at
        return (State.APPROVED if decided else State.REQUESTED).value
    for stamp, state in ((item.mitigated_at, State.MITIGATED), (item.acknowledged_at, State.ACKNOWLEDGED)):
        if stamp is not None and stamp < at:
            return state.value
    return State.TRIGGERED.value


def _open_items(session: Session, figures: Figures, at: datetime) -> None:
    for kind in OPEN_KINDS:
        open_then = _open_at(kind, at)
        figures.open_counts[kind.value] = int(session.exec(
            select(func.count()).select_from(WorkItem).where(*open_then)).one())
        figures.oldest[kind.value] = [
            OpenItem(item.ref, item.title, _state_at(item, at), item.created_at) for item in session.exec(
                select(WorkItem).where(*open_then).order_by(col(WorkItem.created_at), col(WorkItem.id))
                .limit(SHOWN)).all()]


def _at_risk(session: Session, figures: Figures, at: datetime, status: StatusPolicy) -> None:
    newest = select(func.max(HealthScore.id)).where(col(HealthScore.at) <= at).group_by(HealthScore.tenant_id)
    risky = (col(HealthScore.id).in_(newest), HealthScore.band == AT_RISK)
    base = select(Account, HealthScore.score).join(HealthScore, col(HealthScore.tenant_id) == col(Account.id))
    count, arr = session.exec(
        select(func.count(), func.sum(Account.arr))
        .join(HealthScore, col(HealthScore.tenant_id) == col(Account.id)).where(*risky)
    ).one()
    figures.at_risk_count, figures.at_risk_arr = int(count), int(arr or 0)
    shown = session.exec(
        base.where(*risky).order_by(col(Account.arr).desc(), col(Account.id)).limit(SHOWN)).all()
    found = availability(session, [a.id for a, _ in shown], until=at, policy=status)
    figures.at_risk = [AtRisk(a.id, a.name, a.arr, a.renewal_date, score, found.get(a.id))
                       for a, score in shown]


def _loops(session: Session, figures: Figures, at: datetime) -> None:
    """A loop is open until its resolution notice was delivered (see opsloop.loops.service)."""
    told = aliased(OutboxMessage)
    resolved = case((col(WorkItem.resolved_at) < at, 1), else_=0)
    count, items, of_resolved = session.exec(
        select(func.count(), func.count(distinct(col(FeedbackLoop.work_item_id))), func.sum(resolved))
        .join(WorkItem, col(WorkItem.id) == col(FeedbackLoop.work_item_id))
        .outerjoin(told, and_(col(told.key) == col(FeedbackLoop.resolution_key),
                              col(told.status) == outbox.SENT, col(told.sent_at) < at))
        .where(col(FeedbackLoop.opened_at) < at,
               or_(col(FeedbackLoop.resolution_key).is_(None), col(told.id).is_(None)))
    ).one()
    figures.loops_open, figures.loops_items = int(count), int(items)
    figures.loops_resolved = int(of_resolved or 0)


def _remediation(session: Session, window: Window, figures: Figures) -> None:
    where = bucket(RemediationCall.finished_at, window)
    rows = session.exec(
        select(RemediationCall.state, where, func.count())
        .where(in_week(RemediationCall.finished_at, window)).group_by(RemediationCall.state, where)
    ).all()
    figures.remediation = _split(rows)
    figures.awaiting_approval = int(session.exec(
        select(func.count()).select_from(RemediationCall).where(RemediationCall.state == PENDING)).one())


def daily_mttr(session: Session, days: list[tuple[date, datetime, datetime]],
               *, kind: str = Kind.INCIDENT.value) -> dict[str, list[Point]]:
    """Each day's MTTR of `kind` per severity (days that resolved nothing have no point): one range
    scan, bucketed by a CASE over the day bounds and grouped by severity."""
    if not days:
        return {}
    since, until = days[0][1], days[-1][2]
    which = case(*[(col(WorkItem.resolved_at) < end, literal(i)) for i, (_, _, end) in enumerate(days)],
                 else_=literal(len(days)))
    scope = (WorkItem.kind == kind, col(WorkItem.resolved_at) >= since, col(WorkItem.resolved_at) < until)
    rows = session.exec(
        select(which, WorkItem.severity, func.count(),
               func.avg(seconds(session, WorkItem.created_at, WorkItem.resolved_at)))
        .where(*scope).group_by(which, WorkItem.severity)
    ).all()
    out: dict[str, list[Point]] = {}
    for i, severity, n, avg in rows:
        out.setdefault(severity, []).append(Point(days[int(i)][0], float(avg), int(n)))
    return {severity: sorted(points, key=lambda p: p.day) for severity, points in sorted(out.items())}


def pooled(by_severity: dict[str, list[Point]]) -> list[Point]:
    """One point a day over every severity: the mean over all the day's resolutions."""
    days: dict[date, tuple[int, float]] = {}
    for points in by_severity.values():
        for p in points:
            n, total = days.get(p.day, (0, 0.0))
            days[p.day] = (n + p.count, total + p.value * p.count)
    return [Point(day, total / n, n) for day, (n, total) in sorted(days.items())]


def history_since(session: Session) -> datetime | None:
    """When the first work item (imported or not) was opened: how much history there is."""
    first: datetime | None = session.exec(select(func.min(WorkItem.created_at))).one()
    return first
