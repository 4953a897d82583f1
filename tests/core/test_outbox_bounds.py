"""Issue 15: no far side can stall the outbox (the core half: the Dispatcher and Retry-After).

A `Retry-After` is parsed strictly and clamped to 1 s .. 1 h; nonsense (`1e308`, `-30`, `nan`)
falls back to the normal backoff. One message failing in any way (its sender, preparing it, a
Retry-After no clock can add) is recorded and never aborts the pass or stalls another lane.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from opsloop import outbox
from opsloop.db import Database
from opsloop.messages import Message
from opsloop.models import OutboxMessage
from opsloop.outbox import Backoff, DeliveryError, Dispatcher
from tests.support import FakeClock, RecordingSender

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), ("0", 1.0), ("1", 1.0), ("3600", 3600.0), ("999999999", 3600.0),
    (" 7 ", 7.0), ("Mon, 23 Nov 2026 09:02:00 GMT", 120.0), ("Mon, 23 Nov 2026 08:00:00 GMT", 1.0),
    ("Mon, 23 Nov 2099 09:00:00 GMT", 3600.0),
    ("1e308", None), ("-30", None), ("nan", None), ("inf", None), ("1.5", None), ("", None), (None, None),
    ("9" * 5000, 3600.0), ("0x10", None), ("\u0661\u0662", None), ("Mon, 99 Foo 2026", None),
])
def test_retry_after_is_parsed_strictly_and_clamped(header: str | None, seconds: float | None) -> None:
    assert outbox.retry_after(header, NOW) == seconds


def queue(db: Database, clock: FakeClock, transport: str, target: str, text: str) -> None:
    with db.transaction() as session:
        outbox.enqueue(session, transport=transport, target=target, now=clock.now(),
                       payload={"message": Message(text).to_json()})


def rows(db: Database) -> list[OutboxMessage]:
    with db.transaction() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


@pytest.mark.parametrize("asked", [1e308, float("inf"), float("nan"), -30.0, 10.0**12])
def test_a_senders_retry_after_that_no_clock_can_add_falls_back_or_is_clamped(
        db: Database, clock: FakeClock, asked: float) -> None:
    hostile, fine = RecordingSender(), RecordingSender()
    hostile.failures.append(DeliveryError("429", retry_after=asked))
    queue(db, clock, "webhook", "https://customer.example/hook", "to the customer")
    queue(db, clock, "chat", "C0OPS", "the card")
    d = Dispatcher(db, {"webhook": hostile, "chat": fine}, clock, backoff=Backoff(base=1, cap=60))
    d.run_once()
    assert fine.texts() == ["the card"]
    webhook, card = rows(db)
    assert (webhook.attempts, webhook.leased_until, card.status) == (1, None, "sent")
    wait = (webhook.next_attempt_at - clock.now()).total_seconds()
    huge = asked in (1e308, 10.0**12)  # a number, however large: clamped to 1 h; not one: the backoff
    assert wait == 3600 if huge else 0 < wait <= 60


def test_a_message_that_cannot_even_be_prepared_does_not_abort_the_pass(db: Database, clock: FakeClock) -> None:
    sender = RecordingSender()
    queue(db, clock, "chat", "C1", "broken")
    queue(db, clock, "chat", "C2", "fine")

    def prepare(session: object, message: OutboxMessage) -> None:
        if message.target == "C1":
            raise ValueError("a card that cannot be rendered")

    d = Dispatcher(db, {"chat": sender}, clock, backoff=Backoff(base=1, cap=60), prepare=prepare)
    assert d.run_once() == 1
    assert sender.texts() == ["fine"]
    broken = rows(db)[0]
    assert broken.attempts == 1 and broken.leased_until is None and "cannot be rendered" in (broken.last_error or "")
    clock.advance(seconds=61)
    d.run_once()  # and it is tried again later, like any failure
    assert rows(db)[0].attempts == 2


def test_each_transport_is_claimed_on_its_own(db: Database, clock: FakeClock) -> None:
    chat, webhook = RecordingSender(), RecordingSender()
    queue(db, clock, "webhook", "https://customer.example/hook", "to the customer")
    queue(db, clock, "chat", "C0OPS", "the card")
    d = Dispatcher(db, {"webhook": webhook, "chat": chat}, clock)
    assert d.run_once(transports={"chat"}) == 1
    assert (chat.texts(), webhook.texts()) == (["the card"], [])
    assert d.run_once(transports={"webhook"}) == 1
    assert webhook.texts() == ["to the customer"]


def test_lanes_waiting_for_their_pace_never_keep_another_lanes_due_message_from_being_claimed(
        db: Database, clock: FakeClock) -> None:
    """Two channels have just been posted to (each takes a message a second) and have more queued;
    a third channel's message, queued after them, must still be claimed by a claim of two. The
    pace used to be applied after the claim's limit: the two paced heads filled it, nothing was
    claimed, and a worker with a standing clock (or a busy one) never reached the third lane."""
    sender = RecordingSender()
    for channel in ("C1", "C2"):
        queue(db, clock, "chat", channel, f"first to {channel}")
        queue(db, clock, "chat", channel, f"second to {channel}")
    queue(db, clock, "chat", "C3", "to the third channel")
    d = Dispatcher(db, {"chat": sender}, clock, pace={"chat": timedelta(seconds=1)})
    assert [d.deliver(i) for i in d.claim(2)] == [1, 1]
    assert sender.texts() == ["first to C1", "first to C2"]
    claimed = d.claim(2)  # C1 and C2 are paced: only C3's head is due
    assert [m.target for m in rows(db) if m.id in claimed] == ["C3"]
    clock.advance(seconds=1)
    claimed = d.claim(5)
    assert sorted(m.target for m in rows(db) if m.id in claimed) == ["C1", "C2"]  # C3's is leased
