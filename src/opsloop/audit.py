"""The append-only, hash-chained audit log.

Each event's `hash` is SHA-256 over a canonical JSON serialisation of its
fields and the previous event's hash, so editing, deleting or reordering a
row breaks the chain. Writers lock the single `audit_head` row before
appending, which keeps the chain linear under concurrent transactions on
PostgreSQL (SQLite serialises writers anyway); the head also records the
newest link, so deleting the tail shows too — unless the head is edited with
it, which signed checkpoints kept outside the database reveal
(`opsloop.compliance.checkpoints`).

Personal values (contact emails, free text) are sealed on the way in: the
chain hashes a keyed commitment and the value goes to a side table, so a
person can be erased without breaking the chain (`opsloop.compliance.personal`).
Reading and checking the chain lives in `opsloop.compliance.verify`.

Lock order: every writing transaction appends to the chain, so the head is
a point all writers pass. A transaction that will lock other rows too (work
items, alerts) calls `lock_chain` FIRST; taking the head after other rows
lets two writers wait on each other (PostgreSQL reports a deadlock).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from opsloop.compliance import export as _export
from opsloop.compliance import verify as _verify
from opsloop.compliance.chain import GENESIS, sha256
from opsloop.compliance.chain import canonical as _canonical
from opsloop.compliance.models import AuditPersonal
from opsloop.compliance.personal import seal
from opsloop.models import AuditEvent, AuditHead

__all__ = ["GENESIS", "Entry", "Verdict", "canonical", "digest", "export", "lock_chain", "record",
           "record_many", "verify"]

Verdict = _verify.Verdict


def canonical(event: AuditEvent) -> bytes:
    return _canonical(seq=event.seq, at=event.at, actor=event.actor, action=event.action,
                      subject=event.subject, before=event.before, after=event.after,
                      personal=event.personal, prev_hash=event.prev_hash)


def digest(event: AuditEvent) -> str:
    return sha256(canonical(event))


def lock_chain(session: Session) -> AuditHead:
    """Take the chain's head for the rest of the transaction (see the lock order above).

    Taken once per transaction (or savepoint: a lock taken inside one that rolls back is let go):
    a busy writer appends many times, and each SELECT ... FOR UPDATE again was a round trip for a
    lock already held and a head already in the session."""
    scope = session.get_nested_transaction() or session.get_transaction()
    held = session.info.get(_HELD)
    if scope is not None and held is not None and held[0] is scope:
        return held[1]  # type: ignore[no-any-return]
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    session.info[_HELD] = (scope, head)
    return head


_HELD = "opsloop.audit.head"  # session.info: (the transaction that holds the head's lock, the head)


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
    event, personal = _link(head, Entry(at, actor, action, subject, before, after))
    session.add(event)
    session.add(head)
    session.add_all(personal)
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
    rows, personal = [], []
    for entry in entries:
        row, sealed = _link_row(head, entry)
        rows.append(row)
        personal += [value.model_dump() for value in sealed]
    if rows:
        session.execute(insert(AuditEvent), rows)
        if personal:
            session.execute(insert(AuditPersonal), personal)
        session.add(head)
        session.flush()
    return len(rows)


def _link(head: AuditHead, entry: Entry) -> tuple[AuditEvent, list[AuditPersonal]]:
    """The next link after `head` (which it moves on), its personal values sealed apart."""
    sealed = seal(_plain(entry.before), _plain(entry.after))
    event = AuditEvent(seq=head.seq + 1, at=entry.at, actor=entry.actor, action=entry.action,
                       subject=entry.subject, before=sealed.before, after=sealed.after,
                       personal=sealed.pointers or None, prev_hash=head.hash, hash="")
    event.hash = digest(event)
    head.seq, head.hash = event.seq, event.hash
    return event, [AuditPersonal(seq=event.seq, pointer=pointer, salt=salt, value=value)
                   for pointer, salt, value in sealed.rows]


def _link_row(head: AuditHead, entry: Entry) -> tuple[dict[str, Any], list[AuditPersonal]]:
    """What `_link` makes, as the row to insert: the same fields and hash, without building an
    AuditEvent only to dump it (a bulk insert of thousands of entries spent most of its time so)."""
    sealed = seal(_plain(entry.before), _plain(entry.after))
    row: dict[str, Any] = {
        "seq": head.seq + 1, "at": entry.at, "actor": entry.actor, "action": entry.action,
        "subject": entry.subject, "before": sealed.before, "after": sealed.after,
        "personal": sealed.pointers or None, "prev_hash": head.hash,
    }
    row["hash"] = sha256(_canonical(**row))
    head.seq, head.hash = row["seq"], row["hash"]
    return row, [AuditPersonal(seq=row["seq"], pointer=pointer, salt=salt, value=value)
                 for pointer, salt, value in sealed.rows]


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


def verify(session: Session) -> _verify.Verdict:
    """Walk the chain from genesis and report every defect (see opsloop.compliance.verify)."""
    return _verify.verify(session)


def export(session: Session, since: datetime | None = None) -> Iterator[str]:
    """The chain as JSON Lines, each line carrying what is needed to re-check its hash."""
    return _export.lines(session, since=since)
