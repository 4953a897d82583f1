"""The sweeper: fires due timers, each exactly once, however many replicas sweep.

A sweep claims a batch of due, unfired timers in due order (PostgreSQL:
`FOR UPDATE SKIP LOCKED`; SQLite: the whole transaction holds the write lock
from `BEGIN IMMEDIATE`), runs each timer's handler, and sets `fired_at` in
the same transaction as the handler's effects (state changes, audit events,
outbox messages). A crash before the commit leaves the timer unfired for the
next sweep; after it, the timer is never fired again. Timers that came due
while no sweeper ran are simply due, so the first sweep after a start fires
them, oldest first.

On PostgreSQL the batch first locks the audit chain's head row. Every change
that is audited takes that lock anyway, and taking it before the timer rows
keeps one lock order for everyone: a command that cancels timers (an
acknowledgement) holds the head and then touches timers; a sweep that held
timers and then waited for the head would deadlock with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import update
from sqlmodel import Session, col, select

from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.models import AuditHead
from opsloop.scheduled import safely
from opsloop.timers.models import Timer

log = logging.getLogger(__name__)

# A handler does the timer's work in the given session and returns its outcome
# (`fired`, `skipped: why` ...), which is stored on the timer.
TimerHandler = Callable[[Session, Timer, datetime], str]


@dataclass
class SweepStats:
    sweeps: int = 0
    fired: int = 0
    failed: int = 0
    busy_seconds: float = 0.0  # time spent in sweeps that fired something
    batches: int = 0
    durations_ms: list[float] = field(default_factory=list)  # per batch, the newest 10,000

    def record(self, elapsed: float, fired: int) -> None:
        self.batches += 1
        self.busy_seconds += elapsed
        self.durations_ms.append(elapsed * 1000)
        if len(self.durations_ms) > 10_000:
            del self.durations_ms[:5_000]
        self.fired += fired


class Sweeper:
    def __init__(
        self, db: Database, clock: Clock, handlers: Mapping[str, TimerHandler] | None = None, *,
        batch: int = 200, after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.handlers: Mapping[str, TimerHandler] = MappingProxyType(dict(handlers or {}))
        self._installed = handlers is not None
        self.batch = batch
        self.after_commit = after_commit or (lambda: None)
        self.stats = SweepStats()

    def use(self, handlers: Mapping[str, TimerHandler]) -> None:
        """Install the handler of each timer kind; once (opsloop/table.py holds the one registry)."""
        if self._installed:
            raise RuntimeError("the sweeper already has its timer handlers")
        self.handlers, self._installed = MappingProxyType(dict(handlers)), True

    def sweep(self, now: datetime | None = None, limit: int = 10_000, budget: float | None = None) -> int:
        """Fire every timer due at `now` (default: the clock's now), up to `limit`; returns how many.

        With a `budget` (seconds), stop starting new batches once it is spent, so a
        scheduler job ends before its next run is due; what is left fires next run.
        """
        self.stats.sweeps += 1
        fired = 0
        ends = time.monotonic() + budget if budget is not None else None
        while fired < limit and (ends is None or time.monotonic() < ends):
            moment = now or self.clock.now()
            if not self._anything_due(moment):
                break
            started = time.perf_counter()
            count = self._fire_batch(moment, min(self.batch, limit - fired))
            self.stats.record(time.perf_counter() - started, count)
            if count == 0:
                break
            fired += count
            self.after_commit()  # e.g. wake the outbox: this batch's messages are committed
        return fired

    def run_safely(self, budget: float | None = None) -> int:
        """One sweep for a scheduler job: an error is logged, never raised into the scheduler."""
        return safely(lambda: self.sweep(budget=budget), failed=0, log=log,
                      message="timer sweep failed; the next one retries")

    def _anything_due(self, now: datetime) -> bool:
        # a cheap read on the partial index before taking any lock
        with self.db.engine.connect() as connection:
            query = select(Timer.id).where(col(Timer.fired_at).is_(None), col(Timer.due_at) <= now).limit(1)
            return connection.execute(query).first() is not None

    def _fire_batch(self, now: datetime, size: int, *, careful: bool = False) -> int:
        """Claim and fire one batch. The fast path runs handlers back to back; if one
        raises, the whole batch is undone and run again with a savepoint per timer, so
        only the failing timer's own work is lost (and its failure recorded)."""
        try:
            with self.db.transaction() as session:
                if not self.db.is_sqlite:
                    session.exec(select(AuditHead.id).where(AuditHead.id == 1).with_for_update()).one()
                timers = list(session.exec(
                    select(Timer).where(col(Timer.fired_at).is_(None), col(Timer.due_at) <= now)
                    .order_by(col(Timer.due_at), col(Timer.id)).limit(size)
                    .with_for_update(skip_locked=True)
                ))
                outcomes: dict[str, list[int]] = {}
                for timer in timers:
                    outcome = self._run_careful(session, timer, now) if careful else self._run(
                        session, timer, now)
                    outcomes.setdefault(outcome, []).append(timer.id or 0)
                session.flush()
                for outcome, ids in outcomes.items():  # one statement per outcome, not per timer
                    session.exec(update(Timer).where(col(Timer.id).in_(ids))  # type: ignore[call-overload]
                                 .values(fired_at=now, outcome=outcome))
                return len(timers)
        except _HandlerFailed:
            return self._fire_batch(now, size, careful=True)

    def _handler(self, timer: Timer) -> TimerHandler | None:
        handler = self.handlers.get(timer.kind)
        if handler is None:
            log.error("timer %s: no handler for kind %r; marked fired", timer.id, timer.kind)
            self.stats.failed += 1
        return handler

    def _run(self, session: Session, timer: Timer, now: datetime) -> str:
        handler = self._handler(timer)
        if handler is None:
            return f"error: no handler for {timer.kind!r}"
        try:
            return handler(session, timer, now)
        except Exception as error:
            raise _HandlerFailed from error

    def _run_careful(self, session: Session, timer: Timer, now: datetime) -> str:
        handler = self._handler(timer)
        if handler is None:
            return f"error: no handler for {timer.kind!r}"
        try:
            with session.begin_nested():  # a failing handler undoes only its own work
                return handler(session, timer, now)
        except Exception as error:
            # firing it again would fail again: record the failure instead of looping
            log.exception("timer %s (%s) failed", timer.id, timer.kind)
            self.stats.failed += 1
            return f"error: {type(error).__name__}: {error}"[:500]


class _HandlerFailed(Exception):
    """A handler raised on the fast path: the batch is redone timer by timer."""
