"""The daily series: the last score of each local day, trends read from it, one recompute a day."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import col, func, select

from opsloop.core import Core
from opsloop.health.models import HealthDaily, HealthDailyRun, HealthScore
from opsloop.table import Sources, assemble
from opsloop.timers.models import Timer
from opsloop.types import Severity
from tests.support import FakeClock

CSM, RESPONDER = "U0CSM1", "U0RESP1"


def signal(kind: str, value: float, at: datetime) -> dict[str, object]:
    return {"tenant": "globex", "kind": kind, "value": value, "at": at.isoformat()}


def days(services: Core, tenant: str = "globex") -> list[tuple[date, int]]:
    with services.db.transaction() as session:
        return [(d, s) for d, s in session.exec(select(HealthDaily.day, HealthDaily.score)
                                                .where(HealthDaily.tenant_id == tenant)
                                                .order_by(col(HealthDaily.day)))]


def test_a_burst_of_changes_within_one_day_is_one_point_the_last(services: Core, clock: FakeClock) -> None:
    # the complaint: 100 -> 80 -> 66 -> 54 within a minute read as a trend; it is one day
    for value in (-0.2, -0.5, -0.8):
        services.health.ingest([signal("usage", value, clock.now())], source="health")
        clock.advance(seconds=20)
    with services.db.transaction() as session:
        rows = session.exec(select(func.count()).select_from(HealthScore)
                            .where(HealthScore.tenant_id == "globex")).one()
    assert rows == 3  # every change is still kept, with its cause
    assert days(services) == [(date(2026, 11, 23), 76)]  # 100 - 30 x 0.8
    reply = services.commands.handle("/health", "globex", actor=CSM)
    assert reply.message is not None
    assert dict(reply.message.fields)["Trend"] == "no trend yet (fewer than two days scored)"


def test_the_local_day_decides_which_point_a_score_belongs_to(services: Core, clock: FakeClock) -> None:
    # Europe/Berlin: 23:30 UTC on the 23rd is already the 24th there
    clock.current = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    services.health.ingest([signal("nps", 0, clock.now())], source="health")
    assert days(services) == [(date(2026, 11, 24), 90)]


def test_trends_over_30_and_90_days_come_from_the_series(services: Core, clock: FakeClock) -> None:
    clock.current = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)
    services.health.recompute(["globex"], cause="start")  # 100 on Aug 20
    clock.current = datetime(2026, 10, 30, 9, 0, tzinfo=UTC)
    services.health.ingest([signal("usage", -0.3, clock.now())], source="health")  # 91 on Oct 30
    clock.current = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
    services.workitems.declare(actor=RESPONDER, title="Exports slow", severity=Severity.SEV2,
                               tenants=["globex"])  # 79 on Nov 18
    reply = services.commands.handle("/health", "globex", actor=CSM)
    assert reply.message is not None
    # 30 days back reaches Oct 30 (91); 90 days back reaches Aug 20 (100)
    assert dict(reply.message.fields)["Trend"] == "█▇ 30d -12 (91 → 79) · 90d -21 (100 → 79)"
    mine = services.commands.handle("/health", "mine", actor=CSM).text
    assert "Globex* (`globex`) 79/100 healthy · 30d -12 (91 → 79) · 90d -21 (100 → 79)" in mine


def test_the_daily_recompute_runs_once_a_day_across_replicas(
        sources: Sources, services: Core, clock: FakeClock) -> None:
    other = assemble(sources, clock=clock)  # a second replica on the same database
    try:
        for replica in (services, other):
            replica.health.schedule_daily()
        clock.current = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)  # 07:30 in Berlin
        services.sweeper.sweep()
        other.sweeper.sweep()
        # a duplicated timer (say, restored from a backup) must not run the day twice
        with other.db.transaction() as session:
            session.add(Timer(kind="health.daily", due_at=clock.now(), created_at=clock.now(), payload={}))
        other.sweeper.sweep()
        with services.db.transaction() as session:
            runs = session.exec(select(HealthDailyRun.day, HealthDailyRun.accounts)).all()
            daily_rows = session.exec(select(func.count()).select_from(HealthScore)
                                      .where(HealthScore.cause == "daily")).one()
            outcomes = session.exec(select(Timer.outcome).where(Timer.kind == "health.daily",
                                                                col(Timer.fired_at).is_not(None))).all()
            armed = session.exec(select(func.count()).select_from(Timer).where(
                Timer.kind == "health.daily", col(Timer.fired_at).is_(None))).one()
        assert [tuple(r) for r in runs] == [(date(2026, 11, 24), 3)]
        assert daily_rows == 3  # one row per account, once
        assert sorted(outcomes) == ["recomputed 3 accounts", "skipped: 2026-11-24 was recomputed already"]
        assert armed == 1  # tomorrow's, once
        assert {d for d, _ in days(services, "acme")} == {date(2026, 11, 24)}
    finally:
        other.db.dispose()
