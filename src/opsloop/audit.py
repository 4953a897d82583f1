"""The append-only, hash-chained audit log.

Each event's `hash` is SHA-256 over a canonical JSON serialisation of its
fields and the previous event's hash, so editing, deleting or reordering a
row breaks the chain. Writers lock the single `audit_head` row before
appending, which keeps the chain linear under concurrent transactions on
PostgreSQL (SQLite serialises writers anyway); the head also records the
newest link, so deleting the tail shows too.

Lock order: every writing transaction appends to the chain, so the head is
a point all writers pass. A transaction that will lock other rows too (work
items, alerts) calls `lock_chain` FIRST; taking the head after other rows
lets two writers wait on each other (PostgreSQL reports a deadlock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from opsloop.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def canonical(event: AuditEvent) -> bytes:
    body = {
        "seq": event.seq,
        "at": event.at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(event: AuditEvent) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def lock_chain(session: Session) -> AuditHead:
    """Take the chain's head for the rest of the transaction (see the lock order above)."""
    return session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the change)."""
    head = lock_chain(session)
    event = AuditEvent(
        seq=head.seq + 1,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        before=_plain(before),
        after=_plain(after),
        prev_hash=head.hash,
        hash="",
    )
    event.hash = digest(event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.add(head)
    session.flush()
    return event


@dataclass(frozen=True)
class Entry:
    """An event to append with `record_many`."""

    at: datetime
    actor: str
    action: str
    subject: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def record_many(session: Session, entries: Iterable[Entry]) -> int:
    """Append many events at once (bulk imports): the same links `record` makes one by one, with
    one lock of the head and one multi-row insert instead of a round trip each. Returns how many."""
    head = lock_chain(session)
    rows = []
    for entry in entries:
        event = AuditEvent(seq=head.seq + 1, at=entry.at, actor=entry.actor, action=entry.action,
                           subject=entry.subject, before=_plain(entry.before), after=_plain(entry.after),
                           prev_hash=head.hash, hash="")
        event.hash = digest(event)
        head.seq, head.hash = event.seq, event.hash
        rows.append(event.model_dump())
    if rows:
        session.execute(insert(AuditEvent), rows)
        session.add(head)
        session.flush()
    return len(rows)


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON-native values only, so what is hashed is exactly what is stored."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=_default, sort_keys=True))  # type: ignore[no-any-return]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, set | frozenset | tuple):
        return sorted(value)
    return str(value)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    problem: str | None = None
    bad_seq: int | None = None


def verify(session: Session) -> Verdict:
    """Walk the chain from genesis; report the first event that does not link."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    for event in _walk(session):
        if event.seq != expected_seq:
            missing = f"event {expected_seq}" if event.seq == expected_seq + 1 else (
                f"events {expected_seq}..{event.seq - 1}"
            )
            return Verdict(False, checked, f"{missing} missing before event {event.seq}",
                           expected_seq)
        if event.prev_hash != prev_hash:
            return Verdict(False, checked,
                           f"event {event.seq} does not link to the event before it", event.seq)
        if digest(event) != event.hash:
            return Verdict(False, checked,
                           f"event {event.seq} ({event.action} {event.subject}) was altered", event.seq)
        prev_hash, expected_seq, checked = event.hash, event.seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is None:
        return Verdict(False, checked, "the chain's head record is missing")
    if head.seq != expected_seq - 1 or head.hash != prev_hash:
        return Verdict(
            False, checked,
            f"the chain ends at event {expected_seq - 1} but its head records event {head.seq}",
            expected_seq,
        )
    return Verdict(True, checked)


def _walk(session: Session, since: datetime | None = None) -> Iterator[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.seq))
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    yield from session.exec(query.execution_options(yield_per=1000))


def export(session: Session, since: datetime | None = None) -> Iterator[str]:
    """The chain as JSON Lines, each line carrying what is needed to re-check its hash."""
    for event in _walk(session, since):
        row = json.loads(canonical(event))
        row["hash"] = event.hash
        yield json.dumps(row, sort_keys=True, ensure_ascii=False)
