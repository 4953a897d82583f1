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

The head row is written once per transaction, as it commits, not once per
append: appends link from the head held in memory (`_advance`), and the row
catches up before COMMIT, before a SAVEPOINT begins (so a savepoint rolled
back returns to a head the database holds) and as a savepoint is released.
Writers hold the head's lock all along, so nobody sees the row lag.

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

from sqlalchemy import event, insert, update
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.orm.attributes import flag_modified, set_committed_value
from sqlmodel import Session, col, select

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
    held: _Held | None = session.info.get(_HELD)
    if scope is not None and held is not None and held.scope is scope:
        return held.head
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    session.info[_HELD] = _Held(scope, head, unwritten=held is not None and held.unwritten)
    return head


_HELD = "opsloop.audit.head"  # session.info: the head, the transaction holding its lock, whether it moved


@dataclass
class _Held:
    scope: SessionTransaction | None
    head: AuditHead
    unwritten: bool = False  # appends moved the head in memory; its row has not caught up yet


def _advance(session: Session, head: AuditHead, seq: int, hash: str) -> None:
    """Move the head in memory only; the row is written at the transaction's boundary (below)."""
    set_committed_value(head, "seq", seq)
    set_committed_value(head, "hash", hash)
    session.info[_HELD].unwritten = True


@event.listens_for(Session, "before_commit")
def _write_head_with_the_commit(session: Session) -> None:
    # a COMMIT or the release of a savepoint: the flush that follows writes the row
    held: _Held | None = session.info.get(_HELD)
    if held is not None and held.unwritten:
        flag_modified(held.head, "seq")
        flag_modified(held.head, "hash")
        held.unwritten = False


@event.listens_for(Session, "after_transaction_create")
def _write_head_before_a_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # A SAVEPOINT is emitted with the first statement inside it, so this UPDATE still lands
    # before it: rolling the savepoint back then returns the row to the head at its start.
    held: _Held | None = session.info.get(_HELD)
    if not transaction.nested or held is None or not held.unwritten:
        return
    root = session.get_transaction()
    for connection in root.connections if root is not None else ():
        connection.execute(update(AuditHead).where(col(AuditHead.id) == 1)
                           .values(seq=held.head.seq, hash=held.head.hash))
    held.unwritten = False


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_links(session: Session) -> None:
    # appends undone by a rollback (of a savepoint too) moved the head in memory only: read it again
    held: _Held | None = session.info.get(_HELD)
    if held is not None and held.head in session:
        session.expire(held.head, ["seq", "hash"])
        held.unwritten = False


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
    _advance(session, head, event.seq, event.hash)
    session.add(event)
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
        _advance(session, head, row["seq"], row["hash"])
        rows.append(row)
        personal += [value.model_dump() for value in sealed]
    if rows:
        session.execute(insert(AuditEvent), rows)
        if personal:
            session.execute(insert(AuditPersonal), personal)
    return len(rows)


def _link(head: AuditHead, entry: Entry) -> tuple[AuditEvent, list[AuditPersonal]]:
    """The next link after `head`, its personal values sealed apart."""
    sealed = seal(_plain(entry.before), _plain(entry.after))
    event = AuditEvent(seq=head.seq + 1, at=entry.at, actor=entry.actor, action=entry.action,
                       subject=entry.subject, before=sealed.before, after=sealed.after,
                       personal=sealed.pointers or None, prev_hash=head.hash, hash="")
    event.hash = digest(event)
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
