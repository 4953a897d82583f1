"""The daily score series: the last score of each local day per tenant, and the day's claim.

Every score row written is also upserted into `health_daily` under its local day
(one statement for any number of tenants), so a day's row always holds its last
score. Trends (`/health ACCOUNT`), the report's "score N days before the renewal"
and calibration read this series, never the order in which events arrived.

The daily recompute claims its local day in `health_daily_runs` first: the day is
the primary key, so with several replicas (or a duplicated timer) it runs once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert as generic_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from opsloop.health.models import HealthDaily, HealthDailyRun

HORIZONS = (30, 90)  # the trends /health shows, in days


@dataclass(frozen=True)
class DayScore:
    day: date
    score: int
    band: str


def upsert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace (tenant_id, day) rows: `at`, `score`, `band`, `units`."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = postgresql.insert(HealthDaily)
        statement: Any = pg.on_conflict_do_update(
            index_elements=["tenant_id", "day"],
            set_={c: pg.excluded[c] for c in ("at", "score", "band", "units")})
    elif dialect == "sqlite":
        lite = sqlite.insert(HealthDaily)
        statement = lite.on_conflict_do_update(
            index_elements=["tenant_id", "day"],
            set_={c: lite.excluded[c] for c in ("at", "score", "band", "units")})
    else:  # pragma: no cover - the two supported databases are handled above
        statement = generic_insert(HealthDaily)
    latest: dict[tuple[str, date], dict[str, Any]] = {}
    for row in rows:  # one row per key per statement: the later one is the day's last
        latest[(row["tenant_id"], row["day"])] = row
    session.execute(statement, list(latest.values()))


def row(tenant: str, at: datetime, zone: ZoneInfo, score: int, band: str,
        units: dict[str, float]) -> dict[str, Any]:
    return {"tenant_id": tenant, "day": at.astimezone(zone).date(), "at": at, "score": score,
            "band": band, "units": units}


def series(session: Session, tenants: Sequence[str], *, today: date,
           days: int = max(HORIZONS)) -> dict[str, list[DayScore]]:
    """Each tenant's daily scores over the last `days` days up to `today`, oldest first."""
    out: dict[str, list[DayScore]] = {tenant: [] for tenant in tenants}
    if not out:
        return out
    since = today - timedelta(days=days)
    rows = session.exec(
        select(col(HealthDaily.tenant_id), col(HealthDaily.day), col(HealthDaily.score),
               col(HealthDaily.band))
        .where(col(HealthDaily.tenant_id).in_(tenants), col(HealthDaily.day) >= since,
               col(HealthDaily.day) <= today)
        .order_by(col(HealthDaily.tenant_id), col(HealthDaily.day))).all()
    for tenant, day, score, band in rows:
        out[tenant].append(DayScore(day, score, band))
    return out


def change(points: list[DayScore], *, today: date, days: int) -> tuple[DayScore, DayScore] | None:
    """The first and last score within the last `days` days, if there are two days to compare."""
    within = [p for p in points if p.day >= today - timedelta(days=days)]
    if len(within) < 2:
        return None
    return within[0], within[-1]


def claim(session: Session, day: date, *, now: datetime) -> HealthDailyRun | None:
    """Claim the local day's recompute (the caller holds the audit chain), or None if it is taken."""
    if session.get(HealthDailyRun, day) is not None:
        return None
    run = HealthDailyRun(day=day, ran_at=now)
    session.add(run)
    session.flush()  # the primary key refuses a second claim even without the chain's lock
    return run
