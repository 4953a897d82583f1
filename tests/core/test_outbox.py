"""The outbox delivers everything, once, in order per lane, however often the far side fails."""

from __future__ import annotations

import threading
from datetime import timedelta
from itertools import pairwise

from sqlalchemy import event
from sqlmodel import col, select

from opsloop import outbox
from opsloop.db import Database
from opsloop.messages import Message
from opsloop.models import OutboxAttempt, OutboxMessage
from opsloop.outbox import Backoff, Dispatcher, PermanentDeliveryError
from tests.support import FakeClock, RecordingSender


def queue(db: Database, clock: FakeClock, target: str, *texts: str, **kwargs: str) -> None:
    with db.transaction() as session:
        for text in texts:
            outbox.enqueue(session, transport="chat", target=target, now=clock.now(),
                           payload={"message": Message(text).to_json()}, **kwargs)


def dispatcher(db: Database, clock: FakeClock, sender: RecordingSender, **kwargs) -> Dispatcher:
    return Dispatcher(db, {"chat": sender}, clock, backoff=Backoff(base=1, cap=60), **kwargs)


def run_for(d: Dispatcher, clock: FakeClock, seconds: int) -> None:
    for _ in range(seconds):
        d.run_once()
        clock.advance(seconds=1)


def test_a_failing_sender_is_retried_until_it_succeeds_without_loss_or_duplicates(
    db: Database, clock: FakeClock
) -> None:
    sender = RecordingSender()
    sender.fail_next(6, "connection refused")
    queue(db, clock, "C1", "one", "two", "three")
    d = dispatcher(db, clock, sender)
    run_for(d, clock, 300)
    assert sender.texts() == ["one", "two", "three"]
    with db.transaction() as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        attempts = session.exec(select(OutboxAttempt)).all()
    assert [(r.status, r.external_id) for r in rows] == [("sent", "ts.1"), ("sent", "ts.2"), ("sent", "ts.3")]
    assert rows[0].attempts == 7 and rows[1].attempts == 1
    assert len(attempts) == 9 and sum(not a.ok for a in attempts) == 6
    assert attempts[0].error == "connection refused"


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base=1, cap=60)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (7, 60), (30, 60)]:
        assert ceiling / 2 <= backoff.delay(attempt) <= ceiling


def test_retry_after_is_waited_out_exactly(db: Database, clock: FakeClock) -> None:
    sender = RecordingSender()
    sender.fail_next(1, "ratelimited", retry_after=30)
    queue(db, clock, "C1", "hello")
    d = dispatcher(db, clock, sender)
    d.run_once()
    clock.advance(seconds=29)
    assert d.run_once() == 0 and sender.sent == []
    clock.advance(seconds=1)
    assert d.run_once() == 1 and sender.texts() == ["hello"]
    assert d.stats.rate_limited == 1


def test_a_lane_keeps_its_order_while_other_lanes_flow(db: Database, clock: FakeClock) -> None:
    sender = RecordingSender()
    queue(db, clock, "C1", "c1-a", "c1-b")
    queue(db, clock, "C2", "c2-a", "c2-b")
    d = dispatcher(db, clock, sender)
    assert d.run_once() == 2  # one per lane per pass
    assert sender.texts() == ["c1-a", "c2-a"]
    d.run_once()
    assert sender.texts() == ["c1-a", "c2-a", "c1-b", "c2-b"]


def test_a_blocked_lane_holds_later_messages_back(db: Database, clock: FakeClock) -> None:
    sender = RecordingSender()
    sender.fail_next(1)
    queue(db, clock, "C1", "first", "second")
    d = dispatcher(db, clock, sender)
    d.run_once()
    assert d.run_once() == 0  # "second" may not overtake "first"
    run_for(d, clock, 10)
    assert sender.texts() == ["first", "second"]


def test_pacing_sends_at_most_one_message_per_second_per_lane(db: Database, clock: FakeClock) -> None:
    sender = RecordingSender()
    queue(db, clock, "C1", *[f"m{i}" for i in range(5)])
    d = dispatcher(db, clock, sender, pace={"chat": timedelta(seconds=1)})
    for _ in range(5):
        d.run_once()
        d.run_once()
    assert len(sender.sent) == 1
    run_for(d, clock, 10)
    assert sender.texts() == [f"m{i}" for i in range(5)]
    with db.transaction() as session:
        times = session.exec(select(OutboxMessage.sent_at).order_by(col(OutboxMessage.id))).all()
    assert all(b - a >= timedelta(seconds=1) for a, b in pairwise(times))


def test_permanent_failure_is_recorded_and_the_lane_moves_on(db: Database, clock: FakeClock) -> None:
    sender = RecordingSender()
    sender.failures.append(PermanentDeliveryError("channel_not_found"))
    queue(db, clock, "C1", "lost cause", "next")
    d = dispatcher(db, clock, sender)
    run_for(d, clock, 3)
    with db.transaction() as session:
        statuses = session.exec(select(OutboxMessage.status).order_by(col(OutboxMessage.id))).all()
    assert statuses == ["failed", "sent"]
    assert sender.texts() == ["next"] and d.stats.dead == 1


def test_the_same_key_is_queued_once(db: Database, clock: FakeClock) -> None:
    with db.transaction() as session:
        first = outbox.enqueue(session, transport="chat", target="U1", now=clock.now(),
                               payload={"message": Message("hi").to_json()}, key="notice:INC-1:U1")
        again = outbox.enqueue(session, transport="chat", target="U1", now=clock.now(),
                               payload={"message": Message("hi").to_json()}, key="notice:INC-1:U1")
    assert first and not again
    with db.transaction() as session:
        assert outbox.depth(session) == 1


def test_a_burst_of_edits_becomes_one_edit(db: Database, clock: FakeClock) -> None:
    queue(db, clock, "C1", "card", key="card:INC-1")
    with db.transaction() as session:
        for n in range(5):
            outbox.enqueue(session, transport="chat", target="C1", now=clock.now(), update_key="card:INC-1",
                           supersede=True, payload={"message": Message(f"v{n}").to_json()})
    sender = RecordingSender()
    run_for(dispatcher(db, clock, sender), clock, 5)
    assert sender.texts() == ["card", "v4"]


def test_edits_and_replies_wait_for_their_parent(db: Database, clock: FakeClock) -> None:
    sender = RecordingSender()
    seen_parents: list[str | None] = []
    original_send = sender.send

    def send(message, parent):  # record which ts the child was given
        seen_parents.append(parent.external_id if parent else None)
        return original_send(message, parent)

    sender.send = send  # type: ignore[method-assign]
    queue(db, clock, "C1", "card", key="card:INC-1")
    queue(db, clock, "C1", "reply", thread_key="card:INC-1")
    run_for(dispatcher(db, clock, sender), clock, 3)
    assert sender.texts() == ["card", "reply"]
    assert seen_parents == [None, "ts.1"]


def test_two_workers_never_deliver_one_message_twice(db_url: str, clock: FakeClock) -> None:
    setup = Database.from_url(db_url)
    queue(setup, clock, "C1", *[f"a{i}" for i in range(20)])
    queue(setup, clock, "C2", *[f"b{i}" for i in range(20)])
    sender = RecordingSender()
    lock = threading.Lock()
    original = sender.send

    def send(message, parent):
        with lock:
            return original(message, parent)

    sender.send = send  # type: ignore[method-assign]

    def work() -> None:
        db = Database.from_url(db_url)
        d = Dispatcher(db, {"chat": sender}, clock)
        for _ in range(40):
            d.run_once()
        db.dispose()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    texts = sender.texts()
    assert sorted(texts) == sorted([f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)])
    assert [t for t in texts if t.startswith("a")] == [f"a{i}" for i in range(20)]
    setup.dispose()


def test_a_claim_that_finds_nothing_due_takes_no_write_lock(db: Database, clock: FakeClock) -> None:
    """Workers of every transport poll; on SQLite each write lock they took held up webhooks being stored."""
    sender = RecordingSender()
    sender.fail_next(1, "connection refused")  # its retry is due later, not now
    queue(db, clock, "C1", "later")
    d = dispatcher(db, clock, sender)
    assert d.run_once() == 0
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert d.claim(10) == []
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert seen and not [s for s in seen if "FOR UPDATE" in s or "IMMEDIATE" in s], seen
    clock.advance(seconds=120)
    assert d.run_once() == 1 and sender.texts() == ["later"]
