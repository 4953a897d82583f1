"""The durable outbox: everything the product sends leaves through here.

A message is a row written in the same transaction as the change that caused
it, so a change and its announcement land together or not at all. The
`Dispatcher` delivers rows through a `Sender` per transport, records every
attempt, retries transient failures with capped exponential backoff (or after
the `Retry-After` the far side asked for), and keeps order within a lane (one
transport + target, e.g. one Slack channel): only a lane's oldest pending
message is ever in flight. Delivery is at least once: a worker that dies
mid-send leaves a lease that expires and another worker retries.

No far side can stall it: a `Retry-After` is parsed strictly (`retry_after`)
and any wait a sender asks for is clamped to 1 s .. 1 h (nonsense falls back
to the backoff); a message that fails in any way, even before its sender is
called, is recorded as a failed attempt without aborting the pass; and
`run_once(transports=...)` lets each transport be delivered by workers of its
own (bot.outbox_workers), so a slow mail server never holds up a Slack post.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import Session, SQLModel, col, select

from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.models import OutboxAttempt, OutboxMessage

log = logging.getLogger(__name__)

PENDING, SENT, FAILED, SUPERSEDED = "pending", "sent", "failed", "superseded"
CANCELLED = "cancelled"  # never to be sent: its recipient was erased (opsloop.compliance.erasure)
CHAT = "chat"  # the transport of the team's chat: Slack, or the console's screen


MIN_RETRY_AFTER, MAX_RETRY_AFTER = 1.0, 3600.0  # seconds: what a far side may ask us to wait


def clamp_wait(seconds: float | None) -> float | None:
    """A wait a far side asked for, within 1 s .. 1 h; None (use the backoff) when it is no number."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def retry_after(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header (delay-seconds: ASCII digits only; or an HTTP date), clamped to
    1 s .. 1 h; None when it is absent or anything else (`1e308`, `-30`, `nan`, `1.5`)."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return clamp_wait(float(min(int(value[:12]), MAX_RETRY_AFTER)))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=now.tzinfo)
    return clamp_wait(max(0.0, (when - now).total_seconds()))


class DeliveryError(Exception):
    """A transient failure: try again later (after `retry_after` seconds if given)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """The far side will never accept this message; it is marked failed."""


class _NotYet(DeliveryError):
    """The message it edits or replies under is not delivered yet (expected: retried, not warned)."""


@dataclass(frozen=True)
class Delivered:
    external_id: str | None = None  # e.g. Slack's message ts
    external_target: str | None = None  # e.g. the channel id Slack answered with


class Sender(Protocol):
    def send(self, message: OutboxMessage, parent: OutboxMessage | None) -> Delivered:
        """Deliver one message or raise DeliveryError / PermanentDeliveryError.

        `parent` is the earlier message named by `update_key` or `thread_key`.
        """
        ...


def enqueue(
    session: Session,
    *,
    transport: str,
    target: str,
    payload: dict[str, Any],
    now: datetime,
    key: str | None = None,
    thread_key: str | None = None,
    update_key: str | None = None,
    lane: str | None = None,
    supersede: bool = False,
    delay: timedelta = timedelta(0),
) -> bool:
    """Queue a message in the caller's transaction; True when it was queued.

    A `key` makes the message idempotent: queueing the same key again is a
    no-op that returns False (so nobody is told the same thing twice).
    `supersede` (with `update_key`) drops edits of the same message still
    waiting, since only the newest content matters: a burst of changes
    becomes one edit. `delay` holds a message back (with `supersede`: at
    most one edit per `delay`, however long the burst).
    """
    due = now + delay
    if supersede and update_key is not None:
        waiting = (
            col(OutboxMessage.update_key) == update_key,
            col(OutboxMessage.status) == PENDING,
            col(OutboxMessage.leased_until).is_(None),
        )
        earliest = session.exec(select(func.min(OutboxMessage.next_attempt_at)).where(*waiting)).one()
        if earliest is not None:
            due = min(due, earliest)  # a steady stream of edits must not postpone the edit forever
        session.exec(update(OutboxMessage).where(*waiting).values(status=SUPERSEDED))
    # One statement says "queue it unless this key was queued already": a SELECT first was a round
    # trip per message, and two writers could both see no row and one then failed on the unique key.
    # The statement is built once per dialect, on the table: building it per call through the ORM's
    # bulk insert cost ~6 times the INSERT itself. What the session holds goes first, as it always did.
    session.flush()
    queued = session.execute(_QUEUE[session.get_bind().dialect.name], {
        "key": key or f"auto:{uuid.uuid4().hex}", "transport": transport, "target": target,
        "lane": lane or f"{transport}:{target}", "thread_key": thread_key, "update_key": update_key,
        "payload": payload, "status": PENDING, "attempts": 0, "next_attempt_at": due, "created_at": now,
    }).first()
    return queued is not None


_OUTBOX: Table = SQLModel.metadata.tables[OutboxMessage.__tablename__]
_QUEUE = {  # INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id, on each database opsloop runs on
    "sqlite": sqlite_insert(_OUTBOX).on_conflict_do_nothing(index_elements=["key"]).returning(_OUTBOX.c.id),
    "postgresql": postgresql_insert(_OUTBOX).on_conflict_do_nothing(index_elements=["key"])
    .returning(_OUTBOX.c.id),
}


def depth(session: Session) -> int:
    """How many messages wait to be delivered."""
    count = session.exec(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == PENDING)
    ).one()
    return int(count)


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempts: int) -> float:
        """Seconds before try number `attempts + 1`: exponential, capped, with jitter."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        return float(ceiling / 2 + random.random() * ceiling / 2)


@dataclass
class DeliveryStats:
    """Counters the HTTP adapter exposes as metrics."""

    delivered: int = 0
    failures: int = 0
    rate_limited: int = 0
    dead: int = 0


class Dispatcher:
    def __init__(
        self,
        db: Database,
        senders: Mapping[str, Sender],
        clock: Clock,
        *,
        lease: timedelta = timedelta(seconds=60),
        backoff: Backoff | None = None,
        pace: Mapping[str, timedelta] | None = None,
        prepare: Callable[[Session, OutboxMessage], None] | None = None,
    ) -> None:
        self.db = db
        # fills in a payload that is rendered at send time (e.g. a debounced card edit)
        self.prepare = prepare
        self.senders = senders
        self.clock = clock
        self.lease = lease
        self.backoff = backoff or Backoff()
        self.pace = dict(pace or {})  # transport -> least time between two sends on one lane
        self.stats = DeliveryStats()
        self._wake = threading.Event()
        self._waiters: list[threading.Event] = [self._wake]

    # ------------------------------------------------------------------ one pass

    def run_once(self, limit: int = 50, *, transports: Collection[str] | None = None) -> int:
        """Deliver what is due now (of `transports`, default all), one message per lane; returns
        how many were delivered. One message failing, however it fails, never stops the rest."""
        delivered = 0
        for message_id in self.claim(limit, transports=transports):
            delivered += self.deliver(message_id)
        return delivered

    def claim(self, limit: int, *, transports: Collection[str] | None = None) -> list[int]:
        """Lease up to `limit` lane heads that are due (of `transports`); deliver each with `deliver`."""
        return self._claim(limit, transports)

    def deliver(self, message_id: int) -> int:
        """Deliver one claimed message and record the attempt; never raises (1: delivered)."""
        try:
            return self._deliver(message_id)
        except Exception as failure:  # preparing it or recording failed: record that, keep going
            log.exception("outbox message %s could not be delivered", message_id)
            try:
                return self._record(message_id, Delivered(), f"{type(failure).__name__}: {failure}", None,
                                    False, 0)
            except Exception:  # the database itself is away: the lease runs out and it is retried
                log.exception("outbox message %s: the failed attempt could not be recorded", message_id)
                return 0

    def drain(self, max_rounds: int = 1000) -> int:
        """Deliver until nothing is due (tests and the console)."""
        total = 0
        for _ in range(max_rounds):
            sent = self.run_once()
            total += sent
            if sent == 0:
                break
        return total

    def _claim(self, limit: int, transports: Collection[str] | None = None) -> list[int]:
        now = self.clock.now()
        served = [t for t in self.senders if transports is None or t in transports]
        with self.db.snapshot() as session:  # most claims find nothing: they take no write lock to find out
            due = session.exec(select(OutboxMessage.id).where(
                OutboxMessage.status == PENDING, col(OutboxMessage.transport).in_(served),
                col(OutboxMessage.next_attempt_at) <= now).limit(1))
            if due.first() is None:
                return []
        with self.db.transaction() as session:
            head = (
                select(func.min(OutboxMessage.id))
                .where(OutboxMessage.status == PENDING)
                .group_by(OutboxMessage.lane)
            )
            query = (
                select(OutboxMessage)
                .where(
                    col(OutboxMessage.id).in_(head),
                    col(OutboxMessage.transport).in_(served),
                    col(OutboxMessage.next_attempt_at) <= now,
                    col(OutboxMessage.leased_until).is_(None) | (col(OutboxMessage.leased_until) < now),
                    *self._not_paced(served, now),
                )
                .order_by(col(OutboxMessage.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            candidates = list(session.exec(query))
            for message in candidates:
                message.leased_until = now + self.lease
                session.add(message)
            return [m.id for m in candidates if m.id is not None]

    def _not_paced(self, transports: Collection[str], now: datetime) -> list[Any]:
        """Conditions leaving out the lanes that sent within their transport's pace. In the query,
        before its limit: filtering afterwards let a few paced lanes with the oldest messages fill
        every claim, so nothing was claimed while other lanes' messages were due."""
        sent = aliased(OutboxMessage)
        return [
            ~(
                (col(OutboxMessage.transport) == transport)
                & col(OutboxMessage.lane).in_(
                    select(sent.lane).where(sent.transport == transport, col(sent.sent_at) > now - gap)
                )
            )
            for transport, gap in self.pace.items()
            if transport in transports
        ]

    def _deliver(self, message_id: int) -> int:
        with self.db.transaction() as session:
            message = session.get(OutboxMessage, message_id)
            if message is None or message.status != PENDING:
                return 0
            if self.prepare is not None:
                self.prepare(session, message)
            parent_key = message.update_key or message.thread_key
            parent = None
            if parent_key is not None:
                parent = session.exec(
                    select(OutboxMessage).where(OutboxMessage.key == parent_key)
                ).first()
        sender = self.senders[message.transport]
        started = time.monotonic()
        error: str | None = None
        wait_asked: float | None = None
        permanent = waiting = False
        result = Delivered()
        try:
            if parent is not None and parent.status == PENDING:
                raise _NotYet(f"waiting for message {parent.key} to be delivered first")
            result = sender.send(message, parent)
        except DeliveryError as failure:
            error, wait_asked = str(failure) or type(failure).__name__, clamp_wait(failure.retry_after)
            waiting = isinstance(failure, _NotYet)
        except PermanentDeliveryError as failure:
            error, permanent = str(failure) or type(failure).__name__, True
        except Exception as failure:  # a sender bug must not stop the worker
            log.exception("sender %s crashed on outbox message %s", message.transport, message_id)
            error = f"{type(failure).__name__}: {failure}"
        elapsed_ms = int((time.monotonic() - started) * 1000)
        return self._record(message_id, result, error, wait_asked, permanent, elapsed_ms, waiting=waiting)

    def _record(
        self,
        message_id: int,
        result: Delivered,
        error: str | None,
        wait_asked: float | None,
        permanent: bool,
        elapsed_ms: int,
        *,
        waiting: bool = False,
    ) -> int:
        now = self.clock.now()
        with self.db.transaction() as session:
            message = session.get(OutboxMessage, message_id)
            assert message is not None
            message.attempts += 1
            message.leased_until = None
            session.add(OutboxAttempt(message_id=message_id, at=now, ok=error is None,
                                      error=error, duration_ms=elapsed_ms))
            if error is None:
                message.status, message.sent_at, message.last_error = SENT, now, None
                message.external_id = result.external_id
                message.external_target = result.external_target
                self.stats.delivered += 1
            else:
                message.last_error = error
                self.stats.failures += 1
                if permanent:
                    message.status = FAILED
                    self.stats.dead += 1
                    log.error("outbox message %s failed for good: %s", message.key, error)
                else:
                    wait_asked = clamp_wait(wait_asked)
                    if wait_asked is not None:
                        self.stats.rate_limited += 1
                    wait = wait_asked if wait_asked is not None else self.backoff.delay(message.attempts)
                    message.next_attempt_at = now + timedelta(seconds=wait)
                    log.log(logging.INFO if waiting else logging.WARNING,
                            "outbox message %s: attempt %d failed (%s); retry in %.1fs",
                            message.key, message.attempts, error, wait)
            session.add(message)
        return 1 if error is None else 0

    # ------------------------------------------------------------------ the worker loop

    def wake(self) -> None:
        """Tell the workers there is something new (called after a commit that queued messages)."""
        for waiter in self._waiters:
            waiter.set()

    def waiter(self) -> threading.Event:
        """An event of one worker's own that every `wake` sets."""
        event = threading.Event()
        self._waiters.append(event)
        return event

    def run_forever(self, stop: threading.Event, idle: float = 0.5) -> None:
        while not stop.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:
                log.exception("outbox pass failed; trying again")
                busy = False
            if not busy:
                self._wake.wait(idle)
                self._wake.clear()
