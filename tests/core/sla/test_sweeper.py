"""The sweeper: exactly once across replicas, failures recorded, the claim on its index."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from opsloop import outbox
from opsloop.db import Database
from opsloop.models import OutboxMessage
from opsloop.timers.models import Timer
from opsloop.timers.sweeper import Sweeper
from tests.support import FakeClock


def seed(db: Database, now: datetime, count: int, kind: str = "count") -> None:
    with db.transaction() as s:
        s.add_all(Timer(kind=kind, due_at=now - timedelta(seconds=count - i), created_at=now,
                        payload={"n": i}) for i in range(count))


def announce(session: Session, timer: Timer, now: datetime) -> str:
    """An effect that lands in the database, like every real timer's."""
    outbox.enqueue(session, transport="count", target="x", now=now, payload={"timer": timer.id})
    return "fired"


def test_two_sweepers_on_postgresql_fire_each_timer_exactly_once(db_url: str, clock: FakeClock) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("several replicas need PostgreSQL; SQLite serves one process")
    setup = Database.from_url(db_url)
    seed(setup, clock.now(), 1000)
    calls: Counter[str] = Counter()

    def replica(name: str) -> None:
        db = Database.from_url(db_url)  # a separate engine and pool, like another process

        def counted(session: Session, timer: Timer, now: datetime) -> str:
            calls[name] += 1
            return announce(session, timer, now)

        sweeper = Sweeper(db, clock, {"count": counted}, batch=25)
        for _ in range(1000):
            if sweeper.sweep(limit=50) == 0:
                break
        db.dispose()

    threads = [threading.Thread(target=replica, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with setup.transaction() as s:
        fired = [m.payload["timer"] for m in s.exec(select(OutboxMessage))]
        unfired = s.exec(select(Timer).where(Timer.fired_at == None)).all()  # noqa: E711
    setup.dispose()
    assert unfired == []
    assert len(fired) == 1000 and len(set(fired)) == 1000
    assert calls["a"] + calls["b"] == 1000
    assert calls["a"] > 0 and calls["b"] > 0, f"one replica did all the work: {calls}"


def test_a_failing_handler_is_recorded_and_does_not_undo_the_batch(db: Database, clock: FakeClock) -> None:
    seed(db, clock.now(), 3)

    def flaky(session: Session, timer: Timer, now: datetime) -> str:
        announce(session, timer, now)
        if timer.payload["n"] == 1:
            raise RuntimeError("boom")
        return "fired"

    sweeper = Sweeper(db, clock, {"count": flaky})
    assert sweeper.sweep() == 3
    with db.transaction() as s:
        outcomes = [t.outcome for t in s.exec(select(Timer).order_by(Timer.id))]  # type: ignore[arg-type]
        effects = sorted(m.payload["timer"] for m in s.exec(select(OutboxMessage)))
    assert outcomes == ["fired", "error: RuntimeError: boom", "fired"]
    assert effects == [1, 3]  # the failing timer's own effect was rolled back
    assert sweeper.stats.failed == 1
    assert sweeper.sweep() == 0  # and it is not retried forever


def test_timers_not_yet_due_wait(db: Database, clock: FakeClock) -> None:
    with db.transaction() as s:
        s.add(Timer(kind="count", due_at=clock.now() + timedelta(seconds=5), created_at=clock.now()))
    sweeper = Sweeper(db, clock, {"count": announce})
    assert sweeper.sweep() == 0
    clock.advance(seconds=5)
    assert sweeper.sweep() == 1


def test_the_claim_reads_the_partial_index(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("the plan is checked on SQLite; PostgreSQL's depends on table statistics")
    with db.engine.connect() as connection:
        plan = connection.execute(text(
            "EXPLAIN QUERY PLAN SELECT id FROM timers WHERE fired_at IS NULL AND due_at <= '2030-01-01' "
            "ORDER BY due_at, id LIMIT 200")).all()
    assert any("ix_timers_unfired_due" in str(row) for row in plan), plan
