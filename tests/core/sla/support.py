"""Reading what the SLA machinery did, for the tests."""

from __future__ import annotations

from sqlmodel import col, select

from opsloop.core import Core
from opsloop.models import AuditEvent, OutboxMessage
from opsloop.sla.models import SlaClock
from opsloop.timers.models import Timer

COMMANDER, RESPONDER, STRANGER = "U0RESP1", "U0RESP2", "U0NOBODY"


def thread(services: Core, ref: str) -> list[str]:
    """The lines posted in a work item's thread, oldest first."""
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.thread_key == f"card:{ref}")
                      .order_by(col(OutboxMessage.id))).all()
        return [m.payload["message"]["text"] for m in rows]


def dms(services: Core) -> list[str]:
    """Who was sent a direct message (pages), in order."""
    with services.db.transaction() as s:
        rows = s.exec(select(OutboxMessage.target).where(col(OutboxMessage.target).startswith("U"))
                      .order_by(col(OutboxMessage.id))).all()
        return list(rows)


def clocks(services: Core, ref_id: int = 1) -> dict[str, SlaClock]:
    with services.db.transaction() as s:
        rows = s.exec(select(SlaClock).where(SlaClock.work_item_id == ref_id).order_by(col(SlaClock.id)))
        return {c.target: c for c in rows}


def audit_actions(services: Core, prefix: str) -> list[str]:
    with services.db.transaction() as s:
        rows = s.exec(select(AuditEvent.action).where(col(AuditEvent.action).startswith(prefix))
                      .order_by(col(AuditEvent.seq))).all()
        return list(rows)


def pending(services: Core, kind: str | None = None) -> list[Timer]:
    with services.db.transaction() as s:
        query = select(Timer).where(col(Timer.fired_at).is_(None)).order_by(col(Timer.due_at))
        if kind:
            query = query.where(Timer.kind == kind)
        return list(s.exec(query))
