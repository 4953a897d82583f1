"""Every copy of a request, settled once it is decided.

A request that reaches several people (an approval gate asked in the thread
and by DM, an exception's approvers, the people an escalation paged) leaves
one message per copy, each with buttons. Once someone decides, every copy is
edited in place to say what was decided and by whom, and loses its buttons,
so nobody acts on a question that is already answered.

Copies are found by the outbox keys their request was queued with (e.g.
`gate-ask:12:` for round 12's DMs). Each copy is edited once: the first
outcome wins (the edit's own key is `settled:<the copy's key>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from opsloop import outbox
from opsloop.messages import Message
from opsloop.models import OutboxMessage

_LIVE = (outbox.PENDING, outbox.SENT)  # a copy that failed or was cancelled has nothing to edit


def settled(original: Message, outcome: str) -> Message:
    """The copy as it reads once decided: the outcome first, what was asked under it, no buttons."""
    asked = original.text + (f"\n\n{original.body}" if original.body else "")
    return Message(text=outcome, body=asked)


def settle_copies(session: Session, *, keys: Sequence[str] = (), prefixes: Sequence[str] = (),
                  outcome: str, now: datetime) -> int:
    """Edit each copy (its outbox key is one of `keys` or starts with one of `prefixes`) to show
    `outcome`, once; returns how many edits were queued."""
    matches = [col(OutboxMessage.key) == k for k in keys]
    matches += [col(OutboxMessage.key).startswith(p, autoescape=True) for p in prefixes]
    if not matches:
        return 0
    copies = session.exec(select(OutboxMessage).where(or_(*matches), col(OutboxMessage.status).in_(_LIVE),
                                                      col(OutboxMessage.update_key).is_(None))
                          .order_by(col(OutboxMessage.id))).all()
    queued = 0
    for copy in copies:
        message = copy.payload.get("message")
        if not isinstance(message, dict):
            continue
        edit = settled(Message.from_json(message), outcome)
        queued += outbox.enqueue(session, transport=copy.transport, target=copy.target, now=now,
                                 key=f"settled:{copy.key}", update_key=copy.key, lane=copy.lane,
                                 payload={"message": edit.to_json()})
    return queued
