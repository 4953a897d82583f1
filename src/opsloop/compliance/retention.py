"""Retention: data is kept no longer than the policy's `retention` says, applied once a day.

    retention: {outbox: 90d, signals: 400d, timeline_text: 730d}

- `outbox`: messages finished (sent, failed, superseded, cancelled) before the
  cut-off are deleted with their attempts. A message that others still name
  (a card that later edits update, a thread's parent, a feedback loop's
  resolution notice) keeps its row, emptied of its body and errors, so those
  references still resolve. Webhooks the intake set aside (`intake_inbox`
  entries that could not be processed) before the cut-off go too: the same
  kind of thing coming in.
- `signals`: customer-health signals measured before the cut-off are deleted.
- `timeline_text`: the words of timeline lines older than the cut-off become
  `[expired]`; the line itself (when, who, what kind) stays.

Once per local day across replicas: the day is claimed in the database (like
the digest's), in a short transaction; the deleting is done in batches of
its own so the chain's head is never held for long; a `retention.applied`
audit event records what was removed. A run that dies half-way is finished
by the next day's (everything past the cut-off still is).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.compliance.claims import claim
from opsloop.compliance.models import ComplianceRun
from opsloop.db import Database
from opsloop.durations import format_duration
from opsloop.health.models import HealthSignal
from opsloop.intake.models import InboxEntry
from opsloop.loops.models import FeedbackLoop
from opsloop.models import OutboxMessage, TimelineEvent
from opsloop.outbox import CANCELLED, FAILED, SENT, SUPERSEDED
from opsloop.policy import Policy
from opsloop.scheduled import safely
from opsloop.types import OPSLOOP

log = logging.getLogger(__name__)

JOB = "retention"
EXPIRED = "[expired]"
BATCH = 1000


class RetentionJob:
    def __init__(self, db: Database, policy: Policy, clock: Clock) -> None:
        self.db = db
        self.rules = policy.retention
        self.clock = clock
        self.zone = ZoneInfo(policy.timezone)

    @property
    def configured(self) -> bool:
        return any(v is not None for v in (self.rules.outbox, self.rules.signals, self.rules.timeline_text))

    def run_due(self, now: datetime | None = None) -> dict[str, Any] | None:
        """Apply retention once for today (local); None when nothing is configured or it ran today."""
        if not self.configured:
            return None
        now = now or self.clock.now()
        day = now.astimezone(self.zone).date().isoformat()
        try:
            with self.db.transaction() as session:
                audit.lock_chain(session)  # claimers queue here (see opsloop.compliance.claims)
                if claim(session, JOB, day, now) is None:
                    return None
        except IntegrityError:
            return None
        outcome = self.apply(now)
        with self.db.transaction() as session:
            run = session.get(ComplianceRun, (JOB, day))
            if run is not None:
                run.outcome = outcome
                session.add(run)
            audit.record(session, at=self.clock.now(), actor=OPSLOOP, action="retention.applied",
                         subject=f"retention:{day}", after=outcome)
        log.info("retention applied for %s: %s", day, outcome)
        return outcome

    def run_safely(self) -> dict[str, Any] | None:
        return safely(self.run_due, failed=None, log=log, message="retention failed; the next run retries")

    def apply(self, now: datetime) -> dict[str, Any]:
        """Remove what is past each configured period (idempotent); returns what was removed."""
        outcome: dict[str, Any] = {}
        if self.rules.outbox is not None:
            deleted, emptied = self._outbox(now - self.rules.outbox)
            outcome["outbox"] = {"older_than": format_duration(self.rules.outbox), "deleted": deleted,
                                 "emptied": emptied,
                                 "inbox_set_aside_deleted": self._set_aside(now - self.rules.outbox)}
        if self.rules.signals is not None:
            outcome["signals"] = {"older_than": format_duration(self.rules.signals),
                                  "deleted": self._signals(now - self.rules.signals)}
        if self.rules.timeline_text is not None:
            outcome["timeline_text"] = {"older_than": format_duration(self.rules.timeline_text),
                                        "expired": self._timeline(now - self.rules.timeline_text)}
        return outcome

    # ------------------------------------------------------------------ each kind

    def _outbox(self, cutoff: datetime) -> tuple[int, int]:
        with self.db.transaction() as session:
            named = self._named_keys(session)
        deleted = emptied = 0
        last = 0
        finished = (SENT, FAILED, SUPERSEDED, CANCELLED)
        while True:
            with self.db.transaction() as session:
                rows = session.exec(
                    select(OutboxMessage.id, OutboxMessage.key, OutboxMessage.payload,
                           OutboxMessage.last_error)
                    .where(col(OutboxMessage.id) > last, col(OutboxMessage.created_at) < cutoff,
                           col(OutboxMessage.status).in_(finished))
                    .order_by(col(OutboxMessage.id)).limit(BATCH)
                ).all()
                if not rows:
                    return deleted, emptied
                last = int(rows[-1][0] or 0)
                gone = [row_id for row_id, key, _, _ in rows if key not in named]
                kept = [row_id for row_id, key, payload, error in rows if key in named and (payload or error)]
                if gone:
                    session.exec(delete(OutboxMessage).where(col(OutboxMessage.id).in_(gone)))  # type: ignore[call-overload]
                if kept:
                    session.exec(update(OutboxMessage).where(col(OutboxMessage.id).in_(kept))  # type: ignore[call-overload]
                                 .values(payload={}, last_error=None))
                deleted += len(gone)
                emptied += len(kept)

    @staticmethod
    def _named_keys(session: Session) -> set[str]:
        """Keys of messages that other rows refer to (edits, threads, feedback loops' resolutions)."""
        named: set[str] = set()
        for column in (OutboxMessage.update_key, OutboxMessage.thread_key):
            query = select(column).where(col(column).is_not(None)).distinct()
            named.update(k for k in session.exec(query) if k)
        named.update(k for k in session.exec(select(FeedbackLoop.resolution_key).where(
            col(FeedbackLoop.resolution_key).is_not(None)).distinct()) if k)
        return named

    def _set_aside(self, cutoff: datetime) -> int:
        return self._delete_before(InboxEntry, InboxEntry.failed_at, cutoff)

    def _signals(self, cutoff: datetime) -> int:
        return self._delete_before(HealthSignal, HealthSignal.at, cutoff)

    def _delete_before(self, model: type[InboxEntry | HealthSignal], when: Any, cutoff: datetime) -> int:
        """Delete the rows of `model` whose `when` is before `cutoff`, a batch per transaction."""
        total = 0
        while True:
            with self.db.transaction() as session:
                ids = list(session.exec(select(model.id).where(col(when) < cutoff)
                                        .order_by(col(model.id)).limit(BATCH)))
                if not ids:
                    return total
                session.exec(delete(model).where(col(model.id).in_(ids)))  # type: ignore[call-overload]
                total += len(ids)

    def _timeline(self, cutoff: datetime) -> int:
        total = 0
        while True:
            with self.db.transaction() as session:
                ids = list(session.exec(select(TimelineEvent.id).where(
                    col(TimelineEvent.at) < cutoff, col(TimelineEvent.text) != EXPIRED)
                    .order_by(col(TimelineEvent.id)).limit(BATCH)))
                if not ids:
                    return total
                session.exec(update(TimelineEvent).where(col(TimelineEvent.id).in_(ids))  # type: ignore[call-overload]
                             .values(text=EXPIRED))
                total += len(ids)

