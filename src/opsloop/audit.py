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
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from opsloop.compliance import export as _export
from opsloop.compliance import verify as _verify
from opsloop.compliance.chain import GENESIS, sha256
from opsloop.compliance.chain import canonical as _canonical
from opsloop.compliance.models import AuditPersonal
from opsloop.compliance.personal import seal
from opsloop.models import AuditEvent, AuditHead

__all__ = ["GENESIS", "Verdict", "canonical", "digest", "export", "lock_chain", "record", "verify"]

Verdict = _verify.Verdict


def canonical(event: AuditEvent) -> bytes:
    return _canonical(seq=event.seq, at=event.at, actor=event.actor, action=event.action,
                      subject=event.subject, before=event.before, after=event.after,
                      personal=event.personal, prev_hash=event.prev_hash)


def digest(event: AuditEvent) -> str:
    return sha256(canonical(event))


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
    sealed = seal(_plain(before), _plain(after))
    event = AuditEvent(
        seq=head.seq + 1,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        before=sealed.before,
        after=sealed.after,
        personal=sealed.pointers or None,
        prev_hash=head.hash,
        hash="",
    )
    event.hash = digest(event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.add(head)
    session.add_all(AuditPersonal(seq=event.seq, pointer=pointer, salt=salt, value=value)
                    for pointer, salt, value in sealed.rows)
    session.flush()
    return event


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
