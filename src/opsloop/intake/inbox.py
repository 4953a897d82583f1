"""The intake's inbox: webhooks are accepted at the speed of an insert and processed after.

A storm must not wait on the incidents it opens. The HTTP intake validates a
webhook, `put`s it here (requests arriving together share one commit) and
answers: an answer still means "stored", not yet "processed", as with
PagerDuty's Events API and Alertmanager's own. The inbox worker then calls
`process`, which takes the oldest entries in the transaction that turns them
into incidents and deletes them (after the chain's head is locked, so
replicas take turns): each entry is processed exactly once, in the order it
was accepted, and a crash loses nothing (the next start processes what is
left). An entry that fails even alone is kept aside with its error instead
of blocking the ones behind it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session, col, select

from opsloop import audit
from opsloop.clock import Clock
from opsloop.db import Database
from opsloop.intake.batch import Outcome
from opsloop.intake.models import InboxEntry
from opsloop.intake.payloads import AlertmanagerWebhook, parse, parse_v2
from opsloop.intake.service import Intake, Signal

log = logging.getLogger(__name__)

ALERTMANAGER, EVENTS_V2 = "alertmanager", "events_v2"
BATCH = 64  # entries per processing transaction: short, so new webhooks are stored between them


@dataclass(frozen=True)
class Accepted:
    """A webhook as the HTTP intake accepted it: the integration, its kind, the body it sent (already
    validated) and, for Events v2, the dedup key it was answered with."""

    integration: str
    kind: str
    body: str
    dedup_key: str | None = None


@dataclass(eq=False)
class Inbox:
    db: Database
    intake: Intake
    clock: Clock
    # told what each processed batch did (e.g. a metric of incidents opened)
    processed: Callable[[list[Outcome]], None] = lambda _outcomes: None

    def put(self, entries: Sequence[Accepted]) -> None:
        """Store accepted webhooks together, in one transaction."""
        now = self.clock.now()
        with self.db.transaction() as session:
            session.execute(insert(InboxEntry), [
                {"integration": e.integration, "kind": e.kind, "body": e.body, "dedup_key": e.dedup_key,
                 "received_at": now} for e in entries])

    def process(self, limit: int = BATCH) -> int:
        """Process up to `limit` of the oldest entries in one transaction; how many were done (0: none
        wait). When a batch fails, its entries are taken one by one and one that fails alone is set
        aside (`failed_at`, `error`), so one bad entry never holds up the rest."""
        with self.db.snapshot() as session:  # most polls find nothing: they take no lock to find out
            head = session.exec(select(InboxEntry.id).where(col(InboxEntry.failed_at).is_(None)).limit(1))
            if head.first() is None:  # one row looked at, however long the backlog
                return 0
        try:
            outcomes = self.intake.ingest_taken(lambda session: self._take(session, limit))
        except (OperationalError, InterfaceError):
            raise  # the database is away or busy: nothing is set aside, the worker tries again later
        except Exception as error:
            if limit > 1:
                done = 0
                while done < limit and (n := self.process(1)):
                    done += n
                return done
            log.exception("an accepted webhook could not be processed; it is set aside")
            self._set_aside(f"{type(error).__name__}: {error}")
            return 1
        if outcomes:
            self.processed(outcomes)
        return len(outcomes)

    def set_aside(self) -> list[InboxEntry]:
        """The entries that could not be processed, oldest first, each with its error."""
        with self.db.snapshot() as session:
            return list(session.exec(select(InboxEntry).where(col(InboxEntry.failed_at).is_not(None))
                                     .order_by(col(InboxEntry.id))))

    def retry(self, ids: Sequence[int] | None, *, actor: str) -> list[int]:
        """Put set-aside entries (`ids`, or all of them) back in line, oldest first, as the worker takes
        every entry (audited: `intake.retried`); returns the ids put back. Unknown ids, and ids of
        entries not set aside, change nothing (the caller says which)."""
        with self.db.transaction() as session:
            audit.lock_chain(session)
            query = select(InboxEntry).where(col(InboxEntry.failed_at).is_not(None))
            if ids is not None:
                query = query.where(col(InboxEntry.id).in_(list(ids)))
            rows = list(session.exec(query.order_by(col(InboxEntry.id))))
            for row in rows:
                row.failed_at, row.error = None, None
                session.add(row)
            back = [row.id for row in rows if row.id is not None]
            if back:
                audit.record(session, at=self.clock.now(), actor=actor, action="intake.retried",
                             subject="intake:inbox", after={"entries": back})
        return back

    def _take(self, session: Session, limit: int) -> list[Signal]:
        rows = list(session.exec(select(InboxEntry).where(col(InboxEntry.failed_at).is_(None))
                                 .order_by(col(InboxEntry.id)).limit(limit)))
        if rows:
            session.execute(delete(InboxEntry).where(col(InboxEntry.id).in_([r.id for r in rows])))
        return [signal(row) for row in rows]

    def _set_aside(self, error: str) -> None:
        with self.db.transaction() as session:
            head = session.exec(select(InboxEntry).where(col(InboxEntry.failed_at).is_(None))
                                .order_by(col(InboxEntry.id)).limit(1)).first()
            if head is not None:
                head.failed_at, head.error = self.clock.now(), error[:2000]
                session.add(head)


def signal(entry: InboxEntry | Accepted) -> Signal:
    """The signal an entry carries, read as when it was accepted (an Events v2 event with the key it
    was answered with)."""
    body = json.loads(entry.body)
    if entry.kind == ALERTMANAGER:
        return entry.integration, parse(AlertmanagerWebhook, body)
    event = parse_v2(body)
    if event.dedup_key is None and entry.dedup_key is not None:
        event = event.model_copy(update={"dedup_key": entry.dedup_key})
    return entry.integration, event


def inbox_depth(session: Session) -> tuple[int, int]:
    """(entries waiting to be processed, entries set aside) in the inbox."""
    counts = dict(session.exec(select(col(InboxEntry.failed_at).is_(None), func.count())
                               .group_by(col(InboxEntry.failed_at).is_(None))).all())
    return int(counts.get(True, 0)), int(counts.get(False, 0))
